"""Properties of the policy over random facts and settings (hypothesis)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.facts import PersonFacts
from mappings.model import Mapping
from mappings.policy import Decision, ReasonCode, decide, decide_all, explain, next_change
from mappings.vocabulary import CERTIFICATION_CODES
from tests.mappings.documents import mapping_with
from tests.mappings.people import ELEMENTARY, SECONDARY, WALKIN, approval, cert, facts_from_dict, override
from tests.mappings.test_calendar import is_last_day

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
    return facts_from_dict(data)


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
            assert is_last_day(calendar, decision.valid_through - timedelta(days=grace))


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


@FAST
@given(facts_json, mappings, days, st.floats(min_value=0, max_value=1))
def test_nothing_changes_before_next_change(data: dict[str, Any], mapping: Mapping, at: date, where: float) -> None:
    """Between ``at`` and :func:`next_change` every decision stays what it was at ``at``
    (the sync keeps stored decisions until then), checked the day after ``at``, the
    day before the change and a day in between."""
    facts = facts_of(data)
    decided = decide_all(facts, at, mapping)
    change = next_change(facts, at, decided.values())
    horizon = change if change is not None else at + timedelta(days=4000)
    assert horizon > at
    span = (horizon - at).days - 1
    for later in {at + timedelta(days=1), horizon - timedelta(days=1), at + timedelta(days=1 + int(where * span))}:
        if at < later < horizon:
            again = decide_all(facts, later, mapping)
            assert {n: d._replace(at=at) for n, d in again.items()} == decided, later


def test_next_change_is_the_day_after_expiry_or_the_next_dated_fact() -> None:
    """Concrete days: the day after valid_through, a future completion, an approval, an override's end."""
    mapping = mapping_with({})
    base = {"id": "p", "active": True, "role": "Office Professional", "location": "0123", "location_type": "school",
            "assignment_start": "2024-08-01", "certifications": [cert(WALKIN, "full", "2024-09-10")],
            "approvals": [approval("0123", "2024-09-01")], "lost_access_on": {}, "overrides": []}
    at = date(2025, 3, 1)
    facts = facts_of(base)
    decided = decide_all(facts, at, mapping)
    assert decided["walkin"].entitled
    expiry = decided["walkin"].valid_through + timedelta(days=1)
    assert next_change(facts, at, decided.values()) == expiry
    assert not decide_all(facts, expiry, mapping)["walkin"].entitled  # it does change that day
    later = facts_of(with_(base, "certifications", cert(WALKIN, "recert", "2025-05-02")))
    assert next_change(later, at, decide_all(later, at, mapping).values()) == date(2025, 5, 2)
    moved = facts_of(with_(base, "approvals", approval("0456", "2025-04-01")))
    assert next_change(moved, at, decide_all(moved, at, mapping).values()) == date(2025, 4, 1)
    ending = facts_of(with_(base, "overrides", override("deny", "2025-03-10", "walkin")))
    assert next_change(ending, at, decide_all(ending, at, mapping).values()) == date(2025, 3, 11)
    assert next_change(facts_of({**base, "certifications": [], "approvals": []}), at, ()) is None
