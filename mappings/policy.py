"""The access policy: facts and a date in, a decision out (policy §4–§6).

Pure: no clock, no database, no directory. Everything the decision depends on is in
the person's facts, the evaluation date ``at`` and the mapping's settings, so the same
inputs always give the same decision and any past decision can be replayed.

``evaluate`` runs this for every person of the district, so the inner functions read
each attribute once and keep to plain comparisons; the rules are in policy §4–§6.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, NamedTuple

from mappings.calendar import SchoolCalendar
from mappings.facts import Approval, Certification, Override, PersonFacts
from mappings.model import CertificationRule, Entitlement, Mapping, Policy
from mappings.vocabulary import CertKind, Effect, LocationType, ReasonCode

__all__ = [
    "Decision",
    "Evidence",
    "ReasonCode",
    "decide",
    "decide_all",
    "explain",
    "next_change",
    "recert_due",
    "validity_end",
]

# Module-level names: looking a member up on an enum class costs a call each time.
_FULL = CertKind.FULL
_DENY = Effect.DENY
_SCHOOL = LocationType.SCHOOL
_NOT_ACTIVE = ReasonCode.NOT_ACTIVE
_ROLE_NOT_ELIGIBLE = ReasonCode.ROLE_NOT_ELIGIBLE
_CERT_BEFORE_LOSS = ReasonCode.CERT_BEFORE_LOSS
_NOT_CERTIFIED = ReasonCode.NOT_CERTIFIED
_CERT_EXPIRED = ReasonCode.CERT_EXPIRED
_NO_APPROVAL = ReasonCode.NO_APPROVAL
_APPROVAL_STALE = ReasonCode.APPROVAL_STALE
_PREREQUISITE_MISSING = ReasonCode.PREREQUISITE_MISSING
_DENIED_BY_OVERRIDE = ReasonCode.DENIED_BY_OVERRIDE


class Decision(NamedTuple):
    """Whether a person holds an entitlement at a date, and why not (policy §6).

    An immutable record rather than a pydantic model: the engine builds it from
    validated facts, so there is nothing to validate, and it is built once per person
    and entitlement on the hot path, where a frozen dataclass costs twice as much.
    """

    person_id: str
    entitlement: str
    at: date
    entitled: bool
    by_override: bool
    """True when an unexpired grant override decided it (the rules alone did not)."""
    reasons: tuple[ReasonCode, ...]
    """Failing requirement codes in table order; empty when entitled by the rules."""
    valid_through: date | None
    """When access ends unless renewed; None when no certification counts."""
    entitled_since: date | None
    """The day the last requirement became true; None unless entitled by the rules."""

    def to_json_dict(self) -> dict[str, Any]:
        """Exactly the fields of policy §6, dates as ``YYYY-MM-DD`` or null."""
        return {
            "person_id": self.person_id,
            "entitlement": self.entitlement,
            "at": self.at.isoformat(),
            "entitled": self.entitled,
            "by_override": self.by_override,
            "reasons": [reason.value for reason in self.reasons],
            "valid_through": _iso_or_none(self.valid_through),
            "entitled_since": _iso_or_none(self.entitled_since),
        }

    def to_json(self) -> str:
        """:meth:`to_json_dict` as one compact JSON line, written out for speed.

        Equal to ``json.dumps(self.to_json_dict(), separators=(",", ":"))``.
        """
        person_id, entitlement, at, entitled, by_override, reasons, valid_through, since = self
        # ReasonCode is a str enum: joining uses the codes' text without enum lookups.
        codes = '"' + '","'.join(reasons) + '"' if reasons else ""
        return (
            f'{{"person_id":{_json_string(person_id)},{_json_head(entitlement, at)},'
            f'"entitled":{"true" if entitled else "false"},"by_override":{"true" if by_override else "false"},'
            f'"reasons":[{codes}],"valid_through":{_json_date(valid_through)},"entitled_since":{_json_date(since)}}}'
        )


# A run writes the same few entitlements, evaluation date and school-year ends over
# and over: their JSON text is made once.
@lru_cache(maxsize=64)
def _json_head(entitlement: str, at: date) -> str:
    return f'"entitlement":{_json_string(entitlement)},"at":"{at.isoformat()}"'


@lru_cache(maxsize=4096)
def _json_date(day: date | None) -> str:
    return "null" if day is None else f'"{day.isoformat()}"'


def _iso_or_none(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a decision rested on, for explaining it to a person or an auditor."""

    chain: tuple[Certification, ...]
    """Completions that opened (the first) and extended the current validity chain."""
    ignored: tuple[tuple[Certification, str], ...]
    """Completions of the entitlement's course that did not count, each with why."""
    approval: Approval | None
    """The earliest approval that counts."""
    override: Override | None
    """The unexpired override that decided the outcome (a deny wins over a grant)."""
    prerequisites: tuple[Decision, ...]
    """The decisions on the entitlement's prerequisites."""


def validity_end(calendar: SchoolCalendar, completed_on: date, validity_years: int, grace_days: int) -> date:
    """The last valid day of a completion: end of ``SY(c) + validity_years - 1``, plus grace.

    Completed 2025-09-15 (school year 2025-26), two years, no grace → 2027-06-30.
    """
    return _validity_end(completed_on, validity_years, grace_days, calendar.start_month, calendar.start_day)


@lru_cache(maxsize=1 << 16)
def _validity_end(completed_on: date, years: int, grace: int, start_month: int, start_day: int) -> date:
    # Plain hashable arguments: a few thousand distinct completion dates serve a district.
    calendar = SchoolCalendar(start_month, start_day)
    last = calendar.last_day(calendar.school_year(completed_on) + years - 1)
    return last + timedelta(days=grace) if grace else last


class _Chain(NamedTuple):
    """What a certification walk (:func:`_walk`) yields."""

    valid_through: date | None
    """The last day the certification is valid, or None when it never was."""
    start: date | None
    """The day the current validity chain opened (its first full course)."""
    any_full: bool
    """Whether a full course counted."""
    links: list[Certification]
    """The completions that opened and extended the current chain."""
    ignored: list[tuple[Certification, str]]
    """The completions that did not count, each with why."""


def _walk(
    certifications: tuple[Certification, ...],
    rule: CertificationRule,
    calendar: SchoolCalendar,
    at: date,
    lost_on: date | None,
) -> _Chain:
    """Walk one course's completions in date order, keeping valid_through (policy §5)."""
    course = rule.course
    ignored: list[tuple[Certification, str]] = []
    counted: list[tuple[date, bool, int, Certification]] = []
    for index, cert in enumerate(certifications):
        if cert.course != course:
            continue
        day = cert.completed_on
        if day > at:
            ignored.append((cert, "completed after the evaluation date"))
        elif lost_on is not None and day < lost_on:
            ignored.append((cert, f"completed before access was lost on {lost_on.isoformat()}"))
        else:
            # Sorts by date, and on the same day the full course before the quiz.
            counted.append((day, cert.kind is not _FULL, index, cert))
    if len(counted) > 1:
        counted.sort()

    years, grace = rule.validity_years, rule.grace_days
    start_month, start_day = calendar.start_month, calendar.start_day
    full_only = rule.full_course_years
    valid_through: date | None = None
    start: date | None = None
    any_full = False
    links: list[Certification] = []
    for day, is_quiz, _, cert in counted:
        if not is_quiz:
            any_full = True
            if valid_through is None or day > valid_through:
                start, links = day, []  # expired (or never valid): a new chain opens
            end = _validity_end(day, years, grace, start_month, start_day)
            if valid_through is None or end > valid_through:
                valid_through = end
            links.append(cert)
        elif valid_through is None:
            why = "no full course since access was lost" if lost_on is not None else "no full course before it"
            ignored.append((cert, f"a quiz only renews a valid certification: {why}"))
        elif day > valid_through:
            ignored.append((cert, f"taken after the certification expired on {valid_through.isoformat()}"))
        elif full_only and calendar.school_year(day) in full_only:
            ignored.append((cert, "only the full course renews in this school year"))
        else:
            end = _validity_end(day, years, grace, start_month, start_day)
            if end > valid_through:
                valid_through = end
            links.append(cert)
    return _Chain(valid_through, start, any_full, links, ignored)


def _approval(facts: PersonFacts, name: str, at: date, fresh_only: bool) -> tuple[bool, Approval | None]:
    """Whether an approval for the current location exists by ``at``, and the earliest
    that counts: with ``fresh_only``, only those given on or after the assignment start.
    """
    location = facts.location
    start = facts.assignment_start
    exists = False
    earliest: Approval | None = None
    for approval in facts.approvals:
        if approval.entitlement != name or approval.location != location:
            continue
        day = approval.approved_on
        if day > at:
            continue  # not given yet at `at`
        exists = True
        # Without a known assignment start no approval can be shown to postdate it.
        if fresh_only and (start is None or day < start):
            continue
        if earliest is None or day < earliest.approved_on:
            earliest = approval
    return exists, earliest


# What deciding one entitlement rests on besides the decision, for explain().
_Grounds = tuple[_Chain | None, Approval | None, Override | None, tuple[Decision, ...]]


def _decide(
    facts: PersonFacts,
    name: str,
    entitlement: Entitlement,
    at: date,
    policy: Policy,
    decided: dict[str, Decision],
) -> tuple[Decision, _Grounds]:
    """One entitlement, given the decisions on its prerequisites in ``decided``."""
    checks = entitlement.checks
    reasons: list[ReasonCode] = []
    # entitled_since: the latest of the days on which each requirement became true.
    since = facts.assignment_start

    if checks.not_active and not facts.active:
        reasons.append(_NOT_ACTIVE)
    if checks.role_not_eligible and facts.location_type is not _SCHOOL and facts.role not in policy.eligible_roles:
        reasons.append(_ROLE_NOT_ELIGIBLE)

    chain: _Chain | None = None
    valid_through: date | None = None
    rule = entitlement.certification
    if rule is not None:
        lost_on = facts.lost_access_on.get(name)
        chain = _walk(facts.certifications, rule, policy.calendar, at, lost_on)
        valid_through, start, any_full = chain.valid_through, chain.start, chain.any_full
        # Only the first of the three codes that applies is reported (§4).
        if checks.cert_before_loss and lost_on is not None and not any_full:
            reasons.append(_CERT_BEFORE_LOSS)
        elif checks.not_certified and valid_through is None:
            reasons.append(_NOT_CERTIFIED)
        elif checks.cert_expired and valid_through is not None and at > valid_through:
            reasons.append(_CERT_EXPIRED)
        if start is not None and (since is None or start > since):
            since = start

    approval: Approval | None = None
    if checks.no_approval or checks.approval_stale:
        fresh_only = checks.approval_stale and not policy.approval_survives_role_change
        exists, approval = _approval(facts, name, at, fresh_only)
        if not exists:
            if checks.no_approval:
                reasons.append(_NO_APPROVAL)
        elif approval is None:
            reasons.append(_APPROVAL_STALE)
        elif since is None or approval.approved_on > since:
            since = approval.approved_on

    prerequisites: tuple[Decision, ...] = ()
    if entitlement.prerequisites:
        prerequisites = tuple([decided[prerequisite] for prerequisite in entitlement.prerequisites])
        missing = False
        for decision in prerequisites:
            missing = missing or not decision.entitled
            # A prerequisite held by override has no entitled_since: it moves nothing.
            if decision.entitled_since is not None and (since is None or decision.entitled_since > since):
                since = decision.entitled_since
        if missing and checks.prerequisite_missing:
            reasons.append(_PREREQUISITE_MISSING)

    deny = grant = None
    for override in facts.overrides:
        if override.entitlement == name and at <= override.until:
            if override.effect is _DENY:
                deny = deny or override
            else:
                grant = grant or override
    decisive: Override | None
    if deny is not None:  # a deny wins over everything, a grant included
        reasons.append(_DENIED_BY_OVERRIDE)
        entitled, by_override, decisive = False, False, deny
    elif reasons:  # the rules say no; an unexpired grant says yes, visibly
        entitled = by_override = grant is not None
        decisive = grant
    else:
        entitled, by_override, decisive = True, False, None

    decision = Decision(
        facts.id,
        name,
        at,
        entitled,
        by_override,
        tuple(reasons),
        valid_through,
        since if entitled and not by_override else None,
    )
    return decision, (chain, approval, decisive, prerequisites)


def decide_all(
    facts: PersonFacts, at: date, mapping: Mapping, entitlements: Iterable[str] | None = None
) -> dict[str, Decision]:
    """Decide every entitlement of the mapping, or only the named ones.

    Prerequisites are decided too when needed, but only the asked-for entitlements
    are returned, in the order asked (mapping order by default).

    :raises ValueError: when a name is not an entitlement of the mapping.
    """
    names = mapping.entitlement_names if entitlements is None else tuple(entitlements)
    order = mapping.closure(names)
    definitions = mapping.entitlements
    policy = mapping.policy
    decided: dict[str, Decision] = {}
    for name in order:
        decided[name] = _decide(facts, name, definitions[name], at, policy, decided)[0]
    return decided if order == names else {name: decided[name] for name in names}


def next_change(facts: PersonFacts, at: date, decided: Iterable[Decision]) -> date | None:
    """The first day after ``at`` on which deciding ``facts`` again could answer
    differently; ``None`` when no later day can.

    ``decided`` are the decisions at ``at`` of the entitlements asked for and their
    prerequisites. A decision depends on the evaluation day only through these
    comparisons (§4–§5): a completion or an approval dated after it does not count
    yet, a certification expires the day after ``valid_through``, an override ends
    the day after ``until``. Until the earliest such day the same facts give the same
    decision (except its ``at``), so a sync may keep it and re-decide then. The answer
    is conservative: on that day the decision may well stay the same.
    """
    first: date | None = None

    def consider(day: date) -> None:
        nonlocal first
        if day > at and (first is None or day < first):
            first = day

    for cert in facts.certifications:
        consider(cert.completed_on)
    for approval in facts.approvals:
        consider(approval.approved_on)
    for override in facts.overrides:
        consider(override.until + _ONE_DAY)
    for decision in decided:
        if decision.valid_through is not None:
            consider(decision.valid_through + _ONE_DAY)
    return first


_ONE_DAY = timedelta(days=1)


def recert_due(decision: Decision, window_days: int) -> bool:
    """Whether the decision's access ends within the warning window (policy §7):
    ``at <= valid_through <= at + window_days`` (the window is ``recert_warning_days``).
    """
    valid_through = decision.valid_through
    return valid_through is not None and decision.at <= valid_through <= decision.at + timedelta(days=window_days)


def decide(facts: PersonFacts, entitlement: str, at: date, mapping: Mapping) -> Decision:
    """Decide one entitlement (and, behind the scenes, its prerequisites).

    :raises ValueError: when ``entitlement`` is not an entitlement of the mapping.
    """
    return decide_all(facts, at, mapping, (entitlement,))[entitlement]


def explain(facts: PersonFacts, entitlement: str, at: date, mapping: Mapping) -> tuple[Decision, Evidence]:
    """Decide one entitlement and return the evidence the decision rested on.

    :raises ValueError: when ``entitlement`` is not an entitlement of the mapping.
    """
    prerequisites = mapping.closure((entitlement,))[:-1]
    decided = decide_all(facts, at, mapping, prerequisites)
    definition = mapping.entitlements[entitlement]
    decision, (chain, approval, override, prerequisite_decisions) = _decide(
        facts, entitlement, definition, at, mapping.policy, decided
    )
    evidence = Evidence(
        chain=tuple(chain.links) if chain is not None else (),
        ignored=tuple(chain.ignored) if chain is not None else (),
        approval=approval,
        override=override,
        prerequisites=prerequisite_decisions,
    )
    return decision, evidence
