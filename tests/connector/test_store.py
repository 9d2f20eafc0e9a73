"""Store guarantees: uniqueness under concurrency, journal atomicity, the cost
of group PATCH. Every test runs on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import UTC

from sqlalchemy import event, func, select

from connector import create_app
from connector.store.models import JournalRow, MemberRow, UserRow
from tests.conftest import AUTH, TOKEN


def test_concurrent_creates_from_threads_give_one_201(app):
    """Eight threads POST the same userName (different case): one 201, seven 409."""
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        r = client.post("/scim/v2/Users", json={"userName": f"{'RACE' if i % 2 else 'race'}@d.org"}, headers=AUTH)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 7


def test_user_deletes_racing_member_changes_of_their_groups_never_answer_500(app, store):
    """Deleting users while other requests add and remove them in their groups: every
    answer is a SCIM one (PostgreSQL used to deadlock here and answer 500)."""
    admin = app.test_client()
    groups = [admin.post("/scim/v2/Groups", json={"displayName": f"race-{g}"}, headers=AUTH).get_json()["id"]
              for g in range(3)]
    users = [admin.post("/scim/v2/Users", json={"userName": f"racer{u}@d.org"}, headers=AUTH).get_json()["id"]
             for u in range(24)]
    for gid in groups:
        add = {"Operations": [{"op": "add", "path": "members", "value": [{"value": u} for u in users]}]}
        assert admin.patch(f"/scim/v2/Groups/{gid}", json=add, headers=AUTH).status_code == 204
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def churn(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        for n, uid in enumerate(users[i::3] if i < 3 else users[i - 3::3][::-1]):
            if i < 3:  # deleters, each its own third of the users
                statuses.append(client.delete(f"/scim/v2/Users/{uid}", headers=AUTH).status_code)
                continue
            for gid in groups[n % 3:] + groups[:n % 3]:  # re-adders and removers, groups in turn
                op = {"op": "remove", "path": f'members[value eq "{uid}"]'} if n % 2 else \
                    {"op": "add", "path": "members", "value": [{"value": uid}]}
                statuses.append(client.patch(f"/scim/v2/Groups/{gid}", json={"Operations": [op]},
                                             headers=AUTH).status_code)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses and set(statuses) <= {204, 400, 404}, sorted(set(statuses))
    with store.session_read() as s:
        assert s.scalar(select(func.count()).select_from(UserRow)) == 0


_CHILD = """
import json, sys
from connector import create_app
from connector.settings import Settings
from connector.store.database import Store
settings = Settings(database_url=sys.argv[1], scim_token=[sys.argv[2]])
client = create_app(settings, store=Store(settings.database_url, auto_migrate=False)).test_client()
print("ready", flush=True)
sys.stdin.readline()  # go
r = client.post("/scim/v2/Users", json={"userName": "proc@d.org", "externalId": sys.argv[3]},
                headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.dumps([r.status_code, (r.get_json() or {}).get("scimType")]), flush=True)
"""


def test_concurrent_creates_from_processes_give_one_201(settings, store):
    """Six processes POST the same userName at the same instant: one 201, five 409 uniqueness."""
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, settings.database_url, TOKEN, f"e{i}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(tuple(json.loads(out.strip().splitlines()[-1])))
    assert sorted(results) == [(201, None)] + [(409, "uniqueness")] * 5
    with store.session_read() as s:
        assert len(s.scalars(select(UserRow)).all()) == 1


def test_a_failed_write_leaves_no_journal_entry(client, store):
    """The journal is written in the change's transaction: a 409 leaves neither."""
    client.post("/scim/v2/Users", json={"userName": "taken@d.org"}, headers=AUTH)
    uid = client.post("/scim/v2/Users", json={"userName": "me@d.org", "active": True}, headers=AUTH).get_json()["id"]
    with store.session_read() as s:
        before = len(s.scalars(select(JournalRow)).all())
    patch = {"Operations": [{"op": "replace", "path": "active", "value": False},
                            {"op": "replace", "path": "userName", "value": "TAKEN@d.org"}]}
    r = client.patch(f"/scim/v2/Users/{uid}", json=patch, headers=AUTH)
    assert r.status_code == 409
    with store.session_read() as s:
        assert len(s.scalars(select(JournalRow)).all()) == before
        assert s.get(UserRow, uid).active is True


def test_journal_records_policy_changes_only(client, store):
    """A displayName change is not journalled; a job-code change is, with old and new."""
    uid = client.post("/scim/v2/Users", json={"userName": "j@d.org"}, headers=AUTH).get_json()["id"]
    walkin = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
    client.patch(f"/scim/v2/Users/{uid}", json={"Operations": [{"op": "add", "path": "displayName", "value": "J"}]},
                 headers=AUTH)
    client.patch(f"/scim/v2/Users/{uid}", json={"Operations": [
        {"op": "add", "path": f"{walkin}:jobCode", "value": "OP01"}]}, headers=AUTH)
    with store.session_read() as s:
        rows = [(r.event, r.detail) for r in s.scalars(select(JournalRow).order_by(JournalRow.seq))]
    assert [e for e, _ in rows] == ["user.created", "user.updated"]
    assert rows[1][1] == {"jobCode": [None, "OP01"]}


@contextmanager
def _statements(store):
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _bulk_members(store, group_id: str, count: int) -> None:
    from sqlalchemy import insert

    from tests.conftest import NOON

    with store.session_write() as s:
        s.execute(insert(MemberRow), [
            {"group_id": group_id, "member_id": f"ghost-{i}", "member_type": "User", "since": NOON}
            for i in range(count)
        ])


def test_group_patch_costs_what_it_changes_not_the_group_size(client, store):
    """Adding/removing one member issues the same statements for 10 or 5,000 members,
    and excludedAttributes=members never touches the member table."""
    uid = client.post("/scim/v2/Users", json={"userName": "m@d.org"}, headers=AUTH).get_json()["id"]
    small = client.post("/scim/v2/Groups", json={"displayName": "small"}, headers=AUTH).get_json()["id"]
    large = client.post("/scim/v2/Groups", json={"displayName": "large"}, headers=AUTH).get_json()["id"]
    _bulk_members(store, small, 10)
    _bulk_members(store, large, 5000)
    counts = {}
    for gid in (small, large):
        with _statements(store) as seen:
            add = {"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
            assert client.patch(f"/scim/v2/Groups/{gid}", json=add, headers=AUTH).status_code == 204
            rm = {"Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]}
            assert client.patch(f"/scim/v2/Groups/{gid}", json=rm, headers=AUTH).status_code == 204
        counts[gid] = len(seen)
    assert counts[small] == counts[large]
    with _statements(store) as seen:
        r = client.get(f"/scim/v2/Groups/{large}?excludedAttributes=members", headers=AUTH)
        assert r.status_code == 200 and "members" not in r.get_json()
        r = client.get("/scim/v2/Groups?excludedAttributes=members&filter=displayName+eq+%22large%22", headers=AUTH)
        assert r.get_json()["totalResults"] == 1
    assert not any("scim_group_member" in sql for sql in seen)
    with store.session_read() as s:
        assert s.scalar(select(MemberRow).where(MemberRow.group_id == large, MemberRow.member_id == uid)) is None


def test_membership_start_is_kept(client, store):
    """Each membership records when it began (the policy dates approvals by it)."""
    uid = client.post("/scim/v2/Users", json={"userName": "s@d.org"}, headers=AUTH).get_json()["id"]
    gid = client.post("/scim/v2/Groups", json={"displayName": "G", "members": [{"value": uid}]},
                      headers=AUTH).get_json()["id"]
    with store.session_read() as s:
        first = s.get(MemberRow, (gid, uid)).since
    # Re-adding an existing member keeps the original start.
    client.patch(f"/scim/v2/Groups/{gid}", json={"Operations": [{"op": "add", "path": "members", "value": [uid]}]},
                 headers=AUTH)
    with store.session_read() as s:
        assert s.get(MemberRow, (gid, uid)).since == first


def test_app_works_without_injected_store(settings):
    """create_app(settings) builds and migrates its own store."""
    app = create_app(settings)
    assert app.test_client().get("/scim/v2/Users", headers=AUTH).status_code == 200
    app.extensions["walkin.store"].dispose()


def test_the_memory_map_is_a_choice_of_the_process(tmp_path):
    """The SCIM service reads SQLite through a memory map; the sync asks for none."""
    from sqlalchemy import text

    from connector.store.database import Store

    for memory_map, expected in ((True, 1073741824), (False, 0)):
        store = Store(f"sqlite:///{tmp_path / f'mm-{memory_map}.db'}", memory_map=memory_map)
        try:
            with store.engine.connect() as conn:
                assert conn.execute(text("PRAGMA mmap_size")).scalar() == expected
        finally:
            store.dispose()


def test_journal_numbers_are_handed_out_in_commit_order(store):
    """A writer that starts while another is in flight waits for it, so no journal
    event can commit behind a later-numbered one (the worker's cursor would skip it).
    On PostgreSQL an advisory lock makes writers take turns; SQLite writers always do."""
    from datetime import datetime

    from connector.store import journal
    from connector.store.journal import Event

    now = datetime(2026, 11, 29, tzinfo=UTC)
    first_in, second_done = threading.Event(), threading.Event()
    order: list[str] = []

    def second() -> None:
        first_in.wait(5)
        with store.connection_write() as conn:
            journal.append(conn, now, [(Event.USER_UPDATED, "second", None, {})])
        order.append("second committed")
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with store.connection_write() as conn:
        journal.append(conn, now, [(Event.USER_UPDATED, "first", None, {})])
        first_in.set()
        assert not second_done.wait(0.5)  # still waiting for us
        order.append("first committing")
    thread.join(5)
    assert order == ["first committing", "second committed"]
    with store.connection_read() as conn:
        rows = conn.execute(select(JournalRow.user_id).where(JournalRow.user_id.in_(["first", "second"]))
                            .order_by(JournalRow.seq)).scalars().all()
    assert rows == ["first", "second"]
