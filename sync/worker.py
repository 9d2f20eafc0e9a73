"""The long-running worker: journal events → person runs within seconds; a
full reconcile on a schedule and at the start of each district day."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from mappings.calendar import local_date

from . import jobs
from . import metrics as sync_metrics
from .checkpoints import Checkpointer
from .heartbeat import Heartbeat
from .ledger import RunKind, RunStatus
from .reconcile import RunResult, SyncContext, reconcile
from .requests import requested_releases
from .targets.base import TargetError

log = logging.getLogger("walkin.worker")


def entitlements_with_groups(ctx: SyncContext) -> list[str]:
    """Entitlements the mapping names a group for in the configured target, in
    prerequisite order."""
    out = []
    for name in ctx.mapping.evaluation_order:
        try:
            ctx.group_of(name)
        except TargetError:
            continue
        out.append(name)
    return out


def full_due(ctx: SyncContext, last: datetime | None, now: datetime) -> bool:
    """A full reconcile is due after the interval, and once a day after ``day_start``
    (district time) so expiries take effect on the first day after ``valid_through``."""
    if last is None:
        return True
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    if now - last >= timedelta(seconds=ctx.settings.sync.full_interval_seconds):
        return True
    zone = ctx.mapping.policy.zone
    local_now = now.astimezone(zone)
    hour, minute = (int(x) for x in ctx.settings.sync.day_start.split(":"))
    day_start = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local_now >= day_start and last.astimezone(zone) < day_start


class Worker:
    def __init__(self, ctx: SyncContext, name: str | None = None) -> None:
        self.ctx = ctx
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.stopping = threading.Event()
        self.entitlements = entitlements_with_groups(ctx)
        audit = ctx.settings.audit
        self.checkpointer = Checkpointer(audit, ctx.store) if audit.checkpoints else None

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def step(self) -> int:
        """One round: ingest, schedule, claim, run. :returns: jobs processed."""
        ctx, settings = self.ctx, self.ctx.settings.sync
        now = ctx.clock.now()
        jobs.ingest(ctx.store, now)
        if full_due(ctx, jobs.last_full_start(ctx.store), now):
            jobs.enqueue_full(ctx.store, now)
        released = self.release_requested()
        claimed = jobs.claim(ctx.store, self.name, now, timedelta(seconds=settings.lease_seconds), settings.job_batch)
        if claimed:
            self.run_jobs(claimed)
        sent = self.notify(full=bool(claimed) and claimed[0].full)
        self.checkpoint(ran=bool(claimed) or released > 0 or sent > 0)
        return released + len(claimed) + sent

    def notify(self, full: bool) -> int:
        """After a full run, put the day's reminders and digests in the outbox (once
        each ever: sync/notices/); then send what is due. :returns: notices sent."""
        if not self.ctx.settings.notify.enabled:
            return 0
        from .notices.delivery import deliver, plan_today

        if full:
            plan_today(self.ctx, self.entitlements)
        return deliver(self.ctx, self.name).sent

    def checkpoint(self, *, ran: bool) -> None:
        """Sign the audit chain's head after runs that added entries, and at least
        every ``audit.checkpoint_seconds`` (sync/checkpoints.py)."""
        if self.checkpointer is not None:
            self.checkpointer.after(self.ctx.clock.now(), ran=ran)

    def release_requested(self) -> int:
        """Apply the held removals an administrator released from the admin API
        (sync/requests.py), as ``walkin sync --allow-removals RUN`` would.
        :returns: how many releases were attempted."""
        attempted = 0
        for run_id, entitlement in requested_releases(self.ctx.store):
            if entitlement not in self.entitlements:
                continue
            attempted += 1
            try:
                result = self.run(entitlement, RunKind.RELEASE, release=run_id)
            except TargetError as exc:
                log.warning("release of run %s failed: %s", run_id, exc)
                continue
            log.info("release of run %s: run %s %s", run_id, result.run_id, result.status.value)
        return attempted

    def run(self, entitlement: str, kind: RunKind, **options) -> RunResult:
        """One reconcile, counted in the metrics and summed up in one log line.

        :raises TargetError: as :func:`~sync.reconcile.reconcile` (counted as failed)."""
        target = self.ctx.target_name
        started = time.perf_counter()
        try:
            result = reconcile(self.ctx, entitlement, kind=kind, **options)
        except TargetError as exc:
            seconds = time.perf_counter() - started
            sync_metrics.RUNS.labels(entitlement, target, kind.value, RunStatus.FAILED.value).inc()
            log.warning(
                "run %s/%s %s failed before it started: %s",
                entitlement,
                target,
                kind.value,
                exc,
                extra={
                    "entitlement": entitlement,
                    "target": target,
                    "kind": kind.value,
                    "status": "failed",
                    "duration_seconds": round(seconds, 6),
                },
            )
            raise
        seconds = time.perf_counter() - started
        sync_metrics.RUNS.labels(entitlement, target, kind.value, result.status.value).inc()
        sync_metrics.RUN_DURATION.labels(entitlement, target, kind.value).observe(seconds)
        counts = result.counts
        fields = {
            "run_id": result.run_id,
            "entitlement": entitlement,
            "target": target,
            "kind": kind.value,
            "status": result.status.value,
            "added": counts.get("added", 0),
            "removed": counts.get("removed", 0),
            "held": counts.get("held", 0),
            "failed": counts.get("failed", 0),
            "unresolved": counts.get("unresolved", 0),
            "duration_seconds": round(seconds, 6),
        }
        log.log(
            logging.WARNING if result.exit_code else logging.INFO,
            "run %s %s/%s %s %s: +%d -%d, %d held, %d failed, %d unresolved in %.3f s%s",
            result.run_id,
            entitlement,
            target,
            kind.value,
            result.status.value,
            fields["added"],
            fields["removed"],
            fields["held"],
            fields["failed"],
            fields["unresolved"],
            seconds,
            f" — {result.detail}" if result.detail and result.exit_code else "",
            extra=fields,
        )
        return result

    def run_jobs(self, claimed: list[jobs.Job]) -> None:
        ctx = self.ctx
        full = claimed[0].full
        kind = RunKind.DAILY if full and self._first_today() else (RunKind.FULL if full else RunKind.EVENT)
        persons = None if full else sorted({j.person_id for j in claimed if j.person_id is not None})
        seqs = {j.person_id: j.last_seq for j in claimed if j.person_id and j.last_seq is not None}
        failed = []
        for entitlement in self.entitlements:
            try:
                result = self.run(entitlement, kind, person_ids=persons, journal_seqs=seqs)
            except TargetError as exc:  # configuration problems surface as failed jobs
                failed.append(f"{entitlement}: {exc}")
                continue
            if result.status in (RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.BUSY):
                failed.append(f"{entitlement}: {result.detail}")
        now = ctx.clock.now()
        if failed:
            log.warning("jobs %s will be retried: %s", [j.id for j in claimed], "; ".join(failed))
            delay = timedelta(seconds=min(300, 5 * 2 ** max(j.attempts for j in claimed)))
            jobs.retry_later(ctx.store, claimed, self.name, now, delay, "; ".join(failed)[:2000])
        else:
            jobs.finish(ctx.store, claimed, self.name, now)

    def _first_today(self) -> bool:
        last = jobs.last_full_start(self.ctx.store)
        if last is None:
            return True
        zone = self.ctx.mapping.policy.zone
        return local_date(last, zone) < self.ctx.clock.today(zone)

    def heartbeat(self) -> Heartbeat:
        """The worker's heartbeat (started by :meth:`run_forever`)."""
        return Heartbeat(self.ctx.store, self.ctx.clock, self.name, self.ctx.settings.health.heartbeat_seconds)

    def run_forever(self) -> None:
        log.info("worker %s started for %s", self.name, ", ".join(self.entitlements) or "no entitlement")
        beating = self.heartbeat()
        beating.start()
        try:
            while not self.stopping.is_set():
                try:
                    processed = self.step()
                except Exception:
                    log.exception("worker round failed; retrying")
                    processed = 0
                if not processed:
                    self.stopping.wait(self.ctx.settings.sync.poll_seconds)
        finally:
            beating.stop()
        log.info("worker %s stopped", self.name)
