"""Entra ID's request sequences replayed against the app, default and
``aadOptscim062020`` forms, each asserting the stored state afterwards."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from connector.store.models import JournalRow, MemberRow, UserRow
from tests.conftest import AUTH
from tests.connector import entra

FORMS = pytest.mark.parametrize("flag", [False, True], ids=["default", "aadOptscim062020"])
JSON = {**AUTH, "Content-Type": "application/scim+json"}


def _stored_user(store, user_id):
    with store.session_read() as s:
        return s.get(UserRow, user_id)


def _members(store, group_id):
    with store.session_read() as s:
        return set(s.scalars(select(MemberRow.member_id).where(MemberRow.group_id == group_id)))


def _journal(store):
    with store.session_read() as s:
        return [(r.event, r.user_id, r.group_id, r.detail) for r in s.scalars(select(JournalRow).order_by(JournalRow.seq))]


def test_test_connection_returns_an_empty_list(client):
    """Entra's 'Test connection' filters on a random GUID and needs 200 + empty list."""
    r = client.get("/scim/v2/Users?" + entra.filter_query(f'userName eq "{uuid.uuid4()}"'), headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["totalResults"] == 0 and r.get_json()["Resources"] == []
    assert r.content_type.startswith("application/scim+json")


@FORMS
def test_user_lifecycle(client, store, flag):
    """Create → match → update → disable → delete, as Entra sends them."""
    # create (legacy payload carries nulls and a malformed enterprise URN)
    r = client.post("/scim/v2/Users", data=entra.dumps(entra.create_user("Bjensen@District.org", "bj-1", legacy=not flag)),
                    headers=JSON)
    assert r.status_code == 201, r.get_json()
    user = r.get_json()
    uid = user["id"]
    assert r.headers["Location"].endswith(f"/Users/{uid}")
    assert r.headers["ETag"] == user["meta"]["version"]
    row = _stored_user(store, uid)
    assert row.user_name == "bjensen@district.org" and row.external_id == "bj-1" and row.active is True
    assert row.data[entra.ENTERPRISE] == {"employeeNumber": "701984", "department": "Counseling"}
    assert "nickName" not in row.data and "roles" not in row.data

    # match: by userName (any case, '+' for spaces), by externalId, by work email
    for expr in ['userName eq "bjensen@district.org"', 'externalId eq "bj-1"',
                 'emails[type eq "work"].value eq "BJENSEN@district.org"']:
        r = client.get("/scim/v2/Users?" + entra.filter_query(expr), headers=AUTH)
        assert r.status_code == 200 and r.get_json()["totalResults"] == 1, expr
        assert r.get_json()["Resources"][0]["id"] == uid

    # update: name, a filtered email path that does not exist yet, manager, extension attrs
    ops = [
        entra.op("replace", "name.familyName", "Jensen-Smith", flag=flag),
        entra.op("add", 'emails[type eq "home"].value', "barbara@home.example", flag=flag),
        entra.op("add", f"{entra.ENTERPRISE}:manager", [{"$ref": "../Users/m1", "value": "m1"}] if not flag else "m1", flag=flag),
        entra.op("replace", f"{entra.WALKIN}:locationCode", "0789", flag=flag),
    ]
    if flag:
        ops.append(entra.op("replace", None, {
            "displayName": "Barb Jensen-Smith",
            "name.givenName": "Barb",
            f"{entra.ENTERPRISE}:employeeNumber": "701985",
        }, flag=True))
    else:
        ops.append({"op": "Replace", "path": "UserName", "value": "bjensen@district.org"})
    r = client.patch(f"/scim/v2/Users/{uid}", data=entra.dumps(entra.patch(*ops, with_id=uid)), headers=JSON)
    assert r.status_code == 200, r.get_json()
    row = _stored_user(store, uid)
    assert row.data["name"]["familyName"] == "Jensen-Smith"
    assert {"type": "home", "value": "barbara@home.example"} in row.data["emails"]
    assert row.data[entra.ENTERPRISE]["manager"]["value"] == "m1"
    assert row.location_code == "0789"
    if flag:
        assert row.data["displayName"] == "Barb Jensen-Smith"
        assert row.data["name"]["givenName"] == "Barb"
        assert row.data[entra.ENTERPRISE]["employeeNumber"] == "701985"
    else:
        assert row.data["userName"] == "bjensen@district.org"

    # disable: the user stays, is returned by GET and by filters
    r = client.patch(f"/scim/v2/Users/{uid}", data=entra.dumps(entra.disable(flag)), headers=JSON)
    assert r.status_code == 200 and r.get_json()["active"] is False
    assert _stored_user(store, uid).active is False
    assert client.get(f"/scim/v2/Users/{uid}", headers=AUTH).get_json()["active"] is False
    r = client.get("/scim/v2/Users?" + entra.filter_query('userName eq "bjensen@district.org"'), headers=AUTH)
    assert r.get_json()["Resources"][0]["active"] is False

    # delete
    assert client.delete(f"/scim/v2/Users/{uid}", headers=AUTH).status_code == 204
    assert _stored_user(store, uid) is None
    assert client.get(f"/scim/v2/Users/{uid}", headers=AUTH).status_code == 404

    events = [e for e, u, _, _ in _journal(store) if u == uid]
    assert events[0] == "user.created" and events[-1] == "user.deleted"
    updates = [d for e, u, _, d in _journal(store) if e == "user.updated"]
    assert any("locationCode" in d for d in updates) and any(d.get("active") == [True, False] for d in updates)


@FORMS
def test_group_lifecycle(client, store, flag):
    """Create → add members → remove one (only that one) → rename → delete."""
    ids = []
    for i in range(4):
        r = client.post("/scim/v2/Users", data=entra.dumps(entra.create_user(f"u{i}@district.org", f"x{i}")), headers=JSON)
        ids.append(r.get_json()["id"])
    r = client.post("/scim/v2/Groups", data=entra.dumps(entra.create_group("WalkIn-Approvers-0123", "g-1")), headers=JSON)
    assert r.status_code == 201, r.get_json()
    gid = r.get_json()["id"]
    assert "members" not in r.get_json()

    r = client.get("/scim/v2/Groups?excludedAttributes=members&"
                   + entra.filter_query('displayName eq "WalkIn-Approvers-0123"'), headers=AUTH)
    assert r.get_json()["totalResults"] == 1 and "members" not in r.get_json()["Resources"][0]

    r = client.patch(f"/scim/v2/Groups/{gid}", data=entra.dumps(entra.add_members(ids, flag)), headers=JSON)
    assert r.status_code == 204 and r.data == b""
    assert _members(store, gid) == set(ids)

    r = client.patch(f"/scim/v2/Groups/{gid}", data=entra.dumps(entra.remove_members([ids[1]], flag)), headers=JSON)
    assert r.status_code == 204
    assert _members(store, gid) == {ids[0], ids[2], ids[3]}

    rename = entra.patch(entra.op("replace", "displayName", "WalkIn-Approvers-0456", flag=flag)) if not flag else \
        entra.patch(entra.op("replace", None, {"displayName": "WalkIn-Approvers-0456"}, flag=True))
    r = client.patch(f"/scim/v2/Groups/{gid}", data=entra.dumps(rename), headers=JSON)
    assert r.status_code == 204
    group = client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).get_json()
    assert group["displayName"] == "WalkIn-Approvers-0456"
    assert {m["value"] for m in group["members"]} == {ids[0], ids[2], ids[3]}

    journal = _journal(store)
    added = [u for e, u, g, _ in journal if e == "group.member_added" and g == gid]
    removed = [u for e, u, g, _ in journal if e == "group.member_removed" and g == gid]
    assert sorted(added) == sorted(ids) and removed == [ids[1]]
    assert any(e == "group.renamed" for e, *_ in journal)

    assert client.delete(f"/scim/v2/Groups/{gid}", headers=AUTH).status_code == 204
    assert _members(store, gid) == set()
    removed = [u for e, u, g, _ in _journal(store) if e == "group.member_removed" and g == gid]
    assert sorted(removed) == sorted([ids[1], ids[0], ids[2], ids[3]])


@pytest.mark.parametrize("member", ["bare", "addMember", "capitalised"])
def test_entra_member_noise(client, store, member):
    """Bare-string members, an operation 'name', capitalised attribute names."""
    uid = client.post("/scim/v2/Users", json={"userName": "n@d.org"}, headers=AUTH).get_json()["id"]
    gid = client.post("/scim/v2/Groups", json={"displayName": "G"}, headers=AUTH).get_json()["id"]
    operation = {
        "bare": {"op": "Add", "path": "members", "value": [uid]},
        "addMember": {"name": "addMember", "op": "Add", "path": "members", "value": [{"value": uid}]},
        "capitalised": {"op": "ADD", "path": "Members", "value": [{"Value": uid}]},
    }[member]
    r = client.patch(f"/scim/v2/Groups/{gid}", json={"schemas": [entra.PATCH], "Operations": [operation]}, headers=AUTH)
    assert r.status_code == 204, r.get_json()
    assert _members(store, gid) == {uid}


def test_deleting_a_user_drops_memberships_and_disabling_keeps_them(client, store):
    """Disable keeps group memberships; DELETE removes them and journals it."""
    uid = client.post("/scim/v2/Users", json={"userName": "k@d.org"}, headers=AUTH).get_json()["id"]
    gid = client.post("/scim/v2/Groups", json={"displayName": "G", "members": [{"value": uid}]}, headers=AUTH).get_json()["id"]
    client.patch(f"/scim/v2/Users/{uid}", json=entra.disable(False), headers=AUTH)
    assert _members(store, gid) == {uid}
    assert client.get(f"/scim/v2/Users/{uid}", headers=AUTH).get_json()["groups"][0]["value"] == gid
    client.delete(f"/scim/v2/Users/{uid}", headers=AUTH)
    assert _members(store, gid) == set()
    assert ("group.member_removed", uid, gid) in [(e, u, g) for e, u, g, _ in _journal(store)]


def test_duplicate_username_differs_only_in_case(client):
    """userName uniqueness is case-insensitive (409 uniqueness)."""
    assert client.post("/scim/v2/Users", json={"userName": "Dup@d.org"}, headers=AUTH).status_code == 201
    r = client.post("/scim/v2/Users", json={"userName": "dup@D.ORG"}, headers=AUTH)
    assert r.status_code == 409 and r.get_json()["scimType"] == "uniqueness"


def _new_user(client, user_name: str) -> str:
    r = client.post("/scim/v2/Users", data=entra.dumps(entra.create_user(user_name, user_name)), headers=JSON)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _new_group(client) -> str:
    r = client.post("/scim/v2/Groups", data=entra.dumps(entra.create_group("G", "g-1")), headers=JSON)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


@pytest.mark.parametrize(("path", "value"), [
    (f"{entra.ENTERPRISE}:manager", lambda m: [{"$ref": f"../Users/{m}", "value": m}]),
    ("manager", lambda m: [{"$ref": f"../Users/{m}", "value": m}]),
    ("manager.value", lambda m: m),
], ids=["with-urn", "without-urn", "manager.value-without-urn"])
def test_manager_path_with_or_without_the_enterprise_urn(client, store, path, value):
    """Entra's 'Add manager', with the path written with and without the schema URN
    (RFC 7644 §3.10), sets the enterprise manager."""
    uid, mid = _new_user(client, "e@district.org"), _new_user(client, "m@district.org")
    body = entra.patch(entra.op("add", path, value(mid), flag=False))
    r = client.patch(f"/scim/v2/Users/{uid}", data=entra.dumps(body), headers=JSON)
    assert r.status_code == 200, r.get_json()
    user = client.get(f"/scim/v2/Users/{uid}", headers=AUTH).get_json()
    assert user[entra.ENTERPRISE]["manager"]["value"] == mid
    assert user[entra.ENTERPRISE]["employeeNumber"] == "701984"  # the rest of the extension is kept
    assert "manager" not in user and entra.ENTERPRISE in user["schemas"]
    assert _stored_user(store, uid).manager_id == mid
    r = client.get("/scim/v2/Users?" + entra.filter_query(f'{entra.ENTERPRISE}:manager.value eq "{mid}"'), headers=AUTH)
    assert [u["id"] for u in r.get_json()["Resources"]] == [uid]


def test_a_name_two_extensions_define_is_refused_naming_them(client, store, monkeypatch):
    """With two extensions defining jobCode, 'jobCode' alone is a 400 invalidPath naming
    both URNs, and nothing is stored; the full URN still works."""
    from connector.scim.schema import USER, Attr, ResourceKind, Schema

    other = Schema(id="urn:example:params:scim:schemas:extension:other:2.0:User", name="Other",
                   description="Test extension", attributes=(Attr("jobCode"),))
    monkeypatch.setattr("connector.provisioning.USER",
                        ResourceKind(USER.name, USER.endpoint, USER.core, USER.extensions + (other,)))
    uid = _new_user(client, "a@district.org")
    before = _stored_user(store, uid)
    r = client.patch(f"/scim/v2/Users/{uid}", headers=JSON,
                     data=entra.dumps(entra.patch(entra.op("replace", "jobCode", "X1", flag=False))))
    assert r.status_code == 400 and r.get_json()["scimType"] == "invalidPath"
    assert entra.WALKIN in r.get_json()["detail"] and other.id in r.get_json()["detail"]
    assert _stored_user(store, uid).version == before.version
    r = client.patch(f"/scim/v2/Users/{uid}", headers=JSON,
                     data=entra.dumps(entra.patch(entra.op("replace", f"{entra.WALKIN}:jobCode", "X1", flag=False))))
    assert r.status_code == 200 and _stored_user(store, uid).data[entra.WALKIN]["jobCode"] == "X1"


@pytest.mark.parametrize("operation", [
    {"op": "Add", "path": "members", "value": [{"displayName": "Jane", "value": "{uid}"}]},
    {"name": "addMember", "op": "Add", "path": "members", "value": [{"displayName": "Jane", "value": "{uid}"}]},
    {"op": "add", "value": {"members": [{"displayName": "Jane", "value": "{uid}"}]}},
], ids=["add", "addMember", "no-path"])
def test_member_with_an_unknown_sub_attribute_is_added(client, store, operation, caplog):
    """A member value carrying displayName (not in the Group schema) adds the member;
    the sub-attribute is dropped with a warning."""
    uid = _new_user(client, "jane@district.org")
    gid = _new_group(client)
    body = entra.patch(_with_id(operation, uid))
    with caplog.at_level("WARNING", logger="connector.scim.values"):
        r = client.patch(f"/scim/v2/Groups/{gid}", data=entra.dumps(body), headers=JSON)
    assert r.status_code == 204, r.get_json()
    assert _members(store, gid) == {uid}
    group = client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).get_json()
    assert [m["value"] for m in group["members"]] == [uid]
    assert "displayName" not in group["members"][0] and "Jane" not in str(group)
    assert any("displayName" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_group_written_with_an_unknown_member_sub_attribute_keeps_the_member(client, store, method):
    """POST and PUT /Groups: unknown member sub-attributes are dropped, the member kept;
    the defined display sub-attribute is accepted as before (and not stored)."""
    uid = _new_user(client, "jane@district.org")
    body = {**entra.create_group("G", "g-1"),
            "members": [{"displayName": "Jane", "display": "Jane D", "value": uid}]}
    if method == "POST":
        r = client.post("/scim/v2/Groups", data=entra.dumps(body), headers=JSON)
        assert r.status_code == 201, r.get_json()
        gid = r.get_json()["id"]
    else:
        gid = _new_group(client)
        r = client.put(f"/scim/v2/Groups/{gid}", data=entra.dumps(body), headers=JSON)
        assert r.status_code == 200, r.get_json()
    assert _members(store, gid) == {uid}
    group = client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).get_json()
    assert [m["value"] for m in group["members"]] == [uid] and "Jane" not in str(group)


def test_user_email_with_an_unknown_sub_attribute_is_stored_without_it(client, store):
    """The same rule on Users: an email's unknown sub-attribute is dropped, the email kept."""
    body = {**entra.create_user("u@district.org", "u-1"),
            "emails": [{"primary": True, "type": "work", "value": "u@district.org", "verified": True}]}
    r = client.post("/scim/v2/Users", data=entra.dumps(body), headers=JSON)
    assert r.status_code == 201, r.get_json()
    assert _stored_user(store, r.get_json()["id"]).data["emails"] == [
        {"primary": True, "type": "work", "value": "u@district.org"}]


@pytest.mark.parametrize(("method", "body"), [
    ("POST", {"userName": "x@district.org", "favouriteColour": "blue"}),
    ("PATCH", entra.patch({"op": "Add", "path": "favouriteColour", "value": "blue"})),
    ("PATCH", entra.patch({"op": "Add", "value": {"favouriteColour": "blue"}})),
], ids=["post", "patch-path", "patch-no-path"])
def test_an_unknown_core_attribute_is_still_refused(client, store, method, body):
    """Leniency stops at sub-attributes: an unknown top-level attribute is a 400."""
    uid = _new_user(client, "a@district.org")
    before = _stored_user(store, uid).version
    if method == "POST":
        r = client.post("/scim/v2/Users", data=entra.dumps(body), headers=JSON)
    else:
        r = client.patch(f"/scim/v2/Users/{uid}", data=entra.dumps(body), headers=JSON)
    assert r.status_code == 400 and r.get_json()["scimType"] in ("invalidPath", "invalidValue")
    assert "favouriteColour" in r.get_json()["detail"]
    assert _stored_user(store, uid).version == before


def _with_id(operation: dict, uid: str) -> dict:
    return json.loads(json.dumps(operation).replace("{uid}", uid))
