"""Approval records: a principal's or manager's approval given through walkin
rather than through an approval group (policy §2: "from approval-group membership
or an approval record"). Both sources become the same policy fact
(sync/people.py), dated the district day the approval was recorded.

Who may approve for a location is the mapping's ``approvers`` rule: an active
person whose own role is one of ``approvers.roles`` approves their own location,
and the active members of the location's ``approvers.groups`` approve it too. Nobody
approves themselves. A record is never deleted: it is withdrawn. Every record and
withdrawal is journalled (the person is re-decided within seconds) and audited
with the actor.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import ApprovalRecordRow, DecisionRow, GroupRow, MemberRow, UserRow, table_of
from mappings.model import Mapping

from .ledger import AuditAction
from .levers import Acting, Forbidden, Invalid, NotFound, record, stamp, user_name
from .people import load_people


def approver_locations(session: Session, mapping: Mapping, person_key: str, approver_id: str) -> frozenset[str]:
    """The locations ``approver_id`` may approve for under the mapping's rule (none
    when they are not in the store or not active)."""
    found = load_people(session, mapping, person_key, [approver_id])
    if not found or not found[0].facts.active:
        return frozenset()
    facts = found[0].facts
    places = set()
    if facts.role in mapping.approvers.roles and facts.location is not None:
        places.add(facts.location)
    wanted = {name.lower(): location for location, names in mapping.approvers.groups.items() for name in names}
    if wanted:
        rows = session.execute(
            select(GroupRow.display_name)
            .join(MemberRow, MemberRow.group_id == GroupRow.id)
            .where(MemberRow.member_id == approver_id, GroupRow.display_name.in_(list(wanted)))
        )
        places.update(wanted[name] for (name,) in rows)
    return frozenset(places)


def approvers_of(session: Session, mapping: Mapping, entitlement: str, locations: set[str]) -> dict[str, list[str]]:
    """location → userNames of the people the rule lets approve it, read from the
    stored decisions (their role, location and whether they are active, as last
    decided) and the approver groups: one query each, for the ``waiting`` report."""
    out: dict[str, set[str]] = {location: set() for location in locations}
    if not locations:
        return {}
    name = UserRow.data["userName"].as_string()
    if mapping.approvers.roles:
        rows = session.execute(
            select(DecisionRow.location, name)
            .join(UserRow, UserRow.id == DecisionRow.person_id)
            .where(
                DecisionRow.entitlement == entitlement,
                DecisionRow.active.is_(True),
                DecisionRow.role.in_(mapping.approvers.roles),
                DecisionRow.location.in_(sorted(locations)),
            )
        )
        for location, user_name in rows:
            out[location].add(user_name)
    by_group = {
        group.lower(): location
        for location, groups in mapping.approvers.groups.items()
        if location in locations
        for group in groups
    }
    if by_group:
        rows = session.execute(
            select(GroupRow.display_name, name)
            .join(MemberRow, MemberRow.group_id == GroupRow.id)
            .join(UserRow, UserRow.id == MemberRow.member_id)
            .where(GroupRow.display_name.in_(list(by_group)), UserRow.active.is_(True))
        )
        for group, user_name in rows:
            out[by_group[group]].add(user_name)
    return {location: sorted(names) for location, names in out.items()}


def approve(
    store: Store,
    clock: Clock,
    mapping: Mapping,
    person_key: str,
    *,
    person_id: str,
    location: str,
    entitlement: str,
    approver_id: str,
    acting: Acting,
) -> dict:
    """Record ``approver_id``'s approval of a person for ``location``, dated today
    (district). Recording the same approval twice on one day returns the first.

    :raises Invalid: an entitlement that takes no approval, an unknown location.
    :raises NotFound: the person or the approver is not in the store.
    :raises Forbidden: the approver may not approve for ``location`` (or is the person).
    """
    _check(mapping, entitlement, location)
    today = clock.today(mapping.policy.zone).isoformat()
    now = clock.now()
    with store.session_write() as session:
        person, approver = _may_approve(session, mapping, person_key, approver_id, person_id, location)
        same = session.scalars(
            select(ApprovalRecordRow).where(
                *_of(person_id, entitlement, location), ApprovalRecordRow.approved_on == today
            )
        ).first()
        if same is not None:
            return _view(same, person)
        conn = session.connection()
        new_id = conn.execute(
            insert(table_of(ApprovalRecordRow))
            .values(
                person_id=person_id,
                entitlement=entitlement,
                location=location,
                approved_on=today,
                approver=approver,
                approver_id=approver_id,
                recorded_at=now,
                recorded_by=str(acting),
            )
            .returning(table_of(ApprovalRecordRow).c.id)
        ).scalar_one()
        record(
            conn,
            now,
            acting,
            action=AuditAction.APPROVE,
            entitlement=entitlement,
            person_id=person_id,
            user_name=person,
            detail=f"approval {new_id}: {approver} approved for {location} on {today}",
            event=Event.APPROVAL_RECORDED,
            journal={"approval": new_id, "location": location, "approver": approver},
        )
        return _view(session.get_one(ApprovalRecordRow, new_id), person)


def withdraw(
    store: Store,
    clock: Clock,
    mapping: Mapping,
    person_key: str,
    *,
    person_id: str,
    location: str,
    entitlement: str,
    approver_id: str,
    acting: Acting,
) -> list[dict]:
    """Withdraw every approval record of the person for ``location`` and
    ``entitlement`` (by whoever recorded it); the approver must be one who may
    approve that location. Approval-group memberships are not touched: they are
    withdrawn in the directory that sends the group.

    :raises NotFound: no such person, approver or record in force.
    :raises Forbidden: the approver may not approve for ``location``.
    """
    _check(mapping, entitlement, location)
    now = clock.now()
    with store.session_write() as session:
        person, approver = _may_approve(session, mapping, person_key, approver_id, person_id, location)
        rows = session.scalars(select(ApprovalRecordRow).where(*_of(person_id, entitlement, location))).all()
        if not rows:
            raise NotFound(f"{person} has no approval record in force for {location} ({entitlement})")
        ids = [row.id for row in rows]
        session.execute(
            update(ApprovalRecordRow)
            .where(ApprovalRecordRow.id.in_(ids), ApprovalRecordRow.withdrawn_at.is_(None))
            .values(withdrawn_at=now, withdrawn_by=str(acting))
        )
        record(
            session.connection(),
            now,
            acting,
            action=AuditAction.WITHDRAW,
            entitlement=entitlement,
            person_id=person_id,
            user_name=person,
            detail=f"approval {', '.join(map(str, ids))} for {location} withdrawn by {approver}",
            event=Event.APPROVAL_WITHDRAWN,
            journal={"approvals": ids, "location": location},
        )
        for row in rows:
            session.refresh(row)
        return [_view(row, person) for row in rows]


def list_approvals(
    session: Session,
    *,
    person_id: str | None = None,
    locations: frozenset[str] | None = None,
    include_withdrawn: bool = False,
) -> list[dict]:
    """Approval records, newest first: in force (the default) or all; of one person
    and/or at some locations."""
    stmt = select(ApprovalRecordRow, UserRow.data["userName"].as_string()).outerjoin(
        UserRow, UserRow.id == ApprovalRecordRow.person_id
    )
    if person_id is not None:
        stmt = stmt.where(ApprovalRecordRow.person_id == person_id)
    if locations is not None:
        stmt = stmt.where(ApprovalRecordRow.location.in_(sorted(locations)))
    if not include_withdrawn:
        stmt = stmt.where(ApprovalRecordRow.withdrawn_at.is_(None))
    return [_view(row, name) for row, name in session.execute(stmt.order_by(ApprovalRecordRow.id.desc()))]


def _check(mapping: Mapping, entitlement: str, location: str) -> None:
    definition = mapping.entitlements.get(entitlement)
    if definition is None:
        raise Invalid(f"unknown entitlement '{entitlement}'; known: {', '.join(mapping.entitlements)}")
    if not definition.checks.approval:
        raise Invalid(f"'{entitlement}' requires no approval")
    if location not in mapping.locations:
        raise Invalid(f"location '{location}' is not in the mapping's location catalogue")


def _may_approve(
    session: Session, mapping: Mapping, person_key: str, approver_id: str, person_id: str, location: str
) -> tuple[str | None, str | None]:
    """The userNames of the person and the approver, once the approver rule lets the
    approver approve the person for ``location``.

    :raises NotFound: either is not in the store. :raises Forbidden: the rule says no.
    """
    person, approver = user_name(session, person_id), user_name(session, approver_id)
    if approver_id == person_id:
        raise Forbidden(f"{approver} may not approve themselves")
    places = approver_locations(session, mapping, person_key, approver_id)
    if location not in places:
        allowed = ", ".join(sorted(places)) or "none"
        raise Forbidden(
            f"{approver} may not approve for {location}: the approver rule lets them approve {allowed} "
            f"(an active {' or '.join(mapping.approvers.roles) or 'approver'} of the location, or a member "
            "of its approver group)"
        )
    return person, approver


def _of(person_id: str, entitlement: str, location: str) -> tuple:
    r = ApprovalRecordRow
    return (r.person_id == person_id, r.entitlement == entitlement, r.location == location, r.withdrawn_at.is_(None))


def _view(row: ApprovalRecordRow, user_name: str | None) -> dict:
    """An approval record as the CLI and the admin API show it."""
    return {
        "id": row.id,
        "person_id": row.person_id,
        "user_name": user_name,
        "entitlement": row.entitlement,
        "location": row.location,
        "approved_on": row.approved_on,
        "approver": row.approver,
        "recorded_by": row.recorded_by,
        "recorded_at": stamp(row.recorded_at),
        "withdrawn_at": stamp(row.withdrawn_at),
        "withdrawn_by": row.withdrawn_by,
    }
