"""PATCH paths (RFC 7644 §3.5.2): ``attrPath`` / ``valuePath [subAttr]``.

A path resolves against a resource type to the schema, the attribute, an
optional value filter and an optional sub-attribute, with canonical names.
The schema URN may be left out (RFC 7644 §3.10): Entra sends ``manager`` for the
enterprise extension's ``manager``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidFilter, InvalidPath, Mutability
from .filters import Node, parse
from .schema import Attr, ResourceKind, Schema, Type

EXTERNAL_ID = Attr("externalId", case_exact=True)
_READ_ONLY = {"id", "meta", "schemas"}
_FIRST_SEGMENT = re.compile(r"[.\[]")  # the attribute name ends at a sub-attribute or a filter


@dataclass(frozen=True)
class Path:
    schema: Schema
    attr: Attr
    filter: Node | None = None
    sub: Attr | None = None
    extension: bool = False  # attribute lives under the extension URN key

    @property
    def text(self) -> str:
        name = f"{self.schema.id}:{self.attr.name}" if self.extension else self.attr.name
        return f"{name}.{self.sub.name}" if self.sub else name


@dataclass(frozen=True)
class ExtensionPath:
    """A path naming a whole extension (``urn:…:enterprise:2.0:User``)."""

    schema: Schema


def schema_of(kind: ResourceKind, name: str) -> Schema:
    """The schema an attribute name written without a URN belongs to.

    RFC 7644 §3.10: "Clients MAY omit core schema attribute URN prefixes but SHOULD
    fully qualify extended attributes with the associated schema extension URN to
    avoid naming conflicts" — a SHOULD, and Entra does not (``"path": "manager"``).
    A core attribute (or a common one, RFC 7643 §3.1) wins; otherwise the one
    extension of ``kind`` defining ``name``. An unknown name resolves to the core
    schema, whose lookup then reports it.

    :raises InvalidPath: when two or more extensions define ``name``: that is the
        naming conflict §3.10 warns of, and guessing would write to the wrong
        schema, so the client must give the URN.
    """
    lower = name.lower()
    if lower in _READ_ONLY or lower == "externalid" or kind.core.attr(name) is not None:
        return kind.core
    owners = [ext for ext in kind.extensions if ext.attr(name) is not None]
    if len(owners) > 1:
        urns = ", ".join(ext.id for ext in owners)
        raise InvalidPath(f"'{name}' is defined by several extensions ({urns}); prefix it with one of them")
    return owners[0] if owners else kind.core


def _split_urn(kind: ResourceKind, text: str) -> tuple[Schema, str, bool]:
    lower = text.lower()
    for schema, is_ext in ((kind.core, False),) + tuple((e, True) for e in kind.extensions):
        prefix = schema.id.lower() + ":"
        if lower.startswith(prefix):
            return schema, text[len(prefix) :], is_ext
    if lower.startswith("urn:"):
        raise InvalidPath(f"'{text}' names a schema this resource does not have")
    schema = schema_of(kind, _FIRST_SEGMENT.split(text, maxsplit=1)[0])
    return schema, text, schema is not kind.core


def parse_path(kind: ResourceKind, text: object) -> Path | ExtensionPath:
    """Resolve a PATCH path. :raises InvalidPath: unknown attribute or bad syntax;
    :raises Mutability: a read-only attribute."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPath("'path' must be a non-empty string")
    text = text.strip()
    ext = kind.extension(text)
    if ext is not None:
        return ExtensionPath(ext)
    schema, rest, is_ext = _split_urn(kind, text)
    filter_node: Node | None = None
    after = ""
    if "[" in rest:
        head, _, tail = rest.partition("[")
        close = tail.rfind("]")
        if close < 0:
            raise InvalidPath(f"'{text}' has '[' without ']'")
        inner, after = tail[:close], tail[close + 1 :]
        try:
            filter_node = parse(inner)
        except InvalidFilter as exc:
            raise InvalidPath(f"bad value filter in '{text}': {exc.detail}") from None
        if after and not after.startswith("."):
            raise InvalidPath(f"'{text}': expected '.subAttribute' after ']'")
        after = after[1:]
        name = head
    else:
        name, _, after = rest.partition(".")
    if not name:
        raise InvalidPath(f"'{text}' names no attribute")
    if not is_ext and name.lower() in _READ_ONLY:
        raise Mutability(f"'{name}' is read-only")
    attr = EXTERNAL_ID if (not is_ext and name.lower() == "externalid") else schema.attr(name)
    if attr is None:
        raise InvalidPath(f"'{text}': no attribute '{name}' in {schema.id}")
    sub = None
    if after:
        if attr.type is not Type.COMPLEX:
            raise InvalidPath(f"'{text}': '{attr.name}' has no sub-attributes")
        sub = attr.child(after)
        if sub is None:
            raise InvalidPath(f"'{text}': '{attr.name}' has no sub-attribute '{after}'")
    if filter_node is not None and not attr.multi:
        raise InvalidPath(f"'{text}': a value filter needs a multi-valued attribute")
    return Path(schema, attr, filter_node, sub, is_ext)


__all__ = ["EXTERNAL_ID", "ExtensionPath", "Path", "parse_path", "schema_of"]
