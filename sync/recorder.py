"""What a run writes to the store, and when, so a run killed at any point leaves a
true account.

- The run row is opened as soon as the run holds its group's lock.
- Before a chunk of changes goes to the directory, each change is recorded as
  *pending* (``sync_pending``).
- When the directory has answered, one transaction records, for each change of the
  chunk: its audit entry, its effects — a confirmed grant becomes a holding (who the
  entry was granted for), a confirmed revoke drops the holding and records the loss
  date (policy §4 ``lost_access_on``), a move or drift drops the holding — and drops
  the pending row. A change whose outcome the directory did not tell (the connection
  broke mid-request) stays pending.
- What is left pending when a run dies — or stays unknown — is settled by the next
  run of the group, which asks the directory (:mod:`sync.recovery`).
- The run row is closed with the run's outcome and counts at the end; a run whose
  process died is closed as ``interrupted`` by the next run of the group.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from connector.store.models import SyncRunRow

from . import ledger
from .context import SyncContext
from .ledger import AuditAction, AuditEntry, AuditResult, RunKind, RunStatus
from .planner import Action, Change

log = logging.getLogger("walkin.sync")

#: Builds the audit entry of one change: (change, action, result, detail).
EntryFactory = Callable[[Change, AuditAction, AuditResult, "str | None"], AuditEntry]


@dataclass(frozen=True)
class Settled:
    """A change the directory answered for (or failed to)."""

    change: Change
    entry: AuditEntry
    applied: bool | None
    """True: confirmed; False: not made (refused, or never attempted); None: unknown."""


@dataclass
class Recorder:
    """The store side of one run (see module doc)."""

    ctx: SyncContext
    entitlement: str
    kind: RunKind
    group: str
    today: date
    entry: EntryFactory
    run_id: int | None = None
    finished: bool = False
    unstored: list[Settled] = field(default_factory=list)
    """Settled changes the store could not take when they were settled (retried at the end)."""
    failed: bool = False
    """Whether storing an outcome failed (the writer then writes nothing more)."""
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None

    @property
    def _target(self) -> str:
        return self.ctx.target_name

    def start(self) -> int:
        """Open the run row (once)."""
        if self.run_id is None:
            with self.ctx.store.session_write() as session:
                self.run_id = ledger.start_run(
                    session,
                    kind=self.kind,
                    entitlement=self.entitlement,
                    target=self._target,
                    dry_run=False,
                    now=self.ctx.clock.now(),
                )
        return self.run_id

    # ------------------------------------------------ the writer thread's hooks

    def pend(self, changes: list[Change]) -> None:
        """Record changes about to be handed to the directory."""
        run_id = self.start()
        rows = []
        for change in changes:
            entry = self.entry(change, AuditAction(change.action.value), AuditResult.OK, None)
            rows.append(
                {
                    "run_id": run_id,
                    "target": self._target,
                    "entitlement": self.entitlement,
                    "grp": self.group,
                    "action": change.action.value,
                    "member": change.member,
                    "person_id": change.person_id,
                    "user_name": entry.user_name,
                    "reasons": entry.reasons,
                    "evidence": entry.evidence,
                    "journal_seq": entry.journal_seq,
                }
            )
        with self.ctx.store.session_write() as session:
            ledger.pend(session, rows)

    def settle(self, settled: list[Settled]) -> None:
        """Record what the directory answered for a chunk: audit, effects, pending rows."""
        with self._guard:
            batch = [*self.unstored, *settled]
            try:
                with self.ctx.store.session_write() as session:
                    self.store(session, batch)
            except Exception:
                self.unstored = batch
                raise
            self.unstored = []

    def settle_soon(self, settled: list[Settled]) -> None:
        """:meth:`settle`, in the recorder's thread (outcomes queued meanwhile are
        stored together); :meth:`flush` waits for it."""
        if self._thread is None:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="walkin-recorder", daemon=True)
            self._thread.start()
        self._queue.put(settled)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = list(item)
            stop = False
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            try:
                self.settle(batch)
            except Exception:
                log.exception("could not record the outcome of writes to %s", self.group)
                self.failed = True
            if stop:
                return

    def flush(self) -> None:
        """Wait until every outcome handed to :meth:`settle_soon` is stored (or kept
        for the end), and stop the recorder's thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def defer(self, settled: list[Settled]) -> None:
        """Changes settled without a word from the directory (never attempted): stored at the end."""
        with self._guard:
            self.unstored.extend(settled)

    def store(self, session, batch: list[Settled]) -> None:
        """In ``session``: the audit entries of settled changes, their effects
        (holdings, loss dates) and the end of their pending rows."""
        if self.run_id is None:
            raise RuntimeError("outcomes stored before the run started")
        now = self.ctx.clock.now()
        ledger.write_audit(
            session,
            [s.entry for s in batch],
            run_id=self.run_id,
            entitlement=self.entitlement,
            target=self._target,
            now=now,
        )
        granted, dropped, lost = [], [], []
        for s in batch:
            if not s.applied:
                continue
            change = s.change
            if change.action is Action.GRANT and change.person_id:
                granted.append((change.member, change.person_id, s.entry.user_name))
            else:
                dropped.append(change.member)
                if change.action is Action.REVOKE and change.person_id:
                    lost.append(change.person_id)
        ledger.unhold(session, self._target, self.entitlement, dropped)
        ledger.hold(session, self._target, self.entitlement, granted, now, self.run_id)
        ledger.record_losses(session, sorted(set(lost)), self.entitlement, self.today, self.run_id)
        known = [s.change.member for s in batch if s.applied is not None]
        ledger.unpend(session, self.run_id, known)

    # ----------------------------------------------------------- the end

    def finish(
        self,
        entries: list[AuditEntry],
        status: RunStatus,
        counts: dict,
        held: list,
        detail: str | None,
        more: Callable[[object], None] | None = None,
    ) -> None:
        """Write the run's last audit entries (and whatever the writer could not
        store), run ``more`` in the same transaction, and close the run row."""
        self.flush()
        end = self.ctx.clock.now()
        with self._guard, self.ctx.store.session_write() as session:
            if self.run_id is None:
                self.run_id = ledger.start_run(
                    session, kind=self.kind, entitlement=self.entitlement, target=self._target, dry_run=False, now=end
                )
            if self.unstored:
                self.store(session, self.unstored)
                self.unstored = []
            ledger.write_audit(
                session, entries, run_id=self.run_id, entitlement=self.entitlement, target=self._target, now=end
            )
            if more is not None:
                more(session)
            ledger.finish_run(session, self.run_id, status=status, counts=counts, held=held, detail=detail, now=end)
        self.finished = True

    def release_of(self, session, release: int) -> None:
        session.get(SyncRunRow, release).released_by = self.run_id
