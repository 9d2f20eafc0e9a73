"""Work for the workers, derived from the change journal.

* :func:`ingest` turns new journal rows into one pending job per person (events
  for a person fold into their pending job) and advances the cursor — in one
  transaction, so no event is lost and none is turned into work twice. On
  PostgreSQL the cursor row is locked ``FOR UPDATE SKIP LOCKED``: one worker
  ingests at a time, the others go on with claimed work. SQLite serialises
  writers by itself.
* :func:`claim` takes pending jobs (and running jobs whose lease ran out: their
  worker died) with ``FOR UPDATE SKIP LOCKED``, so two workers never claim the
  same job.
* Applying a job is idempotent (a run re-reads the directory), so a job taken
  over after a lease does no harm if its first worker did get part-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import JournalRow, MemberRow, SyncCursorRow, SyncJobRow

from .ledger import RunKind

JOURNAL = "journal"
SCHEDULE = "schedule"
INGEST_BATCH = 5000


class JobStatus(StrEnum):
    """A sync job's state, as the ``sync_job.status`` column stores it."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    id: int
    person_id: str | None
    last_seq: int | None
    attempts: int = 1

    @property
    def full(self) -> bool:
        return self.person_id is None


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _lock_cursor(session: Session, name: str) -> SyncCursorRow | None:
    """The cursor row, locked for this transaction; None when another worker has it."""
    stmt = select(SyncCursorRow).where(SyncCursorRow.name == name)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = session.scalars(stmt).first()
    if row is None:
        try:
            with session.begin_nested():
                session.add(SyncCursorRow(name=name, seq=0))
        except IntegrityError:
            return None  # another worker created it just now; it will ingest
        row = session.scalars(stmt).first()
    return row


def persons_of(session: Session, rows: Iterable[JournalRow]) -> dict[str, int]:
    """person id → the last journal seq that concerns them."""
    out: dict[str, int] = {}
    renamed: dict[str, int] = {}
    for row in rows:
        if row.user_id:
            out[row.user_id] = max(out.get(row.user_id, 0), row.seq)
        elif row.event == Event.GROUP_RENAMED.value and row.group_id:
            renamed[row.group_id] = row.seq  # a rename can change whose approval it is
    for group_id, seq in renamed.items():
        members = session.scalars(
            select(MemberRow.member_id).where(MemberRow.group_id == group_id, MemberRow.member_type == "User")
        )
        for member in members:
            out[member] = max(out.get(member, 0), seq)
    return out


def ingest(store: Store, now: datetime, batch: int = INGEST_BATCH) -> int:
    """Turn journal rows after the cursor into person jobs.

    :returns: how many journal rows were consumed (0 when none, or when another
        worker is ingesting).
    """
    with store.session_write() as session:
        cursor = _lock_cursor(session, JOURNAL)
        if cursor is None:
            return 0
        rows = list(
            session.scalars(select(JournalRow).where(JournalRow.seq > cursor.seq).order_by(JournalRow.seq).limit(batch))
        )
        if not rows:
            return 0
        persons = persons_of(session, rows)
        if persons:
            insert = _insert(session)
            stmt = insert(SyncJobRow).values(
                [
                    {
                        "person_id": p,
                        "status": JobStatus.PENDING,
                        "first_seq": seq,
                        "last_seq": seq,
                        "attempts": 0,
                        "created_at": now,
                    }
                    for p, seq in persons.items()
                ]
            )
            # One pending job per person: new events fold into it. The index's predicate
            # as SQL text, not a bound parameter: PostgreSQL infers a partial index only
            # from a literal, and psycopg prepares a statement run five times on one
            # connection server-side, where the parameter stays a parameter ("no unique
            # or exclusion constraint matching the ON CONFLICT specification").
            stmt = stmt.on_conflict_do_update(
                index_elements=[SyncJobRow.person_id],
                index_where=text("status = 'pending'"),
                set_={"last_seq": stmt.excluded.last_seq},
            )
            session.execute(stmt)
        cursor.seq = rows[-1].seq
        return len(rows)


def enqueue_full(store: Store, now: datetime) -> bool:
    """Queue a full reconcile unless one is already queued or running."""
    with store.session_write() as session:
        if _lock_cursor(session, SCHEDULE) is None:
            return False
        queued = session.scalar(
            select(SyncJobRow.id)
            .where(SyncJobRow.person_id.is_(None), SyncJobRow.status.in_([JobStatus.PENDING, JobStatus.RUNNING]))
            .limit(1)
        )
        if queued is not None:
            return False
        session.add(SyncJobRow(person_id=None, status=JobStatus.PENDING, attempts=0, created_at=now))
        return True


def claim(store: Store, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Job]:
    """Claim up to ``limit`` person jobs, or one full job (taken alone)."""
    with store.session_write() as session:
        claimable = or_(
            and_(
                SyncJobRow.status == JobStatus.PENDING,
                or_(SyncJobRow.lease_until.is_(None), SyncJobRow.lease_until <= now),
            ),
            and_(SyncJobRow.status == JobStatus.RUNNING, SyncJobRow.lease_until <= now),
        )
        stmt = select(SyncJobRow).where(claimable).order_by(SyncJobRow.id).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        full = [r for r in rows if r.person_id is None]
        rows = full[:1] if full and full[0] is rows[0] else [r for r in rows if r.person_id is not None]
        for row in rows:
            row.status, row.claimed_by, row.lease_until = JobStatus.RUNNING, worker, now + lease
            row.attempts += 1
        return [Job(r.id, r.person_id, r.last_seq, r.attempts) for r in rows]


def finish(store: Store, jobs: list[Job], worker: str, now: datetime, detail: str | None = None) -> None:
    if not jobs:
        return
    with store.session_write() as session:
        session.execute(
            update(SyncJobRow)
            .where(SyncJobRow.id.in_([j.id for j in jobs]), SyncJobRow.claimed_by == worker)
            .values(status=JobStatus.DONE, done_at=now, detail=detail)
        )


def retry_later(store: Store, jobs: list[Job], worker: str, now: datetime, delay: timedelta, detail: str) -> None:
    """Give jobs back after a failure: pending again after ``delay``, or folded
    into a newer pending job of the same person."""
    if not jobs:
        return
    with store.session_write() as session:
        pending = set(
            session.scalars(
                select(SyncJobRow.person_id).where(
                    SyncJobRow.status == JobStatus.PENDING,
                    SyncJobRow.person_id.in_([j.person_id for j in jobs if j.person_id]),
                )
            )
        )
        for job in jobs:
            values: dict[str, Any] = {"detail": detail, "claimed_by": None}
            if job.person_id in pending:
                values.update(status=JobStatus.FAILED, done_at=now)  # the newer job covers it
            else:
                values.update(status=JobStatus.PENDING, lease_until=now + delay)
            session.execute(
                update(SyncJobRow).where(SyncJobRow.id == job.id, SyncJobRow.claimed_by == worker).values(**values)
            )


def last_full_start(store: Store) -> datetime | None:
    from connector.store.models import SyncRunRow

    with store.session_read() as session:
        return session.scalar(
            select(SyncRunRow.started_at)
            .where(SyncRunRow.kind.in_([RunKind.FULL.value, RunKind.DAILY.value]), SyncRunRow.dry_run.is_(False))
            .order_by(SyncRunRow.id.desc())
            .limit(1)
        )
