"""Journal → jobs → claims: nothing lost, nothing claimed twice, leases expire."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from connector.store.models import JournalRow, SyncCursorRow, SyncJobRow
from sync import jobs
from tests.conftest import AUTH
from tests.sync import people as P

T0 = datetime(2026, 11, 29, 12, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _jobs(store):
    with store.session_read() as s:
        return [(j.person_id, j.status, j.last_seq) for j in s.scalars(select(SyncJobRow).order_by(SyncJobRow.id))]


def _max_seq(store):
    with store.session_read() as s:
        return s.scalar(select(func.max(JournalRow.seq)))


def test_events_for_one_person_fold_into_one_pending_job(client, store):
    """Three changes to one user → one pending job carrying the last event."""
    uid = P.create(client, P.person("u1"))
    for code in ("0456", "0789", "0123"):
        P.patch(client, uid, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": code})
    assert jobs.ingest(store, T0) == 4
    assert _jobs(store) == [(uid, "pending", _max_seq(store))]
    assert jobs.ingest(store, T0) == 0
    with store.session_read() as s:
        assert s.get(SyncCursorRow, "journal").seq == _max_seq(store)


def test_an_event_after_a_claim_makes_a_new_job(client, store):
    """A change that arrives while the person's job runs is not lost."""
    uid = P.create(client, P.person("u1"))
    jobs.ingest(store, T0)
    claimed = jobs.claim(store, "w1", T0, LEASE, 10)
    assert [j.person_id for j in claimed] == [uid]
    P.patch(client, uid, {"op": "replace", "path": "active", "value": "False"})
    jobs.ingest(store, T0)
    jobs.finish(store, claimed, "w1", T0)
    assert [(p, s) for p, s, _ in _jobs(store)] == [(uid, "done"), (uid, "pending")]


def test_membership_and_rename_events_reach_the_members(client, store):
    """Approval-group membership changes and renames make jobs for the members."""
    a = P.create(client, P.person("u1"))
    b = P.create(client, P.person("u2"))
    gid = P.approvers(client, "0123", [a])
    jobs.ingest(store, T0)
    jobs.finish(store, jobs.claim(store, "w", T0, LEASE, 10), "w", T0)
    client.patch(f"/scim/v2/Groups/{gid}", json={"Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]}, headers=AUTH)
    client.patch(f"/scim/v2/Groups/{gid}", json={"Operations": [
        {"op": "replace", "path": "displayName", "value": "WalkIn-Approvers-0456"}]}, headers=AUTH)
    jobs.ingest(store, T0)
    pending = {p for p, s, _ in _jobs(store) if s == "pending"}
    assert pending == {a, b}


def test_concurrent_claims_never_overlap(client, store):
    """Four workers claiming at once get disjoint jobs covering all of them."""
    ids = [P.create(client, P.person(f"u{i}")) for i in range(40)]
    jobs.ingest(store, T0)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        barrier.wait()
        mine = []
        while claimed := jobs.claim(store, name, T0, LEASE, 3):
            mine += [j.person_id for j in claimed]
            jobs.finish(store, claimed, name, T0)
        got[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [p for mine in got.values() for p in mine]
    assert sorted(everything) == sorted(ids)
    with store.session_read() as s:
        assert set(s.scalars(select(SyncJobRow.attempts))) == {1}


def test_a_job_of_a_dead_worker_is_taken_over_after_its_lease(client, store):
    """w1 claims and dies; before the lease ends nobody can take it; after, w2 does."""
    uid = P.create(client, P.person("u1"))
    jobs.ingest(store, T0)
    assert [j.person_id for j in jobs.claim(store, "w1", T0, LEASE, 10)] == [uid]
    assert jobs.claim(store, "w2", T0 + LEASE - timedelta(seconds=1), LEASE, 10) == []
    taken = jobs.claim(store, "w2", T0 + LEASE + timedelta(seconds=1), LEASE, 10)
    assert [(j.person_id, j.attempts) for j in taken] == [(uid, 2)]
    jobs.finish(store, taken, "w2", T0 + LEASE * 2)
    assert _jobs(store)[0][1] == "done"


def test_full_reconcile_is_queued_once(store):
    """Several workers asking for a full run queue one."""
    assert jobs.enqueue_full(store, T0) is True
    assert jobs.enqueue_full(store, T0) is False
    claimed = jobs.claim(store, "w", T0, LEASE, 10)
    assert len(claimed) == 1 and claimed[0].full
    assert jobs.enqueue_full(store, T0) is False  # still running
    jobs.finish(store, claimed, "w", T0)
    assert jobs.enqueue_full(store, T0) is True
