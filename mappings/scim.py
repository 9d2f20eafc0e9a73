"""SCIM attribute paths: where the mapping file says a fact comes from in a User.

A path is written as in RFC 7644 §3.10, ``[schema URN ":"] attribute ["." sub]``:
``active``, ``name.givenName``,
``urn:ietf:params:scim:schemas:extension:walkin:2.0:User:jobCode``. Paths are checked
against the schemas the connector serves, so a typo fails when the mapping loads
instead of silently yielding null for everyone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from connector.scim.schema import ENTERPRISE_SCHEMA, USER_SCHEMA, WALKIN_SCHEMA, Attr, Schema, Type

CORE_USER = USER_SCHEMA.id

# RFC 7644 §3.10: ATTRNAME = ALPHA *(nameChar); "$ref" is the one sub-attribute
# allowed to start with "$" (RFC 7643 §2.1).
_NAME = re.compile(r"\$ref|[A-Za-z][A-Za-z0-9_-]*")

#: The SCIM data types (RFC 7643 §2.3), as the connector's schemas define them.
AttributeType = Type

#: The User schemas the connector serves: the connector's own definitions, so a
#: path the mapping accepts is exactly a path the SCIM service stores.
SCHEMAS: Mapping[str, Schema] = {s.id: s for s in (USER_SCHEMA, ENTERPRISE_SCHEMA, WALKIN_SCHEMA)}
_CORE_EXTRA = {"id": Attr("id", case_exact=True), "externalid": Attr("externalId", case_exact=True)}

_SCHEMA_BY_LOWER = {urn.lower(): urn for urn in SCHEMAS}


@dataclass(frozen=True, slots=True)
class AttributePath:
    """A checked path, spelled canonically, with the definition it leads to."""

    schema: str
    attribute: str
    sub_attribute: str | None
    definition: Attr

    def __str__(self) -> str:
        name = self.attribute if self.sub_attribute is None else f"{self.attribute}.{self.sub_attribute}"
        return name if self.schema == CORE_USER else f"{self.schema}:{name}"

    def read(self, resource: Mapping[str, object]) -> object:
        """The value at this path in a User resource (a JSON object), or None if absent."""
        container = resource if self.schema == CORE_USER else get_attribute(resource, self.schema)
        # A parsed document's objects are dicts: tested first, as the abstract Mapping
        # check costs several times more (every fact of every person is read here).
        if type(container) is not dict and not isinstance(container, Mapping):
            return None
        value = get_attribute(container, self.attribute)
        if self.sub_attribute is None:
            return value
        return get_attribute(value, self.sub_attribute) if type(value) is dict or isinstance(value, Mapping) else None


def get_attribute(obj: Mapping[str, object], key: str) -> object:
    """``obj[key]``, matching the key case-insensitively (RFC 7643 §2.1); None if absent."""
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for name, value in obj.items():
        if isinstance(name, str) and name.lower() == lowered:
            return value
    return None


def _attribute(schema: str, name: str) -> Attr | None:
    if schema == CORE_USER and name.lower() in _CORE_EXTRA:
        return _CORE_EXTRA[name.lower()]
    return SCHEMAS[schema].attr(name)


@lru_cache(maxsize=256)
def parse_path(text: str) -> AttributePath:
    """Parse and check a SCIM attribute path against :data:`SCHEMAS`.

    :raises ValueError: when the path is malformed or names no known attribute.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid attribute path {text!r}")
    schema = CORE_USER
    rest = text
    if text.lower().startswith("urn:"):
        urn, _, rest = text.rpartition(":")
        if urn.lower() not in _SCHEMA_BY_LOWER:
            raise ValueError(f"unknown schema {urn!r} in attribute path {text!r}")
        schema = _SCHEMA_BY_LOWER[urn.lower()]
    attribute, _, sub = rest.partition(".")
    names = [attribute, sub] if sub else [attribute]
    if not all(_NAME.fullmatch(name) for name in names) or (sub and "." in sub):
        raise ValueError(f"invalid attribute path {text!r}")
    definition = _attribute(schema, attribute)
    if definition is None:
        raise ValueError(f"unknown attribute {attribute!r} in schema {schema}")
    attribute = definition.name
    sub_attribute = None
    if sub:
        if definition.multi:
            raise ValueError(f"{attribute!r} is multi-valued: {text!r} has no single value")
        child = definition.child(sub)
        if child is None:
            raise ValueError(f"unknown sub-attribute {sub!r} of {attribute!r}")
        sub_attribute, definition = child.name, child
    return AttributePath(schema, attribute, sub_attribute, definition)


def check_path(text: str, type_: AttributeType, *, sub_attributes: tuple[str, ...] = ()) -> str:
    """Check that ``text`` leads to a single-valued attribute of ``type_``, or, given
    ``sub_attributes``, to a multi-valued complex attribute having all of them.

    :returns: ``text`` unchanged, for use as a pydantic validator.
    :raises ValueError: naming the mismatch.
    """
    path = parse_path(text)
    definition = path.definition
    if sub_attributes:
        missing = [sub for sub in sub_attributes if definition.child(sub) is None]
        if not definition.multi or definition.type is not Type.COMPLEX or missing:
            wanted = ", ".join(sub_attributes)
            raise ValueError(f"{text!r} is not a multi-valued complex attribute with {wanted}")
    elif definition.multi or definition.type is not type_:
        shape = "multi-valued " if definition.multi else ""
        raise ValueError(f"{text!r} is a {shape}{definition.type.value} attribute, a single {type_.value} is needed")
    return text
