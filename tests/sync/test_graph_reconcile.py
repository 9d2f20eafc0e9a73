"""Reconcile with the Entra target against the Graph fake: the same plan, guard, dry
run, drift and audit as with the other targets, and what a Graph outage leaves behind."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from connector.store.models import AccessLossRow, AuditRow, SyncRunRow
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping
from sync.ledger import RunStatus
from sync.reconcile import SyncContext, reconcile
from tests.sync import people as P

from .graph_fake import error, not_found, serve_graph, unavailable


def mapping_with_entra_group(group_id: str):
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["entra_group_id"] = group_id
    return parse_mapping(data)


@pytest.fixture
def env():
    with serve_graph(page_size=7) as graph_env:  # small pages: reads follow @odata.nextLink
        yield graph_env


@pytest.fixture
def users(env) -> dict[str, str]:
    """Entra users u0…u39 (userPrincipalName = the SCIM userName): name → object id."""
    return {f"u{i}": env.fake.add_user(f"u{i}") for i in range(40)}


@pytest.fixture
def group(env) -> str:
    return env.fake.add_group()


@pytest.fixture
def ctx(store, settings, env, group, clock):
    settings.sync.target = "entra"
    target = env.target()
    yield SyncContext(store, settings, mapping_with_entra_group(group.upper()), target, "entra", clock=clock)
    target.close()


def audit(store) -> list[tuple[str, str | None, str, list, str | None]]:
    with store.session_read() as s:
        return [(r.action, r.user_name, r.result, r.reasons, r.detail)
                for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


def entitled(client, names: list[str]) -> list[str]:
    ids = [P.create(client, P.person(name)) for name in names]
    P.approvers(client, "0123", ids)
    return ids


def test_grant_revoke_and_drift_are_written_and_audited(client, ctx, env, users, group, store, settings):
    """Entitled people are added, a revoked one removed, an unknown member removed as
    drift, an allowlisted one kept; each change has its audit entry."""
    intruder, service = env.fake.add_user("intruder"), env.fake.add_user("svc")
    env.fake.groups[group] = {intruder, service}
    settings.sync.allowlist = [service.upper()]
    a, b = entitled(client, ["u1", "u2"])
    P.create(client, P.person("u3", certs=[]))
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and env.fake.groups[group] == {users["u1"], users["u2"], service}
    assert sorted(audit(store)) == sorted([("grant", "u1", "ok", [], None), ("grant", "u2", "ok", [], None),
                                           ("drift", None, "ok", ["UNKNOWN_MEMBER"], None)])
    P.patch(client, a, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    event = reconcile(ctx, "walkin", kind="event", person_ids=[a, b])
    assert event.counts["removed"] == 1 and env.fake.groups[group] == {users["u2"], service}
    assert audit(store)[-1] == ("revoke", "u1", "ok", ["NO_APPROVAL"], None)
    assert env.fake.calls("GET", "/users") >= 1 and env.fake.calls("PATCH") == 1


def test_dry_run_writes_nothing(client, ctx, env, users, group, store):
    """--dry-run reads and plans; no PATCH, no DELETE, no audit, no run row."""
    entitled(client, ["u1", "u2"])
    env.fake.groups[group] = {env.fake.add_user("stray")}
    result = reconcile(ctx, "walkin", dry_run=True)
    assert sorted(c.member for c in result.plan.adds) == sorted([users["u1"], users["u2"]])
    assert len(result.plan.removes) == 1
    assert env.fake.calls("PATCH") == env.fake.calls("DELETE") == 0 and audit(store) == []
    with store.session_read() as s:
        assert s.scalars(select(SyncRunRow)).all() == []


def test_mass_removal_is_held_then_released(client, ctx, env, users, group, store, settings):
    """A bad feed revoking 30 people: removals held (exit 3) until released."""
    settings.sync.max_removals = 10
    ids = entitled(client, [f"u{i}" for i in range(30)])
    reconcile(ctx, "walkin")
    assert len(env.fake.groups[group]) == 30
    for user_id in ids:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    held = reconcile(ctx, "walkin")
    assert held.status is RunStatus.HELD and held.exit_code == 3 and len(env.fake.groups[group]) == 30
    assert sum(1 for entry in audit(store) if entry[0] == "hold") == 30 and env.fake.calls("DELETE") == 0
    released = reconcile(ctx, "walkin", kind="release", release=held.run_id)
    assert released.status is RunStatus.OK and env.fake.groups[group] == set()
    assert env.fake.calls("POST", "/$batch") >= 2  # 30 DELETEs: two $batch requests


def test_outage_mid_run_records_exactly_what_was_done(client, ctx, env, users, group, store, settings):
    """Graph goes down after the first PATCH: the 20 confirmed adds are audited ok, the
    rest failed ("not written"), removals not attempted; the next run converges."""
    ctx.target = env.target(circuit_breaker_failures=2)
    env.fake.groups[group] = {env.fake.add_user("stray")}
    entitled(client, [f"u{i}" for i in range(30)])
    env.fake.fail("PATCH", "/groups/", unavailable(), times=50, after=1)
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.PARTIAL and result.counts["added"] == 20 and result.counts["failed"] == 11
    entries = audit(store)
    assert sum(1 for e in entries if e[:3] == ("grant", e[1], "ok")) == 20
    failed = [e[4] for e in entries if e[0] == "failed"]
    assert sum(1 for d in failed if d.startswith("grant: not written: Graph circuit opened")) == 10
    assert sum(1 for d in failed if "not attempted" in d) == 1
    assert len(env.fake.groups[group]) == 21
    env.fake.faults.clear()
    env.clock.now += 3600
    assert reconcile(ctx, "walkin").status is RunStatus.OK
    assert env.fake.groups[group] == {users[f"u{i}"] for i in range(30)}


def test_refused_credentials_fail_the_run_without_writing(client, store, settings, clock):
    """The token endpoint refuses the secret: the run FAILS before reading or writing."""
    refusal = (401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
    with serve_graph(token_reply=lambda: refusal) as env:
        group = env.fake.add_group()
        env.fake.add_user("u1")
        settings.sync.target = "entra"
        ctx = SyncContext(store, settings, mapping_with_entra_group(group), env.target(), "entra", clock=clock)
        entitled(client, ["u1"])
        result = reconcile(ctx, "walkin")
        assert result.status is RunStatus.FAILED and "invalid_client" in result.detail
        assert env.graph_requests() == 0 and env.fake.groups[group] == set()
        assert [e[0] for e in audit(store)] == ["refused"]


def test_missing_group_fails_the_run(client, store, settings, env, users, clock):
    """The mapping names a group Graph does not have: FAILED, nothing written."""
    settings.sync.target = "entra"
    ctx = SyncContext(store, settings, mapping_with_entra_group("0d7c9a4e-1b2f-4e8d-9a6c-3f5b7e1d2c4a"),
                      env.target(), "entra", clock=clock)
    entitled(client, ["u1"])
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.FAILED and "Request_ResourceNotFound" in result.detail
    assert env.fake.calls("PATCH") == 0


def test_a_refused_member_fails_alone(client, ctx, env, users, group, store):
    """A PATCH refused for another reason than membership (400 "Invalid object
    identifier") fails its members with Graph's message, unsplit; the next run adds them."""
    entitled(client, ["u1", "u2", "u3"])
    env.fake.fail("PATCH", "/groups/", error(400, "Request_BadRequest", "Invalid object identifier 'x'."))
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.PARTIAL and result.counts["failed"] == 3
    assert {e[4] for e in audit(store) if e[0] == "failed"} == {
        "grant: 400 Request_BadRequest: Invalid object identifier 'x'."}
    assert reconcile(ctx, "walkin").status is RunStatus.OK and len(env.fake.groups[group]) == 3


def _revoke_everyone(client, ctx, env, group, settings, count: int) -> list[str]:
    """``count`` people granted in one run, then all moved to an unapproved location."""
    settings.sync.max_removals_percent = 100.0  # the guard is not what these tests are about
    ids = entitled(client, [f"u{i}" for i in range(count)])
    assert reconcile(ctx, "walkin").status is RunStatus.OK and len(env.fake.groups[group]) == count
    for user_id in ids:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    return ids


def _losses(store) -> dict[str, str]:
    with store.session_read() as s:
        return {r.person_id: r.lost_on for r in s.scalars(select(AccessLossRow))}


def test_every_revoke_of_a_batch_with_an_absent_member_is_audited_with_its_loss_date(
        client, ctx, env, users, group, store, settings):
    """20 revokes in one $batch; one person left the group in Entra meanwhile, so Graph
    answers that DELETE 404 naming the group: the run is OK, with 20 revoke entries and
    20 loss dates."""
    ids = _revoke_everyone(client, ctx, env, group, settings, 20)
    gone = users["u5"]

    def removed_meanwhile():
        env.fake.groups[group].discard(gone)
        return not_found(group)

    env.fake.fail("DELETE", f"/members/{gone}/", removed_meanwhile)
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and result.counts["removed"] == 20, result.detail
    assert env.fake.groups[group] == set()
    revokes = [e for e in audit(store) if e[0] == "revoke"]
    assert len(revokes) == 20 and all(e[2:4] == ("ok", ["NO_APPROVAL"]) for e in revokes)
    assert _losses(store) == dict.fromkeys(ids, "2026-11-29")


def test_a_group_deleted_mid_batch_keeps_the_revokes_graph_applied(client, ctx, env, users, group, store, settings):
    """The group is deleted after 10 of a batch's removals, and its third DELETE was
    answered 404: the 10 applied revokes are audited ok with their loss dates, the other
    10 failed as not written, and the run is partial."""
    _revoke_everyone(client, ctx, env, group, settings, 20)
    env.fake.fail("DELETE", "/members/", not_found(group), after=2)
    env.fake.delete_group_after(group, 10)
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.PARTIAL and result.counts["removed"] == 10
    assert "Request_ResourceNotFound" in result.detail
    with store.session_read() as s:
        rows = s.execute(select(AuditRow.action, AuditRow.result, AuditRow.person_id, AuditRow.detail)
                         .where(AuditRow.action.in_(["revoke", "failed"]))).all()
    applied = {person for action, outcome, person, _ in rows if (action, outcome) == ("revoke", "ok")}
    failed = [detail for action, _, _, detail in rows if action == "failed"]
    assert len(applied) == 10 and len(failed) == 10
    assert all(d.startswith("revoke: not written: ") for d in failed)
    assert _losses(store) == dict.fromkeys(applied, "2026-11-29")
