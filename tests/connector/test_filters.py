"""Filters (RFC 7644 §3.4.2.2) run as SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from connector.scim.errors import InvalidFilter
from connector.scim.filters import Compare, Logical, Not, ValuePath, parse
from tests.conftest import AUTH

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"

PEOPLE = [
    {"userName": "Alice@d.org", "externalId": "A1", "displayName": "Alice Adams", "title": "Office Professional",
     "active": True, "name": {"givenName": "Alice", "familyName": "Adams"},
     "emails": [{"type": "work", "value": "alice@d.org", "primary": True}, {"type": "home", "value": "al@home.net"}],
     ENT: {"employeeNumber": "100", "department": "Front Office"},
     WALKIN: {"jobCode": "OP01", "locationCode": "0123", "assignmentStartDate": "2024-08-01",
              "certifications": [{"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2025-09-15"}]}},
    {"userName": "bob@d.org", "externalId": "b2", "displayName": "Bob Brown", "title": "Teacher", "active": False,
     "name": {"givenName": "Bob", "familyName": "Brown"}, "emails": [{"type": "work", "value": "bob@d.org"}],
     ENT: {"employeeNumber": "200"}, WALKIN: {"jobCode": "TCH", "locationCode": "0456"}},
    {"userName": "carol_x@d.org", "externalId": "C3", "displayName": "Carol 100% Clark", "active": True,
     "emails": [{"type": "home", "value": "carol@d.org"}],
     WALKIN: {"locationCode": "C100", "certifications": [
         {"course": "Walk-In Scheduling Certification", "kind": "recert", "completedOn": "2026-05-01"}]}},
    {"userName": 'dan"quote@d.org', "displayName": "Dan", "active": True},
]


@pytest.fixture
def people(client):
    ids = {}
    for person in PEOPLE:
        r = client.post("/scim/v2/Users", json=person, headers=AUTH)
        assert r.status_code == 201, r.get_json()
        ids[person["userName"]] = r.get_json()["id"]
    return ids


def _names(client, expr: str, **params) -> list[str]:
    r = client.get("/scim/v2/Users", query_string={"filter": expr, "count": 50, **params}, headers=AUTH)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["totalResults"] == len(body["Resources"])
    return sorted(u["userName"] for u in body["Resources"])


CASES = [
    ('userName eq "alice@D.ORG"', ["Alice@d.org"]),
    ('userName ne "alice@d.org"', ["bob@d.org", "carol_x@d.org", 'dan"quote@d.org']),
    ('userName co "ARO"', ["carol_x@d.org"]),
    ('userName sw "b"', ["bob@d.org"]),
    ('userName ew "@D.org"', ["Alice@d.org", "bob@d.org", "carol_x@d.org", 'dan"quote@d.org']),
    ('userName gt "bob@d.org"', ["carol_x@d.org", 'dan"quote@d.org']),
    ('userName ge "bob@d.org"', ["bob@d.org", "carol_x@d.org", 'dan"quote@d.org']),
    ('userName lt "bob@d.org"', ["Alice@d.org"]),
    ('userName le "bob@d.org"', ["Alice@d.org", "bob@d.org"]),
    ('userName eq "dan\\"quote@d.org"', ['dan"quote@d.org']),
    ('userName sw "%"', []),
    ('userName co "_"', ["carol_x@d.org"]),
    ('displayName co "100%"', ["carol_x@d.org"]),
    ('externalId eq "a1"', []),
    ('externalId eq "A1"', ["Alice@d.org"]),
    ("title pr", ["Alice@d.org", "bob@d.org"]),
    ("not (title pr)", ["carol_x@d.org", 'dan"quote@d.org']),
    ('title ne "teacher"', ["Alice@d.org", "carol_x@d.org", 'dan"quote@d.org']),
    ("active eq false", ["bob@d.org"]),
    ("active eq true and title pr", ["Alice@d.org"]),
    ('userName sw "a" or userName sw "b" and active eq true', ["Alice@d.org"]),
    ('(userName sw "a" or userName sw "b") and active eq false', ["bob@d.org"]),
    ('not (userName sw "a" or userName sw "b")', ["carol_x@d.org", 'dan"quote@d.org']),
    ('name.givenName eq "alice"', ["Alice@d.org"]),
    ('name.familyName sw "B"', ["bob@d.org"]),
    ('emails eq "bob@d.org"', ["bob@d.org"]),
    ('emails.value co "home"', ["Alice@d.org"]),
    ('emails[type eq "work"].value eq "ALICE@d.org"', ["Alice@d.org"]),
    ('emails[type eq "home"].value eq "alice@d.org"', []),
    ('emails[type eq "work" and primary eq true]', ["Alice@d.org"]),
    ('emails[type eq "home" or value sw "bob"]', ["Alice@d.org", "bob@d.org", "carol_x@d.org"]),
    ("emails pr", ["Alice@d.org", "bob@d.org", "carol_x@d.org"]),
    ('meta.created gt "2000-01-01T00:00:00Z"', ["Alice@d.org", "bob@d.org", "carol_x@d.org", 'dan"quote@d.org']),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', []),
    (f'{ENT}:employeeNumber eq "200"', ["bob@d.org"]),
    (f'{ENT}:department co "office"', ["Alice@d.org"]),
    (f'{WALKIN}:locationCode eq "c100"', ["carol_x@d.org"]),
    (f'{WALKIN}:jobCode eq "OP01" and {WALKIN}:locationCode eq "0123"', ["Alice@d.org"]),
    (f'{WALKIN}:assignmentStartDate ge "2024-01-01"', ["Alice@d.org"]),
    (f'{WALKIN}:certifications[kind eq "recert"]', ["carol_x@d.org"]),
    (f'{WALKIN}:certifications.completedOn lt "2026-01-01"', ["Alice@d.org"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@d.org"', ["bob@d.org"]),
    ('USERNAME EQ "bob@d.org"', ["bob@d.org"]),
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0] for c in CASES])
def test_filter(client, people, expr, expected):
    """Each operator and attribute returns exactly the matching users."""
    assert _names(client, expr) == expected


def test_filters_of_one_shape_share_a_statement_and_keep_their_values(client, people):
    """The statement prepared for a filter's shape runs with each request's own values."""
    for _ in range(2):
        for expr, expected in CASES:
            assert _names(client, expr) == expected, expr
    for person in PEOPLE:
        assert _names(client, f'userName eq {json.dumps(person["userName"])}') == [person["userName"]]
    assert _names(client, "title eq null") == ["carol_x@d.org", 'dan"quote@d.org']
    assert _names(client, 'title eq "teacher"') == ["bob@d.org"]


def test_prepared_shapes_tell_forms_apart_not_values():
    """Shapes differ by attribute, operator and form (null, present, a value), never by the value."""
    from connector.scim.filter_sql import prepare
    from connector.store.fields import USER_FIELDS

    def shape(expr):
        return prepare(parse(expr), USER_FIELDS)

    assert shape('userName eq "a"')[0] == shape('userName eq "b"')[0]
    assert shape('userName eq "A"')[1] == {"f0": "a"}
    assert shape('userName co "5%"')[1] == {"f0": "%5\\%%"}
    assert shape('externalId eq "A"')[1] == {"f0": "A"}
    assert shape("active eq \"False\"")[1] == {"f0": False}
    assert len({shape(e)[0] for e in ('title eq null', 'title eq "x"', 'title pr', 'title ne "x"',
                                      'nickName eq "x"', 'emails[type eq "x"]')}) == 6
    assert shape('emails[type eq "a" and value sw "b"] or title eq "c"')[1] == {"f0": "a", "f1": "b%", "f2": "c"}


def test_filter_by_id_and_group_membership(client, people):
    """id and groups.value filters."""
    alice = people["Alice@d.org"]
    gid = client.post("/scim/v2/Groups", json={"displayName": "G", "members": [{"value": alice}]},
                      headers=AUTH).get_json()["id"]
    assert _names(client, f'id eq "{alice}"') == ["Alice@d.org"]
    assert _names(client, f'groups.value eq "{gid}"') == ["Alice@d.org"]
    r = client.get("/scim/v2/Groups", query_string={"filter": f'members[value eq "{alice}"]'}, headers=AUTH)
    assert [g["id"] for g in r.get_json()["Resources"]] == [gid]
    r = client.get("/scim/v2/Groups", query_string={"filter": 'displayName eq "g"'}, headers=AUTH)
    assert r.get_json()["totalResults"] == 1


@pytest.mark.parametrize("expr", [
    'nickName2 eq "x"',
    'userName eq "a" and favouriteColour eq "blue"',
    'userName eq "a" or password eq "x"',
    "active gt true",
    'meta.created co "2020"',
    'meta.created eq "yesterday"',
    "userName eq true",
    "(userName eq \"a\"",
    'emails[type eq "work"',
    'userName xx "a"',
    'name[givenName eq "a"]',
], ids=str)
def test_unsupported_or_malformed_filters_are_400_invalidFilter(client, people, expr):
    """Never an unfiltered list: a bad filter is 400 invalidFilter."""
    r = client.get("/scim/v2/Users", query_string={"filter": expr}, headers=AUTH)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["scimType"] == "invalidFilter"


def test_and_binds_tighter_than_or():
    """scim2-filter-parser gives and/or one precedence; parse() fixes it."""
    tree = parse('a eq "1" or b eq "2" and c eq "3"')
    assert tree == Logical("or", Compare("a", "eq", "1"), Logical("and", Compare("b", "eq", "2"), Compare("c", "eq", "3")))


def test_literals_are_typed():
    """true/false/null and numbers are not strings; escaped quotes work."""
    assert parse("x eq true") == Compare("x", "eq", True)
    assert parse('x eq "true"') == Compare("x", "eq", "true")
    assert parse("x eq 42") == Compare("x", "eq", 42)
    assert parse("x eq 4.5") == Compare("x", "eq", 4.5)
    assert parse("x eq null") == Compare("x", "eq", None)
    assert parse('not (x eq "a\\"b")') == Not(Compare("x", "eq", 'a"b'))
    assert parse('emails[type eq "work"]') == ValuePath("emails", Compare("emails.type", "eq", "work"))


def test_overlong_and_deeply_nested_filters_are_rejected():
    """Length and nesting limits answer invalidFilter, not a crash."""
    with pytest.raises(InvalidFilter):
        parse('userName eq "' + "a" * 5000 + '"')
    with pytest.raises(InvalidFilter):
        parse("(" * 1500 + 'a eq "1"' + ")" * 1500)


def test_pagination_sorting_and_exact_totals(client, people):
    """startIndex/count pages with exact totalResults; sortBy with sortOrder."""
    r = client.get("/scim/v2/Users", query_string={"sortBy": "userName", "startIndex": 2, "count": 2}, headers=AUTH)
    body = r.get_json()
    assert body["totalResults"] == 4 and body["startIndex"] == 2 and body["itemsPerPage"] == 2
    assert [u["userName"] for u in body["Resources"]] == ["bob@d.org", "carol_x@d.org"]
    r = client.get("/scim/v2/Users", query_string={"sortBy": "title", "sortOrder": "descending"}, headers=AUTH)
    titles = [u.get("title") for u in r.get_json()["Resources"]]
    assert titles[:2] == [None, None] and titles[2:] == ["Teacher", "Office Professional"]
    r = client.get("/scim/v2/Users", query_string={"count": 0}, headers=AUTH)
    assert r.get_json()["totalResults"] == 4 and r.get_json()["Resources"] == []
    r = client.get("/scim/v2/Users", query_string={"startIndex": 10}, headers=AUTH)
    assert r.get_json()["totalResults"] == 4 and r.get_json()["Resources"] == []


def test_search_endpoint_and_root_search(client, people):
    """POST /.search with a SearchRequest body, on a type and at the root."""
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName sw "a"',
            "attributes": ["userName"], "count": 10}
    r = client.post("/scim/v2/Users/.search", json=body, headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["Resources"] == [{"schemas": r.get_json()["Resources"][0]["schemas"],
                                          "id": people["Alice@d.org"], "userName": "Alice@d.org",
                                          "meta": r.get_json()["Resources"][0]["meta"]}]
    client.post("/scim/v2/Groups", json={"displayName": "Admins"}, headers=AUTH)
    r = client.post("/scim/v2/.search", json={"filter": 'displayName sw "a"'}, headers=AUTH)
    kinds = sorted(x["meta"]["resourceType"] for x in r.get_json()["Resources"])
    assert kinds == ["Group", "User"] and r.get_json()["totalResults"] == 2
