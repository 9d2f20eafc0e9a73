"""PATCH semantics (RFC 7644 §3.5.2) on the pure engine, plus Entra's forms."""

from __future__ import annotations

import logging

import pytest

from connector.scim.errors import InvalidPath, InvalidValue, Mutability, NoTarget, ScimError, TooMany
from connector.scim.patch import MAX_FILTER_WORK, MemberAction, MemberOp, Op, apply_patch, parse_operations
from connector.scim.paths import parse_path, schema_of
from connector.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP,
    USER,
    USER_SCHEMA,
    WALKIN_SCHEMA,
    Attr,
    ResourceKind,
    Schema,
)
from connector.settings import ScimSettings

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
MAX_VALUES = ScimSettings().max_values_per_attribute
BASE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "a@d.org",
    "name": {"givenName": "Ann", "familyName": "Lee"},
    "emails": [{"type": "work", "value": "a@d.org", "primary": True}, {"type": "home", "value": "a@h.net"}],
    "roles": [{"value": "r1"}, {"value": "r2"}],
}


def run(*ops, data=None, kind=USER):
    parsed = parse_operations({"Operations": list(ops)}, 100)
    return apply_patch(kind, data or BASE, parsed, max_values=MAX_VALUES)


CASES = [
    ("add simple", {"op": "add", "path": "title", "value": "T"}, lambda d: d["title"] == "T"),
    ("replace simple", {"op": "replace", "path": "userName", "value": "b@d.org"}, lambda d: d["userName"] == "b@d.org"),
    ("capitalised op and name", {"op": "Replace", "path": "UserName", "value": "c@d.org"},
     lambda d: d["userName"] == "c@d.org"),
    ("string boolean", {"op": "Replace", "path": "active", "value": "False"}, lambda d: d["active"] is False),
    ("sub-attribute", {"op": "replace", "path": "name.familyName", "value": "Kim"},
     lambda d: d["name"] == {"givenName": "Ann", "familyName": "Kim"}),
    ("complex merge", {"op": "add", "path": "name", "value": {"middleName": "Q"}},
     lambda d: d["name"] == {"givenName": "Ann", "familyName": "Lee", "middleName": "Q"}),
    ("multi add appends", {"op": "add", "path": "roles", "value": [{"value": "r3"}]},
     lambda d: [r["value"] for r in d["roles"]] == ["r1", "r2", "r3"]),
    ("multi add is idempotent", {"op": "add", "path": "roles", "value": [{"value": "r1"}]},
     lambda d: [r["value"] for r in d["roles"]] == ["r1", "r2"]),
    ("multi replace", {"op": "replace", "path": "roles", "value": [{"value": "r9"}]},
     lambda d: d["roles"] == [{"value": "r9"}]),
    ("filtered sub replace", {"op": "replace", "path": 'emails[type eq "work"].value', "value": "n@d.org"},
     lambda d: d["emails"][0] == {"type": "work", "value": "n@d.org", "primary": True}),
    ("filtered create on absent (add)", {"op": "add", "path": 'emails[type eq "other"].value', "value": "o@x"},
     lambda d: d["emails"][-1] == {"type": "other", "value": "o@x"}),
    ("filtered create on absent (replace)", {"op": "Replace", "path": 'emails[type eq "other"].value', "value": "o@x"},
     lambda d: d["emails"][-1] == {"type": "other", "value": "o@x"}),
    ("filtered merge", {"op": "replace", "path": 'emails[type eq "home"]', "value": {"display": "Home"}},
     lambda d: d["emails"][1] == {"type": "home", "value": "a@h.net", "display": "Home"}),
    ("new primary clears the old", {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
     lambda d: [e.get("primary") for e in d["emails"]] == [False, True]),
    ("remove simple", {"op": "remove", "path": "name.givenName"}, lambda d: d["name"] == {"familyName": "Lee"}),
    ("remove filtered", {"op": "remove", "path": 'emails[type eq "home"]'},
     lambda d: [e["type"] for e in d["emails"]] == ["work"]),
    ("remove filtered sub", {"op": "remove", "path": 'emails[type eq "home"].value'},
     lambda d: d["emails"][1] == {"type": "home"}),
    ("remove listed values only", {"op": "Remove", "path": "roles", "value": [{"value": "r2"}]},
     lambda d: d["roles"] == [{"value": "r1"}]),
    ("remove whole multi", {"op": "remove", "path": "roles"}, lambda d: "roles" not in d),
    ("no-path dotted and URN keys", {"op": "replace", "value": {
        "displayName": "D", "name.givenName": "G", f"{ENT}:employeeNumber": "7", "urn:unknown:x": 1}},
     lambda d: d["displayName"] == "D" and d["name"]["givenName"] == "G" and d[ENT] == {"employeeNumber": "7"}),
    ("no-path add with extension object", {"op": "add", "value": {WALKIN: {"jobCode": "OP01"}}},
     lambda d: d[WALKIN] == {"jobCode": "OP01"} and WALKIN in d["schemas"]),
    ("extension attribute path", {"op": "add", "path": f"{WALKIN}:certifications", "value": [
        {"course": "C", "kind": "full", "completedOn": "2025-09-15"}]},
     lambda d: d[WALKIN]["certifications"] == [{"course": "C", "kind": "full", "completedOn": "2025-09-15"}]),
    ("manager as a list", {"op": "Add", "path": f"{ENT}:manager", "value": [{"$ref": None, "value": "m"}]},
     lambda d: d[ENT]["manager"] == {"value": "m"}),
    ("manager as a bare string", {"op": "add", "path": f"{ENT}:manager", "value": "m2"},
     lambda d: d[ENT]["manager"] == {"value": "m2"}),
    ("replace with null removes", {"op": "replace", "path": "userName", "value": "x"},
     lambda d: d["userName"] == "x"),
    ("remove whole extension", {"op": "remove", "path": ENT}, lambda d: ENT not in d),
]


@pytest.mark.parametrize(("name", "operation", "check"), CASES, ids=[c[0] for c in CASES])
def test_patch_operation(name, operation, check):
    """Each operation form changes exactly what it names."""
    result = run(operation)
    assert check(result.data), result.data
    assert BASE["emails"][0]["value"] == "a@d.org"  # the input is never mutated


@pytest.mark.parametrize(("operation", "error"), [
    ({"op": "remove"}, NoTarget),
    ({"op": "add", "path": "id", "value": "x"}, Mutability),
    ({"op": "add", "path": "groups", "value": [{"value": "g"}]}, Mutability),
    ({"op": "add", "path": "nope", "value": 1}, InvalidPath),
    ({"op": "add", "path": "name.nope", "value": 1}, InvalidPath),
    ({"op": "add", "path": "title[x eq 1]", "value": 1}, InvalidPath),
    ({"op": "add", "path": 'emails[type eq "w"', "value": 1}, InvalidPath),
    ({"op": "add", "path": "active", "value": "maybe"}, InvalidValue),
    ({"op": "replace", "path": 'emails[type co "zz"].value', "value": "x@y"}, NoTarget),
    ({"op": "remove", "path": "userName"}, InvalidValue),
    ({"op": "add", "path": "urn:unknown:1.0:User:x", "value": 1}, InvalidPath),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_bad_operations_raise_scim_errors(operation, error):
    """Bad paths, read-only targets, wrong types and missing targets are 4xx errors."""
    with pytest.raises(error):
        run(operation)


def test_group_member_operations_are_extracted_not_applied():
    """members changes leave the data and come out as ordered member operations."""
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"}
    result = run(
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}, "u2"]},
        {"op": "Remove", "path": "members", "value": [{"value": "u1"}]},
        {"op": "remove", "path": 'members[value eq "u3"]'},
        {"op": "replace", "path": "members", "value": [{"value": "u4"}]},
        {"op": "replace", "value": {"displayName": "H"}},
        data=group, kind=GROUP,
    )
    assert result.data == {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "H"}
    assert [m.action for m in result.members] == [
        MemberAction.ADD, MemberAction.REMOVE, MemberAction.REMOVE_WHERE, MemberAction.REPLACE]
    assert result.members[0] == MemberOp(MemberAction.ADD, ids=("u1", "u2"))
    assert result.members[1] == MemberOp(MemberAction.REMOVE, ids=("u1",))
    # A replace is one operation, so the store can keep the members it lists again.
    assert result.members[3] == MemberOp(MemberAction.REPLACE, ids=("u4",))


def test_operations_parse_every_op_spelling():
    """'Add', 'REPLACE', 'remove' all parse; unknown ops are invalidSyntax."""
    ops = parse_operations({"Operations": [{"op": "Add", "path": "a", "value": 1}, {"op": "REPLACE", "path": "a", "value": 2},
                                           {"op": "remove", "path": "a"}]}, 10)
    assert [o for o, _, _ in ops] == [Op.ADD, Op.REPLACE, Op.REMOVE]
    with pytest.raises(ScimError) as exc:
        parse_operations({"Operations": [{"op": "move", "path": "a"}]}, 10)
    assert exc.value.scim_type == "invalidSyntax"


# RFC 7644 §3.10: a path may leave out the URN of the schema its attribute is in.
# A second extension sharing jobCode with the walkin one, for the naming conflict
# the shipped schemas do not have.
OTHER = Schema(id="urn:example:params:scim:schemas:extension:other:2.0:User", name="Other",
               description="Test extension", attributes=(Attr("jobCode"), Attr("displayName")))
TWO_SHARING = ResourceKind("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA, WALKIN_SCHEMA, OTHER))


@pytest.mark.parametrize(("text", "schema", "attr", "sub"), [
    ("manager", ENT, "manager", None),
    ("MANAGER", ENT, "manager", None),
    ("manager.value", ENT, "manager", "value"),
    (f"{ENT}:manager", ENT, "manager", None),
    ("employeeNumber", ENT, "employeeNumber", None),
    ("jobCode", WALKIN, "jobCode", None),
    ('certifications[kind eq "full"].completedOn', WALKIN, "certifications", "completedOn"),
    ("displayName", USER.core.id, "displayName", None),
    ("name.givenName", USER.core.id, "name", "givenName"),
], ids=["manager", "any-case", "manager.value", "with-urn", "employeeNumber", "walkin-jobCode",
        "walkin-filtered", "core", "core-sub"])
def test_paths_without_urn_resolve_to_the_one_schema_defining_them(text, schema, attr, sub):
    """A name outside the core schema resolves to the one extension that defines it."""
    path = parse_path(USER, text)
    assert (path.schema.id, path.attr.name, path.sub.name if path.sub else None) == (schema, attr, sub)
    assert path.extension is (schema != USER.core.id)


def test_a_name_two_extensions_define_is_an_invalid_path_naming_both():
    """Ambiguity is refused, naming the candidate URNs; a URN or a core name settles it."""
    for text in ("jobCode", "JOBCODE.x", 'jobCode[value eq "x"]'):
        with pytest.raises(InvalidPath) as exc:
            parse_path(TWO_SHARING, text)
        assert WALKIN in exc.value.detail and OTHER.id in exc.value.detail, exc.value.detail
    with pytest.raises(InvalidPath):
        apply_patch(TWO_SHARING, BASE, parse_operations({"Operations": [{"op": "add", "value": {"jobCode": "J"}}]}, 10),
                    max_values=MAX_VALUES)
    assert schema_of(TWO_SHARING, "manager") is ENTERPRISE_SCHEMA
    assert schema_of(TWO_SHARING, "displayName") is USER_SCHEMA  # the core schema wins
    assert parse_path(TWO_SHARING, f"{OTHER.id}:jobCode").schema is OTHER
    assert schema_of(TWO_SHARING, "shoeSize") is USER_SCHEMA  # unknown: core reports it


def test_no_path_keys_without_urn_go_to_their_extension():
    """No-path value keys go through the same resolver."""
    result = run({"op": "replace", "value": {"manager": "m1", "jobCode": "J1", "title": "T"}})
    assert result.data[ENT] == {"manager": {"value": "m1"}} and result.data[WALKIN] == {"jobCode": "J1"}
    assert result.data["title"] == "T"


@pytest.mark.parametrize(("operation", "check"), [
    ({"op": "add", "path": "emails", "value": [{"value": "b@d.org", "colour": "red"}]},
     lambda d: d["emails"][-1] == {"value": "b@d.org"}),
    ({"op": "replace", "path": 'emails[type eq "home"]', "value": {"display": "H", "colour": "red"}},
     lambda d: d["emails"][1] == {"type": "home", "value": "a@h.net", "display": "H"}),
    ({"op": "add", "path": "name", "value": {"middleName": "Q", "nickname": "Al"}},
     lambda d: d["name"] == {"givenName": "Ann", "familyName": "Lee", "middleName": "Q"}),
    ({"op": "add", "path": "manager", "value": {"value": "m1", "boss": "b"}},
     lambda d: d[ENT] == {"manager": {"value": "m1"}}),
    ({"op": "add", "value": {WALKIN: {"certifications": [{"course": "C", "grade": "A"}]}}},
     lambda d: d[WALKIN] == {"certifications": [{"course": "C"}]}),
], ids=["multi", "filtered", "single", "manager", "no-path-extension"])
def test_unknown_sub_attributes_of_a_value_are_dropped_with_a_warning(operation, check, caplog):
    """An unknown sub-attribute inside a complex value is ignored and logged."""
    with caplog.at_level(logging.WARNING, logger="connector.scim.values"):
        result = run(operation)
    assert check(result.data), result.data
    assert len(caplog.records) == 1 and "ignored sub-attributes" in caplog.records[0].getMessage()


def test_unknown_member_sub_attributes_are_dropped_once_per_attribute(caplog):
    """Entra's {"displayName", "value"} member adds the member; one warning for the list."""
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"}
    with caplog.at_level(logging.WARNING, logger="connector.scim.values"):
        result = run({"name": "addMember", "op": "Add", "path": "members",
                      "value": [{"displayName": "Jane", "value": "u1"}, {"displayName": "Joe", "value": "u2"}]},
                     data=group, kind=GROUP)
    assert result.members == [MemberOp(MemberAction.ADD, ids=("u1", "u2"))]
    assert [r.getMessage() for r in caplog.records] == [
        "'members': ignored sub-attributes the schema does not define: 'displayName'"]


@pytest.mark.parametrize("operation", [
    {"op": "add", "path": "favouriteColour", "value": "blue"},
    {"op": "add", "value": {"favouriteColour": "blue"}},
    {"op": "add", "path": "name.nickname", "value": "Al"},
    {"op": "add", "path": "manager", "value": {"boss": "b"}},
], ids=["core-attribute", "no-path-key", "sub-attribute-path", "manager-without-value"])
def test_unknown_attributes_and_paths_are_still_refused(operation):
    """Only sub-attributes inside a value are dropped; unknown attributes and paths are 400."""
    with pytest.raises((InvalidPath, InvalidValue)):
        run(operation)


# ------------------------------------------- duplicates, sizes and cost (issue 12)

CERT = {"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2024-02-01"}
X509 = "TUlJQmFBPT0="  # base64; a copy in another case is another certificate


def emails(data: dict) -> list:
    return data.get("emails", [])


@pytest.mark.parametrize(("operation", "expected"), [
    pytest.param({"op": "add", "path": "emails", "value": [{"value": "a@d.org", "type": "work", "primary": True}]},
                 BASE["emails"], id="same-value-again"),
    pytest.param({"op": "add", "path": "emails", "value": [{"primary": True, "value": "a@d.org", "type": "work"}]},
                 BASE["emails"], id="key-order"),
    pytest.param({"op": "add", "path": "emails", "value": [{"value": "A@D.ORG", "type": "Work", "primary": True}]},
                 BASE["emails"], id="case-of-caseExact-false-sub-attributes"),
    pytest.param({"op": "add", "path": "emails", "value": [{"value": "a@h.net", "type": "home", "primary": True}]},
                 [{"type": "work", "value": "a@d.org", "primary": False},
                  {"type": "home", "value": "a@h.net", "primary": True}], id="same-value-made-primary"),
    pytest.param({"op": "add", "path": "emails", "value": [
        {"value": "n@d.org", "type": "other"}, {"type": "other", "value": "N@d.org"},
        {"value": "n@d.org", "type": "other"},
    ]}, BASE["emails"] + [{"value": "n@d.org", "type": "other"}], id="within-the-request-first-kept"),
    pytest.param({"op": "replace", "path": "emails", "value": [
        {"value": "n@d.org"}, {"value": "N@D.org"}, {"value": "m@d.org"}, {"value": "M@d.ORG"},
    ]}, [{"value": "n@d.org"}, {"value": "m@d.org"}], id="replace-drops-duplicates-too"),
    pytest.param({"op": "add", "path": "emails", "value": [{"value": "a@d.org", "type": "home"}]},
                 BASE["emails"] + [{"value": "a@d.org", "type": "home"}], id="another-type-is-another-value"),
])
def test_values_already_present_are_not_added_twice(operation, expected):
    """RFC 7644 §3.5.2.1: an add (or replace) keeps one of equal values, equal up to key
    order, primary, and the case of sub-attributes that are not caseExact."""
    assert emails(run(operation).data) == expected


def test_case_exact_values_differing_in_case_are_kept():
    """Binary values are case exact (RFC 7643 §2.3.6): two certificates, not one."""
    data = run({"op": "add", "path": "x509Certificates", "value": [{"value": X509}, {"value": X509.lower()},
                                                                  {"value": X509}]}).data
    assert data["x509Certificates"] == [{"value": X509}, {"value": X509.lower()}]


def test_certifications_are_duplicates_in_any_case_as_the_schema_says():
    """The walkin certifications' sub-attributes are not caseExact: a copy in another case is the same completion."""
    data = run({"op": "add", "path": f"{WALKIN}:certifications", "value": [
        CERT, {k: v.upper() for k, v in CERT.items()}, {"completedOn": "2024-02-01", "course": CERT["course"].lower(),
                                                        "kind": "Full"},
        dict(CERT, completedOn="2025-02-01"),
    ]}).data
    assert data[WALKIN]["certifications"] == [CERT, dict(CERT, completedOn="2025-02-01")]


def test_remove_listed_values_matches_them_case_insensitively():
    """Removing {"value": "A@H.NET"} removes the a@h.net email: emails.value is not caseExact."""
    assert emails(run({"op": "remove", "path": "emails", "value": [{"value": "A@H.NET"}]}).data) == BASE["emails"][:1]


def test_no_operation_grows_an_attribute_past_the_limit():
    """max_values bounds each attribute after each operation (400 tooMany naming both), counting
    distinct values; an attribute already over the limit may keep, not grow, what it has."""
    parsed = parse_operations({"Operations": [{"op": "add", "path": "roles", "value": [{"value": "r3"}]}]}, 10)
    with pytest.raises(TooMany) as exc:
        apply_patch(USER, BASE, parsed, max_values=2)
    assert "'roles'" in exc.value.detail and "2" in exc.value.detail and exc.value.scim_type == "tooMany"
    again = parse_operations({"Operations": [{"op": "add", "path": "roles", "value": [{"value": "R1"}] * 50}]}, 10)
    assert apply_patch(USER, BASE, again, max_values=2).data["roles"] == BASE["roles"]
    title = parse_operations({"Operations": [{"op": "replace", "path": "title", "value": "T"},
                                             {"op": "add", "path": "roles", "value": [{"value": "r1"}]}]}, 10)
    assert apply_patch(USER, BASE, title, max_values=1).data["title"] == "T"  # 2 roles stored, limit 1
    with pytest.raises(TooMany):
        apply_patch(USER, BASE, parsed, max_values=1)


def test_value_filters_have_a_work_budget():
    """Operations × values × comparisons of value filters is bounded: beyond it, tooMany."""
    many = {"schemas": BASE["schemas"], "userName": "a@d.org", "emails": [{"value": f"u{i}@d.org"} for i in range(500)]}
    one = {"op": "replace", "path": 'emails[value eq "u1@d.org" or type eq "x"].display', "value": "D"}
    within = MAX_FILTER_WORK // (500 * 2)
    data = apply_patch(USER, many, parse_operations({"Operations": [one] * within}, 1000), max_values=500).data
    assert data["emails"][1] == {"value": "u1@d.org", "display": "D"}
    with pytest.raises(TooMany) as exc:
        apply_patch(USER, many, parse_operations({"Operations": [one] * (within + 1)}, 1000), max_values=500)
    assert str(MAX_FILTER_WORK) in exc.value.detail
