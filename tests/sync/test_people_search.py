"""The console's search box (sync/lookup.py search): the start of a userName, a
display, given or family name (either way round), an email address or an employee
number, or an id or externalId exactly; wildcards are literal; a searcher's scope is
their locations; a page at a time."""

from __future__ import annotations

import pytest

from sync.lookup import PAGE, search
from tests.conftest import AUTH
from tests.connector.test_admin_api import District
from tests.integration import examples

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

#: name → the SCIM User sent
PEOPLE = {
    "J": {"userName": "jsmith@d.org", "externalId": "HR-77", "displayName": "Jane Smith",
          "name": {"givenName": "Jane", "familyName": "Smith"},
          "emails": [{"value": "js@home.example", "type": "home"},
                     {"value": "Jane.Smith@d.org", "type": "work", "primary": True}],
          ENTERPRISE: {"employeeNumber": "E1001"}},
    "K": {"userName": "kbrown@d.org", "displayName": "Karl Brown",
          "name": {"givenName": "Karl", "familyName": "Brown"}, ENTERPRISE: {"employeeNumber": "E1002"}},
    "L": {"userName": "l_100%@d.org", "displayName": "Lee 100%"},
    "M": {"userName": "m@d.org", "name": {"givenName": "Smitty", "familyName": "Jones"}},
}


@pytest.fixture
def people(client) -> dict[str, str]:
    ids = {}
    for name, body in PEOPLE.items():
        r = client.post("/scim/v2/Users", json=body, headers=AUTH)
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
    return ids


def _found(store, text: str, **kwargs) -> list[str]:
    with store.session_read() as session:
        return [p.id for p in search(session, text, **kwargs).people]


@pytest.mark.parametrize(("text", "expected"), [
    ("jsm", ["J"]),  # userName
    ("JSMITH@D.ORG", ["J"]),
    ("Jane", ["J"]),  # given and display name
    ("smith", ["J"]),  # family name (M's given name is Smitty: "smit", not "smith")
    ("smit", ["J", "M"]),
    ("jane smi", ["J"]),  # given then family
    ("smith jane", ["J"]),  # family then given
    ("Smith, J", ["J"]),
    ("  jane   smith ", ["J"]),  # spaces as a person types them
    ("karl smith", []),
    ("E100", ["J", "K"]),  # employee number
    ("e1002", ["K"]),
    ("jane.smith@", ["J"]),  # the primary email
    ("js@home", ["J"]),  # another email
    ("HR-77", ["J"]),  # externalId, exactly
    ("hr-77", []),
    ("l_1", ["L"]),  # the wildcards are the characters themselves
    ("k_r", []),
    ("l%", []),
    ("lee 100%", ["L"]),
    ("%", []),
    ("nobody", []),
], ids=lambda v: v if isinstance(v, str) else None)
def test_what_a_search_finds(store, people, text, expected):
    assert _found(store, text) == [people[n] for n in expected]


def test_an_id_finds_its_person_and_nothing_odd_fails(store, people):
    """An id exactly; an empty, over-long or control-character search finds nobody
    (PostgreSQL cannot compare a NUL) rather than failing."""
    assert _found(store, people["K"]) == [people["K"]]
    for text in ("", "   ", "j\x00", "j\nsm", "j" * 257):
        assert _found(store, text) == []


def test_a_result_shows_the_names_as_sent(store, people):
    with store.session_read() as session:
        (jane,) = search(session, "jsmith").people
    assert (jane.user_name, jane.display_name, jane.employee_number, jane.email) == (
        "jsmith@d.org", "Jane Smith", "E1001", "jane.smith@d.org")
    assert jane.location is None  # not decided yet
    with store.session_read() as session:
        (smitty,) = search(session, "smitty").people
    assert smitty.display_name == "Smitty Jones"  # no displayName: the given and family names


def test_a_page_at_a_time_in_username_order(store, client):
    for i in reversed(range(PAGE + 5)):
        assert client.post("/scim/v2/Users", json={"userName": f"staff{i:02d}@d.org"}, headers=AUTH).status_code == 201
    with store.session_read() as session:
        first = search(session, "staff")
        assert [p.user_name for p in first.people] == [f"staff{i:02d}@d.org" for i in range(PAGE)] and first.more
        assert not search(session, "staff2").more


def test_a_principal_finds_only_the_people_at_their_locations(client, store, settings, clock):
    """The scope is the location each person was last decided at: G at 0789, E at 0456."""
    district = District(client, store, settings, clock)
    everyone = _found(store, "person.")
    assert len(everyone) == len(examples.PEOPLE)
    assert _found(store, "person.", locations=frozenset({"0789"})) == [district.ids["G"]]
    assert _found(store, "person.", locations=frozenset({"0789", "0456"})) == [district.ids["E"], district.ids["G"]]
    assert _found(store, "person.", locations=frozenset()) == []


def test_a_page_of_email_matches_is_the_first_in_username_order(store, client):
    """Many people's emails match: the page is the first 25 of them by userName, whatever
    order their emails are in."""
    names = []
    for i in range(PAGE + 5):
        name = f"z{(PAGE + 4 - i) * 7 % 31:02d}@d.org"
        names.append(name)
        body = {"userName": name, "emails": [{"value": f"team{i:02d}@d.org", "type": "work"}]}
        assert client.post("/scim/v2/Users", json=body, headers=AUTH).status_code == 201
    with store.session_read() as session:
        found = search(session, "team")
    assert [p.user_name for p in found.people] == sorted(names)[:PAGE] and found.more
