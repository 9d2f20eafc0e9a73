"""The worked examples of policy §8, evaluated on 2026-11-29 (school year 2026-27)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from mappings.model import Mapping
from mappings.policy import ReasonCode, decide
from tests.mappings.people import AT, approval, full, person, recert

B_CERTS = [full("2024-09-10")]

#: person → (facts changed from A, entitled, reasons, valid_through)
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


@pytest.mark.parametrize(
    ("changes", "entitled", "reasons", "valid_through"), list(EXAMPLES.values()), ids=list(EXAMPLES)
)
def test_worked_example(
    mapping: Mapping, changes: dict[str, Any], entitled: bool, reasons: list[str], valid_through: str | None
) -> None:
    """Each person of policy §8 gets the decision the policy gives."""
    decision = decide(person(**changes), "walkin", AT, mapping)
    assert decision.entitled is entitled
    assert decision.by_override is False
    assert decision.reasons == tuple(ReasonCode(code) for code in reasons)
    assert decision.valid_through == (None if valid_through is None else date.fromisoformat(valid_through))


@pytest.mark.parametrize(
    ("name", "entitled_since"),
    [("A", "2025-09-20"), ("C", "2025-09-20"), ("E", "2026-01-12"), ("K", "2026-10-05")],
    ids=["A-approval", "C-approval-after-chain-start", "E-approval", "K-full-after-loss"],
)
def test_worked_example_entitled_since(mapping: Mapping, name: str, entitled_since: str) -> None:
    """entitled_since is the latest of assignment start, first approval and chain start."""
    decision = decide(person(**EXAMPLES[name][0]), "walkin", AT, mapping)
    assert decision.entitled_since == date.fromisoformat(entitled_since)


@pytest.mark.parametrize("name", [name for name, example in EXAMPLES.items() if not example[1]])
def test_worked_example_not_entitled_has_no_entitled_since(mapping: Mapping, name: str) -> None:
    """entitled_since is null unless the rules entitle the person."""
    assert decide(person(**EXAMPLES[name][0]), "walkin", AT, mapping).entitled_since is None
