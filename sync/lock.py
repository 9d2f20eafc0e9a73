"""One writer per group: a lease in the store, across processes and hosts.

Every run that writes (not a dry run) takes the lock of its (target, group) before it
reads the group and holds it until its outcome is recorded, so runs of one group —
a full ``walkin sync``, the worker's event runs, a second worker — are serialised:
a run never plans on a group another run is changing, and no stale plan is applied
over a newer decision (the journal event that made the newer decision is processed
by a run that starts after the older run has let go).

The lock is a row of ``sync_lock`` with a lease that a thread renews every third of
:attr:`~sync.settings.SyncSettings.lock_lease_seconds`. It is free when the row is
absent, when the lease has run out (the owner died or hung on another host), or when
the owner is a process of this host that no longer exists (``kill -9``: taken over at
once). Whoever takes a lock over from a dead owner marks that owner's run
``interrupted`` and settles what it left pending (:mod:`sync.recovery`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, update

from connector.clock import Clock
from connector.store.database import Store
from connector.store.models import GroupLockRow

log = logging.getLogger("walkin.sync")

HOST = socket.gethostname()[:128]


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    owner: str
    run_id: int | None
    taken_at: datetime
    lease_until: datetime
    dead: bool
    """Whether the holder is known to be gone (its process on this host is not
    running, or its lease has run out)."""

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "a run"
        return f"{run} ({self.owner}) since {self.taken_at.isoformat(timespec='seconds')}"


class GroupBusy(Exception):
    """Another live run holds the group's lock."""

    def __init__(self, group: str, holder: Holder) -> None:
        super().__init__(f"the group {group} is being written by {holder.describe()}")
        self.holder = holder


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class GroupLock:
    """The lock of one (target, group) for one run. Use :meth:`acquire`, then
    :meth:`release` (also when the run fails); :attr:`taken_over` is the holder
    whose lock was taken because it was dead, if any."""

    def __init__(self, store: Store, clock: Clock, target: str, group: str, *, lease_seconds: float) -> None:
        self.store, self.clock, self.target, self.group = store, clock, target, group
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.taken_over: Holder | None = None
        self._held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # ------------------------------------------------------------------ taking

    def acquire(self, wait_seconds: float = 0.0, poll: float = 0.2) -> None:
        """Take the lock, waiting up to ``wait_seconds`` (monotonic) while a live run holds it.

        :raises GroupBusy: when it is still held by a live run after the wait.
        """
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            holder = self._try()
            if holder is None:
                self._held = True
                self._renewer = threading.Thread(target=self._renew, name="walkin-lock", daemon=True)
                self._renewer.start()
                return
            if time.monotonic() >= deadline:
                raise GroupBusy(self.group, holder)
            time.sleep(poll)

    def _try(self) -> Holder | None:
        """One attempt: ``None`` when taken, else the live holder."""
        now = self.clock.now()
        with self.store.session_write() as session:
            row = session.get(GroupLockRow, (self.target, self.group), with_for_update=True)
            if row is not None:
                holder = self._holder(row, now)
                if not holder.dead:
                    return holder
                log.warning("taking over the lock of %s from %s, which is gone", self.group, holder.describe())
                self.taken_over = holder
                session.delete(row)
                session.flush()
            session.add(
                GroupLockRow(
                    target=self.target,
                    grp=self.group,
                    run_id=None,
                    owner=self.owner,
                    host=HOST,
                    pid=os.getpid(),
                    taken_at=now,
                    lease_until=now + self.lease,
                )
            )
        return None

    @staticmethod
    def _holder(row: GroupLockRow, now: datetime) -> Holder:
        dead = _aware(row.lease_until) <= now or (row.host == HOST and not _process_alive(row.pid))
        return Holder(row.owner, row.run_id, _aware(row.taken_at), _aware(row.lease_until), dead)

    # ----------------------------------------------------------------- holding

    def attach(self, run_id: int) -> None:
        """Name the run that holds the lock (shown to whoever waits for it)."""
        with self.store.session_write() as session:
            session.execute(update(GroupLockRow).where(self._mine()).values(run_id=run_id))

    def _renew(self) -> None:
        interval = max(0.05, self.lease.total_seconds() / 3)
        while not self._stop.wait(interval):
            try:
                with self.store.session_write() as session:
                    result = session.execute(
                        update(GroupLockRow).where(self._mine()).values(lease_until=self.clock.now() + self.lease)
                    )
                    renewed = cast(CursorResult, result).rowcount  # an UPDATE's result is a CursorResult
                if not renewed:
                    log.error("the lock of %s was taken from this run", self.group)
                    return
            except Exception:
                log.exception("could not renew the lock of %s", self.group)

    def _mine(self):
        return (
            (GroupLockRow.target == self.target) & (GroupLockRow.grp == self.group) & (GroupLockRow.owner == self.owner)
        )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self._held:
            self._held = False
            with self.store.session_write() as session:
                session.execute(delete(GroupLockRow).where(self._mine()))
