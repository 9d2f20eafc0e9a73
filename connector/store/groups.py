"""Group rows and their members. Member changes touch only the member rows
they change: adding one member to a 50,000-member group is a handful of
indexed statements, never a load of the whole group."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Iterable

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from connector.scim.errors import InvalidValue, Uniqueness
from connector.scim.filters import compile_filter
from connector.scim.patch import MemberAction, MemberOp

from . import journal
from .fields import MEMBER_FIELDS
from .journal import Event
from .models import GroupRow, MemberRow, UserRow

_CHUNK = 500  # ids per IN (...) clause, well under every database's parameter limit


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def columns(data: dict) -> dict:
    from .users import check_lengths

    name = data["displayName"]
    return check_lengths({"display_name": name.lower(), "display": name, "external_id": data.get("externalId")},
                         "the Group's")


def _flush_unique(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        if "external_id" in message:
            raise Uniqueness("a Group with this externalId already exists") from None
        if "display_name" in message:
            raise Uniqueness("a Group with this displayName already exists") from None
        raise


# Hot statements are built once (construction and cache keys are most of
# SQLAlchemy's cost per request); values arrive as bound parameters.
_GET = select(GroupRow).where(GroupRow.id == bindparam("id"))
_GET_LOCKED = _GET.with_for_update()
_USERS_IN = select(UserRow.id).where(UserRow.id.in_(bindparam("ids", expanding=True)))
_GROUPS_IN = select(GroupRow.id).where(GroupRow.id.in_(bindparam("ids", expanding=True)))
_BUMP = (
    update(GroupRow).where(GroupRow.id == bindparam("gid"))
    .values(version=GroupRow.version + 1, last_modified=bindparam("now"))
    .returning(GroupRow.version)
)
_ADD = {
    dialect: insert_(MemberRow).on_conflict_do_nothing().returning(MemberRow.member_id)
    for dialect, insert_ in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def get_group(session: Session, group_id: str, *, lock: bool = False) -> GroupRow | None:
    return session.scalars(_GET_LOCKED if lock else _GET, {"id": group_id}).first()


def insert_group(session: Session, data: dict, member_ids: tuple[str, ...], now: datetime) -> GroupRow:
    row = GroupRow(id=str(uuid.uuid4()), version=1, created=now, last_modified=now, data=data, **columns(data))
    session.add(row)
    _flush_unique(session)
    journal.append(session, now, [(Event.GROUP_CREATED, None, row.id, {"displayName": data["displayName"]})])
    if member_ids:
        _add(session, row.id, list(member_ids), now)
    return row


def update_group(session: Session, row: GroupRow, data: dict, ops: list[MemberOp], now: datetime) -> bool:
    """Store new attributes and apply member operations in order.

    :returns: whether anything changed (then the version is bumped once).
    """
    changed = False
    if data != row.data:
        old_name, old_external = row.data.get("displayName"), row.data.get("externalId")
        for key, value in columns(data).items():
            setattr(row, key, value)
        row.data = data
        _flush_unique(session)
        if (old_name, old_external) != (data.get("displayName"), data.get("externalId")):
            # Approval groups are recognised by name; a rename can change who is approved.
            journal.append(session, now, [(Event.GROUP_RENAMED, None, row.id, {
                "displayName": [old_name, data.get("displayName")],
                "externalId": [old_external, data.get("externalId")],
            })])
        changed = True
    for op in ops:
        if op.action is MemberAction.ADD:
            changed |= _add(session, row.id, list(op.ids), now)
        elif op.action is MemberAction.REMOVE:
            changed |= _remove(session, row.id, list(op.ids), now)
        elif op.action is MemberAction.REMOVE_ALL:
            ids = session.scalars(select(MemberRow.member_id).where(MemberRow.group_id == row.id)).all()
            changed |= _remove(session, row.id, list(ids), now)
        else:
            where = compile_filter(op.where, MEMBER_FIELDS)
            ids = session.scalars(
                select(MemberRow.member_id).where(MemberRow.group_id == row.id, where)
            ).all()
            changed |= _remove(session, row.id, list(ids), now)
    if changed:
        # A plain UPDATE, not an ORM read-modify-write, so concurrent member
        # changes to one group never lose a version bump.
        version = session.execute(_BUMP, {"gid": row.id, "now": now},
                                  execution_options={"synchronize_session": False}).scalar_one()
        set_committed_value(row, "version", version)
        set_committed_value(row, "last_modified", now)
    return changed


def replace_members(session: Session, row: GroupRow, member_ids: tuple[str, ...]) -> list[MemberOp]:
    """Member operations that turn the current members into ``member_ids`` (PUT)."""
    current = set(session.scalars(select(MemberRow.member_id).where(MemberRow.group_id == row.id)))
    wanted = dict.fromkeys(member_ids)
    ops = []
    gone = [m for m in current if m not in wanted]
    new = [m for m in wanted if m not in current]
    if gone:
        ops.append(MemberOp(MemberAction.REMOVE, ids=tuple(gone)))
    if new:
        ops.append(MemberOp(MemberAction.ADD, ids=tuple(new)))
    return ops


def _member_types(session: Session, ids: list[str], group_id: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        found.update({i: "User" for i in session.scalars(_USERS_IN, {"ids": chunk})})
        rest = [i for i in chunk if i not in found]
        if rest:
            found.update({i: "Group" for i in session.scalars(_GROUPS_IN, {"ids": rest})})
    if group_id in found:
        raise InvalidValue("a group cannot be a member of itself")
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidValue(f"no User or Group with id {shown}")
    return found


def _add(session: Session, group_id: str, ids: list[str], now: datetime) -> bool:
    types = _member_types(session, ids, group_id)
    # One statement inserts the members not there yet and says which they were;
    # an existing membership keeps its start date.
    rows = [{"group_id": group_id, "member_id": i, "member_type": types[i], "since": now} for i in ids]
    new = list(session.scalars(_ADD[session.bind.dialect.name], rows))
    if not new:
        return False
    journal.append(session, now, [
        (Event.MEMBER_ADDED, i if types[i] == "User" else None, group_id, {"member": i, "type": types[i]})
        for i in new
    ])
    return True


def _remove(session: Session, group_id: str, ids: list[str], now: datetime) -> bool:
    gone: list[tuple[str, str]] = []
    for chunk in _chunks(ids):
        gone.extend(session.execute(
            select(MemberRow.member_id, MemberRow.member_type)
            .where(MemberRow.group_id == group_id, MemberRow.member_id.in_(chunk))
        ))
    if not gone:
        return False
    for chunk in _chunks([m for m, _ in gone]):
        session.execute(delete(MemberRow).where(MemberRow.group_id == group_id, MemberRow.member_id.in_(chunk)))
    journal.append(session, now, [
        (Event.MEMBER_REMOVED, m if t == "User" else None, group_id, {"member": m, "type": t}) for m, t in gone
    ])
    return True


def delete_group(session: Session, row: GroupRow, now: datetime) -> None:
    """Delete a group; every member loses the membership (journalled), and the
    group leaves the groups it was a member of."""
    members = session.execute(
        select(MemberRow.member_id, MemberRow.member_type).where(MemberRow.group_id == row.id)
    ).all()
    session.execute(delete(MemberRow).where(MemberRow.group_id == row.id))
    session.execute(delete(MemberRow).where(MemberRow.member_id == row.id))
    entries = [(Event.GROUP_DELETED, None, row.id, {"displayName": row.data.get("displayName")})]
    entries += [
        (Event.MEMBER_REMOVED, m if t == "User" else None, row.id, {"member": m, "type": t, "reason": "group deleted"})
        for m, t in members
    ]
    session.delete(row)
    session.flush()
    journal.append(session, now, entries)


def members_of(session: Session, group_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``group id → [(member id, member type)]``, read from the member rows alone
    (``display`` is not returned, so reading a large group joins nothing)."""
    out: dict[str, list[tuple[str, str]]] = {g: [] for g in group_ids}
    for chunk in _chunks(group_ids):
        rows = session.execute(
            select(MemberRow.group_id, MemberRow.member_id, MemberRow.member_type)
            .where(MemberRow.group_id.in_(chunk))
            .order_by(MemberRow.group_id, MemberRow.member_id)
        )
        for group_id, member_id, member_type in rows:
            out[group_id].append((member_id, member_type))
    return out
