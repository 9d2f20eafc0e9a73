"""One person, one entry, decided once (issue 11): targets resolve no one whose key or
entry another person of the call shares, and two SCIM users reaching one directory
entry can no longer make the runs flap."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from connector import create_app
from connector.store.database import Store
from connector.store.models import AuditRow, UserRow
from sync.ledger import RunStatus
from sync.people import resolvable_key
from sync.reconcile import SyncContext, reconcile
from sync.settings import SyncSettings
from sync.targets.base import PersonKey, one_person_per_entry
from sync.targets.ldap import LdapTarget
from sync.targets.ldap_filters import fold_key, normalise_dn
from sync.targets.memory import MemoryTarget
from tests.conftest import AUTH
from tests.sync import people as P

from .conftest import no_sleep, slapd_settings
from .slapd import GROUP_DN, PEOPLE_DN, child_dn
from .test_reconcile import mapping_with_groups


def _entry(target, keys: list[str]) -> str:
    """One directory entry whose matching attribute holds every one of ``keys``."""
    if target.slapd is not None:
        return normalise_dn(target.slapd.add_person(keys))
    member = normalise_dn(child_dn("uid", keys[0], PEOPLE_DN))
    for key in keys:
        target.target.directory[key] = member
    return member


# ------------------------------------------------------------------ the people's keys


@pytest.mark.parametrize(("value", "stored", "expected"), [
    ("bjensen ", "bjensen", "bjensen "),
    ("bjensen", None, None),
    ("E1001", "bjensen", None),
    (None, None, None),
], ids=["stored-folded", "collision-left-it-empty", "stored-from-another-attribute", "no-value"])
def test_a_person_is_looked_up_only_by_a_key_the_store_holds(value, stored, expected):
    """The sync looks a person up by their value as sent, and only when the store holds
    its fold as their unique person key."""
    assert resolvable_key(value, stored) == expected


# ------------------------------------------------------------------ the resolve rule


def test_one_person_per_entry_keeps_the_sole_holders():
    """The shared rule: people sharing a folded key or an entry are dropped, and listed."""
    people = [PersonKey("p1", "bjensen"), PersonKey("p2", "BJensen "), PersonKey("p3", "barbara"),
              PersonKey("p4", "alice"), PersonKey("p5", "")]
    found = {"p1": "uid=bjensen", "p2": "uid=bjensen", "p3": "uid=bjensen", "p4": "uid=alice"}
    kept, shared = one_person_per_entry(people, found, fold_key)
    assert kept == {"p4": "uid=alice"}
    assert shared == {p: ["p1", "p2", "p3"] for p in ("p1", "p2", "p3")}
    assert one_person_per_entry(people[3:], {"p4": "uid=alice"}, fold_key) == ({"p4": "uid=alice"}, {})


@pytest.mark.parametrize("target", ["memory", "slapd"], indirect=True)
def test_people_sharing_a_key_are_not_resolved(target, caplog):
    """bjensen and "BJensen " in one resolve: the directory finds one entry for both, so
    neither gets it (a warning names them); each alone resolves, fullwidth too."""
    bjensen, alice = _entry(target, ["bjensen"]), _entry(target, ["alice"])
    with caplog.at_level(logging.WARNING):
        found = target.target.resolve([PersonKey("p1", "bjensen"), PersonKey("p2", "BJensen "),
                                       PersonKey("p3", "alice")])
    assert found == {"p3": alice}
    assert target.target.last_shared == {"p1": ["p1", "p2"], "p2": ["p1", "p2"]}
    assert any("p1, p2" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for key in ("BJensen ", "ｂｊｅｎｓｅｎ", " b\u00adjensen") if target.kind == "memory" else ("BJensen ", "ｂｊｅｎｓｅｎ"):
        assert target.target.resolve([PersonKey("p2", key)]) == {"p2": bjensen}
    assert target.target.last_shared == {}


@pytest.mark.parametrize("target", ["memory", "slapd"], indirect=True)
def test_people_sharing_an_entry_are_not_resolved(target):
    """An entry holding two uids (bjensen, barbara) is given to neither of two people
    holding one each: it would be granted for one and revoked for the other."""
    shared = _entry(target, ["bjensen", "barbara"])
    assert target.target.resolve([PersonKey("p1", "bjensen"), PersonKey("p2", "barbara")]) == {}
    assert target.target.last_shared == {"p1": ["p1", "p2"], "p2": ["p1", "p2"]}
    assert target.target.resolve([PersonKey("p2", "barbara")]) == {"p2": shared}


def test_case_exact_matching_keeps_case_apart(slapd, make_target):
    """match_case_insensitive=False: "Alice" and "alice" are two keys; the caseIgnoreMatch
    uid of slapd finds one entry for both, whose value only "Alice" matches exactly."""
    dn = normalise_dn(slapd.add_person("Alice"))
    target = make_target(match_case_insensitive=False)
    assert target.resolve([PersonKey("p1", "Alice "), PersonKey("p2", "alice")]) == {"p1": dn}
    assert target.last_shared == {}


# ------------------------------------------------------------------ end to end


@pytest.fixture(params=["memory", "slapd"])
def directory(request):
    """A directory holding uid=bjensen and its (empty) group: ``(target, group, bjensen's member)``."""
    if request.param == "memory":
        member = normalise_dn(child_dn("uid", "bjensen", PEOPLE_DN))
        yield MemoryTarget({GROUP_DN: set()}, {"bjensen": member}), member
        return
    slapd = request.getfixturevalue("slapd")
    member = normalise_dn(slapd.add_person("bjensen"))
    target = LdapTarget(slapd_settings(slapd), sleep=no_sleep)
    yield target, member
    target.close()


def _context(store, settings, target, clock) -> SyncContext:
    settings.sync.target = "ldap"
    return SyncContext(store, settings, mapping_with_groups(GROUP_DN), target, "ldap", clock=clock)


def _audit(store) -> list[tuple[str, str | None]]:
    with store.session_read() as s:
        return [(r.action, r.user_name) for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


def test_the_issue_two_users_one_entry_no_longer_flap(client, store, settings, directory, clock):
    """Issue 11's path: bjensen (entitled) is accepted, "bjensen " (not entitled) is
    refused with 409; two full runs and an event run make exactly one grant, no revoke."""
    target, member = directory
    bjensen = P.create(client, P.person("bjensen"))
    P.approvers(client, "0123", [bjensen])
    r = client.post("/scim/v2/Users", json=P.person("bjensen ", certs=[], job="2001"), headers=AUTH)
    assert r.status_code == 409 and r.get_json()["scimType"] == "uniqueness"
    ctx = _context(store, settings, target, clock)
    first, second = reconcile(ctx, "walkin"), reconcile(ctx, "walkin")
    event = reconcile(ctx, "walkin", kind="event", person_ids=[bjensen])
    assert [(run.counts["added"], run.counts["removed"]) for run in (first, second, event)] == [(1, 0), (0, 0), (0, 0)]
    assert {target.normalise(m) for m in target.read_members(GROUP_DN)} == {member}
    assert _audit(store) == [("grant", "bjensen")]


def test_legacy_users_sharing_a_key_are_decided_for_no_one(settings, store, directory, clock, caplog):
    """Users stored before the rule (here: under another person key) whose userNames
    fold alike keep no key when the store is opened with userName: neither resolves, so
    the entry is never granted for one and revoked for the other; runs stay still."""
    target, member = directory
    by_external_id = Store(settings.database_url, person_key="externalId")
    try:
        configured = settings.model_copy(update={"sync": SyncSettings(person_key="externalId")})
        client = create_app(configured, store=by_external_id, clock=clock).test_client()
        bjensen = P.create(client, {**P.person("bjensen"), "externalId": "e1"})
        spaced = P.create(client, {**P.person("bjensen ", certs=[], job="2001"), "externalId": "e2"})
        P.approvers(client, "0123", [bjensen, spaced])
    finally:
        by_external_id.dispose()
    target.add_members(GROUP_DN, [member])  # granted back when only bjensen reached it
    with caplog.at_level(logging.WARNING, logger="connector.store.person_keys"):
        by_user_name = Store(settings.database_url, person_key="userName")
    try:
        assert [r.getMessage() for r in caplog.records if "'bjensen '" in r.getMessage()]
        with by_user_name.session_read() as s:
            assert s.scalars(select(UserRow.person_key)).all() == [None, None]
        ctx = _context(by_user_name, settings, target, clock)
        runs = [reconcile(ctx, "walkin"), reconcile(ctx, "walkin"),
                reconcile(ctx, "walkin", kind="event", person_ids=[bjensen, spaced])]
        assert all(run.status is RunStatus.OK for run in runs)
        assert [run.counts["added"] for run in runs] == [0, 0, 0]
        assert sum(run.counts["removed"] for run in runs) == 1  # the entry nobody holds now: drift, once
        actions = _audit(by_user_name)
        assert ("grant", "bjensen") not in actions and not any(a == "revoke" for a, _ in actions)
        assert actions.count(("unresolved", "bjensen")) == 3  # entitled, reported at every run
    finally:
        by_user_name.dispose()
