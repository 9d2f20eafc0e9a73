"""Reconcile against the in-memory target: plan, apply, audit, guard, safety."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from connector.store.models import AccessLossRow, AuditRow, SyncRunRow
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping
from sync.ledger import RunStatus
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from tests.conftest import NOON  # noqa: F401 - imported by the other sync tests
from tests.sync import people as P

GROUP = "cn=walkin,ou=groups,dc=example,dc=org"


def mapping_with_groups(walkin_group: str = GROUP):
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = walkin_group
    return parse_mapping(data)


def dn(user_name: str) -> str:
    return f"uid={user_name},ou=people,dc=example,dc=org"


@pytest.fixture
def target():
    return MemoryTarget(groups={GROUP: set()}, directory={f"u{i}": dn(f"u{i}") for i in range(300)})


@pytest.fixture
def ctx(store, settings, target, clock):
    settings.sync.target = "ldap"
    return SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock)


def audit(store) -> list[tuple[str, str | None, str, list]]:
    with store.session_read() as s:
        return [(r.action, r.user_name, r.result, r.reasons) for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


def test_entitled_people_are_added_and_others_are_not(client, ctx, target, store):
    """A qualifies (added); M has no certification or approval (not added, no audit)."""
    a = P.create(client, P.person("u1"))
    m = P.create(client, P.person("u2", certs=[], job="2001"))
    P.approvers(client, "0123", [a])
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and result.exit_code == 0
    assert target.groups[GROUP] == {dn("u1")}
    assert audit(store) == [("grant", "u1", "ok", [])]
    assert m and result.counts["added"] == 1


def test_location_change_revokes_with_no_approval_and_records_the_loss(client, ctx, target, store):
    """A person-scoped run after a location PATCH removes the person with NO_APPROVAL."""
    a = P.create(client, P.person("u1"))
    P.approvers(client, "0123", [a])
    reconcile(ctx, "walkin")
    P.patch(client, a, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    result = reconcile(ctx, "walkin", kind="event", person_ids=[a])
    assert target.groups[GROUP] == set()
    assert audit(store)[-1] == ("revoke", "u1", "ok", ["NO_APPROVAL"])
    with store.session_read() as s:
        assert s.get(AccessLossRow, (a, "walkin")).lost_on == "2026-11-29"
    assert result.counts["removed"] == 1


def test_departed_and_deleted_people_are_removed(client, ctx, target, store):
    """active "False" → NOT_ACTIVE revoke; a deleted user → revoke too."""
    a = P.create(client, P.person("u1"))
    b = P.create(client, P.person("u2"))
    P.approvers(client, "0123", [a, b])
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == {dn("u1"), dn("u2")}
    P.patch(client, a, {"op": "Replace", "path": "active", "value": "False"})
    from tests.conftest import AUTH

    client.delete(f"/scim/v2/Users/{b}", headers=AUTH)
    reconcile(ctx, "walkin", kind="event", person_ids=[a, b])
    assert target.groups[GROUP] == set()
    revokes = [(u, r) for act, u, _, r in audit(store) if act == "revoke"]
    assert ("u1", ["NOT_ACTIVE"]) in revokes and any(r == ["NOT_ACTIVE"] for _, r in revokes)


def test_rehire_is_not_readded_until_a_new_full_completion(client, ctx, target, store):
    """After a revoke, a quiz is not enough (CERT_BEFORE_LOSS); a full course is."""
    a = P.create(client, P.person("u1"))
    P.approvers(client, "0123", [a])
    reconcile(ctx, "walkin")
    P.patch(client, a, {"op": "replace", "path": "active", "value": False})
    reconcile(ctx, "walkin")
    P.patch(client, a, {"op": "replace", "path": "active", "value": True},
            {"op": "add", "path": f"{P.WALKIN}:certifications",
             "value": [{"course": P.COURSE, "kind": "recert", "completedOn": "2026-11-29"}]})
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == set()
    assert audit(store)[-1][0] != "grant"
    P.patch(client, a, {"op": "add", "path": f"{P.WALKIN}:certifications",
                        "value": [{"course": P.COURSE, "kind": "full", "completedOn": "2026-11-29"}]})
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == {dn("u1")}


def test_expiry_overnight_is_removed_by_the_next_days_run(client, ctx, target, store):
    """valid_through 2026-06-30: entitled on June 30, removed by the July 1 run."""
    a = P.create(client, P.person("u1", certs=[("full", "2024-09-10")]))
    P.backdate(store, P.approvers(client, "0123", [a]), datetime(2025, 9, 20, 16, tzinfo=UTC))
    ctx.clock.set(datetime(2026, 6, 30, 18, 0, tzinfo=UTC))
    reconcile(ctx, "walkin", kind="daily")
    assert target.groups[GROUP] == {dn("u1")}
    ctx.clock.set(datetime(2026, 7, 1, 7, 0, tzinfo=UTC))  # 01:00 Denver
    reconcile(ctx, "walkin", kind="daily")
    assert target.groups[GROUP] == set()
    assert audit(store)[-1] == ("revoke", "u1", "ok", ["CERT_EXPIRED"])


def test_drift_is_removed_unless_allowlisted(client, ctx, target, store, settings):
    """Unknown members are removed as drift; allowlisted ones stay."""
    target.groups[GROUP] |= {"cn=intruder,dc=example,dc=org", "cn=svc,dc=example,dc=org"}
    settings.sync.allowlist = ["CN=svc,dc=example,dc=org".lower()]
    P.create(client, P.person("u1", certs=[]))
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == {"cn=svc,dc=example,dc=org"}
    assert ("drift", None, "ok", ["UNKNOWN_MEMBER"]) in audit(store)


def test_dry_run_writes_nothing(client, ctx, target, store):
    """--dry-run plans and changes neither the directory nor the store."""
    a = P.create(client, P.person("u1"))
    P.approvers(client, "0123", [a])
    result = reconcile(ctx, "walkin", dry_run=True)
    assert [c.member for c in result.plan.adds] == [dn("u1")]
    assert target.groups[GROUP] == set() and audit(store) == []
    with store.session_read() as s:
        assert s.scalars(select(SyncRunRow)).all() == []


def test_mass_removal_from_a_bad_feed_is_held_then_released(client, ctx, target, store, settings):
    """Every location code changes at once: adds go on, removals are held, exit 3, release applies them."""
    settings.sync.max_removals = 10
    ids = [P.create(client, P.person(f"u{i}")) for i in range(30)]
    P.approvers(client, "0123", ids)
    reconcile(ctx, "walkin")
    assert len(target.groups[GROUP]) == 30
    newcomer = P.create(client, P.person("u200", location="0456"))
    P.approvers(client, "0456", [newcomer])
    for user_id in ids:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    held = reconcile(ctx, "walkin")
    assert held.status is RunStatus.HELD and held.exit_code == 3
    assert len(target.groups[GROUP]) == 31 and dn("u200") in target.groups[GROUP]
    assert sum(1 for a in audit(store) if a[0] == "hold") == 30
    released = reconcile(ctx, "walkin", kind="release", release=held.run_id)
    assert released.status is RunStatus.OK
    assert target.groups[GROUP] == {dn("u200")}
    with store.session_read() as s:
        assert s.get(SyncRunRow, held.run_id).released_by == released.run_id


def test_empty_store_or_unreadable_group_removes_nobody(client, ctx, target, store):
    """No people → refused; group unreadable → failed; members untouched."""
    target.groups[GROUP] = {dn("u1"), dn("u2")}
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.REFUSED and target.groups[GROUP] == {dn("u1"), dn("u2")}
    P.create(client, P.person("u1", certs=[]))
    target.available = False
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.FAILED
    target.available = True
    assert target.groups[GROUP] == {dn("u1"), dn("u2")}
    assert [a[0] for a in audit(store)] == ["refused", "refused"]


def test_entitled_person_without_directory_entry_is_reported(client, ctx, target, store):
    """A person with no directory entry is reported as unresolved, not dropped."""
    a = P.create(client, P.person("ghost"))
    P.approvers(client, "0123", [a])
    result = reconcile(ctx, "walkin")
    assert result.counts["unresolved"] == 1 and target.groups[GROUP] == set()
    assert audit(store) == [("unresolved", "ghost", "skipped", [])]
