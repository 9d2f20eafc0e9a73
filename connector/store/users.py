"""User rows: insert, replace, delete, query — with child rows and journal entries.

SQLAlchemy Core on a connection: each operation is a few prebuilt statements, with
no ORM unit of work to build and flush per request.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Connection, bindparam, delete, func, insert, select, type_coerce, update

from connector.scim.errors import InvalidValue
from connector.scim.schema import Urn
from mappings.scim import AttributePath

from . import journal, person_keys
from .journal import Event
from .models import INDEXED_MAX, CertificationRow, GroupRow, MemberRow, UserEmailRow, UserRow, table_of
from .stored import Stored, execute_unique, get_statements

_ENT, _WALKIN = Urn.ENTERPRISE.value, Urn.WALKIN.value


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
    return check_lengths(
        {
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
        },
        "the User's",
    )


def _children(user_id: str, data: dict) -> tuple[list[dict], list[dict]]:
    emails = [
        {"user_id": user_id, "value": _low(e.get("value")), "type": _low(e.get("type")), "primary": e.get("primary")}
        for e in data.get("emails") or []
    ]
    certs = [
        {
            "user_id": user_id,
            "course": _low(c.get("course")),
            "kind": _low(c.get("kind")),
            "completed_on": c.get("completedOn"),
        }
        for c in (data.get(_WALKIN) or {}).get("certifications") or []
    ]
    return emails, certs


def _write_children(conn: Connection, user_id: str, data: dict, old: dict | None) -> None:
    emails, certs = _children(user_id, data)
    for row in emails:
        check_lengths({"email": row["value"], "email_type": row["type"]}, "an")
    for row in certs:
        check_lengths(
            {
                "certification_course": row["course"],
                "certification_kind": row["kind"],
                "completion_date": row["completed_on"],
            },
            "a",
        )
    if old is not None:
        old_emails, old_certs = _children(user_id, old)
        if old_emails != emails:
            conn.execute(_DELETE_EMAILS, {"uid": user_id})
        else:
            emails = []
        if old_certs != certs:
            conn.execute(_DELETE_CERTS, {"uid": user_id})
        else:
            certs = []
    if emails:
        conn.execute(_INSERT_EMAILS, emails)
    if certs:
        conn.execute(_INSERT_CERTS, certs)


def key_column(user_id: str, data: dict, key: AttributePath) -> dict[str, str | None]:
    """The ``person_key`` column of a stored User (:mod:`.person_keys`).

    :raises InvalidValue: the folded key is too long for its index (NFKC can lengthen
        a value).
    """
    folded = person_keys.key_of(user_id, data, key)
    if folded is not None and len(folded) > INDEXED_MAX:
        raise InvalidValue(f"{key} is longer than {INDEXED_MAX} characters once folded as the directory compares it")
    return {"person_key": folded}


_UNIQUE = {"external_id": "externalId", "user_name": "userName", "person_key": "person key"}


def _unique(key: AttributePath, user_id: str, data: dict) -> dict[str, str]:
    """A person-key collision names the attribute and the value sent."""
    return {"person_key": person_keys.collision_detail(key, person_keys.raw_key(user_id, data, key))}


def insert_user(conn: Connection, data: dict, now: datetime, *, key: AttributePath) -> Stored:
    """Store a new user.

    :param key: the person key attribute (``Store.person_key``).
    :raises Uniqueness: its userName, externalId or person key is taken.
    """
    user = Stored(str(uuid.uuid4()), 1, now, now, data)
    execute_unique(
        conn,
        _INSERT,
        {**user._asdict(), **columns(data), **key_column(user.id, data, key)},
        "User",
        _UNIQUE,
        _unique(key, user.id, data),
    )
    _write_children(conn, user.id, data, None)
    journal.append(conn, now, [(Event.USER_CREATED, user.id, None, journal.policy_view(data))])
    return user


def replace_user(
    conn: Connection, user: Stored | UserRow, data: dict, now: datetime, *, key: AttributePath, source: str = "scim"
) -> Stored | None:
    """Store ``data`` as the user's new representation.

    :param user: the user as read, locked (``get_user(..., lock=True)``).
    :param key: the person key attribute (``Store.person_key``).
    :param source: who changed it, for the journal (``scim``, ``import``).
    :returns: the user as now stored, or None when nothing changed (no new version,
        no journal entry).
    :raises Uniqueness: the new userName, externalId or person key is taken.
    """
    old = user.data
    if old == data:
        return None
    new = Stored(user.id, user.version + 1, user.created, now, data)
    # Only the indexed columns whose value changes: setting a column rewrites every
    # index on it, even to the same value (the stored columns are columns(old)).
    before = columns(old)
    changed = {k: v for k, v in columns(data).items() if before[k] != v}
    # The stored person key is old's, unless a collision left it empty (see
    # person_keys): it is written only when the key's value changes, so a PATCH that
    # leaves it alone (a deactivation) never meets the collision again.
    if person_keys.key_of(user.id, data, key) != person_keys.key_of(user.id, old, key):
        changed.update(key_column(user.id, data, key))
    execute_unique(
        conn,
        _UPDATE,
        {"b_id": user.id, "version": new.version, "last_modified": now, "data": data, **changed},
        "User",
        _UNIQUE,
        _unique(key, user.id, data),
    )
    _write_children(conn, user.id, data, old)
    changes = journal.view_changes(journal.policy_view(old), journal.policy_view(data))
    if changes:
        journal.append(conn, now, [(Event.USER_UPDATED, user.id, None, changes)], source=source)
    return new


def delete_user(conn: Connection, user: Stored, now: datetime) -> None:
    """Delete a user and its group memberships, journalling both."""
    group_ids = [row[0] for row in conn.execute(_GROUPS_WITH, {"uid": user.id})]
    if group_ids:
        # Lock the groups first, in id order, before touching their member rows, as a
        # group PATCH does (its group row, then member rows): on PostgreSQL a deletion
        # racing member changes of the same groups then waits instead of deadlocking.
        group_ids = [row[0] for row in conn.execute(_LOCK_GROUPS, {"ids": sorted(group_ids)})]
        conn.execute(_LEAVE_GROUPS, {"uid": user.id})
        conn.execute(_BUMP_GROUPS, {"ids": group_ids, "now": now})
    entries = [(Event.MEMBER_REMOVED, user.id, gid, {"reason": "user deleted"}) for gid in group_ids]
    entries.insert(0, (Event.USER_DELETED, user.id, None, journal.policy_view(user.data)))
    conn.execute(_DELETE, {"b_id": user.id})
    journal.append(conn, now, entries)


def get_user(conn: Connection, user_id: str, *, lock: bool = False) -> Stored | None:
    row = conn.execute(_GET_LOCKED if lock else _GET, {"id": user_id}).first()
    return None if row is None else Stored(*row)


def get_user_and_groups(
    conn: Connection, user_id: str, *, lock: bool = False
) -> tuple[Stored, list[tuple[str, str]]] | None:
    """A user and its ``[(group id, group displayName)]`` in one statement."""
    statements = _GET_WITH_GROUPS[conn.dialect.name]
    row = conn.execute(statements[lock], {"id": user_id}).first()
    return None if row is None else (Stored(*row[:-1]), group_pairs(row[-1]))


def groups_column(dialect: str) -> ColumnElement:
    """A user's groups as one JSON array of ``[group id, displayName]`` pairs: a
    correlated subquery, so a user (or a page of users) and their groups come back
    in one statement. Read it with :func:`group_pairs`."""
    sqlite = dialect == "sqlite"
    pair = (func.json_array if sqlite else func.json_build_array)(_GROUPS.c.id, _GROUPS.c.display)
    groups = (func.json_group_array if sqlite else func.json_agg)(pair)
    return type_coerce(
        select(groups)
        .select_from(_MEMBERS.join(_GROUPS, _GROUPS.c.id == _MEMBERS.c.group_id))
        .where(_MEMBERS.c.member_id == _USERS.c.id)
        .scalar_subquery(),
        JSON,
    )


def group_pairs(value: list | None) -> list[tuple[str, str]]:
    """The value of :func:`groups_column`, ordered by group id (aggregates keep no order)."""
    return sorted((group_id, display) for group_id, display in value or ())


# Hot statements are built once; executing them then costs no construction.
_USERS, _EMAILS, _CERTS = table_of(UserRow), table_of(UserEmailRow), table_of(CertificationRow)
_MEMBERS, _GROUPS = table_of(MemberRow), table_of(GroupRow)
_GET, _GET_LOCKED = get_statements(_USERS)
_GET_WITH_GROUPS = {  # dialect → {lock: statement}
    dialect: {lock: stmt.add_columns(groups_column(dialect)) for lock, stmt in ((False, _GET), (True, _GET_LOCKED))}
    for dialect in ("sqlite", "postgresql")
}
_INSERT = insert(_USERS)
_UPDATE = update(_USERS).where(_USERS.c.id == bindparam("b_id"))
_DELETE = delete(_USERS).where(_USERS.c.id == bindparam("b_id"))
_INSERT_EMAILS, _INSERT_CERTS = insert(_EMAILS), insert(_CERTS)
_DELETE_EMAILS = delete(_EMAILS).where(_EMAILS.c.user_id == bindparam("uid"))
_DELETE_CERTS = delete(_CERTS).where(_CERTS.c.user_id == bindparam("uid"))
_GROUPS_WITH = select(_MEMBERS.c.group_id).where(_MEMBERS.c.member_id == bindparam("uid"))
_LOCK_GROUPS = (
    select(_GROUPS.c.id)
    .where(_GROUPS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_GROUPS.c.id)
    .with_for_update()
)
_LEAVE_GROUPS = delete(_MEMBERS).where(_MEMBERS.c.member_id == bindparam("uid"))
_BUMP_GROUPS = (
    update(_GROUPS)
    .where(_GROUPS.c.id.in_(bindparam("ids", expanding=True)))
    .values(version=_GROUPS.c.version + 1, last_modified=bindparam("now"))
)
