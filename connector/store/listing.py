"""Statements that list and search one table (RFC 7644 §3.4.2), kept per search shape.

A search is a filter, a sort and a page. Filters that differ only in their values
(``userName eq "a"`` and ``userName eq "b"``) share one prepared statement whose
values are bound parameters, so a repeated kind of search builds no SQL and skips
SQLAlchemy's per-statement cache-key walk. Statements hold no data: nothing here
can answer from a stale copy.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, asc, bindparam, desc, func, select
from sqlalchemy.sql.elements import ColumnElement

from connector.scim.errors import InvalidValue
from connector.scim.filter_sql import FieldMap, compile_shape, prepare
from connector.scim.filters import Node, strip_core_urn

MAX_SHAPES = 256  # statements kept per table; clients choose the shapes, so they are bounded


@dataclass(frozen=True)
class _Statements:
    rows: Select  # one page: offset and limit bound as :offset and :limit
    count: Select


@dataclass(frozen=True)
class Search:
    """A search ready to run: its statements and the values of its filter."""

    statements: _Statements
    params: dict[str, Any]

    def rows(self, conn: Connection, offset: int, limit: int) -> list:
        """One page of ``(id, version, created, last_modified, data)`` rows, and
        ``related`` when asked for."""
        if not limit:
            return []
        return list(conn.execute(self.statements.rows, {**self.params, "offset": offset, "limit": limit}).all())

    def count(self, conn: Connection) -> int:
        return conn.scalar(self.statements.count, self.params) or 0


class Searches:
    """The searches of one table: its filterable fields and sortable columns, and
    a ``related`` column (e.g. a user's groups) that a search may ask for."""

    def __init__(
        self, table: Table, fields: FieldMap, sorts: dict[str, Any], related: ColumnElement | None = None
    ) -> None:
        self.table, self.fields, self.sorts, self.related = table, fields, sorts, related
        self._statements: dict[Hashable, _Statements] = {}

    def search(self, node: Node | None, sort_by: str | None, sort_order: str | None, related: bool = False) -> Search:
        """:raises InvalidFilter: on a filter this table cannot answer;
        :raises InvalidValue: on an unsupported sort."""
        shape, params = prepare(node, self.fields) if node is not None else (None, {})
        order = _order(sort_by, sort_order, self.sorts)
        key = (shape, order, related)
        statements = self._statements.get(key)
        if statements is None:
            if len(self._statements) >= MAX_SHAPES:
                self._statements.clear()
            statements = self._statements[key] = self._build(node, order, related)
        return Search(statements, params)

    def _build(self, node: Node | None, order: tuple[str | None, bool], related: bool) -> _Statements:
        c = self.table.c
        where = compile_shape(node, self.fields) if node is not None else None
        rows = select(c.id, c.version, c.created, c.last_modified, c.data)
        if related:
            if self.related is None:
                raise ValueError("these searches have no related column")
            rows = rows.add_columns(self.related.label("related"))
        count = select(func.count()).select_from(self.table)
        if where is not None:
            rows, count = rows.where(where), count.where(where)
        sort_by, descending = order
        if sort_by is None:
            ordering = [c.created, c.id]
        else:
            column = self.sorts[sort_by]
            # RFC 7644 §3.4.2.3: resources without a value sort last ascending, first descending.
            nulls = column.is_(None)
            ordering = [nulls.desc() if descending else nulls.asc(), desc(column) if descending else asc(column), c.id]
        rows = rows.order_by(*ordering).offset(bindparam("offset")).limit(bindparam("limit"))
        return _Statements(rows, count)


def _order(sort_by: str | None, sort_order: str | None, sorts: dict[str, Any]) -> tuple[str | None, bool]:
    """``(sortable attribute or None, descending)`` of a request."""
    descending = (sort_order or "ascending").lower() == "descending"
    if sort_order and sort_order.lower() not in ("ascending", "descending"):
        raise InvalidValue("sortOrder must be 'ascending' or 'descending'")
    if not sort_by:
        return None, descending
    key = strip_core_urn(sort_by).lower()
    if key not in sorts:
        raise InvalidValue(f"sorting by '{sort_by}' is not supported")
    return key, descending
