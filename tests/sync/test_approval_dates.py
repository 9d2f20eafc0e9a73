"""End to end: an approval made stale by a later assignment change (person H of the
access policy) stays stale when the approval group's members are written again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.store.models import AuditRow
from mappings.policy import decide_all
from mappings.vocabulary import ReasonCode
from sync.people import load_people
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from tests.conftest import AUTH, NOON
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, dn, mapping_with_groups

APPROVED = datetime(2025, 9, 20, 16, 0, tzinfo=UTC)  # 10:00 in Denver
ROLE_CHANGE = datetime(2026, 10, 1, 16, 0, tzinfo=UTC)


@pytest.fixture
def target():
    return MemoryTarget(groups={GROUP: set()}, directory={"h": dn("h")})


@pytest.fixture
def ctx(store, settings, target, clock):
    settings.sync.target = "ldap"
    return SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock)


def _walkin(store, ctx, person_id: str):
    with store.session_read() as s:
        (person,) = load_people(s, ctx.mapping, "userName", [person_id])
    return decide_all(person.facts, ctx.today(), ctx.mapping, ["walkin"])["walkin"]


@pytest.mark.parametrize("write", ["patch-replace", "patch-no-path", "put"])
def test_rewriting_the_approval_group_does_not_refresh_a_stale_approval(client, store, ctx, target, clock, write):
    """Approved 2025-09-20, School Counselor since 2026-10-01: APPROVAL_STALE, not in the
    group — and still so after the approval group is written again with the same members."""
    clock.set(APPROVED)
    h = P.create(client, P.person("h"))
    approvers = P.approvers(client, "0123", [h])
    clock.set(ROLE_CHANGE)
    P.patch(client, h, {"op": "replace", "path": f"{P.WALKIN}:jobCode", "value": "1002"},
            {"op": "replace", "path": f"{P.WALKIN}:assignmentStartDate", "value": "2026-10-01"})
    clock.set(NOON)
    before = _walkin(store, ctx, h)
    assert (before.entitled, before.reasons) == (False, (ReasonCode.APPROVAL_STALE,))
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == set()

    clock.advance(timedelta(days=1))
    members = [{"value": h}]
    if write == "put":
        r = client.put(f"/scim/v2/Groups/{approvers}", headers=AUTH, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "WalkIn-Approvers-0123",
            "members": members})
    else:
        op = ({"op": "replace", "path": "members", "value": members} if write == "patch-replace"
              else {"op": "replace", "value": {"members": members}})
        r = client.patch(f"/scim/v2/Groups/{approvers}", json={"Operations": [op]}, headers=AUTH)
    assert r.status_code in (200, 204), r.get_json()

    after = _walkin(store, ctx, h)
    assert (after.entitled, after.reasons) == (False, (ReasonCode.APPROVAL_STALE,))
    assert after.at == date(2026, 11, 30)
    reconcile(ctx, "walkin", kind="event", person_ids=[h])
    reconcile(ctx, "walkin")
    assert target.groups[GROUP] == set()
    with store.session_read() as s:
        assert s.scalars(select(AuditRow.action).where(AuditRow.action == "grant")).all() == []
