"""Parsed SCIM filters (:mod:`.filters`) compiled to SQLAlchemy expressions on
indexed columns, through the field map of a resource type.

Two ways out: :func:`compile_filter` puts the comparison values in the expression;
:func:`prepare` splits a filter into its *shape* (attributes, operators, forms of
the comparisons) and its values, and :func:`compile_shape` builds the expression
of a shape once, with the values as bound parameters ``:f0``, ``:f1``… — so a
caller can keep one statement per shape and run it with each request's values.
Both check the filter the same way and raise the same :class:`InvalidFilter`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from .errors import InvalidFilter
from .filters import Compare, Logical, Node, Not, ValuePath
from .values import parse_datetime


class Kind:
    CI = "ci"  # case-insensitive string, stored lower-cased
    EXACT = "exact"  # case-exact string
    BOOL = "bool"
    DATETIME = "datetime"


@dataclass(frozen=True)
class Column:
    """A filterable single-valued attribute stored in ``column``."""

    column: Any
    kind: str = Kind.CI


@dataclass(frozen=True)
class Child:
    """A multi-valued attribute stored in a child table.

    ``link(parent)`` gives the join condition of a child row to its parent;
    ``subs`` maps sub-attribute names to columns; ``default`` is the sub-attribute a
    bare ``emails eq "x"`` compares.
    """

    link: Callable[[], ColumnElement]
    table: Any
    subs: dict[str, Column]
    default: str = "value"


@dataclass(frozen=True)
class FieldMap:
    fields: dict[str, Column | Child] = field(default_factory=dict)

    def lookup(self, path: str) -> tuple[Child | None, Column]:
        """Resolve a lower-cased path to (child table or None, column)."""
        spec = self.fields.get(path)
        if isinstance(spec, Column):
            return None, spec
        if isinstance(spec, Child):
            return spec, spec.subs[spec.default]
        base, _, sub = path.rpartition(".")
        parent = self.fields.get(base)
        if isinstance(parent, Child) and sub in parent.subs:
            return parent, parent.subs[sub]
        raise InvalidFilter(f"filtering on '{path}' is not supported")

    def value_path(self, path: str) -> Child:
        spec = self.fields.get(path)
        if not isinstance(spec, Child):
            raise InvalidFilter(f"'{path}' is not a multi-valued attribute with sub-attributes")
        return spec


_LIKE = {"co", "sw", "ew"}

# How a comparison reads in SQL, apart from its value.
_PRESENT, _NULL, _VALUE = "present", "null", "value"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _bound(spec: Column, cmp: Compare) -> tuple[str, Any]:
    """Check one comparison; returns its form and the value SQL compares with."""
    op, value = cmp.op, cmp.value
    if op == "pr":
        return _PRESENT, None
    if value is None:
        if op in ("eq", "ne"):
            return _NULL, None
        raise InvalidFilter(f"'{cmp.path} {op} null' is not a valid comparison")
    if spec.kind == Kind.BOOL:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"'{op}' cannot compare the boolean '{cmp.path}'")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise InvalidFilter(f"'{cmp.path}' is boolean; compare it with true or false")
        return _VALUE, value
    if spec.kind == Kind.DATETIME:
        if op in _LIKE:
            raise InvalidFilter(f"'{op}' cannot compare the dateTime '{cmp.path}'")
        try:
            when: datetime = parse_datetime(str(value))
        except ValueError:
            raise InvalidFilter(f"'{value}' is not a dateTime") from None
        return _VALUE, when
    if isinstance(value, bool):
        raise InvalidFilter(f"'{cmp.path}' is a string; compare it with a quoted value")
    text = str(value)
    if spec.kind == Kind.CI:
        text = text.lower()
    if op in _LIKE:
        return _VALUE, {"co": "%{}%", "sw": "{}%", "ew": "%{}"}[op].format(_escape_like(text))
    return _VALUE, text


def _condition(spec: Column, op: str, form: str, value: Any) -> ColumnElement:
    """The SQL of one comparison; ``value`` is the compared value or a bound parameter.

    Each is true or false, never NULL, so ``not`` keeps two-valued logic.
    """
    col = spec.column
    if form == _PRESENT:
        present = col.is_not(None)
        return and_(present, col != "") if spec.kind in (Kind.CI, Kind.EXACT) else present
    if form == _NULL:
        return col.is_(None) if op == "eq" else col.is_not(None)
    if op in _LIKE:
        cond = and_(col.is_not(None), col.like(value, escape="\\"))
    else:
        cond = and_(col.is_not(None), _ordered(col, "eq" if op == "ne" else op, value))
    return not_(cond) if op == "ne" else cond


def _ordered(col: Any, op: str, value: Any) -> ColumnElement:
    if op == "eq":
        return col == value
    if op == "gt":
        return col > value
    if op == "ge":
        return col >= value
    if op == "lt":
        return col < value
    if op == "le":
        return col <= value
    raise InvalidFilter(f"unknown operator '{op}'")


def _flatten(node: Logical) -> list[Node]:
    """The operands of a chain of one operator (``a and b and c``), so SQL gets
    one flat AND/OR instead of a deep tree."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Logical) and item.op == node.op:
            stack.extend((item.right, item.left))
        else:
            out.append(item)
    return out


def _not_nested(node: Compare | ValuePath) -> Compare:
    """The comparison inside ``attr[...]``. :raises InvalidFilter: for a nested value path."""
    if isinstance(node, ValuePath):
        raise InvalidFilter("value paths cannot be nested")
    return node


def _within(child: Child, base: str, node: Compare) -> Column:
    """The column of a comparison inside ``attr[...]``."""
    sub = node.path[len(base) + 1 :] if node.path.startswith(base + ".") else node.path
    column = child.subs.get(sub)
    if column is None:
        raise InvalidFilter(f"filtering on '{base}.{sub}' is not supported")
    return column


Bind = Callable[[Column, Compare], tuple[str, Any]]


def _sql(node: Node, fields: FieldMap, bind: Bind) -> ColumnElement:
    """The WHERE clause of ``node``; ``bind`` gives each comparison's form and value."""
    if isinstance(node, Logical):
        parts = [_sql(n, fields, bind) for n in _flatten(node)]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if isinstance(node, Not):
        return not_(_sql(node.inner, fields, bind))
    if isinstance(node, ValuePath):
        spec = fields.value_path(node.path)
        return exists(select(true()).where(spec.link(), _sql_within(node.inner, spec, node.path, bind)))
    child, column = fields.lookup(node.path)
    leaf = _condition(column, node.op, *bind(column, node))
    return leaf if child is None else exists(select(true()).where(child.link(), leaf))


def _sql_within(node: Node, child: Child, base: str, bind: Bind) -> ColumnElement:
    """Conditions on one row of a child table (inside ``attr[...]``)."""
    if isinstance(node, Logical):
        left, right = _sql_within(node.left, child, base, bind), _sql_within(node.right, child, base, bind)
        return and_(left, right) if node.op == "and" else or_(left, right)
    if isinstance(node, Not):
        return not_(_sql_within(node.inner, child, base, bind))
    compare = _not_nested(node)
    column = _within(child, base, compare)
    return _condition(column, compare.op, *bind(column, compare))


def compile_filter(node: Node, fields: FieldMap) -> ColumnElement:
    """Compile a parsed filter to a WHERE clause over the resource's table.

    :raises InvalidFilter: on an attribute outside ``fields`` or a comparison the
        attribute's type does not allow.
    """
    return _sql(node, fields, _bound)


def prepare(node: Node, fields: FieldMap) -> tuple[Hashable, dict[str, Any]]:
    """Check a filter as :func:`compile_filter` does, without building SQL.

    :returns: its shape (equal for filters that differ only in their values) and
        the values to bind, as ``{"f0": …, "f1": …}`` in the order met.
    """
    values: dict[str, Any] = {}

    def leaf(column: Column, cmp: Compare) -> tuple:
        form, value = _bound(column, cmp)
        if form == _VALUE:
            values[f"f{len(values)}"] = value
        return cmp.path, cmp.op, form

    def within(n: Node, child: Child, base: str) -> tuple:
        if isinstance(n, Logical):
            return n.op, within(n.left, child, base), within(n.right, child, base)
        if isinstance(n, Not):
            return "not", within(n.inner, child, base)
        compare = _not_nested(n)
        return leaf(_within(child, base, compare), compare)

    def walk(n: Node) -> tuple:
        if isinstance(n, Logical):
            return (n.op, *(walk(x) for x in _flatten(n)))
        if isinstance(n, Not):
            return "not", walk(n.inner)
        if isinstance(n, ValuePath):
            return "[]", n.path, within(n.inner, fields.value_path(n.path), n.path)
        return leaf(fields.lookup(n.path)[1], n)

    return walk(node), values


def compile_shape(node: Node, fields: FieldMap) -> ColumnElement:
    """The WHERE clause of ``node``'s shape, its values bound as ``:f0``, ``:f1``…
    (run it with the values :func:`prepare` returns)."""
    count = 0

    def named(column: Column, cmp: Compare) -> tuple[str, Any]:
        nonlocal count
        form, _ = _bound(column, cmp)
        if form != _VALUE:
            return form, None
        count += 1
        return form, bindparam(f"f{count - 1}")

    return _sql(node, fields, named)


__all__ = ["Child", "Column", "FieldMap", "Kind", "compile_filter", "compile_shape", "prepare"]
