"""End to end: SCIM requests in, a real slapd group out, the worker in between."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from connector.store.models import AuditRow
from sync.context import build_context
from sync.ledger import RunStatus
from sync.reconcile import reconcile
from sync.targets.ldap_filters import normalise_dn
from sync.worker import Worker
from tests.sync import people as P


def _members(slapd) -> set[str]:
    return {normalise_dn(v) for v in slapd.member_values()} - {normalise_dn(slapd.placeholder_dn)}


def _dn(slapd, uid: str) -> str:
    return normalise_dn(f"uid={uid},{slapd.people_dn}")


def _audit(store) -> list[tuple[str, str | None, str, list]]:
    with store.session_read() as s:
        return [(r.action, r.user_name, r.result, r.reasons) for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


def _today(clock) -> str:
    """The test clock's day in the district (the policy's dates are Denver dates)."""
    from zoneinfo import ZoneInfo

    return clock.today(ZoneInfo("America/Denver")).isoformat()


def _wait(condition, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def worker(sync_settings, store, clock):
    ctx = build_context(sync_settings, store=store, clock=clock)
    w = Worker(ctx, name="test-worker")
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(timeout=10)
    ctx.target.close()


def test_scim_changes_reach_the_group_within_seconds(client, store, slapd, worker):
    """Entitled → added; location PATCH → removed with NO_APPROVAL; active "False" → removed."""
    slapd.add_people(["ann", "bea"])
    ann = P.create(client, P.person("ann"))
    bea = P.create(client, P.person("bea"))
    P.approvers(client, "0123", [ann, bea])
    _wait(lambda: _members(slapd) == {_dn(slapd, "ann"), _dn(slapd, "bea")})

    P.patch(client, ann, {"op": "Replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    took = _wait(lambda: _dn(slapd, "ann") not in _members(slapd))
    assert took < 5
    _wait(lambda: ("revoke", "ann", "ok", ["NO_APPROVAL"]) in _audit(store))

    P.patch(client, bea, {"op": "Replace", "path": "active", "value": "False"})
    _wait(lambda: _members(slapd) == set())
    _wait(lambda: ("revoke", "bea", "ok", ["NOT_ACTIVE"]) in _audit(store))


def test_rehire_needs_a_new_full_completion(client, store, slapd, worker, clock):
    """A departed person who returns is not re-added on a quiz, only on a full course."""
    slapd.add_people(["cal"])
    cal = P.create(client, P.person("cal"))
    P.approvers(client, "0123", [cal])
    _wait(lambda: _members(slapd) == {_dn(slapd, "cal")})
    P.patch(client, cal, {"op": "Replace", "path": "active", "value": "False"})
    _wait(lambda: _members(slapd) == set())
    P.patch(client, cal, {"op": "Replace", "path": "active", "value": "True"},
            {"op": "add", "path": f"{P.WALKIN}:certifications",
             "value": [{"course": P.COURSE, "kind": "recert", "completedOn": _today(clock)}]})
    _wait(lambda: any(a[0] == "revoke" for a in _audit(store)))
    time.sleep(1.0)  # the worker has had every chance to (wrongly) re-add
    assert _members(slapd) == set()
    P.patch(client, cal, {"op": "add", "path": f"{P.WALKIN}:certifications",
                          "value": [{"course": P.COURSE, "kind": "full", "completedOn": _today(clock)}]})
    _wait(lambda: _members(slapd) == {_dn(slapd, "cal")})


def test_expiry_overnight_is_removed_by_the_daily_run(client, store, slapd, sync_settings, clock):
    """valid_through 2026-06-30: kept on June 30, removed by the first run on July 1."""
    slapd.add_people(["dee"])
    dee = P.create(client, P.person("dee", certs=[("full", "2024-09-10")]))
    P.backdate(store, P.approvers(client, "0123", [dee]), datetime(2025, 9, 20, 16, tzinfo=UTC))
    ctx = build_context(sync_settings, store=store, clock=clock)
    clock.set(datetime(2026, 6, 30, 23, 0, tzinfo=UTC))
    reconcile(ctx, "walkin", kind="daily")
    assert _members(slapd) == {_dn(slapd, "dee")}
    clock.set(datetime(2026, 7, 1, 7, 0, tzinfo=UTC))  # 01:00 in Denver
    result = reconcile(ctx, "walkin", kind="daily")
    assert result.status is RunStatus.OK and _members(slapd) == set()
    assert _audit(store)[-1] == ("revoke", "dee", "ok", ["CERT_EXPIRED"])
    ctx.target.close()


def test_slapd_stopped_mid_plan_then_the_next_run_converges(client, store, slapd, sync_settings, clock,
                                                             monkeypatch):
    """The directory dies after the first write batch: the run is partial, says what
    was not done, and the next run (directory back) converges exactly."""
    import sync.writer as writer_module

    monkeypatch.setattr(writer_module, "WRITE_CHUNK", 5)
    uids = [f"p{i:02d}" for i in range(20)]
    slapd.add_people(uids + ["stray"])
    ids = [P.create(client, P.person(u)) for u in uids]
    P.approvers(client, "0123", ids)
    slapd.set_members([slapd.placeholder_dn, f"uid=stray,{slapd.people_dn}"])
    ctx = build_context(sync_settings, store=store, clock=clock)
    calls = {"n": 0}
    real_add = ctx.target.add_members

    def add_then_die(group, members, **hints):
        result = real_add(group, members, **hints)
        calls["n"] += 1
        if calls["n"] == 1:
            slapd.stop()
        return result

    monkeypatch.setattr(ctx.target, "add_members", add_then_die)
    first = reconcile(ctx, "walkin")
    assert first.status is RunStatus.PARTIAL
    assert first.counts["added"] == 5 and first.counts["removed"] == 0
    failed = [a for a in _audit(store) if a[0] == "failed"]
    assert len(failed) == 16  # 15 adds and the stray's removal, each named
    slapd.start()
    monkeypatch.setattr(ctx.target, "add_members", real_add)
    second = reconcile(ctx, "walkin")
    assert second.status is RunStatus.OK
    assert _members(slapd) == {_dn(slapd, u) for u in uids}
    grants = [a[1] for a in _audit(store) if a[0] == "grant"]
    assert sorted(grants) == sorted(uids)  # every person granted exactly once
    assert ("drift", None, "ok", ["UNKNOWN_MEMBER"]) in _audit(store)
    ctx.target.close()
