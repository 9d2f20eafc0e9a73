"""Loading a benchmark dataset into each server's store.

walkin: bulk INSERTs through SQLAlchemy into the project's own tables, with every
value computed by the project's own code — ``normalise_resource`` for the stored
representation, ``store.users.columns``/``_children`` for the indexed columns and
child rows, ``store.groups.columns`` and ``journal.policy_view`` for the journal —
so the rows are those ``POST /Users`` / ``POST /Groups`` + member PATCHes would
write. ``verify_walkin`` checks that claim on a sample by creating the same users
and groups through ``Provisioning`` (the API's service layer) in an in-memory store
and comparing every column, child row and journal entry.

scim2-server: ``scim2_storage`` builds its ``InMemoryStorage`` through its Python
API (the resource models of its provider), in the server process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from scim_dataset import Dataset
from sqlalchemy import insert, select

from connector.scim.schema import GROUP, USER
from connector.scim.values import normalise_resource
from connector.store import groups as group_rows
from connector.store import journal, person_keys
from connector.store import users as user_rows
from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import (
    CertificationRow,
    GroupRow,
    JournalRow,
    MemberRow,
    UserEmailRow,
    UserRow,
)

BATCH = 2000
_PERSON_KEY = person_keys.key_path(person_keys.DEFAULT)  # the stores loaded here keep the default


def _batches(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def user_rows_of(uid: str, payload: dict, now: datetime) -> tuple[dict, list[dict], list[dict], dict]:
    data = normalise_resource(USER, payload)
    row = {"id": uid, "version": 1, "created": now, "last_modified": now, "data": data,
           **user_rows.columns(data), **user_rows.key_column(uid, data, _PERSON_KEY)}
    emails, certs = user_rows._children(uid, data)
    entry = {"at": now, "event": Event.USER_CREATED.value, "user_id": uid, "group_id": None,
             "detail": journal.policy_view(data), "source": "scim"}
    return row, emails, certs, entry


def write_users(session, users: list[dict], emails: list[dict], certs: list[dict]) -> None:
    """Bulk-insert user rows and their email and certification rows (from :func:`user_rows_of`)."""
    session.execute(insert(UserRow), users)
    if emails:
        session.execute(insert(UserEmailRow), emails)
    if certs:
        session.execute(insert(CertificationRow), certs)


def _group_rows(gid: str, payload: dict, member_ids: list[str], now: datetime):
    data = normalise_resource(GROUP, payload)
    data.pop("members", None)
    row = {"id": gid, "version": 2 if member_ids else 1, "created": now, "last_modified": now, "data": data,
           **group_rows.columns(data)}
    entries = [{"at": now, "event": Event.GROUP_CREATED.value, "user_id": None, "group_id": gid,
                "detail": {"displayName": data["displayName"]}, "source": "scim"}]
    members = [{"group_id": gid, "member_id": m, "member_type": "User", "since": now} for m in member_ids]
    entries += [{"at": now, "event": Event.MEMBER_ADDED.value, "user_id": m, "group_id": gid,
                 "detail": {"member": m, "type": "User"}, "source": "scim"} for m in member_ids]
    return row, members, entries


def load_walkin(url: str, ds: Dataset, log=print) -> float:
    """Bulk-load ``ds`` into the (migrated, empty) store at ``url``. Returns seconds.

    Group versions are 2 when the group has members: as if created empty (Entra's
    way) and then given its members in one PATCH."""
    started = time.perf_counter()
    store = Store(url)
    try:
        now = datetime.now(UTC)
        for k, chunk in enumerate(_batches(list(zip(ds.user_ids, ds.users)))):
            users, emails, certs, entries = [], [], [], []
            for uid, payload in chunk:
                row, e, c, j = user_rows_of(uid, payload, now)
                users.append(row)
                emails += e
                certs += c
                entries.append(j)
            with store.session_write() as session:
                write_users(session, users, emails, certs)
                session.execute(insert(JournalRow), entries)
            if k % 10 == 9:
                log(f"    … {min((k + 1) * BATCH, len(ds.user_ids)):,} users")
        for group in ds.groups:
            row, members, entries = _group_rows(group.id, group.payload, group.member_ids, now)
            with store.session_write() as session:
                session.execute(insert(GroupRow), [row])
                for part in _batches(members, 5000):
                    session.execute(insert(MemberRow), part)
                for part in _batches(entries, 5000):
                    session.execute(insert(JournalRow), part)
        with store.engine.begin() as conn:
            if store.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("ANALYZE")
            else:
                conn.exec_driver_sql("ANALYZE")
    finally:
        store.dispose()
    return time.perf_counter() - started


_SKIP = {"id", "created", "last_modified", "seq", "at", "since"}  # ids and timestamps


def _plain(row) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in _SKIP}


def verify_walkin(ds: Dataset, sample: int = 40) -> None:
    """Create ``sample`` users and two groups through the API's service layer in an
    in-memory store, bulk-load the same through ``load_walkin``'s row builders into
    another, and require identical rows. Raises AssertionError on any difference."""
    from connector.clock import SystemClock
    from connector.provisioning import Provisioning
    from connector.settings import Settings

    picks = list(range(min(sample, len(ds.users))))
    api_store, bulk_store = Store("sqlite://"), Store("sqlite://")
    service = Provisioning(api_store, Settings(database_url="sqlite://"), SystemClock())
    id_map: dict[str, str] = {}
    for i in picks:
        written = service.create_user(ds.users[i], "http://x/scim/v2")
        id_map[written.resource["id"]] = ds.user_ids[i]
    group = ds.groups[0]
    members = [m for m in ds.user_ids[:len(picks)]][:7]
    back = {v: k for k, v in id_map.items()}
    gw = service.create_group(group.payload, "http://x/scim/v2")
    service.patch_group(gw.resource["id"], {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Add", "path": "members",
                                        "value": [{"value": back[m]} for m in members]}]},
                        "http://x/scim/v2", None, None)
    id_map[gw.resource["id"]] = group.id
    now = datetime.now(UTC)
    with bulk_store.session_write() as session:
        for i in picks:
            row, emails, certs, entry = user_rows_of(ds.user_ids[i], ds.users[i], now)
            session.execute(insert(UserRow), [row])
            if emails:
                session.execute(insert(UserEmailRow), emails)
            if certs:
                session.execute(insert(CertificationRow), certs)
            session.execute(insert(JournalRow), [entry])
        row, mem, entries = _group_rows(group.id, group.payload, members, now)
        session.execute(insert(GroupRow), [row])
        session.execute(insert(MemberRow), mem)
        session.execute(insert(JournalRow), entries)

    def dump(store: Store, translate: bool) -> dict[str, list]:
        out: dict[str, list] = {}
        with store.session_read() as session:
            for model in (UserRow, UserEmailRow, CertificationRow, GroupRow, MemberRow, JournalRow):
                rows = []
                for r in session.scalars(select(model)):
                    plain = _plain(r)
                    if translate:
                        plain = {k: id_map.get(v, v) if isinstance(v, str) else v for k, v in plain.items()}
                        if model is JournalRow and "member" in plain["detail"]:
                            plain["detail"] = {**plain["detail"], "member": id_map.get(plain["detail"]["member"])}
                    rows.append(repr(sorted(plain.items())))
                out[model.__tablename__] = sorted(rows)
        return out

    api, bulk = dump(api_store, True), dump(bulk_store, False)
    for table in api:
        assert api[table] == bulk[table], f"bulk load differs from the API in {table}:\n" \
            f"api={api[table][:2]}\nbulk={bulk[table][:2]}"
    api_store.dispose()
    bulk_store.dispose()


# --------------------------------------------------------------------- scim2-server


def scim2_provider():
    """scim2-server's default provider (RFC 7643 schemas, User with the enterprise
    extension) plus walkin's extension schema, as published by walkin's /Schemas,
    bound to User — so both servers accept and store the same attributes."""
    from scim2_models import ResourceType, Schema, ScimProvider
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    from connector.scim.schema import WALKIN_SCHEMA

    schemas = list(load_default_schemas().values())
    walkin = WALKIN_SCHEMA.to_dict("")
    walkin.pop("meta")
    schemas.append(Schema.model_validate(walkin))
    types = []
    for rt in load_default_resource_types().values():
        if rt.name == "User":
            d = rt.model_dump()
            d["schemaExtensions"].append({"schema": WALKIN_SCHEMA.id, "required": False})
            rt = ResourceType.model_validate(d)
        types.append(rt)
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    return ScimProvider.from_discovery(schemas, types, config=config)


def scim2_storage(provider, ds: Dataset, log=print) -> Any:
    """An InMemoryStorage holding ``ds``, built with scim2-server's own models."""
    from scim2_models import Meta
    from scim2_server.memory import InMemoryStorage

    storage = InMemoryStorage()
    user_model = provider.model_for("User")
    group_model = provider.model_for("Group")
    resources = []
    with provider:
        for k, (uid, payload) in enumerate(zip(ds.user_ids, ds.users)):
            body = {key: value for key, value in payload.items() if key != "meta"}
            user = user_model.model_validate(body)
            user.id = uid
            now = storage.clock()
            user.meta = Meta(resource_type="User", created=now, last_modified=now, version=storage.next_version())
            resources.append(user)
            if k and k % 20000 == 0:
                log(f"    … {k:,} users")
        for group in ds.groups:
            body = {**group.payload, "members": [{"value": m} for m in group.member_ids]}
            g = group_model.model_validate(body)
            g.id = group.id
            now = storage.clock()
            g.meta = Meta(resource_type="Group", created=now, last_modified=now, version=storage.next_version())
            resources.append(g)
        storage.resources = resources
    return storage
