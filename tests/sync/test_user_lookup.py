"""``--user X`` lookups (sync/lookup.py): every person X names, compared as the SCIM
service compares each attribute; one that names several people is refused."""

from __future__ import annotations

import pytest

from sync.audit import read
from sync.lookup import AmbiguousUser, Candidate, find_person, one_person
from tests.conftest import AUTH

#: name → (userName, externalId) of the people every test below starts with.
PEOPLE = {
    "A": ("Shared@d.org", "A-1"),
    "B": ("b@d.org", "shared@d.org"),  # externalId = A's userName, lower-cased
    "C": ("c@d.org", "SHARED@d.org"),  # externalId = A's userName, upper-cased
    "D": ("d@d.org", None),
    "S": ("Straße@d.org", None),  # lower() keeps ß; casefold() would make it "ss"
}


@pytest.fixture
def people(client) -> dict[str, str]:
    """Create PEOPLE through the SCIM API; name → id."""
    ids = {}
    for name, (user_name, external_id) in PEOPLE.items():
        body = {"userName": user_name, **({"externalId": external_id} if external_id else {})}
        r = client.post("/scim/v2/Users", json=body, headers=AUTH)
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
    return ids


def _ask(query: str, people: dict[str, str]) -> str:
    """``id:A`` is A's id, ``ID:A`` the same upper-cased; anything else is taken as is."""
    if query.startswith("id:"):
        return people[query[3:]]
    if query.startswith("ID:"):
        return people[query[3:]].upper()
    return query


@pytest.mark.parametrize(("query", "expected"), [
    ("id:D", ["D"]),
    ("ID:D", []),
    ("d@d.org", ["D"]),
    ("D@D.ORG", ["D"]),
    ("A-1", ["A"]),
    ("a-1", []),
    ("shared@d.org", ["A", "B"]),
    ("SHARED@d.org", ["A", "C"]),
    ("Shared@D.org", ["A"]),
    ("STRAßE@D.ORG", ["S"]),
    ("strasse@d.org", []),
    ("nobody", []),
], ids=["id", "id-other-case", "userName", "userName-any-case", "externalId", "externalId-other-case",
        "userName-and-externalId", "userName-and-other-externalId", "userName-only", "userName-lower-not-casefold",
        "no-casefold-match", "nobody"])
def test_every_person_the_value_names_is_a_candidate(store, people, query, expected):
    """id and externalId exactly, userName lower-cased as the store keeps it."""
    with store.session_read() as session:
        found = find_person(session, _ask(query, people))
    assert sorted(c.id for c in found) == sorted(people[n] for n in expected)
    assert [c.id for c in found] == sorted(c.id for c in found)  # a stable order


def test_candidates_carry_the_names_as_sent(store, people):
    """A candidate shows the userName as the client sent it, and the externalId."""
    with store.session_read() as session:
        (only,) = find_person(session, people["A"])
    assert only == Candidate(people["A"], "Shared@d.org", "A-1")


def test_one_person_refuses_a_value_naming_several_and_lists_them(store, people):
    """The error names every candidate with id, userName and externalId."""
    with store.session_read() as session:
        assert one_person(session, "d@d.org") == people["D"]
        assert one_person(session, "nobody") is None
        with pytest.raises(AmbiguousUser) as exc:
            one_person(session, "shared@d.org")
    assert {c.id for c in exc.value.candidates} == {people["A"], people["B"]}
    text = str(exc.value)
    assert text.splitlines()[0] == ("'shared@d.org' names 2 users (by id, userName or externalId); "
                                    "give the id of one:")
    assert f"  id {people['A']}  userName Shared@d.org  externalId A-1" in text.splitlines()
    assert f"  id {people['B']}  userName b@d.org  externalId shared@d.org" in text.splitlines()


def test_reading_the_audit_trail_refuses_an_ambiguous_user(store, people):
    """read() raises rather than showing one of the people's entries; a value that
    names nobody in the store (a deleted user) still filters on it as given."""
    with store.session_read() as session:
        with pytest.raises(AmbiguousUser):
            read(session, user="SHARED@d.org")
        assert read(session, user="A-1") == []
        assert read(session, user="gone-id") == []
