"""Builders for person facts in tests: person A of policy §8 and variations of it."""

from __future__ import annotations

from datetime import date
from typing import Any

from mappings.facts import PersonFacts

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
    return PersonFacts.from_dict(person_json(**changes))
