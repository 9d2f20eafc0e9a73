"""Builders for person facts in tests: person A of policy §8, variations, the §8 table."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from mappings.facts import FactsError, PersonFacts

WALKIN = "Walk-In Scheduling Certification"
ELEMENTARY = "Elementary Scheduling Certification"
SECONDARY = "Secondary Scheduling Certification"

#: The evaluation date of policy §8's worked examples (school year 2026-27).
AT = date(2026, 11, 29)


def cert(course: str, kind: str, completed_on: str) -> dict[str, str]:
    """A certification completion as JSON."""
    return {"course": course, "kind": kind, "completed_on": completed_on}


def full(completed_on: str, course: str = WALKIN) -> dict[str, str]:
    """A full course completion."""
    return cert(course, "full", completed_on)


def recert(completed_on: str, course: str = WALKIN) -> dict[str, str]:
    """A recertification quiz."""
    return cert(course, "recert", completed_on)


def approval(location: str, approved_on: str, entitlement: str = "walkin") -> dict[str, str]:
    """A principal's approval as JSON."""
    return {"entitlement": entitlement, "location": location, "approved_on": approved_on, "approver": f"principal-{location}"}


def override(effect: str, until: str, entitlement: str = "walkin") -> dict[str, str]:
    """An administrator's override as JSON."""
    return {"entitlement": entitlement, "effect": effect, "until": until, "reason": "test", "by": "admin"}


def person_json(**changes: Any) -> dict[str, Any]:
    """Person A of policy §8 as JSON, with ``changes`` applied."""
    facts: dict[str, Any] = {
        "id": "A",
        "active": True,
        "role": "Office Professional",
        "location": "0123",
        "location_type": "school",
        "assignment_start": "2024-08-01",
        "certifications": [full("2025-09-15")],
        "approvals": [approval("0123", "2025-09-20")],
        "lost_access_on": {},
        "overrides": [],
    }
    unknown = set(changes) - set(facts)
    if unknown:
        raise KeyError(f"not a fact: {sorted(unknown)}")
    facts.update(changes)
    return facts


def person(**changes: Any) -> PersonFacts:
    """Person A of policy §8 as validated facts, with ``changes`` applied."""
    return facts_from_dict(person_json(**changes))


B_CERTS = [full("2024-09-10")]

#: Policy §8's worked examples: person → (facts changed from A, entitled, reasons,
#: valid_through), evaluated at :data:`AT`.
EXAMPLES: dict[str, tuple[dict[str, Any], bool, list[str], str | None]] = {
    "A": ({}, True, [], "2027-06-30"),
    "B": ({"certifications": B_CERTS}, False, ["CERT_EXPIRED"], "2026-06-30"),
    "C": ({"certifications": [*B_CERTS, recert("2026-05-01")]}, True, [], "2027-06-30"),
    "D": ({"certifications": [*B_CERTS, recert("2026-08-01")]}, False, ["CERT_EXPIRED"], "2026-06-30"),
    "E": (
        {
            "role": "Teacher",
            "location": "0456",
            "assignment_start": "2023-08-01",
            "certifications": [full("2026-01-10")],
            "approvals": [approval("0456", "2026-01-12")],
        },
        True,
        [],
        "2027-06-30",
    ),
    "F": (
        {
            "role": "Analyst",
            "location": "C100",
            "location_type": "central",
            "assignment_start": "2023-08-01",
            "certifications": [full("2026-01-10")],
            "approvals": [approval("C100", "2026-01-12")],
        },
        False,
        ["ROLE_NOT_ELIGIBLE"],
        "2027-06-30",
    ),
    "G": ({"location": "0789", "assignment_start": "2026-10-01"}, False, ["NO_APPROVAL"], "2027-06-30"),
    "H": ({"role": "School Counselor", "assignment_start": "2026-10-01"}, False, ["APPROVAL_STALE"], "2027-06-30"),
    "I": ({"lost_access_on": {"walkin": "2026-10-01"}}, False, ["CERT_BEFORE_LOSS"], None),
    "J": (
        {"lost_access_on": {"walkin": "2026-10-01"}, "certifications": [full("2025-09-15"), recert("2026-10-05")]},
        False,
        ["CERT_BEFORE_LOSS"],
        None,
    ),
    "K": (
        {"lost_access_on": {"walkin": "2026-10-01"}, "certifications": [full("2025-09-15"), full("2026-10-05")]},
        True,
        [],
        "2028-06-30",
    ),
    "L": ({"active": False}, False, ["NOT_ACTIVE"], "2027-06-30"),
    "M": (
        {"role": "Teacher", "assignment_start": None, "certifications": [], "approvals": []},
        False,
        ["NOT_CERTIFIED", "NO_APPROVAL"],
        None,
    ),
}


def facts_from_dict(data: object) -> PersonFacts:
    """Validate facts decoded from JSON (dates as strings, or ``date`` objects), exactly
    as the JSON line they came from would be (:meth:`PersonFacts.from_json`).

    :raises FactsError: naming each key that is missing, unknown or malformed.
    """
    try:
        text = json.dumps(data, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise FactsError([f"not JSON data: {exc}"]) from None
    return PersonFacts.from_json(text)


def _json_default(value: object) -> str:
    if type(value) is date:
        return value.isoformat()
    raise TypeError(f"{value!r} is not JSON data")
