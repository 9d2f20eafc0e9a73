"""Group rows and their members. Member changes touch only the member rows
they change: adding one member to a 50,000-member group is a handful of
indexed statements, never a load of the whole group.

SQLAlchemy Core on a connection, with the hot statements built once."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connector.scim.errors import InvalidValue
from connector.scim.filter_sql import compile_filter
from connector.scim.patch import MemberAction, MemberOp

from . import journal
from .fields import MEMBER_FIELDS
from .journal import Event
from .models import GroupRow, MemberRow, UserRow, table_of
from .stored import Stored, execute_unique, get_statements

_CHUNK = 500  # ids per IN (...) clause, well under every database's parameter limit
_UNIQUE = {"external_id": "externalId", "display_name": "displayName"}


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def columns(data: dict) -> dict:
    from .users import check_lengths

    name = data["displayName"]
    return check_lengths(
        {"display_name": name.lower(), "display": name, "external_id": data.get("externalId")}, "the Group's"
    )


def get_group(conn: Connection, group_id: str, *, lock: bool = False) -> Stored | None:
    row = conn.execute(_GET_LOCKED if lock else _GET, {"id": group_id}).first()
    return None if row is None else Stored(*row)


def insert_group(conn: Connection, data: dict, member_ids: tuple[str, ...], now: datetime) -> Stored:
    group = Stored(str(uuid.uuid4()), 1, now, now, data)
    execute_unique(conn, _INSERT, {**group._asdict(), **columns(data)}, "Group", _UNIQUE)
    journal.append(conn, now, [(Event.GROUP_CREATED, None, group.id, {"displayName": data["displayName"]})])
    members = _MemberWrite(conn, group.id, now)
    members.add(list(member_ids))
    members.journal()
    return group


def update_group(conn: Connection, group: Stored, data: dict, ops: list[MemberOp], now: datetime) -> Stored:
    """Store new attributes and apply member operations in order.

    Member changes are netted over the whole write: a member the write keeps
    (listed again by a replace, or removed and added back) keeps its row and its
    start date, and the journal records only the members that really came or went.

    :returns: the group as now stored (its version bumped once when anything changed).
    """
    changed = False
    if data != group.data:
        old_name, old_external = group.data.get("displayName"), group.data.get("externalId")
        execute_unique(conn, _UPDATE, {"b_id": group.id, "data": data, **columns(data)}, "Group", _UNIQUE)
        if (old_name, old_external) != (data.get("displayName"), data.get("externalId")):
            # Approval groups are recognised by name; a rename can change who is approved.
            journal.append(
                conn,
                now,
                [
                    (
                        Event.GROUP_RENAMED,
                        None,
                        group.id,
                        {
                            "displayName": [old_name, data.get("displayName")],
                            "externalId": [old_external, data.get("externalId")],
                        },
                    )
                ],
            )
        changed = True
    members = _MemberWrite(conn, group.id, now)
    for op in ops:
        if op.action is MemberAction.ADD:
            members.add(list(op.ids))
        elif op.action is MemberAction.REMOVE:
            members.remove(list(op.ids))
        elif op.action is MemberAction.REMOVE_ALL:
            members.remove(list(conn.scalars(_MEMBER_IDS, {"gid": group.id})))
        elif op.action is MemberAction.REPLACE:
            # Only the difference is written: a member listed again keeps its row, so
            # its start date (an approval is dated by it) survives the replace.
            current = set(conn.scalars(_MEMBER_IDS, {"gid": group.id}))
            wanted = dict.fromkeys(op.ids)
            members.remove([m for m in current if m not in wanted])
            members.add([m for m in wanted if m not in current])
        else:
            if op.where is None:
                raise ValueError(f"{op.action} without a filter")
            where = compile_filter(op.where, MEMBER_FIELDS)
            members.remove(
                list(conn.scalars(select(_MEMBERS.c.member_id).where(_MEMBERS.c.group_id == group.id, where)))
            )
    changed |= members.journal()
    if not changed:
        return group
    # An UPDATE that counts from the stored version, not a read-modify-write, so
    # concurrent member changes to one group never lose a version bump.
    version = conn.execute(_BUMP, {"gid": group.id, "now": now}).scalar_one()
    return Stored(group.id, version, group.created, now, data)


class _MemberWrite:
    """The member changes of one write, applied as they come and netted for the journal.

    A membership removed earlier in the write and added back is inserted with the
    start date it had, and counts as neither removed nor added; one added and then
    removed again counts as neither either.
    """

    def __init__(self, conn: Connection, group_id: str, now: datetime) -> None:
        self.conn, self.group_id, self.now = conn, group_id, now
        self.added: dict[str, str] = {}  # member id -> type, new in this write
        self.removed: dict[str, tuple[str, datetime]] = {}  # member id -> (type, start), gone in this write

    def add(self, ids: list[str]) -> None:
        if not ids:
            return
        types = _member_types(self.conn, ids, self.group_id)
        # One statement inserts the members not there yet and says which they were;
        # an existing membership keeps its start date.
        rows = [
            {
                "group_id": self.group_id,
                "member_id": i,
                "member_type": types[i],
                "since": self.removed[i][1] if i in self.removed else self.now,
            }
            for i in ids
        ]
        for member in (row[0] for row in self.conn.execute(_ADD[self.conn.dialect.name], rows)):
            if self.removed.pop(member, None) is None:
                self.added[member] = types[member]

    def remove(self, ids: list[str]) -> None:
        gone: list[tuple[str, str, datetime]] = []
        for chunk in _chunks(ids):
            gone.extend(self.conn.execute(_MEMBERS_IN, {"gid": self.group_id, "ids": chunk}))
        for chunk in _chunks([m for m, _, _ in gone]):
            self.conn.execute(_DELETE_MEMBERS_IN, {"gid": self.group_id, "ids": chunk})
        for member, kind, since in gone:
            if self.added.pop(member, None) is None:
                self.removed[member] = (kind, since)

    def journal(self) -> bool:
        """Journal the net changes; :returns: whether there were any."""
        journal.append(
            self.conn,
            self.now,
            [
                (Event.MEMBER_REMOVED, m if t == "User" else None, self.group_id, {"member": m, "type": t})
                for m, (t, _) in self.removed.items()
            ]
            + [
                (Event.MEMBER_ADDED, m if t == "User" else None, self.group_id, {"member": m, "type": t})
                for m, t in self.added.items()
            ],
        )
        return bool(self.added or self.removed)


def _member_types(conn: Connection, ids: list[str], group_id: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        found.update({i: "User" for i in _existing(conn, _USERS_ID, chunk)})
        rest = [i for i in chunk if i not in found]
        if rest:
            found.update({i: "Group" for i in _existing(conn, _GROUPS_ID, rest)})
    if group_id in found:
        raise InvalidValue("a group cannot be a member of itself")
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidValue(f"no User or Group with id {shown}")
    return found


def _existing(conn: Connection, statements: tuple, ids: list[str]) -> list[str]:
    """Those of ``ids`` in a table; one id (Entra adds members one by one) is
    compared with ``=``, which spares rendering an expanding ``IN`` list."""
    one, many = statements
    rows = conn.execute(one, {"id": ids[0]}) if len(ids) == 1 else conn.execute(many, {"ids": ids})
    return [row[0] for row in rows]  # not Result.scalars(): its setup costs more than this query


def delete_group(conn: Connection, group: Stored, now: datetime) -> None:
    """Delete a group; every member loses the membership (journalled), and the
    group leaves the groups it was a member of."""
    members = conn.execute(_MEMBERS_OF_ONE, {"gid": group.id}).all()
    conn.execute(_DELETE_MEMBERS, {"gid": group.id})
    conn.execute(_LEAVE_GROUPS, {"gid": group.id})
    entries = [(Event.GROUP_DELETED, None, group.id, {"displayName": group.data.get("displayName")})]
    entries += [
        (
            Event.MEMBER_REMOVED,
            m if t == "User" else None,
            group.id,
            {"member": m, "type": t, "reason": "group deleted"},
        )
        for m, t in members
    ]
    conn.execute(_DELETE, {"gid": group.id})
    journal.append(conn, now, entries)


def members_of(conn: Connection, group_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``group id → [(member id, member type)]``, read from the member rows alone
    (``display`` is not returned, so reading a large group joins nothing)."""
    out: dict[str, list[tuple[str, str]]] = {g: [] for g in group_ids}
    for chunk in _chunks(group_ids):
        for group_id, member_id, member_type in conn.execute(_MEMBERS_OF, {"ids": chunk}):
            out[group_id].append((member_id, member_type))
    return out


# Hot statements are built once (construction and cache keys are most of
# SQLAlchemy's cost per request); values arrive as bound parameters.
_GROUPS, _MEMBERS, _USERS = table_of(GroupRow), table_of(MemberRow), table_of(UserRow)
_GET, _GET_LOCKED = get_statements(_GROUPS)
_INSERT = insert(_GROUPS)
_UPDATE = update(_GROUPS).where(_GROUPS.c.id == bindparam("b_id"))
_DELETE = delete(_GROUPS).where(_GROUPS.c.id == bindparam("gid"))
_USERS_ID, _GROUPS_ID = (
    (
        select(t.c.id).where(t.c.id == bindparam("id")),
        select(t.c.id).where(t.c.id.in_(bindparam("ids", expanding=True))),
    )
    for t in (_USERS, _GROUPS)
)
_BUMP = (
    update(_GROUPS)
    .where(_GROUPS.c.id == bindparam("gid"))
    .values(version=_GROUPS.c.version + 1, last_modified=bindparam("now"))
    .returning(_GROUPS.c.version)
)
_ADD = {
    dialect: insert_(_MEMBERS).on_conflict_do_nothing().returning(_MEMBERS.c.member_id)
    for dialect, insert_ in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_MEMBER_IDS = select(_MEMBERS.c.member_id).where(_MEMBERS.c.group_id == bindparam("gid"))
_MEMBERS_OF_ONE = select(_MEMBERS.c.member_id, _MEMBERS.c.member_type).where(_MEMBERS.c.group_id == bindparam("gid"))
_MEMBERS_IN = select(_MEMBERS.c.member_id, _MEMBERS.c.member_type, _MEMBERS.c.since).where(
    _MEMBERS.c.group_id == bindparam("gid"), _MEMBERS.c.member_id.in_(bindparam("ids", expanding=True))
)
_DELETE_MEMBERS = delete(_MEMBERS).where(_MEMBERS.c.group_id == bindparam("gid"))
_DELETE_MEMBERS_IN = _DELETE_MEMBERS.where(_MEMBERS.c.member_id.in_(bindparam("ids", expanding=True)))
_LEAVE_GROUPS = delete(_MEMBERS).where(_MEMBERS.c.member_id == bindparam("gid"))
_MEMBERS_OF = (
    select(_MEMBERS.c.group_id, _MEMBERS.c.member_id, _MEMBERS.c.member_type)
    .where(_MEMBERS.c.group_id.in_(bindparam("ids", expanding=True)))
    .order_by(_MEMBERS.c.group_id, _MEMBERS.c.member_id)
)
