"""A decision explained in plain words: each requirement with its evidence, and
what the person must do next. Pure: it is handed facts, the decision and the
evidence :func:`mappings.policy.explain` returned."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mappings.calendar import grant_deadline
from mappings.facts import PersonFacts
from mappings.model import Mapping
from mappings.policy import Decision, Evidence
from mappings.standing import missing_hr_facts, waiting_on
from mappings.vocabulary import Actor, CertKind, ReasonCode

_CERT_CODES = (ReasonCode.CERT_BEFORE_LOSS, ReasonCode.NOT_CERTIFIED, ReasonCode.CERT_EXPIRED)


@dataclass(frozen=True)
class Requirement:
    code: str
    label: str
    status: str  # "pass" | "fail" | "n/a"
    evidence: str


@dataclass
class Explanation:
    person: str
    entitlement: str
    at: str
    entitled: bool
    decision: dict
    requirements: list[Requirement]
    next_steps: str
    problems: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict:
        return asdict(self)

    def to_text(self) -> str:
        verdict = "HAS ACCESS" if self.entitled else "NO ACCESS"
        lines = [f"{self.person} — {self.entitlement} on {self.at}: {verdict}"]
        for req in self.requirements:
            mark = {"pass": "[x]", "fail": "[ ]", "n/a": "[-]"}[req.status]
            lines.append(f"  {mark} {req.label}: {req.evidence}")
        for problem in self.problems:
            lines.append(f"  (!) data problem: {problem}")
        lines.append("")
        lines.append(self.next_steps)
        return "\n".join(lines) + "\n"


def _place(code: str | None, mapping: Mapping) -> str:
    if code is None:
        return "an unknown location"
    entry = mapping.locations.get(code)
    return f"{code} ({entry.name})" if entry else code


def explain_decision(
    person: str,
    facts: PersonFacts,
    decision: Decision,
    evidence: Evidence,
    mapping: Mapping,
    problems: list[str] | tuple[str, ...] = (),
) -> Explanation:
    definition = mapping.entitlements[decision.entitlement]
    course = definition.certification.course if definition.certification else "course"
    reasons = set(decision.reasons)
    lost = facts.lost_access_on.get(decision.entitlement)
    place = _place(facts.location, mapping)
    requirements = []
    cert_failed = False
    for code in definition.requirements:
        failed = code in reasons
        status = "fail" if failed else "pass"
        if code in _CERT_CODES:
            if cert_failed:
                status = "n/a"
            cert_failed |= failed
        if code is ReasonCode.CERT_BEFORE_LOSS and lost is None:
            status = "n/a"
        requirements.append(
            Requirement(code.value, *_describe(code, facts, decision, evidence, mapping, course, lost, place, status))
        )
    return Explanation(
        person=person,
        entitlement=decision.entitlement,
        at=decision.at.isoformat(),
        entitled=decision.entitled,
        decision=decision.to_json_dict(),
        requirements=requirements,
        next_steps=_next_steps(facts, decision, evidence, mapping, course, lost, place),
        problems=list(problems),
    )


def _describe(code, facts, decision, evidence, mapping, course, lost, place, status) -> tuple[str, str, str]:
    chain = evidence.chain
    if code is ReasonCode.NOT_ACTIVE:
        return "Currently employed (active)", status, "active" if facts.active else "not active"
    if code is ReasonCode.ROLE_NOT_ELIGIBLE:
        eligible = ", ".join(mapping.policy.eligible_roles)
        missing = [fact for fact in missing_hr_facts(facts) if fact != "assignment start date"]
        if missing:
            found = f"HR has not sent the {_words(missing)}"
            if facts.role is not None:
                found += f" (role {facts.role})"
            elif facts.location is not None:
                found += f" (at {place}, a {facts.location_type.value if facts.location_type else 'unknown'} location)"
        else:
            kind = facts.location_type.value if facts.location_type else "unknown type"
            found = f"role {facts.role} at {place}, a {kind} location"
        return f"Eligible role ({eligible}) or school-based", status, found
    if code is ReasonCode.CERT_BEFORE_LOSS:
        if lost is None:
            return "Full course completed after a loss of access", status, "access never lost"
        after = [c for c in chain if c.kind == CertKind.FULL and c.completed_on >= lost]
        found = f"full course on {after[0].completed_on}" if after else "no full course since"
        return f"Full {course} completed since access was lost on {lost}", status, found
    if code is ReasonCode.NOT_CERTIFIED:
        if chain:
            return f"Completed the {course}", status, f"{chain[0].kind.value} completion on {chain[0].completed_on}"
        ignored = "; ".join(f"{c.kind.value} on {c.completed_on} ignored: {why}" for c, why in evidence.ignored)
        return f"Completed the {course}", status, ignored or "no completion on record"
    if code is ReasonCode.CERT_EXPIRED:
        through = decision.valid_through
        if through is None:
            return "Certification current", status, "no valid certification"
        renewals = ", ".join(f"{c.kind.value} {c.completed_on}" for c in chain)
        word = "valid through" if status != "fail" else "expired after"
        ignored = "".join(f"; {c.kind.value} on {c.completed_on} did not count: {why}" for c, why in evidence.ignored)
        return "Certification current", status, f"{word} {through} (chain: {renewals}){ignored}"
    if code is ReasonCode.NO_APPROVAL:
        mine = [a for a in facts.approvals if a.entitlement == decision.entitlement]
        if evidence.approval is not None:
            a = evidence.approval
            return (
                f"Principal's or manager's approval for {place}",
                status,
                f"approved by {a.approver} on {a.approved_on}",
            )
        others = ", ".join(sorted({a.location for a in mine})) or "none"
        return (
            f"Principal's or manager's approval for {place}",
            status,
            f"no approval for it (approvals on file: {others})",
        )
    if code is ReasonCode.APPROVAL_STALE:
        start = facts.assignment_start
        return (
            f"Approval given since the current assignment began ({start or 'unknown'})",
            status,
            f"approved on {evidence.approval.approved_on}" if evidence.approval else "no approval given since",
        )
    if code is ReasonCode.PREREQUISITE_MISSING:
        held = ", ".join(f"{d.entitlement}: {'yes' if d.entitled else 'no'}" for d in evidence.prerequisites)
        return "Holds the prerequisite access", status, held or "none required"
    return code.value, status, ""


def _next_steps(facts, decision, evidence, mapping, course, lost, place) -> str:
    reasons = list(decision.reasons)
    override = evidence.override
    if decision.entitled and not decision.by_override:
        text = "You have access."
        if decision.entitled_since:
            deadline = grant_deadline(decision.entitled_since, mapping.policy.holiday_set)
            text += f" You met every requirement on {decision.entitled_since} (access due by the end of {deadline})."
        if decision.valid_through:
            text += (
                f" It is valid through {decision.valid_through}: complete the recertification quiz before "
                "then to keep it."
            )
        return text
    if decision.entitled:
        return (
            f"You have access by an administrator's exception until {override.until} ({override.reason}). "
            + _actions(reasons, facts, decision, evidence, course, lost, place, lead="To keep it after then, ")
        ).strip()
    if ReasonCode.DENIED_BY_OVERRIDE in reasons and override is not None:
        return (
            f"An administrator has blocked this access until {override.until} ({override.reason}); "
            "contact DoTS about it."
        )
    return _actions(reasons, facts, decision, evidence, course, lost, place)


def _actions(reasons, facts, decision, evidence, course, lost, place, lead: str = "") -> str:
    context: list[str] = []
    steps: list[str] = []
    if ReasonCode.NOT_ACTIVE in reasons:
        context.append(
            "Your employment record is not active; access returns only when it is active again and every "
            "requirement is met."
        )
    hr_missing = missing_hr_facts(facts) if waiting_on(facts, decision) is Actor.HR else []
    if hr_missing:
        # Without the HR facts neither the role rule nor an approval can be judged:
        # telling the person to ask "the principal of an unknown location" helps nobody.
        context.append(
            f"Your HR record is missing your {_words(hr_missing)}, so whether your role qualifies and whose "
            "approval you need cannot be decided."
        )
    elif ReasonCode.ROLE_NOT_ELIGIBLE in reasons:
        context.append(
            f"Your role ({facts.role or 'unknown'}) at {place} does not qualify: this access is for the "
            "eligible roles, or for anyone assigned to a school."
        )
    if ReasonCode.CERT_BEFORE_LOSS in reasons:
        context.append(f"Your access ended on {lost}.")
        steps.append(f"complete the full {course} eLearning — the recertification quiz is not enough to regain access")
    elif ReasonCode.NOT_CERTIFIED in reasons:
        steps.append(f"complete the {course} in Learning Space")
    elif ReasonCode.CERT_EXPIRED in reasons:
        context.append(f"Your certification expired after {decision.valid_through}.")
        steps.append(
            f"complete the full {course} eLearning (the recertification quiz only renews a certification "
            "that is still valid)"
        )
    if hr_missing:
        steps.append(f"ask HR to send your {_words(hr_missing)} (HR must send them: neither you nor a principal can)")
    elif ReasonCode.NO_APPROVAL in reasons:
        steps.append(f"ask the principal or manager of {place} to approve you")
    elif ReasonCode.APPROVAL_STALE in reasons:
        steps.append(
            f"ask the principal or manager of {place} to approve you again (your role or location changed "
            f"on {facts.assignment_start or 'an unknown date'})"
        )
    if ReasonCode.PREREQUISITE_MISSING in reasons:
        missing = [d.entitlement for d in evidence.prerequisites if not d.entitled]
        steps.append(f"first obtain {', '.join(missing)} access")
    text = " ".join(context)
    if steps:
        sentence = steps[0]
        for step in steps[1:]:
            # a step with an aside ("— … access") closes the aside before the next
            sentence += (" — and " if "—" in sentence.rsplit(" and ", 1)[-1] else " and ") + step
        sentence = lead + sentence if lead else sentence[0].upper() + sentence[1:]
        text = f"{text} {sentence}.".strip()
    return text


def _words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
