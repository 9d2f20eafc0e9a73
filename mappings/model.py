"""The mapping file: policy settings, where facts come from, and the entitlements.

The file is YAML, loaded once into frozen pydantic models that forbid unknown keys.
Every mistake stops loading with a :class:`MappingError` naming the key path and the
problem (``entitlements.walkin.course: unknown field``), one line each, because a mapping that
silently ignored a typo would grant or revoke access on the wrong rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as AbcMapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mappings.calendar import SchoolCalendar, parse_school_year
from mappings.fields import FrozenModel, IsoDate, describe_errors, shown
from mappings.loading import MAX_MAPPING_BYTES, MappingError, parse_document, read_document
from mappings.scim import AttributeType, check_path
from mappings.vocabulary import (
    CERTIFICATION_CODES,
    REQUIREMENT_CODES,
    Checks,
    GroupAttribute,
    LocationType,
    ReasonCode,
)

#: The mapping shipped with the connector, holding every default of the policy.
DEFAULT_MAPPING_PATH = Path(__file__).with_name("walkin.yaml")

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _month_day(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d\d-\d\d", value):
        raise ValueError(f"invalid month-day {shown(value)}, expected MM-DD such as '07-01'")
    try:
        SchoolCalendar(int(value[:2]), int(value[3:]))
    except ValueError:
        raise ValueError(f"invalid month-day {shown(value)}: not a day of every year") from None
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {shown(value)}") from None
    return value


def _requirement(value: object) -> ReasonCode:
    if value not in REQUIREMENT_CODES or not isinstance(value, str):
        known = ", ".join(code.value for code in REQUIREMENT_CODES)
        raise ValueError(f"unknown requirement {shown(value)}; known: {known}")
    return ReasonCode(value)


def _regex(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {shown(value)}: {exc}") from None
    if "location" not in compiled.groupindex:
        raise ValueError(f"regular expression {shown(value)} has no named group (?P<location>...)")
    return value


NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
MonthDay = Annotated[StrictStr, AfterValidator(_month_day)]
TimeZoneName = Annotated[StrictStr, AfterValidator(_time_zone)]
SchoolYear = Annotated[int, BeforeValidator(parse_school_year)]
Requirement = Annotated[ReasonCode, BeforeValidator(_requirement)]
GroupPattern = Annotated[StrictStr, AfterValidator(_regex)]
BooleanPath = Annotated[StrictStr, AfterValidator(lambda v: check_path(v, AttributeType.BOOLEAN))]
StringPath = Annotated[StrictStr, AfterValidator(lambda v: check_path(v, AttributeType.STRING))]
CertificationsPath = Annotated[
    StrictStr,
    AfterValidator(lambda v: check_path(v, AttributeType.COMPLEX, sub_attributes=("course", "kind", "completedOn"))),
]


class Policy(FrozenModel):
    """District-wide settings of the access policy; defaults are those of the policy doc."""

    time_zone: TimeZoneName = "America/Denver"
    """Time zone in which all policy dates are calendar dates (§2)."""
    school_year_start: MonthDay = "07-01"
    """Month-day on which every school year starts (§3)."""
    eligible_roles: tuple[NonEmptyStr, ...] = ("Office Professional", "School Counselor")
    """Roles eligible anywhere; any other role needs a school location (§4)."""
    approval_survives_role_change: StrictBool = False
    """Whether an approval given before the current assignment started still counts (§4)."""
    holidays: tuple[IsoDate, ...] = ()
    """District holidays, skipped when counting business days (§7)."""
    recert_warning_days: StrictInt = Field(default=60, ge=0)
    """Report people whose ``valid_through`` falls within this many days (§7)."""

    @cached_property
    def calendar(self) -> SchoolCalendar:
        """The school-year calendar these settings describe."""
        return SchoolCalendar(int(self.school_year_start[:2]), int(self.school_year_start[3:]))

    @cached_property
    def zone(self) -> ZoneInfo:
        """The district's time zone."""
        return ZoneInfo(self.time_zone)

    @cached_property
    def holiday_set(self) -> frozenset[date]:
        """The holidays, for membership tests."""
        return frozenset(self.holidays)


class RoleSource(FrozenModel):
    """Where the role comes from: a job code read through a table, or a role name as is."""

    source: StringPath
    """SCIM attribute path, e.g. the walk-in extension's ``jobCode`` or ``title``."""
    job_codes: dict[StrictStr, NonEmptyStr] | None = None
    """Job code → role; when absent the attribute's value is the role itself."""


class AttributeMap(FrozenModel):
    """Where each fact is found in a stored SCIM User (paths as in RFC 7644 §3.10)."""

    active: BooleanPath = "active"
    role: RoleSource
    location: StringPath
    assignment_start: StringPath
    certifications: CertificationsPath


class Location(FrozenModel):
    """One entry of the location catalogue."""

    name: NonEmptyStr
    type: LocationType


class CertificationRule(FrozenModel):
    """Which course certifies for an entitlement and how long a completion lasts (§5)."""

    course: NonEmptyStr
    validity_years: StrictInt = Field(default=2, ge=1, le=50)
    grace_days: StrictInt = Field(default=0, ge=0, le=366)
    full_course_required_in: tuple[SchoolYear, ...] = ()
    """School years in which only the full course renews (``2026`` or ``"2026-27"``)."""

    @cached_property
    def full_course_years(self) -> frozenset[int]:
        """``full_course_required_in`` as a set."""
        return frozenset(self.full_course_required_in)


class ApprovalGroup(FrozenModel):
    """SCIM Groups whose members approve a location; the regex captures the location."""

    attribute: GroupAttribute = GroupAttribute.DISPLAY_NAME
    pattern: GroupPattern
    """Must match the whole attribute value and have a named group ``location``."""

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern. A cached property, not a pydantic private attribute:
        those are read through ``__getattr__``, a cost paid for every approval-group
        membership of every person a run or a what-if decides."""
        return re.compile(self.pattern)

    def location_of(self, group: AbcMapping[str, Any]) -> str | None:
        """The location a SCIM Group approves, or None when it is not such a group."""
        value = group.get(self.attribute.value)
        if not isinstance(value, str):
            return None
        match = self.regex.fullmatch(value)
        return match["location"] if match and match["location"] else None


class DirectoryGroup(FrozenModel):
    """The directory group(s) IC reads the entitlement from (filled by the sync issues)."""

    ldap_group_dn: NonEmptyStr | None = None
    entra_group_id: NonEmptyStr | None = None


class Entitlement(FrozenModel):
    """One access level: which requirements it checks and what they need."""

    description: StrictStr = ""
    requirements: tuple[Requirement, ...] = Field(min_length=1)
    prerequisites: tuple[NonEmptyStr, ...] = ()
    """Entitlements the person must hold first (checked by ``PREREQUISITE_MISSING``)."""
    certification: CertificationRule | None = None
    approval_groups: tuple[ApprovalGroup, ...] = ()
    directory_group: DirectoryGroup = DirectoryGroup()

    @field_validator("requirements")
    @classmethod
    def _no_duplicate_requirements(cls, value: tuple[ReasonCode, ...]) -> tuple[ReasonCode, ...]:
        repeated = sorted({code.value for code in value if value.count(code) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _requirements_have_what_they_need(self) -> Entitlement:
        checks = set(self.requirements)
        if checks & CERTIFICATION_CODES and self.certification is None:
            raise ValueError("certification requirements need a 'certification' section")
        if (ReasonCode.PREREQUISITE_MISSING in checks) != bool(self.prerequisites):
            raise ValueError("PREREQUISITE_MISSING and 'prerequisites' go together: give both or neither")
        if len(set(self.prerequisites)) != len(self.prerequisites):
            raise ValueError("prerequisites: an entitlement is listed more than once")
        return self

    @cached_property
    def checks(self) -> Checks:
        """The requirements as flags, for the policy's hot path."""
        return Checks.of(self.requirements)


class Approvers(FrozenModel):
    """Who may record an approval for a location (``walkin approve``, the admin API's
    approver role): a person whose own SCIM record gives them one of ``roles`` at that
    location (and who is active), and the members of the location's approver groups."""

    roles: tuple[NonEmptyStr, ...] = ("Principal",)
    """Roles (after the job-code table) whose holders approve their own location."""
    groups: dict[NonEmptyStr, tuple[NonEmptyStr, ...]] = {}
    """Location code → displayNames of SCIM Groups whose members approve it too
    (e.g. a central office's managers)."""


class Mapping(FrozenModel):
    """A whole mapping file.

    Derived values (the calendar, evaluation order, ...) are computed once and kept:
    build a variant by validating a new document, not with ``model_copy(update=...)``,
    which skips validation and keeps them.
    """

    policy: Policy = Policy()
    attributes: AttributeMap
    locations: dict[NonEmptyStr, Location] = {}
    entitlements: dict[StrictStr, Entitlement] = Field(min_length=1)
    approvers: Approvers = Approvers()

    @field_validator("entitlements")
    @classmethod
    def _entitlement_names(cls, value: dict[str, Entitlement]) -> dict[str, Entitlement]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(f"invalid entitlement name {shown(name)}: use lower-case letters, digits and _")
        return value

    @model_validator(mode="after")
    def _prerequisites_resolve(self) -> Mapping:
        for name, entitlement in self.entitlements.items():
            for index, prerequisite in enumerate(entitlement.prerequisites):
                if prerequisite not in self.entitlements:
                    raise ValueError(
                        f"entitlements.{name}.prerequisites[{index}]: unknown entitlement {shown(prerequisite)}"
                    )
        self.evaluation_order  # noqa: B018 - raises on a cycle, at load time
        return self

    @cached_property
    def entitlement_names(self) -> tuple[str, ...]:
        """The entitlements' names in file order."""
        return tuple(self.entitlements)

    @cached_property
    def evaluation_order(self) -> tuple[str, ...]:
        """Entitlement names ordered so that prerequisites come first.

        :raises ValueError: when prerequisites form a cycle.
        """
        order: list[str] = []
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = " -> ".join([*visiting[visiting.index(name) :], name])
                raise ValueError(f"entitlements.{name}.prerequisites: cycle {cycle}")
            visiting.append(name)
            for prerequisite in self.entitlements[name].prerequisites:
                visit(prerequisite)
            visiting.pop()
            order.append(name)

        for name in self.entitlements:
            visit(name)
        return tuple(order)

    def closure(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """``names`` and everything they need, in evaluation order.

        :raises ValueError: when a name is not an entitlement of this mapping.
        """
        cached = self._closures.get(names)
        if cached is not None:
            return cached
        needed: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in self.entitlements:
                raise ValueError(f"unknown entitlement {shown(name)}; known: {', '.join(self.entitlements)}")
            if name not in needed:
                needed.add(name)
                pending.extend(self.entitlements[name].prerequisites)
        closure = tuple(name for name in self.evaluation_order if name in needed)
        self._closures[names] = closure
        return closure

    @cached_property
    def _closures(self) -> dict[tuple[str, ...], tuple[str, ...]]:
        return {}


def parse_mapping(data: object, source: str | None = None) -> Mapping:
    """Validate an already-parsed mapping document.

    :raises MappingError: listing every problem with its key path.
    """
    if not isinstance(data, dict):
        raise MappingError(["the mapping must be a YAML mapping of keys to values"], source)
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(describe_errors(exc), source) from exc


def load_mapping(path: str | Path = DEFAULT_MAPPING_PATH, max_bytes: int = MAX_MAPPING_BYTES) -> Mapping:
    """Read and validate a mapping file (at most ``max_bytes`` long; see :mod:`mappings.loading`).

    :raises MappingError: when the file cannot be read, is too large, is not YAML
        (or uses aliases, or nests too deep), or is invalid.
    """
    path = Path(path)
    return parse_mapping(read_document(path, max_bytes), str(path))


def mapping_from_text(raw: bytes, source: str, max_bytes: int = MAX_MAPPING_BYTES) -> Mapping:
    """Validate a mapping given as its YAML text (an upload to the admin API's what-if),
    with the same bounds and errors as a file.

    :raises MappingError: as :func:`load_mapping`.
    """
    return parse_mapping(parse_document(raw, source, max_bytes), source)
