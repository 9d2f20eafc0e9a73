"""Person facts: the JSON shape of policy §2, and SCIM User → facts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mappings.facts import FactsError, Override, PersonFacts, user_to_facts
from mappings.model import Mapping, parse_mapping
from mappings.policy import decide
from mappings.vocabulary import CertKind, LocationType
from tests.mappings.documents import shipped_document
from tests.mappings.people import AT, facts_from_dict, person_json

WALKIN_URN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

POLICY_EXAMPLE = """{"id": "2c9f", "active": true, "role": "Office Professional", "location": "0123",
 "location_type": "school", "assignment_start": "2024-08-01",
 "certifications": [{"course": "Walk-In Scheduling Certification", "kind": "full", "completed_on": "2025-09-15"}],
 "approvals": [{"entitlement": "walkin", "location": "0123", "approved_on": "2025-09-20", "approver": "principal-0123"}],
 "lost_access_on": {}, "overrides": []}"""


def test_the_policy_example_parses() -> None:
    """The JSON example of policy §2 is valid facts."""
    facts = PersonFacts.from_json(POLICY_EXAMPLE)
    assert facts.location_type is LocationType.SCHOOL
    assert facts.certifications[0].kind is CertKind.FULL
    assert facts.certifications[0].completed_on == date(2025, 9, 15)
    assert facts.to_json_dict() == json.loads(POLICY_EXAMPLE)


def _without(key: str) -> dict[str, Any]:
    data = person_json()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_without("lost_access_on"), "lost_access_on: missing field"),
        ({**person_json(), "nickname": "x"}, "nickname: unknown field"),
        (person_json(assignment_start="2024-13-01"), "assignment_start: Input should be a valid date in the format YYYY-MM-DD"),
        (person_json(assignment_start="2024-08-01T00:00:00"), "assignment_start: Input should be a valid date"),
        (person_json(assignment_start=20240801), "assignment_start: Input should be a valid date"),
        (
            person_json(certifications=[{"course": "C", "kind": "full", "completed_on": "2025-9-15"}]),
            "certifications[0].completed_on: Input should be a valid date in the format YYYY-MM-DD",
        ),
        (
            person_json(certifications=[{"course": "C", "kind": "quiz", "completed_on": "2025-09-15"}]),
            "certifications[0].kind: Input should be 'full' or 'recert'",
        ),
        (person_json(active="true"), "active: Input should be a valid boolean"),
        (person_json(location_type="office"), "location_type: Input should be 'school' or 'central'"),
        (person_json(lost_access_on={"walkin": "yesterday"}), "lost_access_on.walkin: Input should be a valid date"),
        (
            person_json(overrides=[{"entitlement": "walkin", "effect": "allow", "until": "2027-01-01", "reason": "r", "by": "b"}]),
            "overrides[0].effect: Input should be 'grant' or 'deny'",
        ),
        (person_json(id=7), "id: Input should be a valid string"),
    ],
    ids=[
        "missing-key",
        "unknown-key",
        "impossible-date",
        "datetime",
        "number-date",
        "short-date",
        "bad-kind",
        "string-bool",
        "bad-location-type",
        "bad-loss-date",
        "bad-effect",
        "numeric-id",
    ],
)
def test_malformed_facts_name_the_key(data: dict[str, Any], message: str) -> None:
    """Validation errors say which key is wrong and how."""
    with pytest.raises(FactsError) as caught:
        facts_from_dict(data)
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems
    with pytest.raises(FactsError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        PersonFacts.from_json(json.dumps(data))


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "Invalid JSON"), ("[1, 2]", "Input should be an object"), ("", "Invalid JSON")],
    ids=["syntax", "array", "empty"],
)
def test_a_line_that_is_not_an_object(text: str, message: str) -> None:
    """A JSON line must be an object."""
    with pytest.raises(FactsError, match=message):
        PersonFacts.from_json(text)


def test_from_dict_takes_dates() -> None:
    """Python callers may pass date objects where JSON has strings."""
    data = person_json(assignment_start=date(2024, 8, 1))
    assert facts_from_dict(data).assignment_start == date(2024, 8, 1)
    with pytest.raises(FactsError, match="not JSON data"):
        facts_from_dict(person_json(assignment_start=datetime(2024, 8, 1)))


# --- SCIM User → facts -------------------------------------------------------------


def user(**walkin: Any) -> dict[str, Any]:
    """A stored SCIM User with the walk-in extension (person A of policy §8)."""
    extension = {
        "jobCode": "1001",
        "locationCode": "0123",
        "assignmentStartDate": "2024-08-01",
        "certifications": [{"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2025-09-15"}],
    }
    extension.update(walkin)
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN, WALKIN_URN],
        "id": "2c9f",
        "userName": "a@example.org",
        "active": True,
        "title": "School Counselor",
        ENTERPRISE_URN: {"employeeNumber": "701", "department": "Front office"},
        WALKIN_URN: extension,
        "meta": {"resourceType": "User"},
    }


APPROVERS = {"id": "g1", "displayName": "WalkIn-Approvers-0123"}
MEMBERSHIPS = [(APPROVERS, date(2025, 9, 20)), ({"id": "g2", "displayName": "All Staff"}, date(2020, 1, 1))]


def test_a_user_becomes_facts(mapping: Mapping) -> None:
    """Every fact is read from its SCIM attribute and decided as person A."""
    facts, problems = user_to_facts(user(), MEMBERSHIPS, mapping)
    assert problems == []
    assert facts.id == "2c9f"
    assert (facts.active, facts.role, facts.location, facts.location_type) == (
        True, "Office Professional", "0123", LocationType.SCHOOL,
    )
    assert facts.assignment_start == date(2024, 8, 1)
    assert [(c.course, c.kind, c.completed_on) for c in facts.certifications] == [
        ("Walk-In Scheduling Certification", CertKind.FULL, date(2025, 9, 15))
    ]
    assert [(a.entitlement, a.location, a.approved_on, a.approver) for a in facts.approvals] == [
        ("walkin", "0123", date(2025, 9, 20), "WalkIn-Approvers-0123")
    ]
    decision = decide(facts, "walkin", AT, mapping)
    assert decision.entitled and decision.valid_through == date(2027, 6, 30)


def test_losses_and_overrides_pass_through(mapping: Mapping) -> None:
    """The connector's own records join the facts unchanged."""
    deny = Override(entitlement="walkin", effect="deny", until=date(2027, 1, 1), reason="audit", by="admin")
    facts, _ = user_to_facts(user(), MEMBERSHIPS, mapping, {"walkin": date(2026, 10, 1)}, [deny])
    assert facts.lost_access_on == {"walkin": date(2026, 10, 1)}
    assert facts.overrides == (deny,)


@pytest.mark.parametrize(
    ("since", "approved_on"),
    [
        (datetime(2025, 9, 21, 3, 0, tzinfo=UTC), date(2025, 9, 20)),
        (datetime(2025, 9, 21, 3, 0), date(2025, 9, 20)),
        (datetime(2025, 9, 21, 7, 0, tzinfo=UTC), date(2025, 9, 21)),
    ],
    ids=["evening-in-denver", "naive-utc", "morning-in-denver"],
)
def test_membership_time_becomes_a_district_date(mapping: Mapping, since: datetime, approved_on: date) -> None:
    """A membership recorded at an instant approves on that day in Denver."""
    facts, _ = user_to_facts(user(), [(APPROVERS, since)], mapping)
    assert facts.approvals[0].approved_on == approved_on


@pytest.mark.parametrize(
    ("changes", "fact", "value", "problem"),
    [
        ({"jobCode": "9999"}, "role", None, "role: job code '9999'"),
        ({"jobCode": 1001}, "role", None, "role: urn:ietf:params:scim:schemas:extension:walkin:2.0:User:jobCode is not a non-empty string"),
        ({"locationCode": "X999"}, "location", None, "location: code 'X999'"),
        ({"assignmentStartDate": "2024-13-01"}, "assignment_start", None, "assignment_start: invalid date '2024-13-01'"),
        ({"assignmentStartDate": "08/01/2024"}, "assignment_start", None, "assignment_start: invalid date '08/01/2024'"),
        ({"certifications": "lots"}, "certifications", (), "certifications: "),
        (
            {"certifications": [{"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2025-02-30"}]},
            "certifications",
            (),
            "certifications[0]: completedOn: invalid date '2025-02-30'",
        ),
        (
            {"certifications": [{"course": "Walk-In Scheduling Certification", "kind": "quiz", "completedOn": "2025-09-15"}]},
            "certifications",
            (),
            "certifications[0]: kind: 'quiz' is not one of full, recert",
        ),
        ({"certifications": ["full"]}, "certifications", (), "certifications[0]: not an object"),
    ],
    ids=[
        "unknown-job-code",
        "numeric-job-code",
        "unknown-location",
        "impossible-date",
        "us-date",
        "certifications-not-a-list",
        "bad-completion-date",
        "bad-kind",
        "completion-not-an-object",
    ],
)
def test_bad_data_becomes_null_and_a_problem(
    mapping: Mapping, changes: dict[str, Any], fact: str, value: Any, problem: str
) -> None:
    """Bad values become null (the policy fails closed) and are reported, never raised."""
    facts, problems = user_to_facts(user(**changes), MEMBERSHIPS, mapping)
    assert getattr(facts, fact) == value
    assert any(p.startswith(problem) for p in problems), problems
    if fact == "location":
        assert facts.location_type is None


def test_unknown_location_fails_closed(mapping: Mapping) -> None:
    """A person at an unknown location has no approval there."""
    facts, _ = user_to_facts(user(locationCode="X999"), MEMBERSHIPS, mapping)
    assert [r.value for r in decide(facts, "walkin", AT, mapping).reasons] == ["NO_APPROVAL"]


def test_absent_values_are_null_without_a_problem(mapping: Mapping) -> None:
    """A user without the walk-in extension simply has no role, location or training."""
    data = user()
    del data[WALKIN_URN]
    facts, problems = user_to_facts(data, [], mapping)
    assert (facts.role, facts.location, facts.assignment_start, facts.certifications) == (None, None, None, ())
    assert problems == []


@pytest.mark.parametrize(
    ("active", "expected", "problem"),
    [(True, True, False), (False, False, False), ("False", False, False), ("True", True, False), (None, False, True), ("no", False, True)],
    ids=["true", "false", "entra-string-false", "entra-string-true", "missing", "nonsense"],
)
def test_active(mapping: Mapping, active: Any, expected: bool, problem: bool) -> None:
    """active is read as meant; anything unreadable is false (fail closed) and reported."""
    data = user()
    if active is None:
        del data["active"]
    else:
        data["active"] = active
    facts, problems = user_to_facts(data, [], mapping)
    assert facts.active is expected
    assert bool(problems) is problem


def test_attribute_names_are_case_insensitive(mapping: Mapping) -> None:
    """SCIM attribute names and schema URNs match whatever their case (RFC 7643 §2.1)."""
    data = user()
    data["Active"] = data.pop("active")
    data[WALKIN_URN.upper()] = {key.lower(): value for key, value in data.pop(WALKIN_URN).items()}
    facts, problems = user_to_facts(data, MEMBERSHIPS, mapping)
    assert problems == []
    assert (facts.active, facts.role, facts.location) == (True, "Office Professional", "0123")
    assert facts.certifications[0].completed_on == date(2025, 9, 15)


def test_role_from_title() -> None:
    """With source: title and no table, the title is the role."""
    document = shipped_document()
    document["attributes"]["role"] = {"source": "title"}
    facts, problems = user_to_facts(user(), [], parse_mapping(document))
    assert (facts.role, problems) == ("School Counselor", [])


def test_approval_groups_by_external_id() -> None:
    """An approval rule may match the group's externalId instead of its displayName."""
    document = shipped_document()
    document["entitlements"]["walkin"]["approval_groups"] = [
        {"attribute": "externalId", "pattern": r"^approvers:(?P<location>\d{4})$"}
    ]
    mapping = parse_mapping(document)
    group = {"id": "g9", "externalId": "approvers:0456", "displayName": "Approvers of 0456"}
    facts, _ = user_to_facts(user(), [(group, date(2026, 1, 12)), (APPROVERS, date(2025, 9, 20))], mapping)
    assert [(a.location, a.approver) for a in facts.approvals] == [("0456", "Approvers of 0456")]


def test_a_user_without_id_is_refused(mapping: Mapping) -> None:
    """Only stored resources (with an id) can be converted."""
    data = user()
    del data["id"]
    with pytest.raises(ValueError, match="no id"):
        user_to_facts(data, [], mapping)


def test_converted_facts_are_what_validation_builds(mapping: Mapping) -> None:
    """The converter's unchecked models (FrozenModel.trusted, shared certifications
    and approvals) equal the validated ones, attribute for attribute."""
    facts, _ = user_to_facts(user(), MEMBERSHIPS, mapping, {"walkin": date(2025, 1, 2)})
    validated = PersonFacts.model_validate(facts.model_dump())
    assert facts == validated
    assert facts.model_dump_json() == validated.model_dump_json()
    for made, checked in [(facts, validated), *zip(facts.certifications, validated.certifications),
                          *zip(facts.approvals, validated.approvals)]:
        assert vars(made) == vars(checked)
        assert (made.model_fields_set, made.model_extra, made.__pydantic_private__) == (
            checked.model_fields_set, checked.model_extra, checked.__pydantic_private__)
        assert made == type(made).model_construct(**vars(made))
    again, _ = user_to_facts(user(), MEMBERSHIPS, mapping, {"walkin": date(2025, 1, 2)})
    assert again == facts and again.certifications[0] is facts.certifications[0]  # shared, frozen


def test_a_bad_certification_is_refused_every_time(mapping: Mapping) -> None:
    """A certification refused once is refused again (refusals are not remembered as
    certifications)."""
    bad = {"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2025-13-01"}
    for _ in range(2):
        facts, problems = user_to_facts(user(certifications=[bad]), [], mapping)
        assert facts.certifications == ()
        assert problems == ["certifications[0]: completedOn: invalid date '2025-13-01', expected YYYY-MM-DD; ignored"]
