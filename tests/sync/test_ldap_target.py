"""The target contract on the memory target and a real slapd, then what only the
LDAP target does: DN normalisation, bulk and escaped resolves, batched writes,
split-and-retry of stale values, and the groupOfNames placeholder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ldap3
import pytest
from ldap3 import MODIFY_ADD

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.base import GroupNotFound, Outcome, PersonKey, TargetUnavailable
from sync.targets.ldap import PERMISSIVE_MODIFY_OID, LdapTarget
from sync.targets.ldap_filters import normalise_dn

from .slapd import PEOPLE_DN, child_dn


@dataclass
class Calls:
    """ldap3 requests sent by any connection while recording (search, modify)."""

    searches: list[tuple] = field(default_factory=list)
    modifies: list[tuple] = field(default_factory=list)

    def clear(self) -> None:
        self.searches.clear()
        self.modifies.clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Count the search and modify requests ldap3 sends, at the ldap3 boundary."""
    record = Calls()
    search, modify = ldap3.Connection.search, ldap3.Connection.modify

    def counting_search(self, search_base, search_filter, *args, **kwargs):
        record.searches.append((search_base, search_filter, kwargs.get("attributes"), kwargs.get("paged_size")))
        return search(self, search_base, search_filter, *args, **kwargs)

    def counting_modify(self, dn, changes, controls=None):
        record.modifies.append((dn, changes, controls))
        return modify(self, dn, changes, controls)

    monkeypatch.setattr(ldap3.Connection, "search", counting_search)
    monkeypatch.setattr(ldap3.Connection, "modify", counting_modify)
    return record


# ===================================================================== contract


def test_new_group_reads_empty(target):
    """A group holding no one (bar the placeholder) reads as an empty set."""
    assert target.target.read_members(target.group) == set()


def test_resolve_finds_people_and_omits_unknown(target):
    """resolve maps person ids to member identifiers; people without an entry are absent."""
    alice, bob = target.person("alice"), target.person("bob")
    found = target.target.resolve([PersonKey("p1", "alice"), PersonKey("p2", "bob"), PersonKey("p3", "nobody")])
    assert found == {"p1": alice, "p2": bob}


def test_add_then_read(target):
    """Added members are read back, each with a DONE outcome."""
    people = [target.person(f"user{i}") for i in range(5)]
    result = target.target.add_members(target.group, people)
    assert result.done() == people and result.failed() == {}
    assert target.target.read_members(target.group) == set(people) == target.members()


def test_add_is_idempotent(target):
    """Adding the same members twice changes nothing and is DONE both times."""
    people = [target.person(f"user{i}") for i in range(3)]
    target.target.add_members(target.group, people)
    again = target.target.add_members(target.group, people)
    assert sorted(again.done()) == sorted(people)
    assert target.members() == set(people)


def test_add_with_some_already_present(target):
    """Members already present count as done; the others are added."""
    people = [target.person(f"user{i}") for i in range(4)]
    target.seed(people[:2])
    result = target.target.add_members(target.group, people)
    assert sorted(result.done()) == sorted(people)
    assert target.members() == set(people)


def test_remove_members_and_absent_ones(target):
    """Removing members works; removing someone absent counts as done."""
    people = [target.person(f"user{i}") for i in range(4)]
    target.seed(people[:3])
    result = target.target.remove_members(target.group, [people[0], people[3]])
    assert sorted(result.done()) == sorted([people[0], people[3]])
    assert target.members() == {people[1], people[2]}


def test_remove_everyone(target):
    """Removing every member leaves a group that reads empty."""
    people = [target.person(f"user{i}") for i in range(3)]
    target.seed(people)
    target.target.remove_members(target.group, people)
    assert target.target.read_members(target.group) == set() == target.members()


@pytest.mark.parametrize("size", [3, 30], ids=["probe", "full-read"])
def test_has_members(target, size):
    """has_members answers which of the given members are in the group."""
    people = [target.person(f"user{i}") for i in range(size)]
    target.seed(people[::2])
    assert target.target.has_members(target.group, people) == set(people[::2])
    assert target.target.has_members(target.group, people[1::2]) == set()


@pytest.mark.parametrize("operation", ["read", "add", "remove", "has"])
def test_unknown_group(target, operation):
    """An absent group raises GroupNotFound for reads and writes."""
    member = target.person("alice")
    with pytest.raises(GroupNotFound):
        if operation == "read":
            target.target.read_members(target.missing_group)
        elif operation == "add":
            target.target.add_members(target.missing_group, [member])
        elif operation == "has":
            target.target.has_members(target.missing_group, [member])
        else:
            target.target.remove_members(target.missing_group, [member])


@pytest.mark.parametrize("operation", ["read", "resolve", "add", "remove"])
def test_unreachable_directory(target, operation):
    """A directory that cannot be reached raises TargetUnavailable, never an empty answer."""
    down = target.unreachable()
    member = child_dn("uid", "alice", PEOPLE_DN)
    with pytest.raises(TargetUnavailable):
        if operation == "read":
            down.read_members(target.group)
        elif operation == "resolve":
            down.resolve([PersonKey("p1", "alice")])
        elif operation == "add":
            down.add_members(target.group, [member])
        else:
            down.remove_members(target.group, [member])
    down.close()


# ===================================================================== LDAP only


def test_slapd_honours_permissive_modify(slapd):
    """slapd accepts the permissive-modify control (without listing it in the root
    DSE's supportedControl); without it a duplicate add fails with 20."""
    conn = slapd.admin()
    value = [slapd.placeholder_dn]
    assert conn.modify(slapd.group_dn, {"member": [(MODIFY_ADD, value)]}, controls=[(PERMISSIVE_MODIFY_OID, False, None)])
    with pytest.raises(ldap3.core.exceptions.LDAPAttributeOrValueExistsResult):
        conn.modify(slapd.group_dn, {"member": [(MODIFY_ADD, value)]})
    assert PERMISSIVE_MODIFY_OID not in slapd.supported_controls()


def test_members_are_normalised_and_placeholder_hidden(slapd, ldap_target):
    """read_members returns normal-form DNs whatever the stored spelling, without the placeholder."""
    slapd.set_members([slapd.placeholder_dn, "UID=Alice,OU=People,DC=Example,DC=Org", "uid=a\\2Cb,ou=people,dc=example,dc=org"])
    assert ldap_target.read_members(slapd.group_dn) == {
        "uid=alice,ou=people,dc=example,dc=org", "uid=a\\,b,ou=people,dc=example,dc=org"}


def test_present_member_in_other_spelling_counts_as_present(slapd, ldap_target, calls):
    """A member stored as UID=Alice is present when asked to add uid=alice: no request is sent."""
    slapd.set_members([slapd.placeholder_dn, "UID=Alice,OU=People,DC=Example,DC=Org"])
    calls.clear()
    result = ldap_target.add_members(slapd.group_dn, ["uid=alice,ou=people,dc=example,dc=org"])
    assert result.outcomes == {"uid=alice,ou=people,dc=example,dc=org": (Outcome.DONE, "already a member")}
    assert calls.modifies == [] and result.requests == 0


def test_has_members_probes_a_few_members(slapd, ldap_target, calls):
    """For a few members, one (member=…) read each, matched whatever the spelling."""
    members = [child_dn("uid", f"user{i}", PEOPLE_DN) for i in range(3)]
    slapd.set_members([slapd.placeholder_dn, members[0].upper(), members[1]])
    calls.clear()
    assert ldap_target.has_members(slapd.group_dn, [*members, slapd.placeholder_dn]) == {
        normalise_dn(members[0]), normalise_dn(members[1])}
    assert [s[1] for s in calls.searches[1:]] == [f"(member={m})" for m in members]


def test_writes_keep_the_directory_spelling(slapd, ldap_target):
    """resolve returns the normal form, but the member value written is the entry's own DN."""
    slapd.add_person("Bob.Smith")
    member = ldap_target.resolve([PersonKey("p1", "bob.smith")])["p1"]
    assert member == "uid=bob.smith,ou=people,dc=example,dc=org"
    ldap_target.add_members(slapd.group_dn, [member])
    assert "uid=Bob.Smith,ou=people,dc=example,dc=org" in slapd.member_values()


def test_resolve_ignores_case_and_spaces(slapd, ldap_target):
    """uid is caseIgnoreMatch: keys find their entries whatever the case, spaces or
    width; two people whose keys fold alike get neither (test_person_keys.py)."""
    dn = normalise_dn(slapd.add_person("Alice"))
    for key in ("ALICE", " alice ", "ａｌｉｃｅ"):
        assert ldap_target.resolve([PersonKey("p1", key)]) == {"p1": dn}
    assert ldap_target.resolve([PersonKey("p1", "ALICE"), PersonKey("p2", "alice")]) == {}


def test_ambiguous_key_is_reported_not_guessed(slapd, ldap_target):
    """Two entries with one key: that person stays unresolved and is listed in last_ambiguous."""
    first = slapd.add_person("dup", rdn_value="Dup One")
    second = slapd.add_person("dup", rdn_value="Dup Two")
    slapd.add_person("single")
    found = ldap_target.resolve([PersonKey("p1", "dup"), PersonKey("p2", "single")])
    assert set(found) == {"p2"}
    assert ldap_target.last_ambiguous == {"p1": sorted([first, second])}
    ldap_target.resolve([PersonKey("p2", "single")])
    assert ldap_target.last_ambiguous == {}


SPECIAL = ["*", "a*", "a(b)", "a)(uid=*", "a\\b", "a\x00b", "a,b", "a+b", "a=b", "é", "#x", "a;b", 'a"b', "(", ")"]
DECOYS = ["a", "ab", "b", "a b", "aa", "ax"]


@pytest.mark.parametrize("key", SPECIAL, ids=repr)
def test_special_characters_match_only_their_entry(slapd, ldap_target, key):
    """A key holding *, (, ), \\, NUL, ',', '+', '=' … finds its own entry and nothing else."""
    entries = {value: normalise_dn(slapd.add_person(value)) for value in SPECIAL + DECOYS}
    assert ldap_target.resolve([PersonKey("p", key)]) == {"p": entries[key]}


def test_special_characters_in_one_bulk_resolve_and_write(slapd, ldap_target):
    """All special keys in one search resolve one-to-one, and their DNs write and read back."""
    entries = {value: normalise_dn(slapd.add_person(value)) for value in SPECIAL + DECOYS}
    found = ldap_target.resolve([PersonKey(f"p{i}", key) for i, key in enumerate(SPECIAL)])
    assert found == {f"p{i}": entries[key] for i, key in enumerate(SPECIAL)}
    result = ldap_target.add_members(slapd.group_dn, list(found.values()))
    assert result.failed() == {}
    assert ldap_target.read_members(slapd.group_dn) == set(found.values())


def test_bulk_resolve_uses_bounded_searches(slapd, ldap_target, calls):
    """2,000 people resolve in ceil(2000/200) = 10 searches, not one per person."""
    keys = [f"person{i:05d}" for i in range(2000)]
    slapd.add_people(keys)
    calls.clear()
    found = ldap_target.resolve([PersonKey(str(i), key.upper()) for i, key in enumerate(keys)])
    assert len(found) == 2000
    assert found["1234"] == f"uid=person01234,{PEOPLE_DN}"
    assert len(calls.searches) == math.ceil(2000 / ldap_target.settings.resolve_chunk_size) == 10
    assert all(search[3] == ldap_target.settings.page_size for search in calls.searches)


def test_resolve_follows_pages(slapd, make_target, calls):
    """With pages smaller than a chunk, every page is fetched (paged-results control)."""
    keys = [f"person{i:03d}" for i in range(300)]
    slapd.add_people(keys)
    target = make_target(page_size=50, resolve_chunk_size=150)
    calls.clear()
    found = target.resolve([PersonKey(key, key) for key in keys])
    assert set(found) == set(keys)
    assert len(calls.searches) == 2 * 3  # two chunks of 150 keys, three pages of 50 each


def test_people_filter_narrows_the_search(slapd, make_target):
    """people_filter is ANDed with the key filter."""
    slapd.add_person("alice")
    assert make_target(people_filter="(objectClass=groupOfNames)").resolve([PersonKey("p1", "alice")]) == {}
    assert make_target(people_filter="(objectClass=inetOrgPerson)").resolve([PersonKey("p1", "alice")]) != {}


def test_3000_members_in_bounded_requests(slapd, ldap_target, calls):
    """3,000 adds and then 3,000 removals take ceil(3000/500) = 6 modify requests each."""
    members = [child_dn("uid", f"user{i:05d}", PEOPLE_DN) for i in range(3000)]
    calls.clear()
    added = ldap_target.add_members(slapd.group_dn, members)
    assert len(added.done()) == 3000 and added.requests == len(calls.modifies) == math.ceil(3000 / 500)
    assert all(len(changes["member"][0][1]) <= 500 for _, changes, _ in calls.modifies)
    assert len(ldap_target.read_members(slapd.group_dn)) == 3000
    calls.clear()
    removed = ldap_target.remove_members(slapd.group_dn, members)
    assert len(removed.done()) == 3000 and removed.requests == len(calls.modifies) == 6
    assert slapd.member_values() == [slapd.placeholder_dn]


def test_requests_never_replace_and_carry_permissive_control(slapd, ldap_target, calls):
    """Writes are MODIFY_ADD/MODIFY_DELETE with the permissive-modify control, never MODIFY_REPLACE."""
    members = [child_dn("uid", f"user{i}", PEOPLE_DN) for i in range(10)]
    ldap_target.add_members(slapd.group_dn, members)
    ldap_target.remove_members(slapd.group_dn, members[:5])
    operations = {op for _, changes, _ in calls.modifies for op, _ in changes["member"]}
    assert operations == {ldap3.MODIFY_ADD, ldap3.MODIFY_DELETE}
    assert all(controls == [(PERMISSIVE_MODIFY_OID, False, None)] for _, _, controls in calls.modifies)


def stale_view(target: LdapTarget, group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the target's pre-write read return the group as it is now, so values
    another writer changes afterwards reach the server as stale values (the race
    between our read and our write)."""
    snapshot = target._read_values(group)
    monkeypatch.setattr(target, "_read_values", lambda _group: dict(snapshot))


@pytest.mark.parametrize("permissive", [True, False], ids=["permissive", "split-and-retry"])
def test_stale_adds(slapd, make_target, monkeypatch, calls, permissive):
    """Values added by someone else since our read: with permissive modify one request
    succeeds; without it, the batch is halved until each stale value stands alone
    (result 20 → done), and the other values are written anyway."""
    target = make_target(permissive_modify=permissive)
    members = [child_dn("uid", f"user{i:03d}", PEOPLE_DN) for i in range(500)]
    stale_view(target, slapd.group_dn, monkeypatch)
    slapd.set_members([slapd.placeholder_dn, members[3], members[250], members[499]])
    calls.clear()
    result = target.add_members(slapd.group_dn, members)
    assert result.failed() == {} and len(result.done()) == 500
    assert {normalise_dn(v) for v in slapd.member_values()} == {normalise_dn(m) for m in members} | {
        normalise_dn(slapd.placeholder_dn)}
    if permissive:
        assert result.requests == 1
    else:
        assert 1 < result.requests <= 1 + 3 * 2 * math.ceil(math.log2(500))
        assert result.outcomes[members[250]] == (Outcome.DONE, "already a member")


@pytest.mark.parametrize("permissive", [True, False], ids=["permissive", "split-and-retry"])
def test_stale_removals(slapd, make_target, monkeypatch, permissive):
    """Values removed by someone else since our read: result 16 is split out and counts as done."""
    target = make_target(permissive_modify=permissive)
    members = [child_dn("uid", f"user{i:03d}", PEOPLE_DN) for i in range(200)]
    slapd.set_members([slapd.placeholder_dn, *members])
    stale_view(target, slapd.group_dn, monkeypatch)
    slapd.set_members([slapd.placeholder_dn, *members[5:]])  # someone removed five
    result = target.remove_members(slapd.group_dn, members)
    assert result.failed() == {} and len(result.done()) == 200
    assert slapd.member_values() == [slapd.placeholder_dn]
    assert (result.requests == 1) == permissive


def test_a_refused_value_fails_alone(slapd, ldap_target):
    """A value the server rejects (21 invalidAttributeSyntax) is FAILED; the rest of its batch is written."""
    members = [child_dn("uid", f"user{i}", PEOPLE_DN) for i in range(20)]
    bad = "nosuchattribute=x,dc=example,dc=org"
    result = ldap_target.add_members(slapd.group_dn, [*members[:10], bad, *members[10:]])
    assert set(result.failed()) == {bad} and "21" in result.failed()[bad]
    assert len(result.done()) == 20 and len(ldap_target.read_members(slapd.group_dn)) == 20


def test_not_a_dn_fails_without_a_request(slapd, ldap_target, calls):
    """A member that is not a DN is FAILED before anything is sent."""
    calls.clear()
    result = ldap_target.add_members(slapd.group_dn, ["alice"])
    assert result.outcomes == {"alice": (Outcome.FAILED, "not a DN")} and calls.modifies == []
    assert not any("alice" in search_filter for _, search_filter, _, _ in calls.searches)  # not probed either


def test_a_few_members_are_probed_not_read_with_the_whole_group(slapd, ldap_target, calls):
    """A write about a few people (a journal event's run) checks each with a
    ``(member=…)`` probe instead of reading a group of thousands; only the values
    that change are sent, and a removal keeps the placeholder as it is."""
    members = [child_dn("uid", f"user{i:04d}", PEOPLE_DN) for i in range(2000)]
    slapd.set_members([slapd.placeholder_dn, *members])
    new, stranger = child_dn("uid", "newcomer", PEOPLE_DN), child_dn("uid", "stranger", PEOPLE_DN)
    calls.clear()
    added = ldap_target.add_members(slapd.group_dn, [members[7], new])
    assert added.outcomes == {members[7]: (Outcome.DONE, "already a member"), new: (Outcome.DONE, "added")}
    assert calls.searches and all(attributes != ["member"] for _, _, attributes, _ in calls.searches)
    assert [changes["member"] for _, changes, _ in calls.modifies] == [[(ldap3.MODIFY_ADD, [new])]]
    calls.clear()
    removed = ldap_target.remove_members(slapd.group_dn, [members[8], new, stranger])
    assert removed.outcomes == {members[8]: (Outcome.DONE, "removed"), new: (Outcome.DONE, "removed"),
                                stranger: (Outcome.DONE, "not a member")}
    assert all(attributes != ["member"] for _, _, attributes, _ in calls.searches)
    assert [changes["member"] for _, changes, _ in calls.modifies] == [[(ldap3.MODIFY_DELETE, [members[8], new])]]
    values = {normalise_dn(v) for v in slapd.member_values()}
    assert len(values) == 2000 and normalise_dn(slapd.placeholder_dn) in values
    assert normalise_dn(members[8]) not in values and normalise_dn(new) not in values


def test_placeholder_is_never_removed(slapd, ldap_target):
    """Asking to remove the placeholder fails for it alone; the group keeps it."""
    member = child_dn("uid", "alice", PEOPLE_DN)
    ldap_target.add_members(slapd.group_dn, [member])
    result = ldap_target.remove_members(slapd.group_dn, [slapd.placeholder_dn.upper(), member])
    assert result.failed() == {slapd.placeholder_dn.upper(): "the placeholder member is kept by the target"}
    assert slapd.member_values() == [slapd.placeholder_dn]


@pytest.mark.parametrize("permissive", [True, False], ids=["permissive", "no-permissive"])
def test_missing_placeholder_is_added_with_the_emptying_removal(slapd, make_target, calls, permissive):
    """A group that lost its placeholder gets it back in the same request that removes
    its last real members, so it is never empty."""
    target = make_target(permissive_modify=permissive)
    members = [child_dn("uid", name, PEOPLE_DN) for name in ("alice", "bob")]
    slapd.set_members(members)
    calls.clear()
    result = target.remove_members(slapd.group_dn, members)
    assert sorted(result.done()) == sorted(members) and result.requests == 1
    (_, changes, _), = calls.modifies
    assert changes["member"][0] == (ldap3.MODIFY_ADD, [slapd.placeholder_dn])
    assert slapd.member_values() == [slapd.placeholder_dn]


def test_placeholder_not_added_while_others_remain(slapd, ldap_target):
    """Removing some members of a group without placeholder leaves it as it is otherwise."""
    members = [child_dn("uid", name, PEOPLE_DN) for name in ("alice", "bob")]
    slapd.set_members(members)
    ldap_target.remove_members(slapd.group_dn, members[:1])
    assert slapd.member_values() == members[1:]


def test_without_placeholder_the_last_member_stays(slapd, make_target):
    """With no placeholder configured, slapd refuses to empty a groupOfNames (65): that
    member is FAILED, not silently lost."""
    target = make_target(placeholder_member=None)
    only = child_dn("uid", "alice", PEOPLE_DN)
    slapd.set_members([only])
    result = target.remove_members(slapd.group_dn, [only])
    assert set(result.failed()) == {only} and "65" in result.failed()[only]
    assert slapd.member_values() == [only]
