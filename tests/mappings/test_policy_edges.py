"""Edge cases of the policy (§4–§6), table by table."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from mappings.model import Mapping
from mappings.policy import Decision, ReasonCode, decide, decide_all, explain, recert_due, validity_end
from tests.mappings.documents import mapping_with
from tests.mappings.people import AT, ELEMENTARY, approval, full, override, person, recert

D = date.fromisoformat
CERT_CODES = {ReasonCode.CERT_BEFORE_LOSS, ReasonCode.NOT_CERTIFIED, ReasonCode.CERT_EXPIRED}


def walkin(facts_changes: dict[str, Any], at: date = AT, mapping: Mapping | None = None) -> Decision:
    """Decide walkin for person A with changes (shipped mapping unless given)."""
    return decide(person(**facts_changes), "walkin", at, mapping or mapping_with())


def codes(*names: str) -> tuple[ReasonCode, ...]:
    return tuple(ReasonCode(name) for name in names)


@pytest.mark.parametrize(
    ("completed_on", "valid_through"),
    [
        ("2025-06-30", "2026-06-30"),
        ("2025-07-01", "2027-06-30"),
        ("2026-06-30", "2027-06-30"),
        ("2026-07-01", "2028-06-30"),
    ],
    ids=["june-30", "july-1", "last-day-of-2025-26", "first-day-of-2026-27"],
)
def test_school_year_boundary_of_a_completion(completed_on: str, valid_through: str) -> None:
    """A completion lasts to the end of the school year after the one it falls in."""
    decision = walkin({"certifications": [full(completed_on)]}, at=D(completed_on))
    assert decision.valid_through == D(valid_through)


@pytest.mark.parametrize(
    ("at", "entitled"),
    [("2027-06-30", True), ("2027-07-01", False)],
    ids=["last-valid-day", "day-after"],
)
def test_access_ends_after_valid_through(at: str, entitled: bool) -> None:
    """The certification holds while at <= valid_through."""
    decision = walkin({}, at=D(at))
    assert decision.entitled is entitled
    assert decision.reasons == (() if entitled else codes("CERT_EXPIRED"))


@pytest.mark.parametrize(
    ("grace_days", "at", "entitled", "valid_through"),
    [
        (0, "2027-07-01", False, "2027-06-30"),
        (14, "2027-07-14", True, "2027-07-14"),
        (14, "2027-07-15", False, "2027-07-14"),
    ],
    ids=["no-grace", "last-grace-day", "after-grace"],
)
def test_grace_days(grace_days: int, at: str, entitled: bool, valid_through: str) -> None:
    """grace_days extend each completion's validity past the school year's end."""
    decision = walkin({}, at=D(at), mapping=mapping_with(grace_days=grace_days))
    assert decision.entitled is entitled
    assert decision.valid_through == D(valid_through)


def test_a_quiz_in_the_grace_period_renews() -> None:
    """A recert is taken while still valid when it falls within the grace days."""
    changes = {"certifications": [full("2024-09-10"), recert("2026-07-10")]}
    decision = walkin(changes, mapping=mapping_with(grace_days=14))
    assert decision.entitled
    assert decision.valid_through == D("2028-07-14")


@pytest.mark.parametrize(
    ("validity_years", "valid_through"),
    [(1, "2026-06-30"), (2, "2027-06-30"), (3, "2028-06-30")],
    ids=["one-year", "two-years", "three-years"],
)
def test_validity_years(validity_years: int, valid_through: str) -> None:
    """A completion is valid through the end of SY(c) + validity_years - 1."""
    decision = walkin({}, at=D("2025-09-15"), mapping=mapping_with(validity_years=validity_years))
    assert decision.valid_through == D(valid_through)


@pytest.mark.parametrize(
    ("quiz", "entitled", "valid_through"),
    [
        ("2026-06-30", True, "2027-06-30"),
        ("2026-07-01", False, "2026-06-30"),
    ],
    ids=["quiz-on-last-valid-day", "quiz-the-day-after"],
)
def test_recert_on_the_last_valid_day(quiz: str, entitled: bool, valid_through: str) -> None:
    """A quiz renews only while the person is still valid (c <= valid_through)."""
    decision = walkin({"certifications": [full("2024-09-10"), recert(quiz)]})
    assert decision.entitled is entitled
    assert decision.valid_through == D(valid_through)


@pytest.mark.parametrize(
    ("full_course_required_in", "renewal", "entitled", "valid_through"),
    [
        ((), recert("2026-05-01"), True, "2027-06-30"),
        (("2025-26",), recert("2026-05-01"), False, "2026-06-30"),
        ((2025,), recert("2026-05-01"), False, "2026-06-30"),
        (("2025-26",), full("2026-05-01"), True, "2027-06-30"),
        (("2026-27",), recert("2026-05-01"), True, "2027-06-30"),
    ],
    ids=["quiz-accepted", "quiz-refused-label", "quiz-refused-year", "full-in-full-only-year", "other-year-full-only"],
)
def test_full_course_only_years(
    full_course_required_in: tuple[Any, ...], renewal: dict[str, str], entitled: bool, valid_through: str
) -> None:
    """In a full_course_required_in school year only the full course renews."""
    decision = walkin(
        {"certifications": [full("2024-09-10"), renewal]},
        mapping=mapping_with(full_course_required_in=full_course_required_in),
    )
    assert decision.entitled is entitled
    assert decision.valid_through == D(valid_through)


@pytest.mark.parametrize(
    ("certifications", "reasons", "valid_through"),
    [
        ([full("2026-10-01")], (), "2028-06-30"),
        ([full("2026-09-30")], codes("CERT_BEFORE_LOSS"), None),
        ([full("2025-09-15"), recert("2026-10-01")], codes("CERT_BEFORE_LOSS"), None),
        ([recert("2026-10-01"), full("2026-10-01")], (), "2028-06-30"),
        ([full("2026-10-01"), recert("2026-10-02")], (), "2028-06-30"),
        ([recert("2026-10-02"), full("2026-10-03")], (), "2028-06-30"),
    ],
    ids=[
        "full-on-loss-day",
        "full-day-before-loss",
        "quiz-on-loss-day",
        "full-and-quiz-on-loss-day",
        "quiz-after-restart",
        "quiz-before-restart-ignored",
    ],
)
def test_loss_on_the_day_of_a_completion(
    certifications: list[dict[str, str]], reasons: tuple[ReasonCode, ...], valid_through: str | None
) -> None:
    """After a loss the chain restarts with a full course on or after the loss date."""
    decision = walkin({"lost_access_on": {"walkin": "2026-10-01"}, "certifications": certifications})
    assert decision.reasons == reasons
    assert decision.valid_through == (None if valid_through is None else D(valid_through))


def test_a_full_course_after_at_does_not_regain_access() -> None:
    """CERT_BEFORE_LOSS needs the full course on or before at."""
    changes = {"lost_access_on": {"walkin": "2026-10-01"}, "certifications": [full("2026-12-01")]}
    assert walkin(changes).reasons == codes("CERT_BEFORE_LOSS")
    assert walkin(changes, at=D("2026-12-01")).entitled


def test_a_loss_after_at_still_needs_a_full_course_after_it() -> None:
    """As written, no full course lies between a later loss date and at."""
    decision = walkin({"lost_access_on": {"walkin": "2026-12-15"}})
    assert decision.reasons == codes("CERT_BEFORE_LOSS")
    assert decision.valid_through is None


def test_a_loss_of_another_entitlement_does_not_count() -> None:
    """lost_access_on is per entitlement."""
    assert walkin({"lost_access_on": {"elementary_scheduling": "2026-10-01"}}).entitled


def test_full_before_quiz_on_the_same_day() -> None:
    """On the same day the full course counts first, so the quiz there is valid too."""
    decision, evidence = explain(
        person(certifications=[full("2022-09-01"), recert("2026-10-05"), full("2026-10-05")]),
        "walkin",
        AT,
        mapping_with(),
    )
    assert decision.entitled
    assert [cert.kind.value for cert in evidence.chain] == ["full", "recert"]
    assert decision.entitled_since == D("2026-10-05")


def test_a_full_course_while_valid_extends_the_chain() -> None:
    """A full course taken while valid extends the chain without restarting it."""
    decision, evidence = explain(
        person(certifications=[full("2024-09-10"), full("2025-10-01")], approvals=[approval("0123", "2024-09-01")]),
        "walkin",
        AT,
        mapping_with(),
    )
    assert decision.valid_through == D("2027-06-30")
    assert decision.entitled_since == D("2024-09-10")
    assert [cert.completed_on for cert in evidence.chain] == [D("2024-09-10"), D("2025-10-01")]


def test_an_expired_person_restarts_with_a_full_course() -> None:
    """A full course after valid_through opens a new chain: entitled_since moves."""
    decision = walkin(
        {"certifications": [full("2022-09-10"), full("2026-09-01")], "approvals": [approval("0123", "2024-09-01")]}
    )
    assert decision.entitled
    assert decision.entitled_since == D("2026-09-01")


def test_completions_after_at_do_not_count() -> None:
    """Only completions with completed_on <= at count."""
    assert walkin({"certifications": [full("2026-12-01")]}).reasons == codes("NOT_CERTIFIED")


def test_only_the_entitlements_course_counts() -> None:
    """Another course's certification does not certify for walkin."""
    assert walkin({"certifications": [full("2026-01-10", ELEMENTARY)]}).reasons == codes("NOT_CERTIFIED")


def test_a_quiz_alone_never_certifies() -> None:
    """A recert without a valid full course before it is ignored."""
    decision, evidence = explain(person(certifications=[recert("2026-01-10")]), "walkin", AT, mapping_with())
    assert decision.reasons == codes("NOT_CERTIFIED")
    assert "quiz only renews" in evidence.ignored[0][1]


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"approvals": [approval("0123", "2024-07-31")]}, codes("APPROVAL_STALE")),
        ({"approvals": [approval("0123", "2024-08-01")]}, ()),
        ({"approvals": [approval("0123", "2024-07-31"), approval("0123", "2026-01-05")]}, ()),
        ({"approvals": [approval("0456", "2025-09-20")]}, codes("NO_APPROVAL")),
        ({"approvals": []}, codes("NO_APPROVAL")),
        ({"assignment_start": None}, codes("APPROVAL_STALE")),
        ({"location": None, "location_type": "school"}, codes("NO_APPROVAL")),
    ],
    ids=[
        "before-assignment-start",
        "on-assignment-start",
        "one-fresh-one-stale",
        "other-location",
        "none",
        "unknown-assignment-start-fails-closed",
        "unknown-location",
    ],
)
def test_stale_and_missing_approvals(changes: dict[str, Any], reasons: tuple[ReasonCode, ...]) -> None:
    """Approvals count for the current location, given on or after the assignment start."""
    assert walkin(changes).reasons == reasons


def test_approval_survives_role_change_setting() -> None:
    """With approval_survives_role_change an approval before the change still counts."""
    changes = {"role": "School Counselor", "assignment_start": "2026-10-01"}
    decision = walkin(changes, mapping=mapping_with({"approval_survives_role_change": True}))
    assert decision.entitled
    assert decision.entitled_since == D("2026-10-01")


@pytest.mark.parametrize(
    ("approvals", "reasons"),
    [
        ([approval("0123", "2026-11-29")], ()),
        ([approval("0123", "2026-11-30")], codes("NO_APPROVAL")),
        ([approval("0123", "2024-07-01"), approval("0123", "2026-11-30")], codes("APPROVAL_STALE")),
        ([approval("0123", "2025-09-20", entitlement="elementary_scheduling")], codes("NO_APPROVAL")),
    ],
    ids=["dated-at", "dated-after-at", "stale-and-future", "other-entitlement"],
)
def test_approvals_dated_after_at_do_not_count(approvals: list[dict[str, str]], reasons: tuple[ReasonCode, ...]) -> None:
    """An approval given after the evaluation date, or for another entitlement, does not count."""
    assert walkin({"approvals": approvals}).reasons == reasons


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"role": "Teacher", "location_type": "school"}, ()),
        ({"role": None, "location_type": "school"}, ()),
        ({"role": "Office Professional", "location": "C100", "location_type": "central"}, codes("NO_APPROVAL")),
        ({"role": "Teacher", "location_type": None}, codes("ROLE_NOT_ELIGIBLE")),
        ({"role": None, "location_type": None}, codes("ROLE_NOT_ELIGIBLE")),
    ],
    ids=["teacher-at-school", "unknown-role-at-school", "office-professional-centrally", "teacher-unknown-place", "nothing-known"],
)
def test_role_eligibility(changes: dict[str, Any], reasons: tuple[ReasonCode, ...]) -> None:
    """Eligible roles are eligible anywhere; anyone at a school is eligible with approval."""
    assert walkin(changes).reasons == reasons


def test_every_failing_code_is_reported_in_table_order() -> None:
    """All failing requirements are listed, in the order of §4's table."""
    decision = walkin(
        {
            "active": False,
            "role": "Analyst",
            "location": "C100",
            "location_type": "central",
            "approvals": [approval("0123", "2025-01-01")],
        },
        at=D("2027-08-01"),
    )
    assert decision.reasons == codes("NOT_ACTIVE", "ROLE_NOT_ELIGIBLE", "CERT_EXPIRED", "NO_APPROVAL")


@pytest.mark.parametrize(
    ("overrides", "entitled", "by_override", "reasons"),
    [
        ([override("grant", "2026-11-29")], True, True, codes("CERT_EXPIRED")),
        ([override("grant", "2026-11-28")], False, False, codes("CERT_EXPIRED")),
        ([override("deny", "2026-11-29")], False, False, codes("CERT_EXPIRED", "DENIED_BY_OVERRIDE")),
        ([override("deny", "2026-11-28")], False, False, codes("CERT_EXPIRED")),
        ([override("grant", "2027-01-01"), override("deny", "2027-01-01")], False, False, codes("CERT_EXPIRED", "DENIED_BY_OVERRIDE")),
        ([override("grant", "2027-01-01", entitlement="elementary_scheduling")], False, False, codes("CERT_EXPIRED")),
    ],
    ids=["grant-until-at", "grant-expired", "deny-until-at", "deny-expired", "deny-wins", "grant-other-entitlement"],
)
def test_overrides_on_a_failing_person(
    overrides: list[dict[str, str]], entitled: bool, by_override: bool, reasons: tuple[ReasonCode, ...]
) -> None:
    """A grant makes a failing person entitled while at <= until; its reasons stay visible."""
    decision = walkin({"certifications": [full("2024-09-10")], "overrides": overrides})
    assert (decision.entitled, decision.by_override, decision.reasons) == (entitled, by_override, reasons)
    assert decision.entitled_since is None


@pytest.mark.parametrize(
    ("overrides", "entitled", "reasons"),
    [
        ([override("grant", "2026-11-29")], True, ()),
        ([override("deny", "2026-11-29")], False, codes("DENIED_BY_OVERRIDE")),
        ([override("deny", "2026-11-28")], True, ()),
    ],
    ids=["needless-grant", "deny", "deny-expired"],
)
def test_overrides_on_an_entitled_person(
    overrides: list[dict[str, str]], entitled: bool, reasons: tuple[ReasonCode, ...]
) -> None:
    """A deny removes access that the rules give; a needless grant changes nothing."""
    decision = walkin({"overrides": overrides})
    assert (decision.entitled, decision.by_override, decision.reasons) == (entitled, False, reasons)
    assert decision.entitled_since == (D("2025-09-20") if entitled else None)


def test_the_deciding_override_is_evidence() -> None:
    """explain() names the override that decided."""
    deny = override("deny", "2027-01-01")
    _, evidence = explain(person(overrides=[override("grant", "2027-01-01"), deny]), "walkin", AT, mapping_with())
    assert evidence.override is not None
    assert evidence.override.effect.value == "deny"


ELEMENTARY_CERT = full("2026-02-01", ELEMENTARY)


@pytest.mark.parametrize(
    ("changes", "entitled", "reasons", "entitled_since"),
    [
        ({"certifications": [full("2025-09-15"), ELEMENTARY_CERT]}, True, (), "2026-02-01"),
        ({"certifications": [full("2025-09-15"), full("2026-10-01", ELEMENTARY)]}, True, (), "2026-10-01"),
        ({"certifications": [full("2024-09-10"), ELEMENTARY_CERT]}, False, codes("PREREQUISITE_MISSING"), None),
        ({"certifications": [full("2024-09-10")]}, False, codes("NOT_CERTIFIED", "PREREQUISITE_MISSING"), None),
        ({"certifications": [full("2025-09-15"), ELEMENTARY_CERT], "active": False}, False, codes("PREREQUISITE_MISSING"), None),
        (
            {"certifications": [full("2025-09-15"), ELEMENTARY_CERT], "overrides": [override("deny", "2027-01-01")]},
            False,
            codes("PREREQUISITE_MISSING"),
            None,
        ),
        (
            {"certifications": [full("2024-09-10"), ELEMENTARY_CERT], "overrides": [override("grant", "2027-01-01")]},
            True,
            (),
            "2026-02-01",
        ),
        (
            {"certifications": [full("2025-09-15"), ELEMENTARY_CERT], "lost_access_on": {"elementary_scheduling": "2026-06-01"}},
            False,
            codes("CERT_BEFORE_LOSS"),
            None,
        ),
    ],
    ids=[
        "walkin-then-course",
        "course-after-walkin",
        "walkin-expired",
        "without-walkin-or-course",
        "inactive",
        "walkin-denied",
        "walkin-by-override",
        "own-loss",
    ],
)
def test_prerequisites(
    changes: dict[str, Any], entitled: bool, reasons: tuple[ReasonCode, ...], entitled_since: str | None
) -> None:
    """Elementary Scheduling needs walkin and its own certification."""
    decision = decide(person(**changes), "elementary_scheduling", AT, mapping_with())
    assert (decision.entitled, decision.by_override, decision.reasons) == (entitled, False, reasons)
    assert decision.entitled_since == (None if entitled_since is None else D(entitled_since))


def test_prerequisite_decisions_are_evidence() -> None:
    """explain() shows the prerequisite's decision."""
    _, evidence = explain(person(certifications=[ELEMENTARY_CERT]), "elementary_scheduling", AT, mapping_with())
    assert [(d.entitlement, d.reasons) for d in evidence.prerequisites] == [("walkin", codes("NOT_CERTIFIED"))]


@pytest.mark.parametrize(
    ("changes", "entitled_since"),
    [
        ({}, "2025-09-20"),
        ({"assignment_start": "2025-10-01"}, None),
        ({"assignment_start": "2025-09-01", "approvals": [approval("0123", "2025-09-01")]}, "2025-09-15"),
        ({"assignment_start": "2026-03-01", "approvals": [approval("0123", "2026-03-01")]}, "2026-03-01"),
        ({"approvals": [approval("0123", "2025-09-20"), approval("0123", "2024-09-01")]}, "2025-09-15"),
        ({"approvals": [approval("0123", "2024-09-01"), approval("0123", "2026-11-30")]}, "2025-09-15"),
    ],
    ids=["approval-last", "stale-approval", "chain-start-last", "assignment-start-last", "earliest-approval", "future-approval-ignored"],
)
def test_entitled_since(changes: dict[str, Any], entitled_since: str | None) -> None:
    """entitled_since = latest of assignment_start, earliest counting approval, chain start."""
    assert walkin(changes).entitled_since == (None if entitled_since is None else D(entitled_since))


def test_decide_all_decides_every_entitlement_in_mapping_order() -> None:
    """decide_all returns one decision per entitlement, or only those asked for."""
    mapping = mapping_with()
    facts = person()
    assert list(decide_all(facts, AT, mapping)) == ["walkin", "elementary_scheduling", "secondary_scheduling"]
    assert list(decide_all(facts, AT, mapping, ["secondary_scheduling", "walkin"])) == ["secondary_scheduling", "walkin"]
    only = decide_all(facts, AT, mapping, ["elementary_scheduling"])
    assert list(only) == ["elementary_scheduling"]
    assert only["elementary_scheduling"].reasons == codes("NOT_CERTIFIED")


def test_unknown_entitlement_is_refused() -> None:
    """Deciding an entitlement the mapping does not define is an error."""
    with pytest.raises(ValueError, match="unknown entitlement 'walk_in'"):
        decide(person(), "walk_in", AT, mapping_with())


def test_validity_end_function() -> None:
    """validity_end is the public form of the §5 rule."""
    calendar = mapping_with().policy.calendar
    assert validity_end(calendar, D("2025-09-15"), 2, 0) == D("2027-06-30")
    assert validity_end(calendar, D("2025-09-15"), 2, 3) == D("2027-06-30") + timedelta(days=3)


def test_decision_json_has_exactly_the_policy_fields() -> None:
    """A decision serialises to the §6 fields, dates as YYYY-MM-DD or null."""
    decision = walkin({"lost_access_on": {"walkin": "2026-10-01"}})
    assert decision.to_json_dict() == {
        "person_id": "A",
        "entitlement": "walkin",
        "at": "2026-11-29",
        "entitled": False,
        "by_override": False,
        "reasons": ["CERT_BEFORE_LOSS"],
        "valid_through": None,
        "entitled_since": None,
    }
    entitled = walkin({})
    assert entitled.to_json_dict()["valid_through"] == "2027-06-30"
    assert entitled.to_json_dict()["entitled_since"] == "2025-09-20"


@pytest.mark.parametrize(
    ("at", "due"),
    [("2027-04-30", False), ("2027-05-01", True), ("2027-06-30", True), ("2027-07-01", False)],
    ids=["61-days-before", "60-days-before", "last-day", "expired"],
)
def test_recertification_warning_window(mapping: Mapping, at: str, due: bool) -> None:
    """People whose valid_through falls within recert_warning_days are due a reminder."""
    decision = walkin({}, at=D(at))
    assert recert_due(decision, mapping.policy.recert_warning_days) is due


def test_no_certification_is_never_due() -> None:
    """Without a valid_through there is nothing to renew."""
    assert not recert_due(walkin({"certifications": []}), 60)
