"""Dataset of bench_reconcile.py: people in slapd and in walkin's store.

Person ``i`` (0 ≤ i < n) has uid/userName ``u{i:06d}`` and the DN
``uid=u{i:06d},ou=people,dc=example,dc=org``. Everyone is what tests/sync/people.py
calls entitled — job code 1001 (Office Professional), location 0123, assignment start
2024-08-01, a full "Walk-In Scheduling Certification" completed 2025-09-15 — except
for the approval: membership of the SCIM Group "WalkIn-Approvers-0123".

Sets (by index, so every size has the same shape):

- ``i % 10 != 9``: approved, so entitled in the steady state (90 %);
- ``i % 20 == 9``: not approved in the steady state; the change adds them to the
  approval group (5 %: become entitled, missing from the directory group);
- ``i % 20 == 0``: entitled in the steady state; the change moves their location code
  to 0789 (5 %: stop qualifying, NO_APPROVAL);
- ``i % 20 == 1``: entitled and untouched: the latency test revokes some of them;
- ``i % 20 == 19``: never approved: the latency test approves some of them.

Rows are written with bulk INSERTs whose every value comes from the project's own code
(``normalise_resource``, ``store.users.columns``/``_children``, ``store.groups.columns``)
— the rows ``POST /Users`` and ``POST /Groups`` write, minus the journal (a store
that has been running for a while has consumed its old journal; the benchmark sets
the journal cursor so the worker starts from "now"). The change itself goes through
``store.users.replace_user`` and ``store.groups.update_group``, as a SCIM PATCH would.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from scim_load import user_rows_of, write_users
from sqlalchemy import func, insert, select

from connector.scim.patch import MemberAction, MemberOp
from connector.scim.schema import GROUP, Urn
from connector.scim.values import normalise_resource
from connector.store import groups as group_rows
from connector.store import users as user_rows
from connector.store.database import Store
from connector.store.models import (
    CertificationRow,
    GroupRow,
    JournalRow,
    MemberRow,
    SyncCursorRow,
    UserEmailRow,
    UserRow,
)

WALKIN = Urn.WALKIN.value
ENTERPRISE = Urn.ENTERPRISE.value
COURSE = "Walk-In Scheduling Certification"
APPROVERS = "WalkIn-Approvers-0123"
APPROVED_SINCE = datetime(2025, 9, 20, 16, 0, tzinfo=UTC)  # after the assignment start
BATCH = 2000


def uid(i: int) -> str:
    return f"u{i:06d}"


def dn(i: int, people_dn: str) -> str:
    return f"uid={uid(i)},{people_dn}"


def approved_at_start(i: int) -> bool:
    return i % 10 != 9


def in_grant_change(i: int) -> bool:
    return i % 20 == 9


def in_revoke_change(i: int) -> bool:
    return i % 20 == 0


def entitled_before(i: int) -> bool:
    return approved_at_start(i)


def entitled_after(i: int) -> bool:
    return (approved_at_start(i) or in_grant_change(i)) and not in_revoke_change(i)


def latency_revokes(n: int) -> list[int]:
    return [i for i in range(n) if i % 20 == 1]


def latency_grants(n: int) -> list[int]:
    return [i for i in range(n) if i % 20 == 19]


def user_ids(n: int, seed: int = 7) -> list[str]:
    """Deterministic version-4 UUIDs (the store's ids are uuid4 strings)."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def user_payload(i: int) -> dict:
    """What Entra (with walkin's extension) POSTs for person ``i``."""
    name = uid(i)
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, WALKIN],
        "userName": name,
        "externalId": f"ext-{i:06d}",
        "active": True,
        "displayName": f"Person {i:06d}",
        "name": {"givenName": "Person", "familyName": f"{i:06d}", "formatted": f"Person {i:06d}"},
        "emails": [{"value": f"{name}@example.org", "type": "work", "primary": True}],
        ENTERPRISE: {"employeeNumber": f"{100000 + i}", "department": "School Office"},
        WALKIN: {
            "jobCode": "1001",
            "locationCode": "0123",
            "assignmentStartDate": "2024-08-01",
            "certifications": [{"course": COURSE, "kind": "full", "completedOn": "2025-09-15"}],
        },
    }


def _batches(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def people_ldif(n: int, people_dn: str) -> Iterable[str]:
    for i in range(n):
        name = uid(i)
        yield (f"dn: {dn(i, people_dn)}\nobjectClass: inetOrgPerson\ncn: Person {i:06d}\nsn: {i:06d}\n"
               f"uid: {name}\nmail: {name}@example.org\nemployeeNumber: {100000 + i}\n\n")


def load_store(url: str, n: int, ids: list[str], log=print) -> str:
    """Bulk-load ``n`` users and the approval group (steady-state memberships) into the
    migrated store at ``url``. Returns the approval group's id."""
    store = Store(url)
    now = datetime.now(UTC)
    try:
        for k, chunk in enumerate(_batches(list(range(n)))):
            users, emails, certs = [], [], []
            for i in chunk:
                row, e, c, _ = user_rows_of(ids[i], user_payload(i), now)  # no journal: nothing to react to yet
                users.append(row)
                emails += e
                certs += c
            with store.session_write() as session:
                write_users(session, users, emails, certs)
            if k % 10 == 9:
                log(f"    … {min((k + 1) * BATCH, n):,} users in the store")
        gid = str(uuid.UUID(int=random.Random(11).getrandbits(128), version=4))
        data = normalise_resource(GROUP, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                          "displayName": APPROVERS})
        members = [{"group_id": gid, "member_id": ids[i], "member_type": "User", "since": APPROVED_SINCE}
                   for i in range(n) if approved_at_start(i)]
        with store.session_write() as session:
            session.execute(insert(GroupRow), [{"id": gid, "version": 2, "created": now, "last_modified": now,
                                                "data": data, **group_rows.columns(data)}])
            for part in _batches(members, 5000):
                session.execute(insert(MemberRow), part)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        return gid
    finally:
        store.dispose()


def apply_change(url: str, n: int, ids: list[str], gid: str) -> tuple[int, int]:
    """The 10 % change, through the store functions a SCIM PATCH uses: 5 % join the
    approval group, 5 % move to location 0789. Returns (granted, revoked) counts."""
    store = Store(url)
    now = datetime.now(UTC)
    grant = [ids[i] for i in range(n) if in_grant_change(i)]
    revoke = [ids[i] for i in range(n) if in_revoke_change(i)]
    try:
        with store.session_write() as session:
            conn = session.connection()
            group = group_rows.get_group(conn, gid, lock=True)
            group_rows.update_group(conn, group, group.data, [MemberOp(MemberAction.ADD, ids=tuple(grant))], now)
        for part in _batches(revoke, 1000):
            with store.session_write() as session:
                for row in session.scalars(select(UserRow).where(UserRow.id.in_(part))):
                    data = copy.deepcopy(row.data)
                    data[WALKIN]["locationCode"] = "0789"
                    user_rows.replace_user(session.connection(), row, data, now, key=store.person_key)
        return len(grant), len(revoke)
    finally:
        store.dispose()


def consume_journal(url: str) -> int:
    """Point the worker's journal cursor at the newest event (work already done)."""
    store = Store(url)
    try:
        with store.session_write() as session:
            top = session.scalar(select(func.max(JournalRow.seq))) or 0
            row = session.get(SyncCursorRow, "journal")
            if row is None:
                session.add(SyncCursorRow(name="journal", seq=top))
            else:
                row.seq = top
        return top
    finally:
        store.dispose()


def verify(sample: tuple[int, ...] = (0, 1, 9, 19, 20)) -> None:
    """Check the bulk rows against the API's own path: create the same users and the
    approval group through ``Provisioning`` (the service layer behind ``POST /Users``
    and ``POST /Groups`` + PATCH) in one in-memory store, bulk-load them with the code
    above into another, and require equal user, e-mail, certification, group and member
    rows (ids and timestamps aside). Raises AssertionError on a difference."""
    from connector.clock import SystemClock
    from connector.provisioning import Provisioning
    from connector.settings import Settings

    api, bulk = Store("sqlite://"), Store("sqlite://")
    service = Provisioning(api, Settings(database_url="sqlite://"), SystemClock())
    made = [service.create_user(user_payload(i), "http://x/scim/v2").resource["id"] for i in sample]
    group = service.create_group({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": APPROVERS}, "http://x/scim/v2").resource["id"]
    approved = [made[k] for k, i in enumerate(sample) if approved_at_start(i)]
    service.patch_group(group, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": m} for m in approved]}]}, "http://x/scim/v2", None, None)
    now = datetime.now(UTC)
    with bulk.session_write() as session:
        for k, i in enumerate(sample):
            row, e, c, _ = user_rows_of(made[k], user_payload(i), now)
            write_users(session, [row], e, c)
        gdata = normalise_resource(GROUP, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                           "displayName": APPROVERS})
        session.execute(insert(GroupRow), [{"id": group, "version": 2, "created": now, "last_modified": now,
                                            "data": gdata, **group_rows.columns(gdata)}])
        session.execute(insert(MemberRow), [{"group_id": group, "member_id": m, "member_type": "User",
                                             "since": APPROVED_SINCE} for m in approved])
    skip = {"id", "created", "last_modified", "since"}

    def dump(store: Store) -> dict[str, list]:
        out = {}
        with store.session_read() as session:
            for model in (UserRow, UserEmailRow, CertificationRow, GroupRow, MemberRow):
                out[model.__tablename__] = sorted(
                    repr(sorted((c.key, getattr(r, c.key)) for c in r.__table__.columns if c.key not in skip))
                    for r in session.scalars(select(model)))
        return out

    want, got = dump(api), dump(bulk)
    api.dispose()
    bulk.dispose()
    for table in want:
        assert want[table] == got[table], f"bulk rows differ from the API's in {table}:\n{want[table][:1]}\n{got[table][:1]}"
