"""Attribute definitions of the schemas the service supports (RFC 7643 §4, §7, §8.7).

These definitions are the single source for three things: the ``/Schemas``
discovery documents, the normalisation of incoming resources (types, canonical
attribute-name case, read-only attributes) and the paths PATCH and filters accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mappings.vocabulary import CertKind


class Urn(StrEnum):
    USER = "urn:ietf:params:scim:schemas:core:2.0:User"
    GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
    ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
    LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
    SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


class Type(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BINARY = "binary"
    REFERENCE = "reference"
    COMPLEX = "complex"


@dataclass(frozen=True)
class Attr:
    """One attribute of a schema, as RFC 7643 §7 describes it."""

    name: str
    type: Type = Type.STRING
    multi: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    sub: tuple[Attr, ...] = ()
    canonical: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    by_lower: dict[str, Attr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower", {a.name.lower(): a for a in self.sub})

    def child(self, name: str) -> Attr | None:
        """The sub-attribute called ``name`` (attribute names are case-insensitive)."""
        return self.by_lower.get(name.lower())

    def to_dict(self) -> dict:
        out: dict = {
            "name": self.name,
            "type": self.type.value,
            "multiValued": self.multi,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in (Type.STRING, Type.REFERENCE, Type.BINARY):
            out["caseExact"] = self.case_exact
        if self.type is not Type.COMPLEX:
            out["uniqueness"] = self.uniqueness
        if self.canonical:
            out["canonicalValues"] = list(self.canonical)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub:
            out["subAttributes"] = [a.to_dict() for a in self.sub]
        return out


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attr, ...]
    by_lower: dict[str, Attr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower", {a.name.lower(): a for a in self.attributes})

    def attr(self, name: str) -> Attr | None:
        return self.by_lower.get(name.lower())

    def to_dict(self, location: str) -> dict:
        return {
            "schemas": [Urn.SCHEMA.value],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_dict() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


def _s(name: str, **kw) -> Attr:
    return Attr(name, Type.STRING, **kw)


def _multi(
    name: str,
    *,
    value_type: Type = Type.STRING,
    types: tuple[str, ...] = (),
    ref: tuple[str, ...] = (),
    extra: tuple[Attr, ...] = (),
) -> Attr:
    """The usual multi-valued complex shape: value, display, type, primary (RFC 7643 §2.4)."""
    value = Attr("value", value_type, reference_types=ref) if ref else Attr("value", value_type)
    subs = (value, _s("display"), _s("type", canonical=types), Attr("primary", Type.BOOLEAN)) + extra
    return Attr(name, Type.COMPLEX, multi=True, sub=subs)


USER_SCHEMA = Schema(
    id=Urn.USER.value,
    name="User",
    description="User Account",
    attributes=(
        _s(
            "userName",
            required=True,
            uniqueness="server",
            description="Unique identifier for the User; compared case-insensitively.",
        ),
        Attr(
            "name",
            Type.COMPLEX,
            sub=(
                _s("formatted"),
                _s("familyName"),
                _s("givenName"),
                _s("middleName"),
                _s("honorificPrefix"),
                _s("honorificSuffix"),
            ),
        ),
        _s("displayName"),
        _s("nickName"),
        Attr("profileUrl", Type.REFERENCE, reference_types=("external",)),
        _s("title"),
        _s("userType"),
        _s("preferredLanguage"),
        _s("locale"),
        _s("timezone"),
        Attr("active", Type.BOOLEAN),
        _s("password", mutability="writeOnly", returned="never"),
        _multi("emails", types=("work", "home", "other")),
        _multi("phoneNumbers", types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", value_type=Type.REFERENCE, types=("photo", "thumbnail"), ref=("external",)),
        Attr(
            "addresses",
            Type.COMPLEX,
            multi=True,
            sub=(
                _s("formatted"),
                _s("streetAddress"),
                _s("locality"),
                _s("region"),
                _s("postalCode"),
                _s("country"),
                _s("type", canonical=("work", "home", "other")),
                Attr("primary", Type.BOOLEAN),
            ),
        ),
        Attr(
            "groups",
            Type.COMPLEX,
            multi=True,
            mutability="readOnly",
            sub=(
                _s("value", mutability="readOnly"),
                Attr("$ref", Type.REFERENCE, mutability="readOnly", reference_types=("User", "Group")),
                _s("display", mutability="readOnly"),
                _s("type", mutability="readOnly", canonical=("direct", "indirect")),
            ),
        ),
        _multi("entitlements"),
        _multi("roles"),
        _multi("x509Certificates", value_type=Type.BINARY),
    ),
)

GROUP_SCHEMA = Schema(
    id=Urn.GROUP.value,
    name="Group",
    description="Group",
    attributes=(
        _s(
            "displayName",
            required=True,
            uniqueness="server",
            description="Name of the group; unique, compared case-insensitively.",
        ),
        Attr(
            "members",
            Type.COMPLEX,
            multi=True,
            sub=(
                _s("value", mutability="immutable"),
                Attr("$ref", Type.REFERENCE, mutability="immutable", reference_types=("User", "Group")),
                _s("display", mutability="readOnly"),
                _s("type", mutability="immutable", canonical=("User", "Group")),
            ),
        ),
    ),
)

ENTERPRISE_SCHEMA = Schema(
    id=Urn.ENTERPRISE.value,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber"),
        _s("costCenter"),
        _s("organization"),
        _s("division"),
        _s("department"),
        Attr(
            "manager",
            Type.COMPLEX,
            sub=(
                _s("value"),
                Attr("$ref", Type.REFERENCE, reference_types=("User",)),
                _s("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

WALKIN_SCHEMA = Schema(
    id=Urn.WALKIN.value,
    name="WalkinUser",
    description=(
        "HR and training facts the Walk-in Scheduling access policy reads. Dates are "
        "YYYY-MM-DD; a value that is not a date is stored as sent and reported by the "
        "policy as missing (it fails closed) rather than rejected, so one bad HR value "
        "never blocks an offboarding update in the same request."
    ),
    attributes=(
        _s("jobCode", description="HR job code, mapped to a role by the mapping file."),
        _s("locationCode", description="Location code of the current assignment."),
        _s("assignmentStartDate", description="First day of the current (role, location) assignment, YYYY-MM-DD."),
        Attr(
            "certifications",
            Type.COMPLEX,
            multi=True,
            description="Training completions.",
            sub=(
                _s("course", description="Course name, e.g. 'Walk-In Scheduling Certification'."),
                _s(
                    "kind",
                    canonical=tuple(kind.value for kind in CertKind),
                    description="'full' (whole eLearning) or 'recert' (recertification quiz).",
                ),
                _s("completedOn", description="Completion date, YYYY-MM-DD."),
            ),
        ),
    ),
)

SCHEMAS: dict[str, Schema] = {s.id: s for s in (USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA, WALKIN_SCHEMA)}
SCHEMAS_LOWER: dict[str, Schema] = {k.lower(): v for k, v in SCHEMAS.items()}


@dataclass(frozen=True)
class ResourceKind:
    """A resource type (RFC 7643 §6): its core schema and extensions."""

    name: str
    endpoint: str
    core: Schema
    extensions: tuple[Schema, ...]

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.core.id,) + tuple(e.id for e in self.extensions)

    def extension(self, urn: str) -> Schema | None:
        for ext in self.extensions:
            if ext.id.lower() == urn.lower():
                return ext
        return None

    def to_dict(self, location: str) -> dict:
        return {
            "schemas": [Urn.RESOURCE_TYPE.value],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.core.description,
            "schema": self.core.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


USER = ResourceKind("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA, WALKIN_SCHEMA))
GROUP = ResourceKind("Group", "/Groups", GROUP_SCHEMA, ())
RESOURCE_KINDS = {"User": USER, "Group": GROUP}
