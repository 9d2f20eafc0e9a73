"""No false grant, no missed revoke (issue 11): renames, deletions across
entitlements, runs at once and killed runs — through the real SCIM API, a real slapd,
and the store on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from connector.store.models import AccessLossRow, AuditRow, HoldingRow, PendingChangeRow, SyncRunRow
from mappings.model import DEFAULT_MAPPING_PATH
from sync.context import build_context
from sync.ledger import RunStatus
from sync.lock import GroupLock
from sync.reconcile import reconcile
from sync.targets.ldap_filters import normalise_dn
from tests.conftest import AUTH
from tests.faketime import pinned_env
from tests.sync import people as P

ROOT = Path(__file__).resolve().parents[2]


def _members(slapd, group=None) -> set[str]:
    values = slapd.member_values(group) if group else slapd.member_values()
    return {normalise_dn(v) for v in values} - {normalise_dn(slapd.placeholder_dn)}


def _dn(slapd, uid: str) -> str:
    return normalise_dn(f"uid={uid},{slapd.people_dn}")


def _audit(store, entitlement: str = "walkin") -> list[tuple]:
    with store.session_read() as s:
        return [(r.action, r.user_name, r.member, r.reasons, r.result, r.detail) for r in s.scalars(
            select(AuditRow).where(AuditRow.entitlement == entitlement).order_by(AuditRow.id))]


def _losses(store) -> dict[tuple[str, str], str]:
    with store.session_read() as s:
        return {(r.person_id, r.entitlement): r.lost_on for r in s.scalars(select(AccessLossRow))}


@pytest.fixture
def ctx(sync_settings, store, clock):
    context = build_context(sync_settings, store=store, clock=clock)
    yield context
    context.target.close()


def _event(ctx, *ids: str):
    return reconcile(ctx, "walkin", kind="event", person_ids=list(ids))


def test_a_rename_moves_the_grant_in_the_event_path(client, store, slapd, ctx):
    """userName w0010 → w0011: the old entry goes (a move, no loss date), the new one
    comes, in one event run; then active "False" and DELETE remove whatever is held."""
    slapd.add_people(["w0010", "w0011"])
    uid = P.create(client, P.person("w0010"))
    P.approvers(client, "0123", [uid])
    assert _event(ctx, uid).status is RunStatus.OK and _members(slapd) == {_dn(slapd, "w0010")}

    P.patch(client, uid, {"op": "replace", "path": "userName", "value": "w0011"})
    assert _event(ctx, uid).status is RunStatus.OK
    assert _members(slapd) == {_dn(slapd, "w0011")}
    moved = [a for a in _audit(store) if a[0] == "move"]
    assert moved == [("move", "w0011", _dn(slapd, "w0010"), ["ENTRY_CHANGED"], "ok", None)]
    assert _losses(store) == {}

    P.patch(client, uid, {"op": "replace", "path": "active", "value": "False"})
    _event(ctx, uid)
    assert _members(slapd) == set()
    assert _audit(store)[-1][:2] == ("revoke", "w0011") and _losses(store) == {(uid, "walkin"): "2026-11-29"}
    assert client.delete(f"/scim/v2/Users/{uid}", headers=AUTH).status_code == 204
    assert _event(ctx, uid).status is RunStatus.OK and _members(slapd) == set()


def test_a_rename_then_offboarding_before_any_run_removes_the_old_entry(client, store, slapd, ctx):
    """Renamed to a key with no entry, then disabled and deleted, before the worker
    ran: the event run removes uid=w0010 as a revoke with a loss date."""
    slapd.add_people(["w0010"])
    uid = P.create(client, P.person("w0010"))
    P.approvers(client, "0123", [uid])
    _event(ctx, uid)
    P.patch(client, uid, {"op": "replace", "path": "userName", "value": "w0099"})
    P.patch(client, uid, {"op": "replace", "path": "active", "value": "False"})
    assert client.delete(f"/scim/v2/Users/{uid}", headers=AUTH).status_code == 204
    assert _event(ctx, uid).status is RunStatus.OK
    assert _members(slapd) == set()
    revoke = _audit(store)[-1]
    # Deleted: the audit names them as the entry was granted (the store no longer knows them).
    assert revoke[:3] == ("revoke", "w0010", _dn(slapd, "w0010")) and revoke[3] == ["NOT_ACTIVE"]
    assert _losses(store) == {(uid, "walkin"): "2026-11-29"}


@pytest.mark.parametrize("entitled_again", [True, False])
def test_deleted_and_created_again_under_the_same_key_in_one_event_run(client, store, slapd, ctx, entitled_again):
    """A user deleted and created again (a new id) with the same userName before the
    worker ran (found by the property test): the entry is the new person's, and the
    new person's decision rules it — the deleted one's cached entry does not revoke it."""
    slapd.add_people(["w0020"])
    old = P.create(client, P.person("w0020"))
    group = P.approvers(client, "0123", [old])
    _event(ctx, old)
    assert _members(slapd) == {_dn(slapd, "w0020")}
    assert client.delete(f"/scim/v2/Users/{old}", headers=AUTH).status_code == 204
    new = P.create(client, P.person("w0020"))
    if entitled_again:
        r = client.patch(f"/scim/v2/Groups/{group}", headers=AUTH, json={"Operations": [
            {"op": "add", "path": "members", "value": [{"value": new}]}]})
        assert r.status_code in (200, 204)
    assert _event(ctx, old, new).status is RunStatus.OK
    with store.session_read() as s:
        holders = {(r.member, r.person_id) for r in s.scalars(select(HoldingRow))}
    if entitled_again:
        assert _members(slapd) == {_dn(slapd, "w0020")}
        assert holders == {(_dn(slapd, "w0020"), new)}  # the entry is the new person's now
        assert [a[0] for a in _audit(store)] == ["grant"]
    else:
        assert _members(slapd) == set()
        assert [(a[0], a[3]) for a in _audit(store)] == [("grant", []), ("revoke", ["NO_APPROVAL"])]
        assert holders == set() and _losses(store) == {(new, "walkin"): "2026-11-29"}


def test_renamed_and_no_longer_qualifying_in_one_full_run_is_a_revoke_not_drift(client, store, slapd, ctx):
    """Path 7: the old entry of a person the connector granted goes as their revoke,
    with a loss date, so a quiz alone cannot bring access back."""
    slapd.add_people(["v1", "v2"])
    uid = P.create(client, P.person("v1"))
    P.approvers(client, "0123", [uid])
    reconcile(ctx, "walkin")
    P.patch(client, uid, {"op": "replace", "path": "userName", "value": "v2"},
            {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and _members(slapd) == set()
    actions = [(a[0], a[2], a[3]) for a in _audit(store)]
    assert actions[-1] == ("revoke", _dn(slapd, "v1"), ["NO_APPROVAL"])
    assert "drift" not in {a[0] for a in actions}
    assert _losses(store) == {(uid, "walkin"): "2026-11-29"}


def test_a_deletion_removes_every_entitlement(client, store, slapd, sync_settings, clock, tmp_path):
    """Path 6: a deleted person who held Walk-in and Elementary Scheduling leaves both
    groups in the same event job, each as a revoke naming them."""
    elementary = slapd.add_group(f"cn=elementary,{slapd.group_dn.split(',', 1)[1]}", [slapd.placeholder_dn])
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = slapd.group_dn
    data["entitlements"]["elementary_scheduling"]["directory_group"]["ldap_group_dn"] = elementary
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(data))
    sync_settings.mapping_path = tmp_path / "both.yaml"
    ctx = build_context(sync_settings, store=store, clock=clock)
    slapd.add_people(["dora"])
    person = P.person("dora")
    person[P.WALKIN]["certifications"].append({"course": "Elementary Scheduling Certification", "kind": "full",
                                               "completedOn": "2025-09-15"})
    uid = P.create(client, person)
    P.approvers(client, "0123", [uid])
    for name in ("walkin", "elementary_scheduling"):
        reconcile(ctx, name, kind="event", person_ids=[uid])
    assert _members(slapd) == _members(slapd, elementary) == {_dn(slapd, "dora")}

    assert client.delete(f"/scim/v2/Users/{uid}", headers=AUTH).status_code == 204
    for name in ("walkin", "elementary_scheduling"):
        assert reconcile(ctx, name, kind="event", person_ids=[uid]).status is RunStatus.OK
    assert _members(slapd) == _members(slapd, elementary) == set()
    for name in ("walkin", "elementary_scheduling"):
        assert _audit(store, name)[-1][:4] == ("revoke", "dora", _dn(slapd, "dora"), ["NOT_ACTIVE"])
    ctx.target.close()


def test_a_person_run_waits_for_a_full_run_and_then_wins(client, store, slapd, ctx, sync_settings, clock,
                                                         monkeypatch):
    """Path 3: while a full run writes, a person run of the same group is busy (it
    names the holder); after it, the person deactivated meanwhile is removed and
    stays removed: the full run's older plan is never applied over it."""
    uids = [f"f{i}" for i in range(6)]
    slapd.add_people(uids)
    ids = [P.create(client, P.person(u)) for u in uids]
    P.approvers(client, "0123", ids)
    sync_settings.sync.lock_wait_seconds = 0.0
    writing, release = threading.Event(), threading.Event()
    real_add = ctx.target.add_members

    def slow_add(group, members, **hints):
        writing.set()
        assert release.wait(20)
        return real_add(group, members, **hints)

    monkeypatch.setattr(ctx.target, "add_members", slow_add)
    results = []
    full = threading.Thread(target=lambda: results.append(reconcile(ctx, "walkin")))
    full.start()
    assert writing.wait(20)
    P.patch(client, ids[0], {"op": "replace", "path": "active", "value": "False"})
    other = build_context(sync_settings, store=store, clock=clock)
    busy = reconcile(other, "walkin", kind="event", person_ids=[ids[0]])
    assert busy.status is RunStatus.BUSY and "is being written by run" in busy.detail
    release.set()
    full.join(20)
    assert results[0].status is RunStatus.OK and _dn(slapd, "f0") in _members(slapd)  # the older plan
    assert reconcile(other, "walkin", kind="event", person_ids=[ids[0]]).status is RunStatus.OK
    assert _members(slapd) == {_dn(slapd, u) for u in uids[1:]}
    other.target.close()


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from connector.clock import SystemClock
    from connector.settings import Settings
    from sync.context import build_context
    from sync.reconcile import reconcile

    ctx = build_context(Settings(), clock=SystemClock())
    op = sys.argv[1]
    real = getattr(ctx.target, op)

    def then_die(group, members, **hints):
        result = real(group, members, **hints)  # the directory has done it...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before recording it

    setattr(ctx.target, op, then_die)
    reconcile(ctx, "walkin")
""")


def _env(sync_settings, clock, preload) -> dict:
    ldap = sync_settings.ldap
    return pinned_env({
        **os.environ,
        "WALKIN_DATABASE_URL": sync_settings.database_url,
        "WALKIN_MAPPING_PATH": str(sync_settings.mapping_path),
        "WALKIN_SYNC__TARGET": "ldap",
        "WALKIN_LDAP__URLS": json.dumps(ldap.urls),
        "WALKIN_LDAP__BIND_DN": ldap.bind_dn,
        "WALKIN_LDAP__BIND_PASSWORD": ldap.bind_password.get_secret_value(),
        "WALKIN_LDAP__PEOPLE_BASE": ldap.people_base,
        "WALKIN_LDAP__PLACEHOLDER_MEMBER": ldap.placeholder_member,
    }, clock.now(), preload)


def _killed(sync_settings, clock, preload, op: str) -> None:
    done = subprocess.run([sys.executable, "-c", _KILLER, op], env=_env(sync_settings, clock, preload), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_run_killed_after_its_writes_is_settled_by_the_next(client, store, slapd, ctx, sync_settings, clock,
                                                              faketime_preload):
    """Path 4: kill -9 right after the directory took the adds, and later right after
    it took the removals: the next run marks the run interrupted, records each change
    it finds made ("found applied after an interrupted run"), holdings and loss dates
    included, and converges without doing anything twice."""
    uids = [f"k{i}" for i in range(5)]
    slapd.add_people(uids)
    ids = [P.create(client, P.person(u)) for u in uids]
    P.approvers(client, "0123", ids)
    _killed(sync_settings, clock, faketime_preload, "add_members")
    assert _members(slapd) == {_dn(slapd, u) for u in uids}
    with store.session_read() as s:
        assert [r.status for r in s.scalars(select(SyncRunRow))] == ["running"]
        assert len(s.scalars(select(PendingChangeRow)).all()) == 5

    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and result.counts["added"] == 0
    with store.session_read() as s:
        runs = [(r.status, r.detail) for r in s.scalars(select(SyncRunRow).order_by(SyncRunRow.id))]
        assert runs[0][0] == "interrupted" and s.scalars(select(PendingChangeRow)).all() == []
        assert len(s.scalars(select(HoldingRow)).all()) == 5
    grants = [a for a in _audit(store) if a[0] == "grant"]
    assert len(grants) == 5 and all(a[5].startswith("found applied after an interrupted run") for a in grants)

    for user_id in ids[:2]:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    _killed(sync_settings, clock, faketime_preload, "remove_members")
    assert _members(slapd) == {_dn(slapd, u) for u in uids[2:]}
    assert _losses(store) == {}  # not recorded by the killed run
    assert reconcile(ctx, "walkin").status is RunStatus.OK
    assert _losses(store) == {(i, "walkin"): "2026-11-29" for i in ids[:2]}
    revokes = [a for a in _audit(store) if a[0] == "revoke"]
    assert [a[3] for a in revokes] == [["NO_APPROVAL"], ["NO_APPROVAL"]]
    assert all(a[5].startswith("found applied after an interrupted run") for a in revokes)
    # The after-loss rule holds: a quiz alone does not bring access back.
    P.patch(client, ids[0], {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0123"},
            {"op": "add", "path": f"{P.WALKIN}:certifications",
             "value": [{"course": P.COURSE, "kind": "recert", "completedOn": "2026-11-29"}]})
    assert reconcile(ctx, "walkin").status is RunStatus.OK
    assert _dn(slapd, "k0") not in _members(slapd)


def test_a_lock_held_by_a_killed_process_is_taken_over_at_once(store, clock, tmp_path):
    """A run's lock outlives a kill -9 only until the next run looks: the owner's
    process is gone, so it is taken (and whoever waits is told who held it)."""
    from sync.lock import GroupBusy

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from connector.clock import SystemClock
        from connector.store.database import Store
        from sync.lock import GroupLock
        lock = GroupLock(Store({store.engine.url.render_as_string(hide_password=False)!r}, auto_migrate=False),
                         SystemClock(), "ldap", "cn=g", lease_seconds=3600)
        lock.acquire()
        print("held", flush=True)
        time.sleep(600)
    """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = GroupLock(store, clock, "ldap", "cn=g", lease_seconds=60)
        with pytest.raises(GroupBusy, match=f":{holder.pid}:"):
            lock.acquire(wait_seconds=0.3)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        lock.acquire()
        assert lock.taken_over is not None and f":{holder.pid}:" in lock.taken_over.owner
        lock.release()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_the_loss_date_is_the_day_of_the_revoke(client, store, slapd, ctx, clock):
    """A revoke's loss date is the district day of the run that confirmed it."""
    slapd.add_people(["ld"])
    uid = P.create(client, P.person("ld"))
    P.approvers(client, "0123", [uid])
    _event(ctx, uid)
    clock.set(datetime(2026, 12, 3, 6, 30, tzinfo=UTC))  # 23:30 on 2 December in Denver
    P.patch(client, uid, {"op": "replace", "path": "active", "value": "False"})
    _event(ctx, uid)
    assert _losses(store) == {(uid, "walkin"): date(2026, 12, 2).isoformat()}
