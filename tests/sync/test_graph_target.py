"""The Entra target against a stateful Graph fake: paging, lookups, batched writes,
split-and-retry, eventual consistency and request counts. (The contract tests in
test_ldap_target.py run on this target too; faults are in test_graph_faults.py.)"""

from __future__ import annotations

import math
import uuid

import pytest
from pydantic import ValidationError

from sync.targets.base import GroupNotFound, Outcome, PersonKey, TargetUnavailable
from sync.targets.graph import is_object_id, odata_string
from sync.targets.graph_settings import GraphSettings

from .graph_fake import TENANT, Reply, error, not_found, serve_graph


@pytest.fixture
def env():
    with serve_graph(page_size=100) as graph_env:
        yield graph_env


def people(env, n: int, prefix: str = "user") -> list[str]:
    return [env.fake.add_user(f"{prefix}{i:05d}@district.org") for i in range(n)]


# ===================================================================== settings


@pytest.mark.parametrize(("credentials", "valid"), [
    ({}, False),
    ({"client_secret": "s"}, True),
    ({"certificate": {"private_key_path": "/k.pem", "thumbprint": "A" * 40}}, True),
    ({"client_secret": "s", "certificate": {"private_key_path": "/k.pem", "thumbprint": "A" * 40}}, False),
    ({"certificate": {"private_key_path": "/k.pem", "thumbprint": "not-hex"}}, False),
], ids=["none", "secret", "certificate", "both", "bad-thumbprint"])
def test_exactly_one_credential(credentials, valid):
    """A client secret or a certificate (key + SHA-1 thumbprint), never both nor neither."""
    make = lambda: GraphSettings(tenant_id=TENANT, client_id="c", **credentials)  # noqa: E731
    if valid:
        assert make().scope == "https://graph.microsoft.com/.default"
    else:
        with pytest.raises(ValidationError):
            make()


def test_settings_are_strict_and_point_anywhere():
    """Unknown keys fail; graph_url decides the token scope (national clouds, tests)."""
    with pytest.raises(ValidationError, match="extra"):
        GraphSettings(tenant_id=TENANT, client_id="c", client_secret="s", batch_size=5)
    us = GraphSettings(tenant_id=TENANT, client_id="c", client_secret="s", graph_url="https://graph.microsoft.us/v1.0/",
                       authority_host="https://login.microsoftonline.us")
    assert us.scope == "https://graph.microsoft.us/.default" and us.graph_url == "https://graph.microsoft.us/v1.0"
    assert us.authority == f"https://login.microsoftonline.us/{TENANT}"
    assert GraphSettings(tenant_id=TENANT, client_id="c", client_secret="s").write_budget == 2800


@pytest.mark.parametrize(("value", "literal"), [("alice", "'alice'"), ("o'neil", "'o''neil'"), ("''", "''''''")])
def test_odata_string_literals(value, literal):
    """Single quotes are doubled inside OData string literals."""
    assert odata_string(value) == literal


# ===================================================================== reading


def test_read_follows_every_next_link(env):
    """2,500 members at 999 a page: three GETs, the later two on the whole nextLink URL."""
    env.fake.page_size = 999
    members = people(env, 2500)
    gid = env.fake.add_group(set(members))
    target = env.target()
    assert target.read_members(gid) == set(members)
    pages = [p for m, p in env.fake.log if m == "GET"]
    assert len(pages) == 3 and env.graph_requests() == 3


def test_next_link_elsewhere_is_not_followed(env):
    """A nextLink on another host is refused (the bearer token would go with it)."""
    gid = env.fake.add_group()
    env.fake.fail("GET", "/members/", lambda: Reply(200, {"value": [], "@odata.nextLink": "https://evil.test/x"}))
    with pytest.raises(TargetUnavailable, match=r"refusing to follow https://evil.test/x"):
        env.target().read_members(gid)


def test_read_normalises_and_rejects_what_is_not_a_group(env):
    """Group ids compare in lower case; a name that is no object id is GroupNotFound without a request."""
    members = people(env, 3)
    gid = env.fake.add_group(set(members))
    target = env.target()
    assert target.read_members(gid.upper()) == set(members)
    with pytest.raises(GroupNotFound, match="not a group object id"):
        target.read_members("cn=walkin,ou=groups,dc=example,dc=org")
    with pytest.raises(GroupNotFound, match="Request_ResourceNotFound"):
        target.read_members(str(uuid.uuid4()))
    assert env.graph_requests() == 2


def test_has_members_probes_with_filtered_reads(env):
    """Up to 45 members: ``$filter=id in (…)`` reads of 15 with ConsistencyLevel: eventual;
    more: one complete read."""
    members = people(env, 60)
    gid = env.fake.add_group(set(members[::2]))
    target = env.target()
    assert target.has_members(gid, members[:40]) == set(members[:40:2])
    probes = [c.request for c in env.rsps.calls if "$filter" in c.request.url]
    assert len(probes) == math.ceil(40 / 15) and all(r.headers["ConsistencyLevel"] == "eventual" for r in probes)
    assert target.has_members(gid, members) == set(members[::2])
    assert env.graph_requests() == 3 + 1


# ===================================================================== resolving


def test_resolve_batches_lookups_and_caches(env):
    """100 UPNs: seven ``in (…)`` queries of up to 15 in one $batch; case does not matter;
    unknown people are absent; a second resolve asks nothing."""
    members = people(env, 100)
    wanted = [PersonKey(f"p{i}", f"USER{i:05d}@District.org") for i in range(100)] + [PersonKey("x", "nobody@d.org")]
    target = env.target()
    found = target.resolve(wanted)
    assert found == {f"p{i}": members[i] for i in range(100)}
    assert env.fake.calls("POST", "/$batch") == 1 and env.fake.calls("GET", "/users") == math.ceil(101 / 15)
    assert target.resolve(wanted[:50]) == {f"p{i}": members[i] for i in range(50)}
    assert env.graph_requests() == 1
    env.clock.now += 900  # lookup_cache_seconds: asked again, so the reconcile's own TTL holds
    assert target.resolve(wanted[:50]) == {f"p{i}": members[i] for i in range(50)}
    assert env.graph_requests() == 2


@pytest.mark.parametrize("per_query", [1, 15], ids=["eq", "in"])
def test_resolve_escapes_quotes_and_url_characters(env, per_query):
    """Keys holding ', &, +, #, %, spaces and non-ASCII find exactly their own user."""
    keys = ["o'neil@d.org", "a&b@d.org", "a+b@d.org", "x#EXT#@d.org", "100%@d.org", "a b@d.org", "zoë@d.org", "''@d.org"]
    ids = {key: env.fake.add_user(key) for key in keys + ["oneil@d.org", "a@d.org", "ab@d.org"]}
    target = env.target(lookup_values_per_query=per_query)
    found = target.resolve([PersonKey(str(n), key) for n, key in enumerate(keys)])
    assert found == {str(n): ids[key] for n, key in enumerate(keys)}


def test_resolve_by_employee_id_one_query_each(env):
    """match=employeeId with eq queries: 25 people → two $batch requests (20 + 5)."""
    ids = [env.fake.add_user(f"u{i}@d.org", employee_id=f"E{i:04d}") for i in range(25)]
    target = env.target(match="employeeId", lookup_values_per_query=1)
    assert target.resolve([PersonKey(str(i), f"E{i:04d}") for i in range(25)]) == {str(i): ids[i] for i in range(25)}
    assert env.fake.calls("POST", "/$batch") == 2


def test_ambiguous_key_is_reported_not_guessed(env):
    """Two users with one employeeId: that person stays unresolved and is listed."""
    first, second = env.fake.add_user("a@d.org", employee_id="77"), env.fake.add_user("b@d.org", employee_id="77")
    single = env.fake.add_user("c@d.org", employee_id="78")
    target = env.target(match="employeeId")
    assert target.resolve([PersonKey("p1", "77"), PersonKey("p2", "78")]) == {"p2": single}
    assert target.last_ambiguous == {"p1": sorted([first, second])}


def test_object_id_mode_looks_nothing_up(env):
    """match=object_id: the key is the object id (lower-cased); other keys are absent."""
    object_id = str(uuid.uuid4())
    target = env.target(match="object_id")
    assert target.resolve([PersonKey("p1", object_id.upper()), PersonKey("p2", "alice")]) == {"p1": object_id}
    assert env.graph_requests() == 0 and is_object_id(object_id)


# ===================================================================== writing


def test_patch_of_twenty_with_present_members_is_split(env):
    """A 20-member PATCH holding 2 present members gets Graph's 400 "already exist":
    halves are retried until the present ones stand alone; all 20 end up DONE."""
    members = people(env, 20)
    gid = env.fake.add_group({members[3], members[17]})
    result = env.target().add_members(gid, members)
    assert result.done() == members and result.failed() == {}
    assert result.outcomes[members[3]] == (Outcome.DONE, "already a member")
    assert result.outcomes[members[0]] == (Outcome.DONE, "added")
    assert env.fake.groups[gid] == set(members)
    assert 1 < result.requests <= 1 + 2 * 2 * math.ceil(math.log2(20))


def test_missing_member_is_retried_then_failed_alone(env):
    """A user not yet replicated (two "does not exist" answers) is added on a later try;
    one that never exists is FAILED after the consistency window; the rest are added."""
    members = people(env, 30)
    late = members[7]
    env.fake.hidden[late] = 2
    ghost = str(uuid.uuid4())
    gid = env.fake.add_group()
    result = env.target(consistency_window=10.0).add_members(gid, [*members[:10], ghost, *members[10:]])
    assert set(result.failed()) == {ghost} and "Request_ResourceNotFound" in result.failed()[ghost]
    assert "retried for 10s" in result.failed()[ghost]
    assert result.outcomes[late][0] is Outcome.DONE and env.fake.groups[gid] == set(members)
    assert sum(env.clock.slept) <= 10.0


def test_not_an_object_id_fails_without_a_request(env):
    """A member that is no GUID is FAILED before anything is sent."""
    gid = env.fake.add_group()
    result = env.target().add_members(gid, ["uid=alice,ou=people,dc=example,dc=org"])
    assert result.outcomes == {"uid=alice,ou=people,dc=example,dc=org": (Outcome.FAILED, "not an object id")}
    assert env.graph_requests() == 0 and result.requests == 0


def test_removals_in_a_batch_with_mixed_statuses(env):
    """One $batch of 20 DELETEs: 204 removed, 404 not a member (done, the group being
    there), 403 FAILED with Graph's message, 429 sent again after its Retry-After."""
    members = people(env, 20)
    gid = env.fake.add_group(set(members[:15]))
    env.fake.fail("DELETE", f"/members/{members[4]}/", error(403, "Authorization_RequestDenied",
                                                             "Insufficient privileges to complete the operation."))
    env.fake.fail("DELETE", f"/members/{members[9]}/", error(429, "TooManyRequests", "Too many requests.",
                                                             **{"Retry-After": "7"}))
    result = env.target().remove_members(gid, members)
    assert result.failed() == {members[4]: "403 Authorization_RequestDenied: Insufficient privileges to complete "
                                           "the operation."}
    assert result.outcomes[members[9]] == (Outcome.DONE, "removed")
    assert result.outcomes[members[16]] == (Outcome.DONE, "not a member")
    assert env.fake.groups[gid] == {members[4]} and env.clock.slept == [7.0]
    assert env.fake.calls("POST", "/$batch") == 2 and result.requests == 3  # + the group's GET


@pytest.mark.parametrize("names", ["group", "member", "nothing"])
def test_one_absent_member_in_twenty_removals_leaves_twenty_done(env, names):
    """19 DELETEs answered 204 and one 404, whatever its message names (Graph's own
    answer names the group): one GET finds the group, so all 20 are DONE."""
    members = people(env, 20)
    absent = members[6]
    gid = env.fake.add_group(set(members) - {absent})
    if names != "group":
        env.fake.fail("DELETE", f"/members/{absent}/", not_found(absent) if names == "member" else error(
            404, "Request_ResourceNotFound", "Resource does not exist."))
    result = env.target().remove_members(gid, members)
    assert result.done() == members and result.failed() == {}
    assert result.outcomes[absent] == (Outcome.DONE, "not a member")
    assert all(result.outcomes[m] == (Outcome.DONE, "removed") for m in members if m != absent)
    assert env.fake.groups[gid] == set()
    assert env.fake.log.count(("GET", f"/groups/{gid}")) == 1
    assert env.fake.calls("POST", "/$batch") == 1 and result.requests == 2


def test_a_group_deleted_mid_batch_is_raised_after_the_answered_removals(env):
    """Two $batch of 20; the group is deleted after 30 removals were answered, one of
    them a 404 for a member it did not hold. GroupNotFound comes with the 29 removed
    members DONE (the second batch's included); the absent one and those after the
    deletion have no outcome (not written)."""
    members = people(env, 40)
    absent = members[23]
    gid = env.fake.add_group(set(members) - {absent})
    env.fake.delete_group_after(gid, 30)
    with pytest.raises(GroupNotFound, match="Request_ResourceNotFound") as caught:
        env.target().remove_members(gid, members)
    partial = caught.value.partial
    removed = [m for m in members[:30] if m != absent]
    assert partial.done() == removed and partial.failed() == {}
    assert set(partial.outcomes) == set(removed)
    assert gid not in env.fake.groups and env.fake.log.count(("GET", f"/groups/{gid}")) == 1
    assert partial.requests == 3  # two $batch, one GET


def test_writes_to_a_missing_group(env):
    """PATCH and DELETE answered 404: the group's GET answers 404 too, so GroupNotFound."""
    member = people(env, 1)[0]
    target = env.target()
    for write in (target.add_members, target.remove_members):
        gid = str(uuid.uuid4())
        with pytest.raises(GroupNotFound) as caught:
            write(gid, [member])
        assert caught.value.partial is not None and caught.value.partial.outcomes == {}
        assert env.fake.log[-1] == ("GET", f"/groups/{gid}")


def test_thousand_adds_and_thousand_removes_take_at_most_110_requests(env):
    """The planner's 1,000 adds and 1,000 removes, handed over like the reconcile does
    (chunks of 1,000), reach Graph in 50 PATCHes + 50 $batch requests (+ sign-in)."""
    adds, removes = people(env, 1000, "new"), people(env, 1000, "old")
    gid = env.fake.add_group(set(removes))
    target = env.target()
    added = target.add_members(gid, adds)
    removed = target.remove_members(gid, removes)
    assert len(added.done()) == 1000 and len(removed.done()) == 1000
    assert env.fake.groups[gid] == set(adds)
    total = len(env.rsps.calls)  # everything, sign-in included
    assert env.graph_requests() == added.requests + removed.requests == 100
    assert total <= 110, total
