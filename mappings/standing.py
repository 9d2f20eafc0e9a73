"""A person's standing beside their decision: who must act next when they are not
entitled, which HR facts are missing, and what a grant by the rules rests on.

Pure, like the policy: handed facts, the decision and its evidence. The sync stores
the result with each decision (``sync_decision``), so the reports answer "who is
waiting for whom" with one indexed query instead of deciding the district again.
"""

from __future__ import annotations

from typing import NamedTuple

from mappings.facts import PersonFacts
from mappings.policy import Decision, Evidence
from mappings.vocabulary import CERTIFICATION_CODES, Actor, ReasonCode

_APPROVAL_CODES = frozenset({ReasonCode.NO_APPROVAL, ReasonCode.APPROVAL_STALE})
#: Reasons nobody can fix by acting on this entitlement: the person is not
#: employed, not in a role that can ever qualify, blocked by an administrator, or
#: must first obtain the prerequisite (they wait there, not here).
_OUT_OF_REACH = frozenset(
    {
        ReasonCode.NOT_ACTIVE,
        ReasonCode.ROLE_NOT_ELIGIBLE,
        ReasonCode.DENIED_BY_OVERRIDE,
        ReasonCode.PREREQUISITE_MISSING,
    }
)
#: Reasons that read the HR facts (role, location, assignment start).
_HR_READERS = frozenset({ReasonCode.ROLE_NOT_ELIGIBLE, *_APPROVAL_CODES})


def missing_hr_facts(facts: PersonFacts) -> list[str]:
    """The HR facts an active person's record lacks (in plain words), which only
    HR can send: the job code (or role), the location, the assignment start date."""
    missing = []
    if facts.role is None:
        missing.append("job code")
    if facts.location is None:
        missing.append("location")
    if facts.assignment_start is None:
        missing.append("assignment start date")
    return missing


def waiting_on(facts: PersonFacts, decision: Decision) -> Actor | None:
    """Who must act for this person to gain the entitlement, when exactly one party
    can: HR (role or location data missing, or an approval that cannot be dated
    against a missing assignment start), the location's approvers (certified, no or
    a stale approval), the person (approved, but not certified or expired). None
    when entitled, or when nobody's single act would do (not employed, not eligible,
    blocked, or neither certified nor approved: not started)."""
    if decision.entitled:
        return None
    reasons = set(decision.reasons)
    if facts.active and reasons & _HR_READERS:
        if facts.role is None or facts.location is None:
            return Actor.HR
        if ReasonCode.APPROVAL_STALE in reasons and facts.assignment_start is None:
            return Actor.HR
    if reasons & _OUT_OF_REACH:
        return None
    certification = bool(reasons & CERTIFICATION_CODES)
    approval = bool(reasons & _APPROVAL_CODES)
    if approval and not certification:
        return Actor.APPROVER
    if certification and not approval:
        return Actor.PERSON
    return None


class Grounds(NamedTuple):
    """What a grant by the rules rests on, as the ``members`` report shows it."""

    approver: str | None
    approved_on: str | None
    chain: str | None
    """The certification chain: ``full 2025-09-15, recert 2026-05-01``."""


NO_GROUNDS = Grounds(None, None, None)


def grounds(decision: Decision, evidence: Evidence) -> Grounds:
    """The approval and the certification chain an entitlement by the rules rests on
    (nothing for a refusal or a grant by override: the override is its ground)."""
    if not decision.entitled or decision.by_override:
        return NO_GROUNDS
    approval = evidence.approval
    chain = ", ".join(f"{c.kind.value} {c.completed_on.isoformat()}" for c in evidence.chain) or None
    if approval is None:
        return Grounds(None, None, chain)
    return Grounds(approval.approver, approval.approved_on.isoformat(), chain)


class Standing(NamedTuple):
    """What is stored beside a decision for the reports: the facts they filter by,
    who must act next, and the grounds of a grant by the rules."""

    active: bool
    role: str | None
    location: str | None
    waiting_on: Actor | None
    grounds: Grounds


def standing_of(facts: PersonFacts, decision: Decision, evidence: Evidence | None) -> Standing:
    """The standing of a decided person; ``evidence`` is needed only for a grant by
    the rules (:func:`mappings.policy.explain`), whose grounds it gives."""
    found = grounds(decision, evidence) if evidence is not None else NO_GROUNDS
    return Standing(facts.active, facts.role, facts.location, waiting_on(facts, decision), found)
