"""Stored decisions (sync/decisions.py): a full run re-decides only the people whose
decision may have changed, and the outcome is always what deciding everyone gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import delete, select

import sync.reconcile as reconcile_module
from connector.store.models import AccessLossRow, DecisionRow, OverrideRow
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from tests.conftest import AUTH
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, NOON, audit, dn, mapping_with_groups


@pytest.fixture
def target():
    return MemoryTarget(groups={GROUP: set()}, directory={f"u{i}": dn(f"u{i}") for i in range(50)})


@pytest.fixture
def ctx(store, settings, target, clock):
    settings.sync.target = "ldap"
    # Directory entries stay fresh for these tests: a stale entry re-decides a person
    # too, which would hide whether the decision's own recheck day did it.
    settings.sync.resolve_ttl_hours = 24 * 3650
    return SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock)


@pytest.fixture
def decided(monkeypatch):
    """The user names each run read and decided afresh (one list per load_people call)."""
    seen: list[str] = []
    real = reconcile_module.load_people

    def spy(*args, **kwargs):
        people = real(*args, **kwargs)
        seen.extend(p.user_name for p in people)
        return people

    monkeypatch.setattr(reconcile_module, "load_people", spy)
    return seen


def fresh(seen: list[str]) -> list[str]:
    """What was decided since the last call, sorted; then forget it."""
    out = sorted(seen)
    seen.clear()
    return out


def stored_rows(store) -> dict[str, tuple]:
    with store.session_read() as s:
        return {r.person_id: (r.entitled, r.reasons, r.recheck_on)
                for r in s.scalars(select(DecisionRow).where(DecisionRow.entitlement == "walkin"))}


def three(client) -> tuple[str, str, str, str]:
    """u1 and u3 entitled at school 0123; u2 certified but not approved."""
    a, b, c = (P.create(client, P.person(u)) for u in ("u1", "u2", "u3"))
    group = P.approvers(client, "0123", [a, c])
    return a, b, c, group


def test_a_second_full_run_decides_nobody_again(client, ctx, target, store, decided):
    """Nothing changed: every stored decision holds, the group and the audit stay as they are."""
    a, b, _, _ = three(client)
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1", "u2", "u3"]
    assert target.groups[GROUP] == {dn("u1"), dn("u3")}
    rows = stored_rows(store)
    assert rows[a][:2] == (True, "") and rows[b][:2] == (False, "NO_APPROVAL")
    before = audit(store)
    result = reconcile(ctx, "walkin")
    assert fresh(decided) == []
    assert result.counts["kept"] == 2 and result.plan.empty
    assert target.groups[GROUP] == {dn("u1"), dn("u3")} and audit(store) == before


def test_a_changed_user_is_decided_again(client, ctx, target, store, decided):
    """A location PATCH bumps the user's version: only that person is re-decided, and revoked."""
    a, _, _, _ = three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    P.patch(client, a, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1"]
    assert target.groups[GROUP] == {dn("u3")}
    assert audit(store)[-1] == ("revoke", "u1", "ok", ["NO_APPROVAL"])


def test_a_new_approval_membership_is_decided_again(client, ctx, target, store, decided):
    """Adding u2 to the approval group (a Group PATCH: u2's own version is unchanged) re-decides u2."""
    _, b, _, group = three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    r = client.patch(f"/scim/v2/Groups/{group}", json={"Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]}, headers=AUTH)
    assert r.status_code == 204
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u2"]
    assert target.groups[GROUP] == {dn("u1"), dn("u2"), dn("u3")}


def test_renaming_the_approval_group_decides_its_members_again(client, ctx, target, store, decided):
    """The group now approves another location: its members lose their approval."""
    _, _, _, group = three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    r = client.patch(f"/scim/v2/Groups/{group}", json={"Operations": [
        {"op": "replace", "path": "displayName", "value": "WalkIn-Approvers-0456"}]}, headers=AUTH)
    assert r.status_code == 204
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1", "u3"]
    assert target.groups[GROUP] == set()


def test_an_override_written_by_an_administrator_is_decided_again(client, ctx, target, store, decided):
    """An override row changes the person's basis even though no SCIM write happened."""
    a, _, _, _ = three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    with store.session_write() as s:
        s.add(OverrideRow(person_id=a, entitlement="walkin", effect="deny", until="2027-01-31",
                          reason="investigation", by="admin", created_at=NOON))
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1"]
    assert audit(store)[-1] == ("revoke", "u1", "ok", ["DENIED_BY_OVERRIDE"])


def test_a_new_mapping_decides_everyone_again(client, ctx, target, store, decided):
    """Another mapping (here: only counsellors are eligible, and 0123 is a central office)
    re-decides everyone, and its answer is applied."""
    three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = GROUP
    data["policy"]["eligible_roles"] = ["School Counselor"]
    data["locations"]["0123"]["type"] = "central"
    ctx.mapping = parse_mapping(data)
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1", "u2", "u3"]
    assert target.groups[GROUP] == set()
    assert audit(store)[-1][3] == ["ROLE_NOT_ELIGIBLE"]


def test_expiry_is_picked_up_on_the_recheck_day(client, ctx, target, store, decided):
    """valid_through 2026-06-30 → recheck day 2026-07-01: kept on June 30, re-decided and revoked on July 1."""
    a = P.create(client, P.person("u1", certs=[("full", "2024-09-10")]))
    P.backdate(store, P.approvers(client, "0123", [a]), datetime(2025, 9, 20, 16, tzinfo=UTC))
    ctx.clock.set(datetime(2026, 6, 29, 18, 0, tzinfo=UTC))
    reconcile(ctx, "walkin", kind="daily")
    assert stored_rows(store)[a] == (True, "", "2026-07-01")
    fresh(decided)
    ctx.clock.set(datetime(2026, 6, 30, 18, 0, tzinfo=UTC))
    reconcile(ctx, "walkin", kind="daily")
    assert fresh(decided) == [] and target.groups[GROUP] == {dn("u1")}
    ctx.clock.set(datetime(2026, 7, 1, 7, 0, tzinfo=UTC))  # 01:00 Denver
    reconcile(ctx, "walkin", kind="daily")
    assert fresh(decided) == ["u1"]
    assert target.groups[GROUP] == set() and audit(store)[-1] == ("revoke", "u1", "ok", ["CERT_EXPIRED"])


def test_a_completion_dated_ahead_counts_on_its_day(client, ctx, target, store, decided):
    """A completion recorded for 2026-12-01 does not count on Nov 29; the Dec 1 run adds the person."""
    a = P.create(client, P.person("u1", certs=[("full", "2026-12-01")]))
    P.approvers(client, "0123", [a])
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == set() and stored_rows(store)[a] == (False, "NOT_CERTIFIED", "2026-12-01")
    fresh(decided)
    ctx.clock.set(datetime(2026, 11, 30, 19, 0, tzinfo=UTC))
    reconcile(ctx, "walkin")
    assert fresh(decided) == []
    ctx.clock.set(datetime(2026, 12, 1, 19, 0, tzinfo=UTC))
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1"] and target.groups[GROUP] == {dn("u1")}


def test_a_clock_set_back_decides_again(client, ctx, target, store, decided):
    """A decision is only kept on or after the day it was made."""
    three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    ctx.clock.set(datetime(2026, 11, 20, 19, 0, tzinfo=UTC))
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1", "u2", "u3"]


def test_a_member_removed_behind_our_back_is_decided_again_and_readded(client, ctx, target, store, decided):
    """Directory drift: the stored decision disagrees with the group, so the person is
    read and decided afresh before the grant (its audit entry carries fresh evidence)."""
    three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    target.groups[GROUP].discard(dn("u3"))
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u3"]
    assert target.groups[GROUP] == {dn("u1"), dn("u3")}
    with store.session_read() as s:
        from connector.store.models import AuditRow

        last = s.scalars(select(AuditRow).order_by(AuditRow.id.desc())).first()
    assert (last.action, last.user_name, last.evidence is not None) == ("grant", "u3", True)


def test_event_runs_store_decisions_and_deleted_people_are_forgotten(client, ctx, target, store, decided):
    """A person-scoped run stores what it decided; a deleted user's row goes."""
    a, b, c, _ = three(client)
    reconcile(ctx, "walkin")
    P.patch(client, b, {"op": "replace", "path": "title", "value": "Clerk"})
    reconcile(ctx, "walkin", kind="event", person_ids=[b])
    fresh(decided)
    reconcile(ctx, "walkin")
    assert fresh(decided) == []  # the event run's decision for u2 holds
    P.patch(client, a, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    reconcile(ctx, "walkin", kind="event", person_ids=[a])
    fresh(decided)
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1"]  # the revoke recorded a loss date: a new basis, decided once more
    reconcile(ctx, "walkin")
    assert fresh(decided) == []
    assert client.delete(f"/scim/v2/Users/{c}", headers=AUTH).status_code == 204
    reconcile(ctx, "walkin", kind="event", person_ids=[c])
    assert c not in stored_rows(store) and target.groups[GROUP] == set()
    assert set(stored_rows(store)) == {a, b}


def test_dry_runs_store_nothing(client, ctx, target, store):
    three(client)
    reconcile(ctx, "walkin", dry_run=True)
    assert stored_rows(store) == {}


def test_stored_decisions_never_change_the_outcome(client, ctx, target, store):
    """Over a sequence of changes and days, the plan with stored decisions equals the
    plan of deciding everyone (the table emptied) — adds, removes and their reasons."""
    ids = [P.create(client, P.person(f"u{i}", certs=[("full", f"202{4 + i % 2}-09-1{i % 7}")],
                                     location="0123" if i % 3 else "0456")) for i in range(12)]
    group = P.approvers(client, "0123", ids[:8])
    P.approvers(client, "0456", ids[6:])
    steps = [
        lambda: None,
        lambda: P.patch(client, ids[1], {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0456"}),
        lambda: P.patch(client, ids[2], {"op": "replace", "path": "active", "value": "False"}),
        lambda: client.patch(f"/scim/v2/Groups/{group}", json={"Operations": [
            {"op": "remove", "path": f'members[value eq "{ids[4]}"]'}]}, headers=AUTH),
        lambda: ctx.clock.set(datetime(2027, 7, 1, 19, 0, tzinfo=UTC)),
        lambda: P.patch(client, ids[5], {"op": "add", "path": f"{P.WALKIN}:certifications", "value": [
            {"course": P.COURSE, "kind": "full", "completedOn": "2027-07-01"}]}),
        lambda: target.groups[GROUP].discard(dn("u5")),
        lambda: ctx.clock.set(datetime(2028, 7, 1, 19, 0, tzinfo=UTC)),
    ]

    def shape(result):
        return sorted((c.action.value, c.member, c.reasons) for c in [*result.plan.adds, *result.plan.removes])

    for step in steps:
        step()
        with_stored = reconcile(ctx, "walkin", dry_run=True)
        with store.session_write() as s:
            kept = s.execute(select(DecisionRow)).scalars().all()
            rows = [{c.name: getattr(r, c.name) for c in DecisionRow.__table__.columns} for r in kept]
            s.execute(delete(DecisionRow))
        everyone = reconcile(ctx, "walkin", dry_run=True)
        assert shape(with_stored) == shape(everyone)
        with store.session_write() as s:
            if rows:
                s.execute(DecisionRow.__table__.insert(), rows)
        reconcile(ctx, "walkin")  # apply, storing decisions for the next step


def test_a_stale_directory_entry_decides_the_person_again(client, ctx, target, store, settings, decided):
    """An entry older than resolve_ttl_hours is looked up again, so its person is read
    (for their key) and decided again; a fresh one is not."""
    settings.sync.resolve_ttl_hours = 24
    three(client)
    reconcile(ctx, "walkin")
    fresh(decided)
    ctx.clock.set(NOON.replace(hour=23))
    reconcile(ctx, "walkin")
    assert fresh(decided) == []
    ctx.clock.set(datetime(2026, 12, 1, 19, 0, tzinfo=UTC))
    reconcile(ctx, "walkin")
    assert fresh(decided) == ["u1", "u2", "u3"]


def test_the_evidence_digest_does_not_depend_on_the_order_loss_dates_are_read():
    """Two facts that differ only in the order their loss dates came in digest alike;
    different evidence digests differently."""
    from datetime import date

    from mappings.facts import user_to_facts
    from mappings.policy import decide
    from sync.ledger import evidence_digest
    from sync.people import Person

    mapping = mapping_with_groups()
    user = {"id": "p1", **P.person("u1")}
    one, _ = user_to_facts(user, [], mapping, {"walkin": date(2026, 1, 5), "elementary_scheduling": date(2026, 2, 1)})
    two, _ = user_to_facts(user, [], mapping, {"elementary_scheduling": date(2026, 2, 1), "walkin": date(2026, 1, 5)})
    other, _ = user_to_facts(user, [], mapping, {"walkin": date(2026, 1, 6)})
    at = NOON.date()

    def digest(facts):
        return evidence_digest(Person("p1", "u1", "u1", facts, ()), decide(facts, "walkin", at, mapping))

    assert digest(one) == digest(two) != digest(other)


def test_a_full_run_drops_decisions_of_people_who_left_unseen(client, ctx, target, store):
    """A user deleted while no event run handled it: the next full run revokes them and
    drops their stored decision."""
    a, b, c, _ = three(client)
    reconcile(ctx, "walkin")
    assert client.delete(f"/scim/v2/Users/{c}", headers=AUTH).status_code == 204
    reconcile(ctx, "walkin")
    assert set(stored_rows(store)) == {a, b}
    assert target.groups[GROUP] == {dn("u1")}


def test_the_survey_reads_each_batch_by_its_id_range_and_agrees_with_bases(client, ctx, store):
    """The survey reads memberships, loss dates and overrides a batch's id range at a
    time: with batches of 2 over 7 people (every boundary between two people
    falls somewhere), everyone's basis is the one :func:`bases` gives each alone, and
    everyone comes exactly once, in id order."""
    from sync import decisions as stored
    from sync.people import approval_groups

    ids = [P.create(client, P.person(f"u{i}")) for i in range(7)]
    P.approvers(client, "0123", ids[::2])
    P.approvers(client, "0456", ids[1:4])
    with store.session_write() as s:
        s.add(OverrideRow(person_id=ids[5], entitlement="walkin", effect="grant", until="2027-01-31",
                          reason="pilot", by="admin", created_at=NOON))
        s.add(AccessLossRow(person_id=ids[6], entitlement="walkin", lost_on="2026-10-01"))
    fingerprint = stored.fingerprint(ctx.mapping)
    with store.session_read() as s:
        groups = approval_groups(s, ctx.mapping)
        alone = stored.bases(s, fingerprint, groups, ids)
        seen = [row for rows in stored.survey(s, "walkin", "ldap", fingerprint, groups, ctx.today(),
                                              NOON, batch=2) for row in rows]
    assert [r.person_id for r in seen] == sorted(ids)
    assert {r.person_id: r.basis for r in seen} == alone
    # everyone has a membership, a loss date or an override: each batch's range read found theirs
    assert all("|" in basis for basis in alone.values())


def test_a_run_that_writes_many_rows_has_postgresql_look_at_the_tables_again(client, ctx, store, monkeypatch):
    """A run that stores decisions (or entries, or holdings) for at least BULK_ROWS
    people runs ANALYZE on PostgreSQL, so its next lookups by person use the indexes
    (pg_class.reltuples: -1 or 0 until the table is analysed). On SQLite nothing
    is to be done, and the run is the same."""
    from sqlalchemy import text

    monkeypatch.setattr(reconcile_module, "BULK_ROWS", 3)
    three(client)

    def counted() -> float | None:
        if store.engine.dialect.name != "postgresql":
            return None
        with store.session_read() as s:
            return s.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'sync_decision'"))

    before = counted()
    assert reconcile(ctx, "walkin").status.value == "ok"
    assert len(stored_rows(store)) == 3
    if before is not None:
        assert before <= 0 and counted() == 3


def test_statistics_are_refreshed_only_for_a_table_that_outgrew_them(store):
    """ANALYZE runs for a table the planner believes smaller than what was just
    written, not for one it already knows to be larger (no ANALYZE after every big run)."""
    from sqlalchemy import text

    if store.engine.dialect.name != "postgresql":
        store.refresh_statistics({"sync_decision": 10**6})  # SQLite: nothing to do, no error
        return
    with store.session_write() as s:
        s.execute(text("INSERT INTO sync_pending (run_id, target, entitlement, grp, action, member, reasons) "
                       "SELECT 1, 'ldap', 'walkin', 'g', 'grant', 'm' || i, '[]' FROM generate_series(1, 50) i"))

    def believed() -> float:
        with store.session_read() as s:
            return s.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'sync_pending'"))

    assert believed() <= 0
    store.refresh_statistics({"sync_pending": 50})
    assert believed() == 50
    with store.session_write() as s:
        s.execute(text("DELETE FROM sync_pending"))
    store.refresh_statistics({"sync_pending": 10})  # believed 50 ≥ 10: left alone
    assert believed() == 50
