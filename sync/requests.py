"""Requests the admin API hands to the worker, which alone writes the directory:
"sync this person now" (a journal event: the worker decides them within seconds)
and "release these held removals" (marked on the held run; the worker applies them
as ``walkin sync --allow-removals`` would, sync/worker.py). Both audited with
their actor."""

from __future__ import annotations

from sqlalchemy import select, update

from connector.clock import Clock
from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import SyncRunRow, UserRow

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
    return {"person_id": person_id, "user_name": data.get("userName"), "requested_at": stamp(now)}


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
