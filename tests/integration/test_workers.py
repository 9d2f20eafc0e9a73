"""Several worker processes on PostgreSQL: no journal event lost, none applied
twice, and a job whose worker was killed is taken over after its lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.store.models import AuditRow, JournalRow, SyncCursorRow, SyncJobRow, SyncRunRow
from sync.audit_export import from_store
from sync.targets.ldap_filters import normalise_dn
from sync.verification import walk
from tests.conftest import AUTH, POSTGRES_URL
from tests.faketime import pinned_env
from tests.sync import people as P

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs WALKIN_TEST_POSTGRES_URL (CI sets it)")


@pytest.fixture
def database_url(request):
    """These tests are about PostgreSQL: only its backend."""
    store = request.getfixturevalue("_postgres_store")
    from tests.conftest import _truncate

    _truncate(store)
    return store.engine.url.render_as_string(hide_password=False)


def _env(sync_settings, clock, preload: str, **extra: str) -> dict:
    """The workers' environment; their clocks start where the test's stands."""
    ldap = sync_settings.ldap
    env = {
        **pinned_env(dict(os.environ), clock.now(), preload),
        "WALKIN_DATABASE_URL": sync_settings.database_url,
        "WALKIN_MAPPING_PATH": str(sync_settings.mapping_path),
        "WALKIN_SYNC__TARGET": "ldap",
        "WALKIN_SYNC__POLL_SECONDS": "0.1",
        "WALKIN_SYNC__JOB_BATCH": "25",
        "WALKIN_LDAP__URLS": json.dumps(ldap.urls),
        "WALKIN_LDAP__BIND_DN": ldap.bind_dn,
        "WALKIN_LDAP__BIND_PASSWORD": ldap.bind_password.get_secret_value(),
        "WALKIN_LDAP__PEOPLE_BASE": ldap.people_base,
        "WALKIN_LDAP__PLACEHOLDER_MEMBER": ldap.placeholder_member,
        "WALKIN_LDAP__RETRY_BACKOFF_BASE": "0.2",
    }
    env.update(extra)
    return env


def _worker(env: dict, log: Path) -> subprocess.Popen:
    """``walkin worker`` in its own process, logging to ``log`` (appended; the store
    tells what happened, the session's secret check reads the log)."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _no_full_run_due(store, clock) -> None:
    with store.session_write() as s:
        s.add(SyncRunRow(kind="full", entitlement="walkin", target="ldap", dry_run=False, status="ok",
                         started_at=clock.now(), counts={}, held=[]))


def _settled(store) -> bool:
    with store.session_read() as s:
        top = s.scalar(select(func.max(JournalRow.seq)))
        cursor = s.get(SyncCursorRow, "journal")
        open_jobs = s.scalar(select(func.count()).select_from(SyncJobRow).where(
            SyncJobRow.status.in_(["pending", "running"])))
    return cursor is not None and cursor.seq == top and open_jobs == 0


def test_two_workers_process_1000_events_once_each(client, store, slapd, sync_settings, clock, faketime_preload,
                                                   tmp_path):
    """250 people × 4 events: every event turned into work, every person granted once."""
    uids = [f"w{i:03d}" for i in range(250)]
    slapd.add_people(uids)
    _no_full_run_due(store, clock)
    ids = [P.create(client, P.person(u, location="0456")) for u in uids]
    P.approvers(client, "0123", ids)
    for user_id in ids:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0123"})
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:jobCode", "value": "1002"})
    with store.session_read() as s:
        events = s.scalar(select(func.count()).select_from(JournalRow))
    assert events >= 1000
    env = _env(sync_settings, clock, faketime_preload)
    workers = [_worker(env, tmp_path / "worker-a.log"), _worker(env, tmp_path / "worker-b.log")]
    try:
        deadline = time.monotonic() + 120
        while not _settled(store):
            assert time.monotonic() < deadline, "workers did not settle"
            assert all(w.poll() is None for w in workers), "a worker exited"
            time.sleep(0.2)
    finally:
        _stop(*workers)
    with store.session_read() as s:
        jobs = s.scalars(select(SyncJobRow).where(SyncJobRow.person_id.is_not(None))).all()
        grants = s.execute(select(AuditRow.person_id, func.count()).where(AuditRow.action == "grant")
                           .group_by(AuditRow.person_id)).all()
        last_event = dict(s.execute(select(JournalRow.user_id, func.max(JournalRow.seq))
                                    .where(JournalRow.user_id.is_not(None)).group_by(JournalRow.user_id)).all())
    assert all(j.status == "done" and j.attempts == 1 for j in jobs)
    assert len({j.claimed_by for j in jobs}) == 2  # both workers took a share
    covered = {}
    for job in jobs:
        covered[job.person_id] = max(covered.get(job.person_id, 0), job.last_seq)
    assert all(covered[p] >= seq for p, seq in last_event.items())  # no event lost
    assert sorted(p for p, _ in grants) == sorted(ids) and {n for _, n in grants} == {1}  # none applied twice
    members = {normalise_dn(v) for v in slapd.member_values()} - {normalise_dn(slapd.placeholder_dn)}
    assert members == {normalise_dn(f"uid={u},{slapd.people_dn}") for u in uids}
    with store.connection_read() as conn:  # both workers' audit entries in one intact chain
        _, broken = walk(from_store(conn), from_genesis=True)
    assert broken is None, str(broken)


def test_a_killed_workers_job_is_taken_over(client, store, slapd, sync_settings, clock, faketime_preload, tmp_path):
    """Worker A claims a job while the directory is down and is killed with SIGKILL;
    worker B takes the job over when A's lease runs out, and completes it."""
    slapd.add_people(["kim"])
    _no_full_run_due(store, clock)
    kim = P.create(client, P.person("kim"))
    P.approvers(client, "0123", [kim])
    slapd.stop()
    env = _env(sync_settings, clock, faketime_preload, WALKIN_SYNC__LEASE_SECONDS="5", WALKIN_LDAP__RETRY_ATTEMPTS="20",
               WALKIN_LDAP__RETRY_BACKOFF_BASE="1", WALKIN_LDAP__RETRY_BACKOFF_CAP="2")
    first = _worker(env, tmp_path / "worker-a.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            with store.session_read() as s:
                running = s.scalars(select(SyncJobRow).where(SyncJobRow.status == "running")).all()
            if running:
                break
            assert time.monotonic() < deadline, "worker A never claimed the job"
            time.sleep(0.1)
        assert f":{first.pid}:" in running[0].claimed_by
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        _stop(first)
    slapd.start()
    second = _worker(env, tmp_path / "worker-b.log")
    try:
        deadline = time.monotonic() + 60
        while not _settled(store):
            assert time.monotonic() < deadline, "worker B did not take the job over"
            time.sleep(0.2)
    finally:
        _stop(second)
    with store.session_read() as s:
        job = s.scalars(select(SyncJobRow).where(SyncJobRow.person_id == kim)).one()
    assert job.status == "done" and job.attempts == 2 and f":{second.pid}:" in job.claimed_by
    assert normalise_dn(f"uid=kim,{slapd.people_dn}") in {normalise_dn(v) for v in slapd.member_values()}
    assert AUTH  # the SCIM client above used the test token
