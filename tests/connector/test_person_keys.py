"""Person keys (issue 11): the key the sync finds directory entries by is stored
folded as the directory compares it and unique, so a second user reaching the same
entry is refused with 409 uniqueness. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import sys
import threading
import unicodedata
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from connector import create_app
from connector.settings import Settings
from connector.store.database import Store
from connector.store.engine import MIGRATIONS, begin, make_engine
from connector.store.keys import FOLDING, fold_key
from connector.store.models import DirectoryEntryRow, StoreSettingRow, UserRow
from sync.settings import SyncSettings
from tests.conftest import AUTH, BACKENDS, POSTGRES_URL, TOKEN

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
EMPLOYEE_NUMBER = f"{ENT}:employeeNumber"
NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


# ------------------------------------------------------------------ the folding


@pytest.mark.parametrize(("value", "expected"), [
    ("bjensen", "bjensen"),
    ("bjensen ", "bjensen"),
    ("  BJensen\t", "bjensen"),
    ("b  jensen", "b jensen"),
    ("b\tjensen", "b jensen"),
    ("b\u00a0jensen", "b jensen"),
    ("b\u3000jensen", "b jensen"),
    ("b\u2028jensen", "b jensen"),
    ("ｂｊｅｎｓｅｎ", "bjensen"),
    ("bjen\u00adsen", "bjensen"),
    ("bjen\u200bsen", "bjensen"),
    ("bj\u0065\u0301nsen", "bj\u00e9nsen"),
    ("E1001", "e1001"),
    ("STRASSE", "strasse"),
    ("Straße", "strasse"),
    ("\u01c5emal", "d\u017eemal"),
    ("\u212b", "\u00e5"),
    ("\u216b", "xii"),
    ("   ", ""),
    ("\u200b\u00ad", ""),
], ids=["plain", "trailing-space", "outer-whitespace", "inner-run", "tab", "no-break-space", "ideographic-space",
        "line-separator", "fullwidth", "soft-hyphen", "zero-width-space", "combining-accent", "case", "upper",
        "sharp-s", "titlecase-digraph", "angstrom-sign", "roman-numeral", "only-spaces", "only-invisible"])
def test_fold_key(value, expected):
    """RFC 4518 mapping, NFKC, case folding and insignificant spaces."""
    assert fold_key(value) == expected


def test_fold_key_keeps_case_for_case_exact_attributes():
    """case_insensitive=False folds everything but case (caseExactMatch)."""
    assert fold_key(" ＢＪ  Ensen ", case_insensitive=False) == "BJ Ensen"


@given(st.text(max_size=30), st.booleans())
def test_folding_is_idempotent(value, case_insensitive):
    """Property: a folded key folds to itself (the stored keys are fixed points)."""
    once = fold_key(value, case_insensitive=case_insensitive)
    assert fold_key(once, case_insensitive=case_insensitive) == once


def test_every_unicode_separator_is_a_space():
    """The space list of the mapping covers every Zs, Zl and Zp code point of this Python's Unicode."""
    separators = [chr(cp) for cp in range(sys.maxunicode + 1)
                  if unicodedata.category(chr(cp)) in ("Zs", "Zl", "Zp")]
    assert separators and all(fold_key(f"a{c}{c}b") == "a b" for c in separators)


def test_the_folding_names_its_unicode_version():
    """A Python with other Unicode tables records another folding (the store then folds again)."""
    assert unicodedata.unidata_version in FOLDING


@pytest.mark.parametrize("path", ["emails", "active", "name", "nosuch", "groups.value"])
def test_person_key_must_be_a_single_string_attribute(path):
    """sync.person_key is checked when the settings load, and by the store."""
    with pytest.raises(ValidationError):
        SyncSettings(person_key=path)
    with pytest.raises(ValueError):
        Store("sqlite://", person_key=path)


# ------------------------------------------------------------------ SCIM writes

COLLISIONS = [
    ("bjensen", "bjensen "),
    ("b jensen", "b  jensen"),
    ("bjensen", "ｂｊｅｎｓｅｎ"),
    ("bjensen", "BJensen"),
    ("bjensen", "\tbjen\u00adsen\u3000"),
]
COLLISION_IDS = ["trailing-space", "inner-spaces", "fullwidth-nfkc", "case", "tab-soft-hyphen-ideographic-space"]


def _users(store) -> list[tuple[str, str | None]]:
    with store.session_read() as s:
        return sorted((r.data["userName"], r.person_key) for r in s.scalars(sa.select(UserRow)))


def _conflict(response, attribute: str = "userName") -> str:
    body = response.get_json()
    assert response.status_code == 409, body
    assert body["scimType"] == "uniqueness" and attribute in body["detail"], body
    return body["detail"]


@pytest.mark.parametrize(("first", "second"), COLLISIONS, ids=COLLISION_IDS)
def test_post_of_a_colliding_user_name_is_409(client, store, first, second):
    """POST: the second userName folding to the first's is refused; nothing of it is stored."""
    assert client.post("/scim/v2/Users", json={"userName": first}, headers=AUTH).status_code == 201
    _conflict(client.post("/scim/v2/Users", json={"userName": second, "active": True}, headers=AUTH))
    assert _users(store) == [(first, fold_key(first))]


def test_the_409_names_the_attribute_and_the_value(client):
    """The detail says which value collided, and why (the directory's comparison)."""
    client.post("/scim/v2/Users", json={"userName": "bjensen"}, headers=AUTH)
    detail = _conflict(client.post("/scim/v2/Users", json={"userName": "bjensen "}, headers=AUTH))
    assert detail == ("userName 'bjensen ' collides with an existing user's userName once folded as the "
                      "directory compares it (case, spaces, Unicode)")


@pytest.mark.parametrize(("first", "second"), COLLISIONS, ids=COLLISION_IDS)
def test_put_and_patch_renames_into_a_collision_are_409(client, store, first, second):
    """PUT and PATCH renaming another user onto a folded key in use: 409, the old name kept."""
    client.post("/scim/v2/Users", json={"userName": first}, headers=AUTH)
    other = client.post("/scim/v2/Users", json={"userName": "other", "active": True}, headers=AUTH).get_json()["id"]
    _conflict(client.put(f"/scim/v2/Users/{other}", json={"userName": second, "active": False}, headers=AUTH))
    patch = {"Operations": [{"op": "replace", "path": "active", "value": False},
                            {"op": "replace", "path": "userName", "value": second}]}
    _conflict(client.patch(f"/scim/v2/Users/{other}", json=patch, headers=AUTH))
    kept = client.get(f"/scim/v2/Users/{other}", headers=AUTH).get_json()
    assert (kept["userName"], kept["active"], kept["meta"]["version"]) == ("other", True, 'W/"1"')
    assert _users(store) == sorted([(first, fold_key(first)), ("other", "other")])


def test_a_user_may_respell_its_own_key(client, store):
    """Renaming bjensen to "BJensen " changes nothing the directory sees: no collision with itself."""
    uid = client.post("/scim/v2/Users", json={"userName": "bjensen"}, headers=AUTH).get_json()["id"]
    r = client.patch(f"/scim/v2/Users/{uid}", headers=AUTH,
                     json={"Operations": [{"op": "replace", "path": "userName", "value": "BJensen "}]})
    assert r.status_code == 200 and _users(store) == [("BJensen ", "bjensen")]


def test_concurrent_creates_of_colliding_keys_give_one_201(app, store):
    """Two threads POST "bjensen" and "bjensen " at the same instant, five times over:
    each time one 201 and one 409 uniqueness (the unique index decides)."""
    for round_ in range(5):
        statuses: list[tuple[int, str | None]] = []
        barrier = threading.Barrier(2)

        def create(name: str, barrier: threading.Barrier = barrier, statuses: list = statuses) -> None:
            client = app.test_client()
            barrier.wait()
            r = client.post("/scim/v2/Users", json={"userName": name}, headers=AUTH)
            statuses.append((r.status_code, (r.get_json() or {}).get("scimType")))

        names = [f"race{round_}", f"Race{round_} "] if round_ % 2 else [f"race{round_} ", f"ｒａｃｅ{round_}"]
        threads = [threading.Thread(target=create, args=(name,)) for name in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [(201, None), (409, "uniqueness")]
    assert len(_users(store)) == 5


def test_a_folded_key_too_long_for_its_index_is_400(client, store):
    """NFKC can lengthen a value (U+FDFA is 18 letters): over 512 folded characters is a 400."""
    r = client.post("/scim/v2/Users", json={"userName": "\ufdfa" * 40}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["scimType"] == "invalidValue"
    assert "once folded" in r.get_json()["detail"] and _users(store) == []


# ------------------------------------------------------------------ other person keys


@pytest.fixture
def open_store(settings):
    """``open_store(person_key)``: the test's database opened (and migrated) by a
    process configured with that person key; closed after the test."""
    opened: list[Store] = []

    def open_(person_key: str) -> Store:
        store = Store(settings.database_url, person_key=person_key)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.dispose()


def _app(settings, store, clock, person_key: str):
    configured = settings.model_copy(update={"sync": SyncSettings(person_key=person_key)})
    return create_app(configured, store=store, clock=clock).test_client()


def _employee(user_name: str, number: str | None) -> dict:
    body: dict = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT], "userName": user_name}
    if number is not None:
        body[ENT] = {"employeeNumber": number}
    return body


def test_employee_number_as_the_person_key(settings, open_store, clock):
    """With employeeNumber as the person key, E1001 and " e1001" are one key (409 naming
    it); users without one are any number; a rename into a key in use is refused."""
    store = open_store(EMPLOYEE_NUMBER)
    client = _app(settings, store, clock, EMPLOYEE_NUMBER)
    assert client.post("/scim/v2/Users", json=_employee("a", "E1001"), headers=AUTH).status_code == 201
    detail = _conflict(client.post("/scim/v2/Users", json=_employee("b", " e1001"), headers=AUTH), EMPLOYEE_NUMBER)
    assert detail.startswith(f"{EMPLOYEE_NUMBER} ' e1001' collides")
    for name in ("c", "d"):
        assert client.post("/scim/v2/Users", json=_employee(name, None), headers=AUTH).status_code == 201
    e = client.post("/scim/v2/Users", json=_employee("e", "E2002"), headers=AUTH).get_json()["id"]
    patch = {"Operations": [{"op": "replace", "path": f"{ENT}:employeeNumber", "value": "e1001"}]}
    _conflict(client.patch(f"/scim/v2/Users/{e}", json=patch, headers=AUTH), EMPLOYEE_NUMBER)
    assert client.get(f"/scim/v2/Users/{e}", headers=AUTH).get_json()[ENT]["employeeNumber"] == "E2002"
    # userNames differing in spaces are not a collision now: the key is the employee number.
    assert client.post("/scim/v2/Users", json=_employee("a ", "E3003"), headers=AUTH).status_code == 201
    assert _users(store) == [("a", "e1001"), ("a ", "e3003"), ("c", None), ("d", None), ("e", "e2002")]


def test_external_ids_stay_case_exact_unless_they_are_the_person_key(settings, client, open_store, clock):
    """RFC 7643 makes externalId caseExact: "ABC" and "abc" are two users — unless
    externalId is the person key, whose folded index then refuses the second."""
    assert client.post("/scim/v2/Users", json={"userName": "a", "externalId": "ABC"}, headers=AUTH).status_code == 201
    assert client.post("/scim/v2/Users", json={"userName": "b", "externalId": "abc"}, headers=AUTH).status_code == 201
    _conflict(client.post("/scim/v2/Users", json={"userName": "c", "externalId": "ABC"}, headers=AUTH), "externalId")
    store = open_store("externalId")
    assert _users(store) == [("a", None), ("b", None)]  # "ABC" and "abc" collide under the folding: neither keeps it
    by_external_id = _app(settings, store, clock, "externalId")
    assert by_external_id.post("/scim/v2/Users", json={"userName": "d", "externalId": "X-1"},
                               headers=AUTH).status_code == 201
    _conflict(by_external_id.post("/scim/v2/Users", json={"userName": "e", "externalId": "x-1 "}, headers=AUTH),
              "externalId")


def test_a_store_opened_for_another_person_key_is_refused_by_the_app(settings, open_store, clock):
    """The service writes keys with the store's attribute: settings saying another one stop start-up."""
    store = open_store("userName")
    with pytest.raises(ValueError, match="person key"):
        _app(settings, store, clock, EMPLOYEE_NUMBER)


# ------------------------------------------------------------------ changing the setting


def test_changing_the_person_key_folds_every_key_again(settings, client, store, open_store, clock, caplog):
    """WALKIN_SYNC__PERSON_KEY changes: the next start-up fills the column from the new
    attribute; colliding users keep no key (one warning naming both), without a crash;
    deleting one gives the other its key back at the start-up after."""
    ids = {}
    for name, number in [("ann", "E1001"), ("bob", "e1001 "), ("cat", "E2002"), ("dan", None)]:
        ids[name] = client.post("/scim/v2/Users", json=_employee(name, number), headers=AUTH).get_json()["id"]
    with store.session_write() as s:  # the sync cached entries found by userName
        s.add_all([DirectoryEntryRow(target="ldap", person_id=i, key=n, member=f"uid={n},dc=x", resolved_at=NOW)
                   for n, i in ids.items()])
    caplog.set_level(logging.INFO, logger="connector.store.person_keys")
    by_number = open_store(EMPLOYEE_NUMBER)
    assert _users(by_number) == [("ann", None), ("bob", None), ("cat", "e2002"), ("dan", None)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"'ann' (id {ids['ann']})" in warnings[0] and f"'bob' (id {ids['bob']})" in warnings[0]
    with by_number.session_read() as s:
        assert s.get(StoreSettingRow, "person_key").value == EMPLOYEE_NUMBER
        # Every key changed: no entry found by the old key is kept.
        assert s.scalars(sa.select(DirectoryEntryRow.person_id)).all() == []
    client = _app(settings, by_number, clock, EMPLOYEE_NUMBER)
    _conflict(client.post("/scim/v2/Users", json=_employee("eve", "e2002"), headers=AUTH), EMPLOYEE_NUMBER)
    # A deactivation of a colliding user is not refused: its key is left alone.
    off = {"Operations": [{"op": "replace", "path": "active", "value": "False"}]}
    assert client.patch(f"/scim/v2/Users/{ids['ann']}", json=off, headers=AUTH).status_code == 200
    assert client.delete(f"/scim/v2/Users/{ids['bob']}", headers=AUTH).status_code == 204
    caplog.clear()
    again = open_store(EMPLOYEE_NUMBER)
    assert _users(again) == [("ann", "e1001"), ("cat", "e2002"), ("dan", None)]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    back = open_store("userName")
    assert _users(back) == [("ann", "ann"), ("cat", "cat"), ("dan", "dan")]


def test_a_start_up_with_the_same_person_key_changes_nothing(settings, client, store, open_store):
    """Opening the store again with the recorded key neither refills nor touches the cache."""
    uid = client.post("/scim/v2/Users", json={"userName": "ann"}, headers=AUTH).get_json()["id"]
    with store.session_write() as s:
        s.add(DirectoryEntryRow(target="ldap", person_id=uid, key="ann", member="uid=ann,dc=x", resolved_at=NOW))
    again = open_store("userName")
    assert _users(again) == [("ann", "ann")]
    with again.session_read() as s:
        assert s.scalars(sa.select(DirectoryEntryRow.person_id)).all() == [uid]


# ------------------------------------------------------------------ migration 0004


@pytest.fixture(params=BACKENDS)
def blank_url(request, tmp_path):
    """An empty database (no schema at all) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    if not POSTGRES_URL:
        pytest.fail("WALKIN_TEST_REQUIRE_POSTGRES=1 but WALKIN_TEST_POSTGRES_URL is not set")
    admin_url = make_url(POSTGRES_URL)
    name = f"walkin_legacy_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _upgrade(engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        begin(conn, write=True)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


_LEGACY_USERS = sa.table("scim_user", *(sa.column(c) for c in ("id", "version", "created", "last_modified",
                                                               "user_name")), sa.column("data", sa.JSON))
_LEGACY_ENTRIES = sa.table("directory_entry", *(sa.column(c) for c in ("target", "person_id", "key", "member",
                                                                      "resolved_at")))


_LEGACY = {"u1": "bjensen", "u2": "bjensen ", "u3": "ｂｊｅｎｓｅｎ", "u4": "Alice", "u5": "b  jensen"}


def _legacy_store(engine) -> None:
    """A store at revision 0003 holding users (and their cached entries) whose
    userNames fold alike, as the connector accepted them before 0004."""
    _upgrade(engine, "0003")
    with engine.begin() as conn:
        begin(conn, write=True)
        conn.execute(sa.insert(_LEGACY_USERS), [
            {"id": i, "version": 1, "created": NOW, "last_modified": NOW, "user_name": n.lower(),
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n}}
            for i, n in _LEGACY.items()])
        conn.execute(sa.insert(_LEGACY_ENTRIES), [
            {"target": "ldap", "person_id": i, "key": n, "member": "uid=x,dc=x", "resolved_at": NOW}
            for i, n in _LEGACY.items()])


def test_migration_0004_leaves_colliding_legacy_users_without_a_key(blank_url, caplog):
    """Users accepted before 0004 whose userNames fold alike (bjensen / "bjensen ", and a
    fullwidth third) get no person key and one warning naming them all; the others get
    theirs; the upgrade does not fail; the colliding users' cached entries are dropped."""
    engine = make_engine(blank_url)
    try:
        _legacy_store(engine)
        caplog.set_level(logging.WARNING, logger="connector.store.person_keys")
        _upgrade(engine, "0004")
        with engine.connect() as conn:
            keys = dict(conn.execute(sa.text("SELECT id, person_key FROM scim_user")).all())
            cached = sorted(conn.execute(sa.text("SELECT person_id FROM directory_entry")).scalars())
            recorded = dict(conn.execute(sa.text("SELECT name, value FROM store_setting")).all())
        assert keys == {"u1": None, "u2": None, "u3": None, "u4": "alice", "u5": "b jensen"}
        assert cached == ["u4", "u5"]
        assert recorded == {"person_key": "userName", "person_key_folding": FOLDING}
        [warning] = [r.getMessage() for r in caplog.records]
        assert all(f"(id {i})" in warning for i in ("u1", "u2", "u3")) and "'bjensen '" in warning
        # The service then starts on it, and refuses a fourth bjensen as ever.
        store = Store(blank_url, person_key="userName")
        try:
            client = create_app(Settings(database_url=blank_url, scim_token=[TOKEN]), store=store).test_client()
            assert client.post("/scim/v2/Users", json={"userName": "Alice "}, headers=AUTH).status_code == 409
        finally:
            store.dispose()
    finally:
        engine.dispose()


def test_a_start_up_on_a_legacy_store_warns_once_per_collision(blank_url, caplog):
    """The service's start-up upgrades and aligns in one step: the collision is logged once."""
    engine = make_engine(blank_url)
    try:
        _legacy_store(engine)
    finally:
        engine.dispose()
    caplog.set_level(logging.WARNING, logger="connector.store.person_keys")
    Store(blank_url, person_key="userName").dispose()
    assert len(caplog.records) == 1 and "'bjensen '" in caplog.records[0].getMessage()
    caplog.clear()
    Store(blank_url, person_key="userName").dispose()  # and again at every start-up, until it is mended
    assert len(caplog.records) == 1


def test_migration_0004_downgrades(blank_url):
    """0004 can be undone (column, index and table dropped) and done again."""
    engine = make_engine(blank_url)
    try:
        _upgrade(engine, "0004")
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            begin(conn, write=True)
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        with engine.connect() as conn:
            assert "person_key" not in {c["name"] for c in sa.inspect(conn).get_columns("scim_user")}
            assert not sa.inspect(conn).has_table("store_setting")
        _upgrade(engine, "0004")
    finally:
        engine.dispose()
