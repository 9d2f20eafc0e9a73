"""Person facts, the policy's whole input (policy §2), and how a SCIM User becomes them.

:func:`user_to_facts` never raises on bad data: a job code missing from the table, an
unknown location or a malformed date makes that fact null, so the policy fails closed,
and the problem is returned for the admin reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictStr, ValidationError

from mappings.calendar import local_date
from mappings.fields import FrozenModel, describe_errors, parse_iso_date
from mappings.model import Mapping
from mappings.scim import get_attribute, parse_path
from mappings.vocabulary import CertKind, Effect, LocationType

#: A date in facts: exactly ``YYYY-MM-DD`` in JSON, a ``date`` in Python. Strict
#: validation runs in pydantic-core (no Python call per date), which matters on the
#: ``evaluate`` hot path; it refuses timestamps and datetimes.
FactDate = Annotated[date, Field(strict=True)]


class FactsError(ValueError):
    """A facts record does not have the shape of policy §2; the message names the key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Certification(FrozenModel):
    """One completion of a course: the full eLearning or the recertification quiz."""

    course: StrictStr
    kind: CertKind
    completed_on: FactDate


class Approval(FrozenModel):
    """A principal's or manager's approval of a person for a location."""

    entitlement: StrictStr
    location: StrictStr
    approved_on: FactDate
    approver: StrictStr


class Override(FrozenModel):
    """An administrator's audited exception; unexpired while ``at <= until``."""

    entitlement: StrictStr
    effect: Effect
    until: FactDate
    reason: StrictStr
    by: StrictStr


class PersonFacts(FrozenModel):
    """Everything the policy knows about one person.

    Every key must be present (null or empty where it applies): a producer that forgot
    ``lost_access_on`` must not silently grant access to someone who lost it.
    """

    id: StrictStr
    active: StrictBool
    role: StrictStr | None
    location: StrictStr | None
    location_type: LocationType | None
    assignment_start: FactDate | None
    certifications: tuple[Certification, ...]
    approvals: tuple[Approval, ...]
    lost_access_on: dict[StrictStr, FactDate]
    overrides: tuple[Override, ...]

    @classmethod
    def from_json(cls, text: str | bytes) -> PersonFacts:
        """Parse one JSON object (one line of an ``evaluate`` input).

        :raises FactsError: naming each key that is missing, unknown or malformed.
        """
        try:
            # The core validator directly: model_validate_json's Python wrapper costs
            # about 2 µs more per line, a tenth of parsing one in `evaluate`.
            return cls.__pydantic_validator__.validate_json(text)
        except ValidationError as exc:
            raise FactsError(describe_errors(exc)) from None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object of policy §2, dates as ``YYYY-MM-DD``."""
        return self.model_dump(mode="json")


Membership = tuple[AbcMapping[str, Any], date]

_KINDS = tuple(kind.value for kind in CertKind)


def user_to_facts(
    user: AbcMapping[str, Any],
    memberships: Iterable[Membership],
    mapping: Mapping,
    lost_access_on: AbcMapping[str, date] | None = None,
    overrides: Iterable[Override] = (),
) -> tuple[PersonFacts, list[str]]:
    """Turn a stored SCIM User and its group memberships into person facts.

    :param user: the User resource as the SCIM API returns it (a JSON object).
    :param memberships: ``(group, since)`` for each SCIM Group the user belongs to;
        ``since`` is when the membership was recorded, a district ``date`` or a
        ``datetime`` (naive means UTC). Approval groups become approvals dated ``since``.
    :param lost_access_on: the connector's record of the latest revoke per entitlement.
    :param overrides: the person's administrator overrides.
    :returns: the facts, and human-readable problems with the user's data.
    :raises ValueError: when ``user`` has no ``id`` (it is not a stored resource).
    """
    person_id = user.get("id")
    if not isinstance(person_id, str) or not person_id:
        raise ValueError("the user has no id: only stored SCIM resources can be converted")
    problems: list[str] = []
    attributes = mapping.attributes
    location, location_type = _location(user, mapping, problems)
    # Every field below was checked by the readers above (a bad value became null
    # and a problem), so the model is built without validating it a second time:
    # a full reconcile converts every user in the store.
    facts = PersonFacts.trusted(
        id=person_id,
        active=_active(user, attributes.active, problems),
        role=_role(user, mapping, problems),
        location=location,
        location_type=location_type,
        assignment_start=_date(user, attributes.assignment_start, "assignment_start", problems),
        certifications=_certifications(user, attributes.certifications, problems),
        approvals=_approvals(memberships, mapping),
        lost_access_on=dict(sorted((lost_access_on or {}).items())),  # key order: one JSON form per facts
        overrides=tuple(overrides),
    )
    return facts, problems


def _active(user: AbcMapping[str, Any], path: str, problems: list[str]) -> bool:
    value = parse_path(path).read(user)
    if isinstance(value, bool):
        return value
    # Entra sends active as the string "False"/"True" by default; read it as meant.
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    shown = "missing" if value is None else f"not a boolean: {value!r}"
    problems.append(f"active: {path} is {shown}; treated as false")
    return False


def _string(user: AbcMapping[str, Any], path: str, fact: str, problems: list[str]) -> str | None:
    value = parse_path(path).read(user)
    if value is None or (isinstance(value, str) and value):
        return value
    problems.append(f"{fact}: {path} is not a non-empty string: {value!r}; treated as null")
    return None


def _role(user: AbcMapping[str, Any], mapping: Mapping, problems: list[str]) -> str | None:
    source = mapping.attributes.role
    value = _string(user, source.source, "role", problems)
    if value is None or source.job_codes is None:
        return value
    role = source.job_codes.get(value)
    if role is None:
        problems.append(f"role: job code {value!r} ({source.source}) is not in the job-code table; role is null")
    return role


def _location(
    user: AbcMapping[str, Any], mapping: Mapping, problems: list[str]
) -> tuple[str | None, LocationType | None]:
    path = mapping.attributes.location
    code = _string(user, path, "location", problems)
    if code is None:
        return None, None
    entry = mapping.locations.get(code)
    if entry is None:
        problems.append(f"location: code {code!r} ({path}) is not in the location catalogue; location is null")
        return None, None
    return code, entry.type


def _date(user: AbcMapping[str, Any], path: str, fact: str, problems: list[str]) -> date | None:
    value = parse_path(path).read(user)
    if value is None:
        return None
    try:
        return parse_iso_date(value)
    except ValueError as exc:
        problems.append(f"{fact}: {exc} ({path}); treated as null")
        return None


def _certifications(user: AbcMapping[str, Any], path: str, problems: list[str]) -> tuple[Certification, ...]:
    value = parse_path(path).read(user)
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"certifications: {path} is not a list; no certifications read")
        return ()
    found = []
    for index, item in enumerate(value):
        try:
            found.append(_certification(item))
        except ValueError as exc:
            problems.append(f"certifications[{index}]: {exc}; ignored")
    return tuple(found)


def _certification(item: object) -> Certification:
    """One element of the SCIM ``certifications`` attribute (course, kind, completedOn).

    :raises ValueError: naming the sub-attribute that is wrong.
    """
    if type(item) is not dict and not isinstance(item, AbcMapping):  # dict first: see AttributePath.read
        raise ValueError("not an object")
    course = get_attribute(item, "course")
    kind = get_attribute(item, "kind")
    completed_on = get_attribute(item, "completedOn")
    if type(course) is str and type(kind) is str and type(completed_on) is str:
        return _certification_of(course, kind, completed_on)  # the usual shape: hashable
    return _checked_certification(course, kind, completed_on)


@lru_cache(maxsize=1 << 14)
def _certification_of(course: str, kind: str, completed_on: str) -> Certification:
    """One certification per distinct (course, kind, day), shared by everyone who
    completed it then (they are frozen): a district has a few thousand, not one per
    person, and each costs a date parse and a model. Raising is not cached."""
    return _checked_certification(course, kind, completed_on)


def _checked_certification(course: object, kind: object, completed_on: object) -> Certification:
    if not isinstance(course, str) or not course:
        raise ValueError(f"course: not a non-empty string: {course!r}")
    if kind not in _KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(_KINDS)}")
    try:
        day = parse_iso_date(completed_on)
    except ValueError as exc:
        raise ValueError(f"completedOn: {exc}") from None
    return Certification.trusted(course=course, kind=CertKind(kind), completed_on=day)  # checked above


def _approvals(memberships: Iterable[Membership], mapping: Mapping) -> tuple[Approval, ...]:
    zone = mapping.policy.zone
    found: dict[tuple[str, str, date, str], Approval] = {}
    for group, since in memberships:
        approved_on = local_date(since, zone) if isinstance(since, datetime) else since
        approver = str(group.get("displayName") or group.get("id") or "unnamed group")
        for name, entitlement in mapping.entitlements.items():
            for rule in entitlement.approval_groups:
                location = rule.location_of(group)
                if location is not None:
                    key = (name, location, approved_on, approver)
                    found[key] = _approval_of(*key)
    return tuple(found.values())


@lru_cache(maxsize=1 << 14)
def _approval_of(entitlement: str, location: str, approved_on: date, approver: str) -> Approval:
    """One approval per distinct (entitlement, location, day, approver), shared by
    everyone the group approved that day (they are frozen). Every field is already
    of its type (a str from the rule's match, a date): validating again cost 50 µs
    per membership on the hot path."""
    return Approval.trusted(entitlement=entitlement, location=location, approved_on=approved_on, approver=approver)
