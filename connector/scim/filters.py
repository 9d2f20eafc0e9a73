"""SCIM filters (RFC 7644 §3.4.2.2) parsed with scim2-filter-parser into a small
tree (:class:`Compare`, :class:`Logical`, :class:`Not`, :class:`ValuePath`), which
:mod:`.filter_sql` compiles to SQL on indexed columns.

scim2-filter-parser does the grammar. Its own SQL transpiler is not used: it
silently drops unmapped attributes, compares only ``userName`` case-insensitively
and passes ``co``/``sw``/``ew`` values into ``LIKE`` unescaped. Two gaps of the
library are closed here:

* its lexer takes one-digit integers only and cannot express escaped quotes; a
  subclass reads JSON numbers and JSON strings (so ``"a\\"b"`` works) and keeps
  ``true``/``false``/``null`` distinct from the strings ``"true"`` etc.;
* its parser gives ``and`` and ``or`` the same precedence; :func:`parse` rebuilds
  each unparenthesised chain so ``and`` binds tighter, as §3.4.2.2 requires.

Every attribute in a filter must be in the field map of the resource type, or the
whole filter is rejected (400 ``invalidFilter``) before any SQL runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from sly.lex import LexError

from .errors import InvalidFilter
from .schema import Urn


class _Lexer(SCIMLexer):
    tokens = SCIMLexer.tokens

    NUMBER = r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?"

    @_(r'"(?:[^"\\]|\\.)*"')  # type: ignore[name-defined]  # noqa: F821 - sly injects ``_``
    def COMP_VALUE(self, t):
        try:
            text = json.loads(t.value)
            text.encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            raise InvalidFilter(f"invalid string literal {t.value[:40]}") from None
        if "\x00" in text:
            raise InvalidFilter("a filter value cannot contain a NUL character")
        t.value = _Str(text)
        return t

    def error(self, t):
        raise InvalidFilter(f"unexpected character {t.value[0]!r} at position {t.index}")


class _Str(str):
    """A quoted string literal, told apart from the bare words true/false/null."""


def _literal(raw: Any) -> Any:
    if isinstance(raw, _Str):
        return str(raw)
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw == "null":
        return None
    text = str(raw)
    try:
        return int(text)
    except ValueError:
        return float(text)


@dataclass(frozen=True)
class Compare:
    """A leaf comparison: ``path op value`` (``value`` unused for ``pr``)."""

    path: str  # lower-cased attribute path, e.g. "name.givenname"
    op: str
    value: Any = None


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: ``inner`` holds comparisons on sub-attributes of ``path``."""

    path: str
    inner: Node


Node = Compare | Logical | Not | ValuePath


def _attr_key(attr_path: ast.AttrPath) -> str:
    name = attr_path.attr_name
    if attr_path.uri:
        name = f"{attr_path.uri}:{name}"
    if attr_path.sub_attr is not None:
        name = f"{name}.{attr_path.sub_attr.value}"
    return strip_core_urn(name).lower()


def strip_core_urn(path: str) -> str:
    """``urn:…:core:2.0:User:userName`` names the same attribute as ``userName``."""
    lower = path.lower()
    for urn in (Urn.USER, Urn.GROUP):
        prefix = urn.value.lower() + ":"
        if lower.startswith(prefix):
            return path[len(prefix) :]
    return path


def _convert(node: ast.AST, namespace: str | None = None) -> Node:
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            outer = _attr_key(node.namespace)
            # The parser turns ``emails[type eq "work"].value`` into a namespace of
            # ``emails.value``; the bracket filter applies to ``emails``.
            base, _, sub = outer.partition(".") if not outer.startswith("urn:") else (outer, "", "")
            inner = _convert(node.expr, base)
            result: Node = ValuePath(base, inner)
            if sub:
                raise _SubAttrAfterBracket(base, sub, inner)
            return Not(result) if node.negated else result
        inner_node = _convert(node.expr, namespace)
        return Not(inner_node) if node.negated else inner_node
    if isinstance(node, ast.LogExpr):
        return _reassociate(node, namespace)
    if isinstance(node, ast.AttrExpr):
        attr_path = node.attr_path
        if isinstance(attr_path.attr_name, ast.Filter):
            # ``emails[type eq "work"].value eq "x"``: one row must satisfy both.
            try:
                _convert(attr_path.attr_name, namespace)
            except _SubAttrAfterBracket as found:
                leaf = Compare(
                    f"{found.base}.{found.sub}",
                    node.value.lower(),
                    None if node.comp_value is None else _literal(node.comp_value.value),
                )
                return ValuePath(found.base, Logical("and", found.inner, leaf))
            raise InvalidFilter("a value path must name a sub-attribute after ']'")
        key = _attr_key(attr_path)
        if namespace is not None:
            key = f"{namespace}.{key}"
        value = None if node.comp_value is None else _literal(node.comp_value.value)
        return Compare(key, node.value.lower(), value)
    raise InvalidFilter("unsupported filter expression")


class _SubAttrAfterBracket(Exception):
    def __init__(self, base: str, sub: str, inner: Node) -> None:
        self.base, self.sub, self.inner = base, sub, inner


def _is_chain(node: ast.AST) -> bool:
    """An unparenthesised ``and``/``or`` (the parser wraps groups in an extra Filter)."""
    return (
        isinstance(node, ast.Filter)
        and not node.negated
        and node.namespace is None
        and isinstance(node.expr, ast.LogExpr)
    )


def _reassociate(node: ast.LogExpr, namespace: str | None) -> Node:
    operands: list[ast.AST] = []
    operators: list[str] = []

    def walk(item: ast.AST) -> None:
        if isinstance(item, ast.LogExpr):
            walk(item.expr1)
            operators.append(item.op.lower())
            walk(item.expr2)
        elif _is_chain(item):
            walk(item.expr)
        else:
            operands.append(item)

    walk(node)
    converted = [_convert(o, namespace) for o in operands]
    # "and" binds tighter than "or" (RFC 7644 §3.4.2.2).
    groups: list[Node] = [converted[0]]
    for op, right in zip(operators, converted[1:]):
        if op == "and":
            groups[-1] = Logical("and", groups[-1], right)
        else:
            groups.append(right)
    result = groups[0]
    for right in groups[1:]:
        result = Logical("or", result, right)
    return result


MAX_DEPTH = 16  # nested parentheses/brackets
MAX_TERMS = 100  # comparisons in one filter
_COMPARISONS = {"EQ", "NE", "CO", "SW", "EW", "GT", "GE", "LT", "LE", "PR"}


def _bounded(tokens):
    """Pass tokens through, refusing filters nested or long enough to strain the
    parser, the SQL compiler or the database's own expression-depth limit."""
    depth = terms = 0
    for token in tokens:
        if token.type in ("LPAREN", "LBRACKET"):
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidFilter(f"the filter nests more than {MAX_DEPTH} levels deep")
        elif token.type in ("RPAREN", "RBRACKET"):
            depth -= 1
        elif token.type in _COMPARISONS:
            terms += 1
            if terms > MAX_TERMS:
                raise InvalidFilter(f"the filter has more than {MAX_TERMS} comparisons")
        yield token


def parse(text: str, max_length: int = 4096) -> Node:
    """Parse a filter into a tree of :class:`Compare`, :class:`Logical`, :class:`Not`
    and :class:`ValuePath`. :raises InvalidFilter: on any syntax error."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilter("the filter is empty")
    if len(text) > max_length:
        raise InvalidFilter(f"the filter is longer than {max_length} characters")
    try:
        tree = SCIMParser().parse(_bounded(_Lexer().tokenize(text)))
    except InvalidFilter:
        raise
    except (SCIMParserError, LexError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidFilter(f"the filter is not valid: {exc}") from None
    if tree is None:
        raise InvalidFilter("the filter is not valid")
    try:
        return _convert(tree)
    except _SubAttrAfterBracket as found:
        raise InvalidFilter(f"'{found.base}[…].{found.sub}' needs a comparison") from None
    except RecursionError:
        raise InvalidFilter("the filter is nested too deeply") from None


__all__ = ["Compare", "Logical", "Node", "Not", "ValuePath", "parse", "strip_core_urn"]
