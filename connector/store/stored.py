"""What the store hands the SCIM layer for one resource, and how it reads it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from connector.scim.errors import Uniqueness


class Stored(NamedTuple):
    """A stored User or Group: its id, version, timestamps and representation."""

    id: str
    version: int
    created: datetime
    last_modified: datetime
    data: dict


def get_statements(table: Table):
    """``SELECT`` of one resource by ``:id`` as a :class:`Stored`, plain and ``FOR
    UPDATE`` (built once per table: construction is most of a statement's cost)."""
    c = table.c
    plain = select(c.id, c.version, c.created, c.last_modified, c.data).where(c.id == bindparam("id"))
    return plain, plain.with_for_update()


def execute_unique(
    conn, statement, params: dict, kind: str, columns: dict[str, str], details: dict[str, str] | None = None
) -> None:
    """Run an INSERT or UPDATE, turning a unique-index violation into 409 uniqueness.

    :param columns: column name → attribute name, in the order they are checked
        against the violated constraint's name (PostgreSQL) or the database's message
        (SQLite: ``UNIQUE constraint failed: scim_user.user_name``).
    :param details: column name → the detail to answer instead of "a User with this
        … already exists".
    """
    try:
        conn.execute(statement, params)
    except IntegrityError as exc:
        # PostgreSQL's message quotes the value too, which may spell another column's
        # name: its constraint name is what tells them apart.
        diag = getattr(exc.orig, "diag", None)
        message = (getattr(diag, "constraint_name", None) or str(exc.orig)).lower()
        for column, attribute in columns.items():
            if column in message:
                detail = (details or {}).get(column) or f"a {kind} with this {attribute} already exists"
                raise Uniqueness(detail) from None
        raise
