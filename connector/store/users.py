"""User rows: insert, replace, delete, query — with child rows and journal entries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.scim.errors import InvalidValue, Uniqueness
from connector.scim.schema import Urn

from . import journal
from .journal import Event
from .models import CertificationRow, GroupRow, MemberRow, UserEmailRow, UserRow

_ENT, _WALKIN = Urn.ENTERPRISE.value, Urn.WALKIN.value


INDEXED_MAX = 512  # characters in a filterable/unique column (PostgreSQL btree entries are bounded)


def _low(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def check_lengths(values: dict[str, Any], what: str) -> dict[str, Any]:
    """Refuse values too long for their indexed column (400, naming the column)."""
    for column, value in values.items():
        if isinstance(value, str) and len(value) > INDEXED_MAX:
            raise InvalidValue(f"{what} {column.replace('_', ' ')} is longer than {INDEXED_MAX} characters")
    return values


def columns(data: dict) -> dict[str, Any]:
    """The indexed columns of a stored User representation."""
    name = data.get("name") or {}
    ent = data.get(_ENT) or {}
    ext = data.get(_WALKIN) or {}
    manager = ent.get("manager") or {}
    return check_lengths({
        "user_name": data["userName"].lower(),
        "external_id": data.get("externalId"),
        "display_name": _low(data.get("displayName")),
        "nick_name": _low(data.get("nickName")),
        "title": _low(data.get("title")),
        "user_type": _low(data.get("userType")),
        "active": data.get("active"),
        "name_formatted": _low(name.get("formatted")),
        "name_family": _low(name.get("familyName")),
        "name_given": _low(name.get("givenName")),
        "employee_number": _low(ent.get("employeeNumber")),
        "department": _low(ent.get("department")),
        "cost_center": _low(ent.get("costCenter")),
        "organization": _low(ent.get("organization")),
        "division": _low(ent.get("division")),
        "manager_id": manager.get("value"),
        "job_code": _low(ext.get("jobCode")),
        "location_code": _low(ext.get("locationCode")),
        "assignment_start": ext.get("assignmentStartDate"),
    }, "the User's")


def _children(user_id: str, data: dict) -> tuple[list[dict], list[dict]]:
    emails = [
        {"user_id": user_id, "value": _low(e.get("value")), "type": _low(e.get("type")), "primary": e.get("primary")}
        for e in data.get("emails") or []
    ]
    certs = [
        {"user_id": user_id, "course": _low(c.get("course")), "kind": _low(c.get("kind")),
         "completed_on": c.get("completedOn")}
        for c in (data.get(_WALKIN) or {}).get("certifications") or []
    ]
    return emails, certs


def _write_children(session: Session, user_id: str, data: dict, old: dict | None) -> None:
    emails, certs = _children(user_id, data)
    for row in emails:
        check_lengths({"email": row["value"], "email_type": row["type"]}, "an")
    for row in certs:
        check_lengths({"certification_course": row["course"], "certification_kind": row["kind"],
                       "completion_date": row["completed_on"]}, "a")
    if old is not None:
        old_emails, old_certs = _children(user_id, old)
        if old_emails != emails:
            session.execute(delete(UserEmailRow).where(UserEmailRow.user_id == user_id))
        else:
            emails = []
        if old_certs != certs:
            session.execute(delete(CertificationRow).where(CertificationRow.user_id == user_id))
        else:
            certs = []
    if emails:
        session.execute(insert(UserEmailRow), emails)
    if certs:
        session.execute(insert(CertificationRow), certs)


def _flush_unique(session: Session) -> None:
    """Flush, turning a unique-index violation into 409 uniqueness."""
    try:
        session.flush()
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        if "external_id" in message:
            raise Uniqueness("a User with this externalId already exists") from None
        if "user_name" in message:
            raise Uniqueness("a User with this userName already exists") from None
        raise


def insert_user(session: Session, data: dict, now: datetime) -> UserRow:
    row = UserRow(id=str(uuid.uuid4()), version=1, created=now, last_modified=now, data=data, **columns(data))
    session.add(row)
    _flush_unique(session)
    _write_children(session, row.id, data, None)
    journal.append(session, now, [(Event.USER_CREATED, row.id, None, journal.policy_view(data))])
    return row


def replace_user(session: Session, row: UserRow, data: dict, now: datetime, source: str = "scim") -> bool:
    """Store ``data`` as the user's new representation.

    :param source: who changed it, for the journal (``scim``, ``import``).
    :returns: False when nothing changed (no new version, no journal entry).
    """
    old = row.data
    if old == data:
        return False
    for key, value in columns(data).items():
        setattr(row, key, value)
    row.data = data
    row.version += 1
    row.last_modified = now
    _flush_unique(session)
    _write_children(session, row.id, data, old)
    changes = journal.view_changes(journal.policy_view(old), journal.policy_view(data))
    if changes:
        journal.append(session, now, [(Event.USER_UPDATED, row.id, None, changes)], source=source)
    return True


def delete_user(session: Session, row: UserRow, now: datetime) -> None:
    """Delete a user and its group memberships, journalling both."""
    group_ids = session.scalars(select(MemberRow.group_id).where(MemberRow.member_id == row.id)).all()
    entries = [(Event.MEMBER_REMOVED, row.id, gid, {"reason": "user deleted"}) for gid in group_ids]
    if group_ids:
        session.execute(delete(MemberRow).where(MemberRow.member_id == row.id))
        session.execute(
            update(GroupRow).where(GroupRow.id.in_(group_ids))
            .values(version=GroupRow.version + 1, last_modified=now)
        )
    entries.insert(0, (Event.USER_DELETED, row.id, None, journal.policy_view(row.data)))
    session.delete(row)
    session.flush()
    journal.append(session, now, entries)


def get_user(session: Session, user_id: str, *, lock: bool = False) -> UserRow | None:
    return session.scalars(_GET_LOCKED if lock else _GET, {"id": user_id}).first()


def groups_of(session: Session, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``user id → [(group id, group displayName)]`` for the ``groups`` attribute."""
    out: dict[str, list[tuple[str, str]]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    for member_id, group_id, display in session.execute(_GROUPS_OF, {"ids": user_ids}):
        out[member_id].append((group_id, display))
    return out


# Hot statements are built once; executing them then costs no construction.
_GROUPS_OF = (
    select(MemberRow.member_id, GroupRow.id, GroupRow.display)
    .join(GroupRow, GroupRow.id == MemberRow.group_id)
    .where(MemberRow.member_id.in_(bindparam("ids", expanding=True)))
    .order_by(GroupRow.id)
)
_GET = select(UserRow).where(UserRow.id == bindparam("id"))
_GET_LOCKED = _GET.with_for_update()

