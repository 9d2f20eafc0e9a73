"""The mapping file: the shipped one loads, and every kind of mistake names its key."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from mappings.model import DEFAULT_MAPPING_PATH, Mapping, MappingError, load_mapping, parse_mapping
from mappings.vocabulary import GroupAttribute, LocationType, ReasonCode
from tests.mappings.documents import shipped_document

WALKIN_URN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"


def test_the_shipped_mapping_holds_every_setting_with_its_default(mapping: Mapping) -> None:
    """Every (setting) of the policy doc is in walkin.yaml with the documented default."""
    policy = mapping.policy
    assert policy.time_zone == "America/Denver"
    assert policy.school_year_start == "07-01"
    assert policy.eligible_roles == ("Office Professional", "School Counselor")
    assert policy.approval_survives_role_change is False
    assert policy.recert_warning_days == 60
    assert date(2026, 11, 26) in policy.holiday_set
    for name, course in [
        ("walkin", "Walk-In Scheduling Certification"),
        ("elementary_scheduling", "Elementary Scheduling Certification"),
        ("secondary_scheduling", "Secondary Scheduling Certification"),
    ]:
        certification = mapping.entitlements[name].certification
        assert certification is not None
        assert (certification.course, certification.validity_years, certification.grace_days) == (course, 2, 0)
        assert certification.full_course_required_in == ()
    document = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))
    written = set(document["policy"]) | set(document["entitlements"]["walkin"]["certification"])
    assert written >= {
        "time_zone", "school_year_start", "eligible_roles", "approval_survives_role_change", "holidays",
        "recert_warning_days", "course", "validity_years", "grace_days", "full_course_required_in",
    }


def test_the_shipped_entitlements(mapping: Mapping) -> None:
    """walkin checks all but PREREQUISITE_MISSING; the others require walkin and their course."""
    walkin = mapping.entitlements["walkin"]
    assert set(walkin.requirements) == set(ReasonCode) - {ReasonCode.PREREQUISITE_MISSING, ReasonCode.DENIED_BY_OVERRIDE}
    assert walkin.prerequisites == ()
    assert walkin.approval_groups[0].attribute is GroupAttribute.DISPLAY_NAME
    for name in ("elementary_scheduling", "secondary_scheduling"):
        entitlement = mapping.entitlements[name]
        assert set(entitlement.requirements) == {
            ReasonCode.PREREQUISITE_MISSING, ReasonCode.CERT_BEFORE_LOSS, ReasonCode.NOT_CERTIFIED, ReasonCode.CERT_EXPIRED,
        }
        assert entitlement.prerequisites == ("walkin",)
        assert entitlement.directory_group.ldap_group_dn is None
        assert entitlement.directory_group.entra_group_id is None
    assert mapping.evaluation_order[0] == "walkin"


def test_the_shipped_attribute_sources(mapping: Mapping) -> None:
    """Facts come from the walk-in extension; job codes and locations are looked up."""
    attributes = mapping.attributes
    assert attributes.active == "active"
    assert attributes.role.source == f"{WALKIN_URN}:jobCode"
    assert attributes.location == f"{WALKIN_URN}:locationCode"
    assert attributes.assignment_start == f"{WALKIN_URN}:assignmentStartDate"
    assert attributes.certifications == f"{WALKIN_URN}:certifications"
    assert mapping.locations["C100"].type is LocationType.CENTRAL


@pytest.mark.parametrize(
    ("group", "location"),
    [
        ({"displayName": "WalkIn-Approvers-0123"}, "0123"),
        ({"displayName": "WalkIn-Approvers-C100"}, "C100"),
        ({"displayName": "walkin-approvers-0123"}, None),
        ({"displayName": "WalkIn-Approvers-0123-old"}, None),
        ({"displayName": "WalkIn-Approvers-"}, None),
        ({"externalId": "WalkIn-Approvers-0123"}, None),
        ({}, None),
    ],
    ids=["school", "central", "case", "suffix", "empty-location", "other-attribute", "no-name"],
)
def test_approval_group_location(mapping: Mapping, group: dict[str, str], location: str | None) -> None:
    """The pattern must match the whole displayName; its location group names the place."""
    assert mapping.entitlements["walkin"].approval_groups[0].location_of(group) == location


def _set(*keys: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


MISTAKES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown-key": (_set("entitlements", "walkin", "course", value="X"), "entitlements.walkin.course: unknown field"),
    "unknown-top-level-key": (_set("polcy", value={}), "polcy: unknown field"),
    "bad-date": (_set("policy", "holidays", 2, value="2026-13-01"), "policy.holidays[2]: invalid date '2026-13-01'"),
    "date-with-time": (_set("policy", "holidays", 0, value="2026-01-01T00:00"), "policy.holidays[0]: invalid date"),
    "bad-regex": (
        _set("entitlements", "walkin", "approval_groups", 0, "pattern", value="^WalkIn-(?P<location>\\w+"),
        "entitlements.walkin.approval_groups[0].pattern: invalid regular expression",
    ),
    "no-location-group": (
        _set("entitlements", "walkin", "approval_groups", 0, "pattern", value="^WalkIn-Approvers-(\\w+)$"),
        "entitlements.walkin.approval_groups[0].pattern: regular expression '^WalkIn-Approvers-(\\\\w+)$' has no named group",
    ),
    "bad-group-attribute": (
        _set("entitlements", "walkin", "approval_groups", 0, "attribute", value="description"),
        "entitlements.walkin.approval_groups[0].attribute:",
    ),
    "unknown-requirement": (
        _set("entitlements", "walkin", "requirements", 1, value="ROLE_NOT_ELIGBLE"),
        "entitlements.walkin.requirements[1]: unknown requirement 'ROLE_NOT_ELIGBLE'",
    ),
    "override-code-as-requirement": (
        _set("entitlements", "walkin", "requirements", 0, value="DENIED_BY_OVERRIDE"),
        "entitlements.walkin.requirements[0]: unknown requirement 'DENIED_BY_OVERRIDE'",
    ),
    "repeated-requirement": (
        _set("entitlements", "walkin", "requirements", 1, value="NOT_ACTIVE"),
        "entitlements.walkin.requirements: listed more than once: NOT_ACTIVE",
    ),
    "unknown-prerequisite": (
        _set("entitlements", "elementary_scheduling", "prerequisites", 0, value="walk_in"),
        "entitlements.elementary_scheduling.prerequisites[0]: unknown entitlement 'walk_in'",
    ),
    "prerequisite-without-code": (
        _set("entitlements", "elementary_scheduling", "requirements", value=["NOT_CERTIFIED"]),
        "entitlements.elementary_scheduling: PREREQUISITE_MISSING and 'prerequisites' go together",
    ),
    "certification-codes-without-course": (
        _drop("entitlements", "walkin", "certification"),
        "entitlements.walkin: certification requirements need a 'certification' section",
    ),
    "bad-attribute-path": (
        _set("attributes", "location", value=f"{WALKIN_URN}:locationCod"),
        "attributes.location: unknown attribute 'locationCod'",
    ),
    "unknown-schema": (
        _set("attributes", "location", value="urn:ietf:params:scim:schemas:extension:walkin:1.0:User:locationCode"),
        "attributes.location: unknown schema",
    ),
    "malformed-path": (_set("attributes", "location", value="title..x"), "attributes.location: invalid attribute path"),
    "path-of-wrong-type": (
        _set("attributes", "active", value="title"),
        "attributes.active: 'title' is a string attribute, a single boolean is needed",
    ),
    "multi-valued-path": (
        _set("attributes", "role", "source", value="emails"),
        "attributes.role.source: 'emails' is a multi-valued complex attribute",
    ),
    "certifications-path": (
        _set("attributes", "certifications", value="emails"),
        "attributes.certifications: 'emails' is not a multi-valued complex attribute with course, kind, completedOn",
    ),
    "missing-attribute": (_drop("attributes", "location"), "attributes.location: missing field"),
    "wrong-type-int": (
        _set("entitlements", "walkin", "certification", "validity_years", value="two"),
        "entitlements.walkin.certification.validity_years: Input should be a valid integer, got 'two'",
    ),
    "wrong-type-bool": (
        _set("policy", "approval_survives_role_change", value="sometimes"),
        "policy.approval_survives_role_change: Input should be a valid boolean, got 'sometimes'",
    ),
    "negative-grace": (
        _set("entitlements", "walkin", "certification", "grace_days", value=-1),
        "entitlements.walkin.certification.grace_days: Input should be greater than or equal to 0",
    ),
    "zero-validity": (
        _set("entitlements", "walkin", "certification", "validity_years", value=0),
        "entitlements.walkin.certification.validity_years: Input should be greater than or equal to 1",
    ),
    "bad-school-year": (
        _set("entitlements", "walkin", "certification", "full_course_required_in", value=["2026-28"]),
        "entitlements.walkin.certification.full_course_required_in[0]: invalid school year '2026-28'",
    ),
    "bad-month-day": (_set("policy", "school_year_start", value="7-1"), "policy.school_year_start: invalid month-day '7-1'"),
    "leap-day-start": (
        _set("policy", "school_year_start", value="02-29"),
        "policy.school_year_start: invalid month-day '02-29': not a day of every year",
    ),
    "bad-time-zone": (_set("policy", "time_zone", value="America/Denvr"), "policy.time_zone: unknown time zone 'America/Denvr'"),
    "bad-location-type": (_set("locations", "0123", "type", value="campus"), "locations.0123.type:"),
    "unquoted-location-code": (_set("locations", 83, value={"name": "X", "type": "school"}), "locations[83]: key must be a string"),
    "bad-entitlement-name": (
        _set("entitlements", "Walk In", value={"requirements": ["NOT_ACTIVE"]}),
        "entitlements: invalid entitlement name 'Walk In'",
    ),
    "no-entitlements": (_set("entitlements", value={}), "entitlements: Dictionary should have at least 1 item"),
    "no-requirements": (_set("entitlements", "walkin", "requirements", value=[]), "entitlements.walkin.requirements:"),
    "directory-group-typo": (
        _set("entitlements", "walkin", "directory_group", "ldap_dn", value="cn=x"),
        "entitlements.walkin.directory_group.ldap_dn: unknown field",
    ),
}


@pytest.mark.parametrize(("edit", "message"), list(MISTAKES.values()), ids=list(MISTAKES))
def test_a_mistake_names_its_key(edit: Callable[[dict[str, Any]], None], message: str) -> None:
    """Each kind of mistake stops loading with the key path and the problem."""
    document = shipped_document()
    edit(document)
    with pytest.raises(MappingError) as caught:
        parse_mapping(document, "walkin.yaml")
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems
    assert f"walkin.yaml: {message}" in str(caught.value)


def test_a_cycle_of_prerequisites_is_refused() -> None:
    """Entitlements requiring each other in a circle cannot be decided."""
    document = shipped_document()
    walkin = document["entitlements"]["walkin"]
    walkin["prerequisites"] = ["secondary_scheduling"]
    walkin["requirements"].append("PREREQUISITE_MISSING")
    with pytest.raises(MappingError, match=r"entitlements.walkin.prerequisites: cycle walkin -> secondary_scheduling -> walkin"):
        parse_mapping(document)


def test_an_entitlement_requiring_itself_is_a_cycle() -> None:
    """A self-prerequisite is the smallest cycle."""
    document = shipped_document()
    document["entitlements"]["walkin"]["prerequisites"] = ["walkin"]
    document["entitlements"]["walkin"]["requirements"].append("PREREQUISITE_MISSING")
    with pytest.raises(MappingError, match="cycle walkin -> walkin"):
        parse_mapping(document)


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes are listed together, one per line."""
    document = shipped_document()
    document["policy"]["grace"] = 3
    document["attributes"]["active"] = "title"
    with pytest.raises(MappingError) as caught:
        parse_mapping(document)
    assert len(caught.value.problems) == 2
    assert str(caught.value).count("\n") == 1


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policy: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "the mapping must be a YAML mapping"),
        ("", "the mapping must be a YAML mapping"),
        ("policy: {}\npolicy: {}\n", "duplicate key 'policy' (line 2, column 1)"),
    ],
    ids=["syntax", "list", "empty", "duplicate-key"],
)
def test_file_level_mistakes(tmp_path: Path, text: str, message: str) -> None:
    """A file that is not a YAML mapping, or repeats a key, is refused with its name."""
    path = _write(tmp_path, text)
    with pytest.raises(MappingError, match=re.escape(message)) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"mapping {path}: ")


def test_a_missing_file_is_a_mapping_error(tmp_path: Path) -> None:
    """An unreadable path is reported, not raised as OSError."""
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")


def test_unquoted_yaml_dates_and_quoted_ones_both_load(tmp_path: Path) -> None:
    """Holidays may be written as YAML dates or as quoted strings."""
    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("- 2025-09-01", "- '2025-09-01'")
    mapping = load_mapping(_write(tmp_path, text))
    assert mapping.policy.holidays[0] == date(2025, 9, 1)


def test_role_from_title(tmp_path: Path) -> None:
    """The role may be read from title without a job-code table."""
    document = shipped_document()
    document["attributes"]["role"] = {"source": "title"}
    mapping = parse_mapping(document)
    assert mapping.attributes.role.job_codes is None


def test_the_mapping_is_frozen(mapping: Mapping) -> None:
    """Settings cannot be changed after loading."""
    with pytest.raises(ValueError, match="frozen"):
        mapping.policy.time_zone = "UTC"  # type: ignore[misc]
