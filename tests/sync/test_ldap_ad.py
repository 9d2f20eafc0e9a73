"""The LDAP target in the ``ad`` flavour, against a fake AD that answers with AD's
real response shapes (tests/sync/ad.py): ranged reads of large groups, batched
writes of more than 1,500 members, AD's result codes for stale values."""

from __future__ import annotations

import math

import pytest

from sync.targets.base import GroupNotFound, Outcome, PersonKey, TargetUnavailable
from sync.targets.ldap import PERMISSIVE_MODIFY_OID, LdapTarget

from .ad import ATT_OR_VALUE_EXISTS, ENTRY_EXISTS, NO_SUCH_ATTRIBUTE, WILL_NOT_PERFORM, FakeAd
from .conftest import no_sleep


def make(ad: FakeAd, *, sleep=no_sleep, **overrides: object) -> LdapTarget:
    settings = ad.settings(**overrides)
    return LdapTarget(settings, connection_factory=ad.factory(settings), sleep=sleep)


@pytest.fixture
def ad() -> FakeAd:
    return FakeAd()


def normal(target: LdapTarget, dns: list[str]) -> set[str]:
    return {target.normalise(dn) for dn in dns}


def assert_never_replaced(ad: FakeAd) -> None:
    assert all(op in (0, 1) for record in ad.modifies for op, _, _ in record.changes)


def test_reads_3500_members_over_three_ranges(ad):
    """member;range=0-1499, then 1500-2999, then 3000-*: all 3,500 members are read."""
    users = ad.add_users(3500)
    ad.set_members(users)
    target = make(ad)
    ad.searches.clear()
    assert target.read_members(ad.group_dn) == normal(target, users)
    assert [s.attributes for s in ad.searches] == [("member",), ("member;range=1500-*",), ("member;range=3000-*",)]


def test_has_members_does_not_read_the_whole_group(ad):
    """Checking three members of a 3,500-member group takes four small reads, not the ranges."""
    users = ad.add_users(3500)
    ad.set_members(users[:3000])
    target = make(ad)
    ad.searches.clear()
    assert target.has_members(ad.group_dn, sorted(normal(target, [users[0], users[2999], users[3000]]))) == \
        normal(target, [users[0], users[2999]])
    assert len(ad.searches) == 4 and all("range" not in "".join(s.attributes) for s in ad.searches)


def test_response_shapes_are_those_of_ad(ad):
    """The fake itself: no plain member above 1,500 values, ranged slices instead."""
    ad.set_members(ad.add_users(3500))
    conn = ad.factory(ad.settings())()
    shapes = []
    for attribute in ("member", "member;range=1500-*", "member;range=3000-*"):
        _, _, response, _ = conn.search(ad.group_dn, "(objectClass=*)", 0, attributes=[attribute])
        shapes.append({name: len(values) for name, values in response[0]["raw_attributes"].items()})
    assert shapes == [{"member;range=0-1499": 1500}, {"member;range=1500-2999": 1500}, {"member;range=3000-*": 500}]


@pytest.mark.parametrize(("count", "searches"), [(0, 1), (1, 1), (1500, 1), (1501, 2), (3000, 2), (3001, 3)])
def test_range_boundaries(ad, count, searches):
    """Groups at and around the 1,500-value boundary read completely with as many reads as slices."""
    users = ad.add_users(count)
    ad.set_members(users)
    target = make(ad)
    ad.searches.clear()
    assert target.read_members(ad.group_dn) == normal(target, users)
    assert len(ad.searches) == searches


@pytest.mark.parametrize("fault", ["deleted", "restart"])
def test_a_broken_ranged_read_never_returns_part_of_the_group(ad, fault):
    """If the follow-up slices go wrong, the read raises instead of returning 1,500 members."""
    ad.set_members(ad.add_users(2000))
    ad.range_fault = fault
    with pytest.raises(GroupNotFound if fault == "deleted" else TargetUnavailable):
        make(ad).read_members(ad.group_dn)


def test_adds_3200_members_in_batches_with_the_permissive_control(ad):
    """3,200 adds: ceil(3200/500) = 7 MODIFY_ADD requests of ≤ 500 values, each with
    the permissive-modify control; then read back completely through the ranges."""
    users = ad.add_users(3200)
    target = make(ad)
    members = sorted(normal(target, users))
    result = target.add_members(ad.group_dn, members)
    assert len(result.done()) == 3200 and result.requests == len(ad.modifies) == math.ceil(3200 / 500)
    assert [len(r.changes[0][2]) for r in ad.modifies] == [500] * 6 + [200]
    assert all(r.changes[0][0] == 0 and r.controls == (PERMISSIVE_MODIFY_OID,) for r in ad.modifies)
    assert target.read_members(ad.group_dn) == set(members)
    assert_never_replaced(ad)


def test_removes_1600_members_and_may_empty_the_group(ad):
    """AD groups may be empty: with no placeholder, every member can be removed."""
    users = ad.add_users(1600)
    ad.set_members(users)
    target = make(ad)
    result = target.remove_members(ad.group_dn, sorted(normal(target, users)))
    assert len(result.done()) == 1600 and result.requests == 4
    assert all(r.changes[0][0] == 1 for r in ad.modifies)
    assert ad.members() == [] and target.read_members(ad.group_dn) == set()


@pytest.mark.parametrize(("add_code", "delete_code"), [(ENTRY_EXISTS, WILL_NOT_PERFORM),
                                                       (ATT_OR_VALUE_EXISTS, NO_SUCH_ATTRIBUTE)],
                         ids=["68-53", "20-16"])
@pytest.mark.parametrize("setting", ["off", "ignored"])
def test_stale_values_without_permissive_modify(monkeypatch, add_code, delete_code, setting):
    """Permissive modify off, or not honoured: the batch is split until each stale value
    stands alone; AD's 68/53 are confirmed with a (member=…) read, 20/16 count as done."""
    ad = FakeAd(stale_add=add_code, stale_delete=delete_code, honour_permissive=False)
    users = ad.add_users(1800)
    target = make(ad, permissive_modify=setting == "ignored")
    members = sorted(normal(target, users))
    monkeypatch.setattr(target, "_read_values", lambda group: {})  # our read predates another writer's
    ad.set_members([users[10], users[900], users[1700]])
    added = target.add_members(ad.group_dn, members)
    assert added.failed() == {} and len(added.done()) == 1800
    assert normal(target, ad.members()) == set(members)
    assert 4 < added.requests <= 4 + 3 * 2 * math.ceil(math.log2(500))
    monkeypatch.setattr(target, "_read_values", lambda group: {m: m for m in members})
    ad.set_members(users[5:])  # someone removed five meanwhile
    removed = target.remove_members(ad.group_dn, members)
    assert removed.failed() == {} and ad.members() == []
    assert_never_replaced(ad)


def test_a_still_present_member_is_not_taken_for_stale(ad):
    """A 53 on delete counts as done only if the member is really gone: a member AD
    refuses to remove (e.g. from its primary group) is FAILED, the others removed."""
    users = ad.add_users(8)
    ad.set_members(users)
    ad.protected = {users[3].lower()}
    target = make(ad, permissive_modify=False)
    result = target.remove_members(ad.group_dn, sorted(normal(target, users)))
    stuck = target.normalise(users[3])
    assert set(result.failed()) == {stuck} and "53" in result.failed()[stuck]
    assert ad.members() == [users[3]]


def test_a_member_dn_naming_no_object_fails_alone(ad):
    """AD answers 32 for a member DN that names no object; the group exists, so that
    value is isolated and FAILED while the rest of the batch is written."""
    users = ad.add_users(40)
    target = make(ad)
    ghost = f"CN=Ghost,{ad.users_dn}"
    result = target.add_members(ad.group_dn, [*sorted(normal(target, users)), target.normalise(ghost)])
    assert set(result.failed()) == {target.normalise(ghost)} and "32" in result.failed()[target.normalise(ghost)]
    assert len(result.done()) == 40 and len(ad.members()) == 40


def test_unknown_group(ad):
    """A group that does not exist raises GroupNotFound for reads and writes."""
    target = make(ad)
    missing = f"CN=Nope,{ad.groups_dn}"
    with pytest.raises(GroupNotFound):
        target.read_members(missing)
    with pytest.raises(GroupNotFound):
        target.add_members(missing, [target.normalise(ad.add_user("Alice"))])


def test_busy_server_is_retried(ad):
    """51 busy is transient: retried with backoff, then the write completes."""
    sleeps: list[float] = []
    users = ad.add_users(10)
    target = make(ad, sleep=sleeps.append, retry_backoff_base=0.25)
    ad.busy = 2
    result = target.add_members(ad.group_dn, sorted(normal(target, users)))
    assert len(result.done()) == 10 and result.requests == 3 and sleeps == [0.25, 0.5]


def test_busy_too_long_gives_a_partial_result(ad):
    """Still busy after the last attempt: TargetUnavailable whose partial result names
    the batch written before; members without an outcome were not written."""
    users = ad.add_users(30)
    target = make(ad, batch_size=10, retry_attempts=3)
    members = sorted(normal(target, users))
    ad.busy_after = 1
    with pytest.raises(TargetUnavailable, match="51 busy") as caught:
        target.add_members(ad.group_dn, members)
    partial = caught.value.partial
    assert partial is not None and partial.requests == 1 + 3
    assert partial.outcomes == {m: (Outcome.DONE, "added") for m in members[:10]}
    assert normal(target, ad.members()) == set(members[:10])


def test_resolve_by_sam_account_name_with_people_filter(ad):
    """Resolve matches sAMAccountName case-insensitively, one paged search for many keys;
    the people filter keeps a same-named group out."""
    alice = ad.add_user("Alice Smith", sam="asmith")
    ad.add_group(f"CN=asmith-group,{ad.users_dn}", [])
    ad.server.dit[f"CN=asmith-group,{ad.users_dn}"]["sAMAccountName"] = [b"ASMITH"]
    bob = ad.add_user("Bob Jones", sam="bjones", employee_id="E-042")
    target = make(ad, people_filter="(objectClass=user)")
    ad.searches.clear()
    found = target.resolve([PersonKey("p1", "ASmith"), PersonKey("p2", "bjones"), PersonKey("p3", "nobody")])
    assert found == {"p1": target.normalise(alice), "p2": target.normalise(bob)}
    assert len(ad.searches) == 1 and ad.searches[0].filter.startswith("(&(objectClass=user)(|")
    unfiltered = make(ad)
    assert unfiltered.resolve([PersonKey("p1", "asmith")]) == {}
    assert unfiltered.last_ambiguous == {"p1": sorted([alice, f"CN=asmith-group,{ad.users_dn}"])}
    by_employee_id = make(ad, match_attribute="employeeID")
    assert by_employee_id.resolve([PersonKey("p2", "e-042")]) == {"p2": target.normalise(bob)}
