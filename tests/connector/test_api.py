"""Versioning, projection, discovery, health and HTTP-level behaviour."""

from __future__ import annotations

import pytest

from tests.conftest import AUTH

USER = {"userName": "v@d.org", "displayName": "V", "emails": [{"type": "work", "value": "v@d.org"}]}


def _user(client) -> dict:
    r = client.post("/scim/v2/Users", json=USER, headers=AUTH)
    assert r.status_code == 201
    return r.get_json()


def test_etag_changes_with_every_write_and_if_match_is_honoured(client):
    """meta.version and ETag move on each change; a stale If-Match is 412."""
    user = _user(client)
    uid, v1 = user["id"], user["meta"]["version"]
    r = client.get(f"/scim/v2/Users/{uid}", headers=AUTH)
    assert r.headers["ETag"] == v1
    assert client.get(f"/scim/v2/Users/{uid}", headers={**AUTH, "If-None-Match": v1}).status_code == 304
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "displayName", "value": "W"}]}
    r = client.patch(f"/scim/v2/Users/{uid}", json=patch, headers={**AUTH, "If-Match": v1})
    assert r.status_code == 200
    v2 = r.headers["ETag"]
    assert v2 != v1 and r.get_json()["meta"]["version"] == v2
    r = client.patch(f"/scim/v2/Users/{uid}", json=patch, headers={**AUTH, "If-Match": v1})
    assert r.status_code == 412 and r.get_json()["status"] == "412"
    assert client.put(f"/scim/v2/Users/{uid}", json=USER, headers={**AUTH, "If-Match": v1}).status_code == 412
    assert client.delete(f"/scim/v2/Users/{uid}", headers={**AUTH, "If-Match": v1}).status_code == 412
    assert client.get(f"/scim/v2/Users/{uid}", headers={**AUTH, "If-None-Match": v1}).status_code == 200
    assert client.delete(f"/scim/v2/Users/{uid}", headers={**AUTH, "If-Match": "*"}).status_code == 204


def test_unchanged_write_keeps_the_version(client):
    """A PATCH that changes nothing does not bump the version."""
    user = _user(client)
    patch = {"Operations": [{"op": "replace", "path": "displayName", "value": "V"}]}
    r = client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=AUTH)
    assert r.get_json()["meta"]["version"] == user["meta"]["version"]


def test_put_replaces_the_whole_resource(client):
    """PUT drops attributes the body does not carry (RFC 7644 §3.5.1)."""
    user = _user(client)
    r = client.put(f"/scim/v2/Users/{user['id']}", json={"userName": "v@d.org", "title": "T"}, headers=AUTH)
    assert r.status_code == 200
    body = r.get_json()
    assert body["title"] == "T" and "emails" not in body and "displayName" not in body


@pytest.mark.parametrize(("params", "present", "absent"), [
    ({"attributes": "userName"}, {"id", "userName", "schemas", "meta"}, {"emails", "displayName"}),
    ({"attributes": "emails.value"}, {"emails"}, {"userName"}),
    ({"excludedAttributes": "emails,displayName"}, {"userName"}, {"emails", "displayName"}),
    ({"excludedAttributes": "id"}, {"id"}, set()),
], ids=["attributes", "sub-attribute", "excluded", "id-always"])
def test_attribute_projection(client, params, present, absent):
    """attributes/excludedAttributes on GET (RFC 7644 §3.4.2.5)."""
    uid = _user(client)["id"]
    body = client.get(f"/scim/v2/Users/{uid}", query_string=params, headers=AUTH).get_json()
    assert present <= body.keys() and not (absent & body.keys())
    if params.get("attributes") == "emails.value":
        assert body["emails"] == [{"value": "v@d.org"}]


def test_group_patch_answers_204_unless_attributes_are_asked(client):
    """Group PATCH: 204 by default, 200 with the resource when attributes are asked."""
    uid = _user(client)["id"]
    gid = client.post("/scim/v2/Groups", json={"displayName": "G"}, headers=AUTH).get_json()["id"]
    patch = {"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
    assert client.patch(f"/scim/v2/Groups/{gid}", json=patch, headers=AUTH).status_code == 204
    r = client.patch(f"/scim/v2/Groups/{gid}?attributes=members", json=patch, headers=AUTH)
    assert r.status_code == 200 and [m["value"] for m in r.get_json()["members"]] == [uid]


def test_discovery_describes_what_is_supported(client):
    """ServiceProviderConfig, ResourceTypes and Schemas (and by id)."""
    spc = client.get("/scim/v2/ServiceProviderConfig", headers=AUTH).get_json()
    assert spc["patch"]["supported"] and spc["filter"]["supported"] and spc["etag"]["supported"]
    assert spc["sort"]["supported"] and not spc["bulk"]["supported"] and not spc["changePassword"]["supported"]
    types = client.get("/scim/v2/ResourceTypes", headers=AUTH).get_json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    user_type = client.get("/scim/v2/ResourceTypes/User", headers=AUTH).get_json()
    assert {e["schema"] for e in user_type["schemaExtensions"]} == {
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:extension:walkin:2.0:User",
    }
    schemas = client.get("/scim/v2/Schemas", headers=AUTH).get_json()
    assert schemas["totalResults"] == 4
    walkin = client.get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:extension:walkin:2.0:User", headers=AUTH).get_json()
    certs = next(a for a in walkin["attributes"] if a["name"] == "certifications")
    assert certs["multiValued"] and {s["name"] for s in certs["subAttributes"]} == {"course", "kind", "completedOn"}
    assert client.get("/scim/v2/Schemas/urn:nope", headers=AUTH).status_code == 404


def test_health_and_readiness(client):
    """healthz needs nothing; readyz checks the store."""
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readiness_fails_when_the_store_is_unreachable(settings):
    """readyz is 503 when the database does not answer (nothing listens on port 1)."""
    from connector import create_app
    from connector.store.database import Store

    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", auto_migrate=False)
    client = create_app(settings, store=store).test_client()
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_unknown_extension_urns_are_ignored(client):
    """Unknown schema URNs in a request are ignored, not fatal."""
    body = {**USER, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom:1.0"],
            "urn:example:custom:1.0": {"shoeSize": 9}}
    r = client.post("/scim/v2/Users", json=body, headers=AUTH)
    assert r.status_code == 201 and "urn:example:custom:1.0" not in r.get_json()


def test_string_booleans_and_capitalised_names_on_create(client):
    """'True' strings and 'UserName' keys are accepted on POST too."""
    r = client.post("/scim/v2/Users", json={"UserName": "c@d.org", "Active": "True"}, headers=AUTH)
    assert r.status_code == 201
    assert r.get_json()["userName"] == "c@d.org" and r.get_json()["active"] is True


def test_password_is_accepted_and_never_stored(client, store):
    """writeOnly password: accepted, never returned, never stored."""
    r = client.post("/scim/v2/Users", json={**USER, "password": "hunter2"}, headers=AUTH)
    assert r.status_code == 201 and "password" not in r.get_json()
    from connector.store.models import UserRow

    with store.session_read() as s:
        assert "hunter2" not in str(s.get(UserRow, r.get_json()["id"]).data)


def test_tokens_rotate(settings, store):
    """Several tokens may be configured; each works, others do not."""
    from pydantic import SecretStr

    from connector import create_app

    settings.scim_token = [SecretStr("old-token"), SecretStr("new-token")]
    client = create_app(settings, store=store).test_client()
    for token in ("old-token", "new-token"):
        assert client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = client.get("/scim/v2/Users", headers={"Authorization": "Bearer other"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_unexpected_errors_are_a_bare_500_with_a_request_id(app, client, caplog, monkeypatch):
    """A bug answers 500 with no traceback in the body; the log has the request id, not the token."""
    from tests.conftest import TOKEN

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["walkin.provisioning"], "search", boom)
    r = client.get("/scim/v2/Users", headers={**AUTH, "X-Request-Id": "req-42"})
    assert r.status_code == 500
    body = r.get_json()
    assert body["status"] == "500" and "req-42" in body["detail"]
    assert "secret internals" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert "req-42" in caplog.text and TOKEN not in caplog.text


def test_migrations_match_the_models(store):
    """Alembic's head revision creates exactly the tables and indexes the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from connector.store.models import POSTGRESQL_ONLY, Base

    def here(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "index" and name in POSTGRESQL_ONLY and store.engine.dialect.name != "postgresql")

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": here}), Base.metadata)
    assert diff == []
