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
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WALKIN_USER = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"

# RFC 7644 §3.10: ATTRNAME = ALPHA *(nameChar); "$ref" is the one sub-attribute
# allowed to start with "$" (RFC 7643 §2.1).
_NAME = re.compile(r"\$ref|[A-Za-z][A-Za-z0-9_-]*")


class AttributeType(StrEnum):
    """The SCIM data types the catalogue uses (RFC 7643 §2.3)."""

    STRING = "string"
    BOOLEAN = "boolean"
    REFERENCE = "reference"
    COMPLEX = "complex"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a schema, as much of its definition as checking paths needs."""

    type: AttributeType
    multi_valued: bool = False
    sub_attributes: Mapping[str, Attribute] = field(default_factory=dict)


_STR = Attribute(AttributeType.STRING)
_BOOL = Attribute(AttributeType.BOOLEAN)
_REF = Attribute(AttributeType.REFERENCE)


def _multi(**subs: Attribute) -> Attribute:
    return Attribute(AttributeType.COMPLEX, multi_valued=True, sub_attributes=subs)


_TYPED_VALUE = {"value": _STR, "display": _STR, "type": _STR, "primary": _BOOL}

#: The User schemas the connector serves (RFC 7643 §4.1 and §4.3, plus our extension).
SCHEMAS: Mapping[str, Mapping[str, Attribute]] = {
    CORE_USER: {
        "id": _STR,
        "externalId": _STR,
        "userName": _STR,
        "name": Attribute(
            AttributeType.COMPLEX,
            sub_attributes={
                sub: _STR
                for sub in (
                    "formatted",
                    "familyName",
                    "givenName",
                    "middleName",
                    "honorificPrefix",
                    "honorificSuffix",
                )
            },
        ),
        "displayName": _STR,
        "nickName": _STR,
        "profileUrl": _REF,
        "title": _STR,
        "userType": _STR,
        "preferredLanguage": _STR,
        "locale": _STR,
        "timezone": _STR,
        "active": _BOOL,
        "emails": _multi(**_TYPED_VALUE),
        "phoneNumbers": _multi(**_TYPED_VALUE),
        "addresses": _multi(
            **{
                sub: _STR
                for sub in ("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type")
            },
            primary=_BOOL,
        ),
        "groups": _multi(value=_STR, display=_STR, type=_STR, **{"$ref": _REF}),
        "roles": _multi(**_TYPED_VALUE),
        "entitlements": _multi(**_TYPED_VALUE),
    },
    ENTERPRISE_USER: {
        "employeeNumber": _STR,
        "costCenter": _STR,
        "organization": _STR,
        "division": _STR,
        "department": _STR,
        "manager": Attribute(
            AttributeType.COMPLEX,
            sub_attributes={"value": _STR, "displayName": _STR, "$ref": _REF},
        ),
    },
    WALKIN_USER: {
        "jobCode": _STR,
        "locationCode": _STR,
        # "YYYY-MM-DD": a calendar date, not a SCIM dateTime (policy dates are local).
        "assignmentStartDate": _STR,
        "certifications": _multi(course=_STR, kind=_STR, completedOn=_STR),
    },
}

_SCHEMA_BY_LOWER = {urn.lower(): urn for urn in SCHEMAS}


@dataclass(frozen=True, slots=True)
class AttributePath:
    """A checked path, spelled canonically, with the definition it leads to."""

    schema: str
    attribute: str
    sub_attribute: str | None
    definition: Attribute

    def __str__(self) -> str:
        name = self.attribute if self.sub_attribute is None else f"{self.attribute}.{self.sub_attribute}"
        return name if self.schema == CORE_USER else f"{self.schema}:{name}"

    def read(self, resource: Mapping[str, object]) -> object:
        """The value at this path in a User resource (a JSON object), or None if absent."""
        container = resource if self.schema == CORE_USER else get_attribute(resource, self.schema)
        if not isinstance(container, Mapping):
            return None
        value = get_attribute(container, self.attribute)
        if self.sub_attribute is None:
            return value
        return get_attribute(value, self.sub_attribute) if isinstance(value, Mapping) else None


def get_attribute(obj: Mapping[str, object], key: str) -> object:
    """``obj[key]``, matching the key case-insensitively (RFC 7643 §2.1); None if absent."""
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for name, value in obj.items():
        if isinstance(name, str) and name.lower() == lowered:
            return value
    return None


def _lookup(names: Mapping[str, Attribute], name: str) -> tuple[str, Attribute] | None:
    for canonical, definition in names.items():
        if canonical.lower() == name.lower():
            return canonical, definition
    return None


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
    found = _lookup(SCHEMAS[schema], attribute)
    if found is None:
        raise ValueError(f"unknown attribute {attribute!r} in schema {schema}")
    attribute, definition = found
    sub_attribute = None
    if sub:
        if definition.multi_valued:
            raise ValueError(f"{attribute!r} is multi-valued: {text!r} has no single value")
        found = _lookup(definition.sub_attributes, sub)
        if found is None:
            raise ValueError(f"unknown sub-attribute {sub!r} of {attribute!r}")
        sub_attribute, definition = found
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
        missing = [sub for sub in sub_attributes if _lookup(definition.sub_attributes, sub) is None]
        if not definition.multi_valued or definition.type is not AttributeType.COMPLEX or missing:
            wanted = ", ".join(sub_attributes)
            raise ValueError(f"{text!r} is not a multi-valued complex attribute with {wanted}")
    elif definition.multi_valued or definition.type is not type_:
        shape = "multi-valued " if definition.multi_valued else ""
        raise ValueError(f"{text!r} is a {shape}{definition.type.value} attribute, a single {type_.value} is needed")
    return text
