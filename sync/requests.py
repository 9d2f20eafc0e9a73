"""Requests the admin API hands to the worker, which alone writes the directory:
"sync this person now" (a journal event: the worker decides them within seconds)
and "release these held removals" (marked on the held run; the worker applies them
as ``walkin sync --allow-removals`` would, sync/worker.py). Both audited with
their actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import (
    AuditRow,
    DecisionRow,
    DirectoryEntryRow,
    HoldingRow,
    JournalRow,
    SyncJobRow,
    SyncRunRow,
    UserRow,
)

from .jobs import JobStatus
from .ledger import AuditAction, RunStatus
from .levers import Acting, Conflict, NotFound, record, stamp


def request_sync(store: Store, clock: Clock, *, person_id: str, acting: Acting) -> dict:
    """Ask the worker to decide and sync one person now.

    :raises NotFound: no such person.
    """
    now = clock.now()
    with store.session_write() as session:
        data = session.scalar(select(UserRow.data).where(UserRow.id == person_id))
        if data is None:
            raise NotFound(f"no user with id '{person_id}' in the store")
        record(
            session.connection(),
            now,
            acting,
            action=AuditAction.SYNC_REQUEST,
            entitlement="-",
            person_id=person_id,
            user_name=data.get("userName"),
            detail="sync requested",
            event=Event.SYNC_REQUESTED,
        )
        # The event just appended (or, on PostgreSQL, a later one of theirs already
        # committed: waiting for that is waiting for this one too).
        seq = session.scalar(select(func.max(JournalRow.seq)).where(JournalRow.user_id == person_id))
    return {"person_id": person_id, "user_name": data.get("userName"), "requested_at": stamp(now), "journal_seq": seq}


class SyncStage(StrEnum):
    """Where a "sync this person now" request is."""

    QUEUED = "queued"  # journalled; the worker has not turned it into a job yet
    PENDING = "pending"  # a job waits for a worker
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class SyncProgress:
    """Where a "sync this person now" stands, step by step as Entra's
    provision-on-demand shows it: requested → read and decided → matched in the
    directory → written (or nothing to write)."""

    user_name: str | None
    requested_at: datetime | None
    """When the request was journalled; None: no such request for this person."""
    stage: SyncStage
    finished_at: datetime | None
    failure: str | None
    decisions: list[dict]
    """Per entitlement: entitled, reasons, decided on, role, location (the stored decision)."""
    entry: dict | None
    """The directory entry the person's key found in the target: key, member, when."""
    writes: list[dict]
    """What the worker's runs wrote for them since the request (grant, revoke …)."""
    member: bool
    """Whether the connector now holds them in the entitlement's group."""

    @property
    def finished(self) -> bool:
        return self.stage in (SyncStage.DONE, SyncStage.FAILED)


def sync_progress(
    session: Session, target: str, person_id: str, journal_seq: int, entitlement: str = "walkin"
) -> SyncProgress:
    """The progress of the request journalled as ``journal_seq`` for ``person_id``
    (``member``: in ``entitlement``'s group)."""
    requested_at = session.scalar(
        select(JournalRow.at).where(
            JournalRow.seq == journal_seq,
            JournalRow.user_id == person_id,
            JournalRow.event == Event.SYNC_REQUESTED.value,
        )
    )
    job = session.execute(
        select(SyncJobRow.status, SyncJobRow.done_at, SyncJobRow.detail)
        .where(
            SyncJobRow.person_id == person_id,
            SyncJobRow.first_seq <= journal_seq,
            SyncJobRow.last_seq >= journal_seq,
        )
        .order_by(SyncJobRow.id.desc())
        .limit(1)
    ).first()
    stage = SyncStage.QUEUED if job is None else SyncStage(job.status)
    finished_at = job.done_at if job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED) else None
    d = DecisionRow
    decisions = [
        {
            "entitlement": r.entitlement,
            "entitled": r.entitled,
            "reasons": r.reasons,
            "decided_on": r.decided_on,
            "role": r.role,
            "location": r.location,
        }
        for r in session.execute(
            select(d.entitlement, d.entitled, d.reasons, d.decided_on, d.role, d.location)
            .where(d.person_id == person_id)
            .order_by(d.entitlement)
        )
    ]
    found = session.get(DirectoryEntryRow, (target, person_id))
    entry = {"key": found.key, "member": found.member, "resolved_at": found.resolved_at} if found else None
    writes = []
    if requested_at is not None:
        a = AuditRow
        writes = [
            {"at": r.at, "action": r.action, "result": r.result, "member": r.member, "detail": r.detail}
            for r in session.execute(
                select(a.at, a.action, a.result, a.member, a.detail)
                # the worker's runs for this request, or for one of theirs journalled later
                .where(a.person_id == person_id, a.run_id.is_not(None), a.journal_seq >= journal_seq)
                .order_by(a.id)
                .limit(20)
            )
        ]
    member = session.scalar(
        select(func.count())
        .select_from(HoldingRow)
        .where(HoldingRow.target == target, HoldingRow.entitlement == entitlement, HoldingRow.person_id == person_id)
    )
    user_name = session.scalar(select(UserRow.data["userName"].as_string()).where(UserRow.id == person_id))
    return SyncProgress(
        user_name,
        requested_at,
        stage,
        finished_at,
        job.detail if job is not None and job.status == JobStatus.FAILED else None,
        decisions,
        entry,
        writes,
        bool(member),
    )


def release_held(store: Store, clock: Clock, *, run_id: int, acting: Acting, expected: int | None = None) -> dict:
    """Release the removals the deletion guard held in ``run_id``: the worker
    applies them at its next round. ``expected``: how many removals the caller saw
    held — the caller's confirmation that it releases the set it reviewed.

    :raises NotFound: no such run. :raises Conflict: the run held nothing, was
        released already, its release is already requested, or it holds another
        number of removals than ``expected``.
    """
    now = clock.now()
    with store.session_write() as session:
        run = session.get(SyncRunRow, run_id, with_for_update=True)
        if run is None:
            raise NotFound(f"no run {run_id}")
        if run.status != RunStatus.HELD.value or not run.held:
            raise Conflict(f"run {run_id} holds no removals (status {run.status})")
        if run.released_by is not None:
            raise Conflict(f"run {run_id}'s removals were released by run {run.released_by}")
        if run.release_requested_by is not None:
            raise Conflict(f"run {run_id}'s release was already requested by {run.release_requested_by}")
        if expected is not None and expected != len(run.held):
            raise Conflict(f"run {run_id} holds {len(run.held)} removals, not {expected}: review them again")
        session.execute(
            update(SyncRunRow)
            .where(SyncRunRow.id == run_id, SyncRunRow.release_requested_by.is_(None))
            .values(release_requested_by=str(acting), release_requested_at=now)
        )
        record(
            session.connection(),
            now,
            acting,
            action=AuditAction.RELEASE_REQUEST,
            entitlement=run.entitlement,
            person_id=None,
            user_name=None,
            detail=f"release of the {len(run.held)} removals held in run {run_id} requested",
        )
        return {"run_id": run_id, "entitlement": run.entitlement, "held": len(run.held), "requested_by": str(acting)}


def requested_releases(store: Store) -> list[tuple[int, str]]:
    """Held runs whose release was requested and not yet applied: ``(run id, entitlement)``."""
    with store.session_read() as session:
        rows = session.execute(
            select(SyncRunRow.id, SyncRunRow.entitlement).where(
                SyncRunRow.release_requested_by.is_not(None),
                SyncRunRow.released_by.is_(None),
                SyncRunRow.status == RunStatus.HELD.value,
            )
        )
        return [(run_id, entitlement) for run_id, entitlement in rows]
