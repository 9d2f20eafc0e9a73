"""The worker's heartbeat: a row per worker, its ``beat_at`` renewed every
``health.heartbeat_seconds`` from a thread of its own — also while a long full
reconcile runs — so ``/readyz`` and the metrics can tell a worker that stopped
(killed, its host gone) by the age of the newest beat. That a worker makes progress
is the journal lag's to tell (sync/gauges.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.store.database import Store
from connector.store.models import WorkerHeartbeatRow, table_of

log = logging.getLogger("walkin.worker")

#: Rows of workers silent this long are removed when another worker beats: a
#: worker's name holds its pid, so every restart leaves one behind.
FORGET_AFTER = timedelta(days=7)


def beat(store: Store, worker: str, started_at: datetime, now: datetime) -> None:
    """Record that ``worker`` is alive at ``now``."""
    with store.session_write() as session:
        upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = upsert(table_of(WorkerHeartbeatRow)).values(name=worker, started_at=started_at, beat_at=now)
        session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": stmt.excluded.beat_at}))
        session.execute(delete(WorkerHeartbeatRow).where(WorkerHeartbeatRow.beat_at < now - FORGET_AFTER))


def newest(session: Session) -> datetime | None:
    """When the most recent heartbeat of any worker was recorded (aware, UTC)."""
    at = session.scalar(select(func.max(WorkerHeartbeatRow.beat_at)))
    return _aware(at) if at is not None else None


def alive(session: Session, since: datetime) -> int:
    """How many workers beat at or after ``since``."""
    return (
        session.scalar(select(func.count()).select_from(WorkerHeartbeatRow).where(WorkerHeartbeatRow.beat_at >= since))
        or 0
    )


def age(last: datetime | None, now: datetime) -> float | None:
    """Seconds since ``last`` (never negative); None without a heartbeat."""
    return None if last is None else max(0.0, (now - last).total_seconds())


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at  # SQLite hands back naive UTC


class Heartbeat:
    """Beats for one worker from a daemon thread until :meth:`stop`."""

    def __init__(self, store: Store, clock: Clock, worker: str, every: float) -> None:
        self.store, self.clock, self.worker, self.every = store, clock, worker, every
        self.started_at = clock.now()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="walkin-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()  # at once: a worker is seen alive before its first round ends
        self._thread.start()

    def beat(self) -> None:
        try:
            beat(self.store, self.worker, self.started_at, self.clock.now())
        except Exception:  # the store is away: the next beat tries again, the worker goes on
            log.warning("could not record the worker's heartbeat", exc_info=True)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            self.beat()
