"""Properties of the policy over random facts and settings (hypothesis)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.facts import PersonFacts
from mappings.model import Mapping
from mappings.policy import Decision, ReasonCode, decide, decide_all, explain
from mappings.vocabulary import CERTIFICATION_CODES
from tests.mappings.documents import mapping_with
from tests.mappings.people import ELEMENTARY, SECONDARY, WALKIN, approval, cert, override

ENTITLEMENTS = ["walkin", "elementary_scheduling", "secondary_scheduling"]
COURSE_OF = {"walkin": WALKIN, "elementary_scheduling": ELEMENTARY, "secondary_scheduling": SECONDARY}
LOCATIONS = ["0123", "0456", "C100"]
TABLE_ORDER = list(ReasonCode)

# Modest and database-free: fast runs that leave no .hypothesis/ directory behind.
FAST = settings(max_examples=100, deadline=None, database=None)

days = st.dates(min_value=date(2022, 1, 1), max_value=date(2029, 12, 31))
iso_days = days.map(date.isoformat)

certifications = st.lists(
    st.builds(cert, st.sampled_from([WALKIN, ELEMENTARY, SECONDARY, "Other Course"]), st.sampled_from(["full", "recert"]), iso_days),
    max_size=6,
)
approvals = st.lists(
    st.builds(approval, st.sampled_from(LOCATIONS), iso_days, entitlement=st.sampled_from(ENTITLEMENTS)), max_size=3
)
overrides = st.lists(
    st.builds(override, st.sampled_from(["grant", "deny"]), iso_days, entitlement=st.sampled_from(ENTITLEMENTS)),
    max_size=2,
)

facts_json = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=8),
        "active": st.booleans(),
        "role": st.sampled_from([None, "Office Professional", "School Counselor", "Teacher", "Analyst"]),
        "location": st.sampled_from([None, *LOCATIONS]),
        "location_type": st.sampled_from([None, "school", "central"]),
        "assignment_start": st.none() | iso_days,
        "certifications": certifications,
        "approvals": approvals,
        "lost_access_on": st.dictionaries(st.sampled_from(ENTITLEMENTS), iso_days, max_size=2),
        "overrides": overrides,
    }
)

mappings = st.builds(
    lambda start, survives, years, grace, full_only: mapping_with(
        {"school_year_start": start, "approval_survives_role_change": survives},
        validity_years=years,
        grace_days=grace,
        full_course_required_in=full_only,
    ),
    st.sampled_from(["07-01", "08-15"]),
    st.booleans(),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([0, 14]),
    st.sampled_from([(), (2025,), (2024, 2026)]),
)


def facts_of(data: dict[str, Any]) -> PersonFacts:
    return PersonFacts.from_dict(data)


def with_(data: dict[str, Any], key: str, item: Any) -> dict[str, Any]:
    """``data`` with ``item`` added to the list at ``key``."""
    return {**data, key: [*data[key], item]}


@FAST
@given(facts_json, mappings, days, st.sampled_from(ENTITLEMENTS), days)
def test_a_deny_override_always_wins(
    data: dict[str, Any], mapping: Mapping, at: date, name: str, until: date
) -> None:
    """An unexpired deny makes the person not entitled, whatever else holds."""
    until = max(at, until)
    before = decide(facts_of(data), name, at, mapping)
    after = decide(facts_of(with_(data, "overrides", override("deny", until.isoformat(), name))), name, at, mapping)
    assert not after.entitled and not after.by_override and after.entitled_since is None
    assert after.reasons[-1] is ReasonCode.DENIED_BY_OVERRIDE
    denied = ReasonCode.DENIED_BY_OVERRIDE
    assert [r for r in after.reasons if r is not denied] == [r for r in before.reasons if r is not denied]


@FAST
@given(facts_json, mappings, days)
def test_entitled_by_the_rules_iff_no_reasons(data: dict[str, Any], mapping: Mapping, at: date) -> None:
    """Entitled and not by override ⇔ no reasons; by override ⇒ failing rules shown."""
    for decision in decide_all(facts_of(data), at, mapping).values():
        assert (decision.entitled and not decision.by_override) == (decision.reasons == ())
        if decision.by_override:
            assert decision.entitled and decision.reasons
            assert ReasonCode.DENIED_BY_OVERRIDE not in decision.reasons
        if decision.entitled and not decision.by_override:
            assert decision.entitled_since is not None
        else:
            assert decision.entitled_since is None


@FAST
@given(facts_json, mappings, days)
def test_reasons_are_in_table_order_without_repeats(data: dict[str, Any], mapping: Mapping, at: date) -> None:
    """Codes come in the order of §4's table, each at most once, one certification code at most."""
    for decision in decide_all(facts_of(data), at, mapping).values():
        assert list(decision.reasons) == sorted(set(decision.reasons), key=TABLE_ORDER.index)
        assert len(CERTIFICATION_CODES.intersection(decision.reasons)) <= 1


@FAST
@given(facts_json, mappings, days, st.sampled_from(ENTITLEMENTS), iso_days)
def test_adding_a_full_completion_never_takes_access_away(
    data: dict[str, Any], mapping: Mapping, at: date, course_of: str, completed_on: str
) -> None:
    """One more full course can only help, for every entitlement."""
    before = decide_all(facts_of(data), at, mapping)
    more = with_(data, "certifications", cert(COURSE_OF[course_of], "full", completed_on))
    after = decide_all(facts_of(more), at, mapping)
    for name, decision in before.items():
        assert after[name].entitled or not decision.entitled, name


@FAST
@given(facts_json, mappings, days, st.sampled_from(ENTITLEMENTS), st.sampled_from(LOCATIONS), iso_days)
def test_adding_an_approval_never_takes_access_away(
    data: dict[str, Any], mapping: Mapping, at: date, name: str, location: str, approved_on: str
) -> None:
    """One more approval can only help, for every entitlement."""
    before = decide_all(facts_of(data), at, mapping)
    after = decide_all(facts_of(with_(data, "approvals", approval(location, approved_on, name))), at, mapping)
    for entitlement, decision in before.items():
        assert after[entitlement].entitled or not decision.entitled, entitlement


@FAST
@given(facts_json, mappings, days, st.integers(min_value=0, max_value=2000))
def test_evaluating_later_never_revives_a_certification(
    data: dict[str, Any], mapping: Mapping, at: date, later_by: int
) -> None:
    """With no completion after d, failing certification codes at d fail at every later d'."""
    data = {**data, "certifications": [c for c in data["certifications"] if c["completed_on"] <= at.isoformat()]}
    facts = facts_of(data)
    later = at + timedelta(days=later_by)
    for name in ENTITLEMENTS:
        now, then = decide(facts, name, at, mapping), decide(facts, name, later, mapping)
        failing = CERTIFICATION_CODES.intersection(now.reasons)
        if failing:
            assert CERTIFICATION_CODES.intersection(then.reasons) == failing
        assert then.valid_through == now.valid_through


@FAST
@given(facts_json, mappings, days)
def test_valid_through_is_a_school_year_end_plus_grace(data: dict[str, Any], mapping: Mapping, at: date) -> None:
    """valid_through is null or the last day of a school year plus grace_days."""
    calendar = mapping.policy.calendar
    for name, decision in decide_all(facts_of(data), at, mapping).items():
        grace = mapping.entitlements[name].certification.grace_days  # type: ignore[union-attr]
        if decision.valid_through is not None:
            assert calendar.is_last_day(decision.valid_through - timedelta(days=grace))


@FAST
@given(facts_json, mappings, days, st.sampled_from(ENTITLEMENTS))
def test_decide_decide_all_and_explain_agree(data: dict[str, Any], mapping: Mapping, at: date, name: str) -> None:
    """The three ways to decide give the same decision."""
    facts = facts_of(data)
    decision = decide(facts, name, at, mapping)
    assert decide_all(facts, at, mapping)[name] == decision
    assert explain(facts, name, at, mapping)[0] == decision


@FAST
@given(facts_json, mappings, days)
def test_json_forms_round_trip(data: dict[str, Any], mapping: Mapping, at: date) -> None:
    """Facts survive a JSON round trip; a decision's JSON line equals its JSON dict."""
    facts = facts_of(data)
    assert PersonFacts.from_json(json.dumps(facts.to_json_dict())) == facts
    for decision in decide_all(facts, at, mapping).values():
        assert isinstance(decision, Decision)
        assert json.loads(decision.to_json()) == decision.to_json_dict()
