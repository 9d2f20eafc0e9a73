"""A run's writer: applies changes to the group in a background thread.

Most of a full run's time is the directory's: each modify of a large group makes
the server rewrite the whole entry. So a run does not decide everyone first and
write afterwards; it hands its adds to the writer a chunk of people at a time
(an add rests on one person's decision alone) and goes on deciding the next
people while the directory works, and it hands over the removals once the plan is
complete and the deletion guard allows them.

Changes are written in the order they were handed over, at most
:data:`WRITE_CHUNK` members per target call (the target batches further); adds
are held back until they fill whole write requests (the target's ``write_batch``),
since for a large LDAP group every request costs the server a rewrite of the
whole entry, however few values it carries. Every
change handed over gets exactly one audit entry: done (the target confirmed it),
failed (refused, with the target's reason), or not attempted (the target became
unavailable earlier in the run: nothing more is tried, the next run converges).
Nothing is recorded as done that the target did not confirm.

The run's :class:`~sync.recorder.Recorder` records every change as pending when it
is handed over (before the directory can see it) and each chunk's outcome as soon as
the target answered — in the recorder's own thread, so the directory is not kept
waiting; a change whose outcome a kill kept from the store is still pending, and the
next run settles it. Should the store fail to take an outcome, nothing more is written.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from . import metrics
from .ledger import AuditAction, AuditEntry, AuditResult
from .planner import Action, Change
from .recorder import Recorder, Settled
from .targets.base import Outcome, Target, TargetError, WriteResult, partial_result

log = logging.getLogger("walkin.sync")

WRITE_CHUNK = 1000  # members handed to the target per call (their audit entries are ready after it)


class Writer:
    """Writes changes to one group of ``target`` from a thread of its own.

    :param current: the group's complete membership as the run read it (normalised),
        or ``None`` for a run that did not read it all; the writer keeps its own copy
        up to date with the writes the target confirms and hands it to the target.
    :param recorder: records each chunk as pending before it is written and as
        settled after; builds each change's audit entry (the run knows who each person is).
    :param say: progress messages.

    Call :meth:`finish` (or :meth:`close`, then :meth:`join` until it answers
    ``True``), also when the run fails: it waits for the writes handed over and ends
    the thread. The results (``failures``, ``added``, ``removed``, ``stopped``) are
    only read after that; ``entries`` only grows, so the first ``len(entries)``
    of them may be read at any time (a run records them as it goes).
    """

    def __init__(
        self, target: Target, group: str, current: set[str] | None, recorder: Recorder, say: Callable[[str], None]
    ) -> None:
        self.target, self.group, self._recorder, self._say = target, group, recorder, say
        self._entry = recorder.entry
        self._current = set(current) if current is not None else None
        self.entries: list[AuditEntry] = []
        self.failures: list[str] = []
        self.added = 0
        self.removed = 0
        self.stopped = False
        """Whether the target became unavailable (what followed was not attempted)."""
        self._handed_count = 0
        self._batch = max(1, target.write_batch)
        self._adds: list[Change] = []  # adds held back until they fill a write request
        self._closed = False
        self._written = 0
        self._queue: queue.SimpleQueue[tuple[list[Change], bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="walkin-writer", daemon=True)
        self._thread.start()

    def add(self, changes: list[Change]) -> None:
        """Hand over adds (written in the background, in order). They go to the
        target in whole multiples of its ``write_batch``; the rest waits for the
        next adds, the removals or :meth:`finish`."""
        self._adds.extend(changes)
        whole = len(self._adds) - len(self._adds) % self._batch
        if whole:
            self._hand(self._adds[:whole], True)
            del self._adds[:whole]

    def remove(self, changes: list[Change]) -> None:
        """Hand over removals (written after every add handed over before)."""
        self._flush()
        self._hand(changes, False)

    def _flush(self) -> None:
        self._hand(self._adds, True)
        self._adds = []

    def _hand(self, changes: list[Change], adding: bool) -> None:
        if changes:
            self._recorder.pend(changes)  # pending in the store before the directory sees them
            self._handed_count += len(changes)
            self._queue.put((changes, adding))

    def close(self) -> None:
        """Hand over nothing more: the adds held back go now, and the thread ends
        when everything is written or settled."""
        if not self._closed:
            self._closed = True
            self._flush()
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` seconds) for a closed writer; whether it is done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finish(self) -> None:
        """Close and wait until every change handed over is written or settled, and
        its outcome handed to the recorder."""
        self.close()
        self.join()

    # ------------------------------------------------------------ the thread

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            changes, adding = item
            size = WRITE_CHUNK - WRITE_CHUNK % self._batch or WRITE_CHUNK  # whole requests per call
            for start in range(0, len(changes), size):
                chunk = changes[start : start + size]
                if self.stopped:
                    self._not_attempted(chunk)
                else:
                    self._write(chunk, adding)

    def _write(self, chunk: list[Change], adding: bool) -> None:
        """One target call; record exactly what the target confirmed."""
        by_member = {c.member: c for c in chunk}
        write = self.target.add_members if adding else self.target.remove_members
        error: BaseException | None = None
        if self._recorder.failed:  # the store cannot take outcomes: write nothing we could not account for
            self.stopped = True
            self._not_attempted(chunk, "not attempted, the store could not record the outcomes")
            return
        settled: list[Settled] = []
        result: WriteResult | None
        try:
            result = write(self.group, list(by_member), current=self._current)
        except TargetError as exc:
            result, error = partial_result(exc), exc
        except Exception as exc:  # a defect, not the directory: record it, never call it done
            log.exception("writing to %s failed unexpectedly", self.group)
            result, error = None, exc
        outcomes = result.outcomes if result else {}
        if error is not None:
            metrics.count_error(self.target.name, error)
        tally = dict.fromkeys(metrics.WriteResultKind, 0)
        for member, change in by_member.items():
            outcome = outcomes.get(member)
            action = AuditAction(change.action.value)
            if outcome is not None and outcome[0] is Outcome.DONE:
                tally[metrics.WriteResultKind.DONE] += 1
                self.entries.append(self._entry(change, action, AuditResult.OK, None))
                settled.append(Settled(change, self.entries[-1], True))
                if adding:
                    self.added += 1
                else:
                    self.removed += 1
                if self._current is not None:
                    (self._current.add if adding else self._current.discard)(member)
                continue
            tally[metrics.WriteResultKind.REFUSED if outcome is not None else metrics.WriteResultKind.UNCONFIRMED] += 1
            if outcome is not None:
                why = outcome[1] or "refused by the directory"
            elif error is not None:
                why = f"not written: {error}"
            else:
                why = "not confirmed by the directory"
            self.entries.append(self._entry(change, AuditAction.FAILED, AuditResult.FAILED, f"{action.value}: {why}"))
            # Refused: not made. No answer for it (the request broke off): unknown, kept pending.
            settled.append(Settled(change, self.entries[-1], False if outcome is not None else None))
            self.failures.append(f"{change.member}: {why}")
        for kind, members in tally.items():
            metrics.count_writes(self.target.name, adding, kind, members)
        self._recorder.settle_soon(settled)  # stored by the recorder's thread while the directory goes on
        self._written += len(chunk)
        if self._handed_count > WRITE_CHUNK:
            self._say(f"{self._written}/{self._handed_count} changes written")
        if error is not None:
            self.stopped = True

    def _not_attempted(self, chunk: list[Change], why: str = "not attempted, the directory is unavailable") -> None:
        for adding in (True, False):
            members = sum(1 for c in chunk if (c.action is Action.GRANT) is adding)
            metrics.count_writes(self.target.name, adding, metrics.WriteResultKind.NOT_ATTEMPTED, members)
        settled = []
        for change in chunk:
            self.entries.append(
                self._entry(change, AuditAction.FAILED, AuditResult.FAILED, f"{change.action.value}: {why}")
            )
            settled.append(Settled(change, self.entries[-1], False))
            self.failures.append(f"{change.member}: not attempted")
        self._recorder.defer(settled)  # stored with the run's end
