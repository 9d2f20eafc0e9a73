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


def execute_unique(conn, statement, params: dict, kind: str, columns: dict[str, str]) -> None:
    """Run an INSERT or UPDATE, turning a unique-index violation into 409 uniqueness.

    :param columns: column name → attribute name, in the order they are checked
        against the database's message.
    """
    try:
        conn.execute(statement, params)
    except IntegrityError as exc:
        message = str(exc.orig).lower()
        for column, attribute in columns.items():
            if column in message:
                raise Uniqueness(f"a {kind} with this {attribute} already exists") from None
        raise
