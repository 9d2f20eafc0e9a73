"""The worked examples of policy §8, evaluated on 2026-11-29 (school year 2026-27)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from mappings.model import Mapping
from mappings.policy import ReasonCode, decide
from tests.mappings.people import AT, EXAMPLES, person


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
