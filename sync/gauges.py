"""What the store says about the sync, as Prometheus gauges computed when the
service is scraped: the journal's lag, each entitlement's last successful run,
group size, pending and overdue grants, people waiting, certifications expiring,
removals held — and the workers' heartbeat.

Each figure is one COUNT or one row found by an index (never the reports
themselves, which build every row: at 100,000 people a scrape must stay cheap), and
counts the same people its report lists (sync/reports/access.py, trail.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.store.database import Store
from connector.store.models import (
    DecisionRow,
    HoldingRow,
    JournalRow,
    SyncCursorRow,
    SyncJobRow,
    SyncRunRow,
    UserRow,
)
from mappings.calendar import grant_deadline
from mappings.model import Mapping
from mappings.vocabulary import Actor

from . import heartbeat
from .jobs import JOURNAL, JobStatus
from .ledger import EVERYONE, RunKind, RunStatus

log = logging.getLogger("walkin.metrics")

#: Kinds whose last success is reported: a run for everyone, a run for some people.
SUCCESS_KINDS = (RunKind.FULL, RunKind.DAILY, RunKind.MANUAL, RunKind.EVENT)
#: How far back the overdue cutoff is looked for (a grant deadline is two business days).
_DEADLINE_REACH = 60


@dataclass
class Journal:
    events_behind: int = 0
    """Events after the ingest cursor (not yet turned into work)."""
    jobs_open: int = 0
    """Person jobs pending or running."""
    oldest_at: datetime | None = None
    """When the oldest event not yet applied was recorded: the first after the cursor,
    or the first of an open person job, whichever is older."""


@dataclass
class Entitlement:
    last_success: dict[str, datetime] = field(default_factory=dict)  # run kind → when its newest ok run ended
    members: int | None = None  # the group after the newest complete run (None: none yet)
    pending: int = 0
    overdue: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # actor → people
    expiring: int = 0
    held: int = 0


def journal(session: Session) -> Journal:
    cursor = session.scalar(select(SyncCursorRow.seq).where(SyncCursorRow.name == JOURNAL)) or 0
    behind = session.scalar(select(func.count()).select_from(JournalRow).where(JournalRow.seq > cursor)) or 0
    open_jobs = and_(SyncJobRow.status.in_([JobStatus.PENDING, JobStatus.RUNNING]), SyncJobRow.person_id.is_not(None))
    jobs_open, first_job_seq = session.execute(
        select(func.count(), func.min(SyncJobRow.first_seq)).select_from(SyncJobRow).where(open_jobs)
    ).one()
    candidates = [s for s in (first_job_seq, cursor + 1 if behind else None) if s is not None]
    oldest = None
    if candidates:
        oldest = session.scalar(
            select(JournalRow.at).where(JournalRow.seq >= min(candidates)).order_by(JournalRow.seq).limit(1)
        )
    return Journal(behind, jobs_open or 0, _aware(oldest) if oldest is not None else None)


def overdue_cutoff(today: date, holidays) -> date | None:
    """The latest day a person could have become entitled and be overdue today
    (deadline passed); everyone entitled on or before it is. The deadline never
    moves earlier for a later start, so one cutoff splits them."""
    for back in range(_DEADLINE_REACH):
        start = today - timedelta(days=back)
        if grant_deadline(start, holidays) < today:
            return start
    return None


def entitlement(session: Session, mapping: Mapping, target: str, name: str, today: date) -> Entitlement:
    out = Entitlement()
    r = SyncRunRow
    for kind in SUCCESS_KINDS:
        finished = session.scalar(
            select(r.finished_at)
            .where(r.entitlement == name, r.target == target, r.kind == kind.value, r.status == RunStatus.OK.value)
            .order_by(r.id.desc())
            .limit(1)
        )
        if finished is not None:
            out.last_success[kind.value] = _aware(finished)
    newest: tuple[int, dict] | None = None
    for kind in EVERYONE:  # the group's size is known from runs that read all of it
        row = session.execute(
            select(r.id, r.counts)
            .where(
                r.entitlement == name,
                r.target == target,
                r.kind == kind.value,
                r.status.in_([RunStatus.OK.value, RunStatus.HELD.value, RunStatus.PARTIAL.value]),
                r.dry_run.is_(False),
            )
            .order_by(r.id.desc())
            .limit(1)
        ).first()
        if row is not None and (newest is None or row[0] > newest[0]):
            newest = (row[0], row[1] or {})
    if newest is not None and "actual" in newest[1]:
        counts = newest[1]
        out.members = int(counts["actual"]) + int(counts.get("added", 0)) - int(counts.get("removed", 0))

    d, h = DecisionRow, HoldingRow
    cutoff = overdue_cutoff(today, mapping.policy.holiday_set)
    since = func.coalesce(d.entitled_since, d.decided_on)
    late = case((since <= cutoff.isoformat(), 1), else_=0) if cutoff is not None else literal(0)
    # Pending and overdue in one pass: the anti-join over the entitled is the cost.
    pending, overdue = session.execute(
        select(func.count(), func.coalesce(func.sum(late), 0))
        .select_from(d)
        .join(UserRow, UserRow.id == d.person_id)
        .outerjoin(h, and_(h.target == target, h.entitlement == d.entitlement, h.person_id == d.person_id))
        .where(d.entitlement == name, d.entitled.is_(True), h.person_id.is_(None))
    ).one()
    out.pending, out.overdue = int(pending or 0), int(overdue or 0)
    waiting = session.execute(
        select(d.waiting_on, func.count())
        .join(UserRow, UserRow.id == d.person_id)
        .where(d.entitlement == name, d.waiting_on.is_not(None))
        .group_by(d.waiting_on)
    ).all()
    out.waiting = {actor.value: 0 for actor in Actor} | {str(actor): n for actor, n in waiting}
    window = today + timedelta(days=mapping.policy.recert_warning_days)
    out.expiring = (
        session.scalar(
            select(func.count())
            .select_from(d)
            .join(UserRow, UserRow.id == d.person_id)
            .where(
                d.entitlement == name,
                d.entitled.is_(True),
                d.valid_through >= today.isoformat(),
                d.valid_through <= window.isoformat(),
            )
        )
        or 0
    )
    held = session.scalars(
        select(r.held).where(
            r.entitlement == name, r.target == target, r.status == RunStatus.HELD.value, r.released_by.is_(None)
        )
    )
    # Distinct members: a later run of the same group holds the same removal again.
    out.held = len({item.get("member") for items in held for item in items or []})
    return out


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class StoreGauges(Collector):
    """The figures above as gauges, read from the store at each scrape."""

    def __init__(self, store: Store, mapping: Mapping, target: str, clock: Clock, stale_seconds: float) -> None:
        self.store, self.mapping, self.target, self.clock = store, mapping, target, clock
        self.stale_seconds = stale_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("walkin_store_up", "Whether the store answered this scrape's queries (1) or not (0).")
        try:
            families = list(self._families())
        except Exception:  # a scrape must still answer (the request metrics, and this 0)
            log.warning("metrics: the store could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock.now()
        today = self.clock.today(self.mapping.policy.zone)
        names = list(self.mapping.evaluation_order)
        with self.store.session_read() as session:
            lag = journal(session)
            figures = {n: entitlement(session, self.mapping, self.target, n, today) for n in names}
            last_beat = heartbeat.newest(session)
            alive = heartbeat.alive(session, now - timedelta(seconds=self.stale_seconds or 300))

        g = GaugeMetricFamily
        yield _one(g("walkin_journal_lag_events", "Journal events not yet turned into work."), lag.events_behind)
        yield _one(g("walkin_journal_open_jobs", "Person sync jobs pending or running."), lag.jobs_open)
        yield _one(
            g("walkin_journal_lag_seconds", "Age of the oldest journal event not yet applied (0: none)."),
            heartbeat.age(lag.oldest_at, now) or 0.0,
        )
        beat = g("walkin_worker_heartbeat_timestamp_seconds", "When a sync worker last said it was alive (Unix time).")
        if last_beat is not None:
            beat.add_metric([], last_beat.timestamp())
        yield beat
        yield _one(g("walkin_workers_alive", "Sync workers whose heartbeat is fresh."), alive)

        labels = ["entitlement", "target"]
        success = g(
            "walkin_sync_last_success_timestamp_seconds",
            "When the newest successful run of each kind ended (Unix time).",
            labels=[*labels, "kind"],
        )
        members = g("walkin_group_members", "Members of the group after its newest complete run.", labels=labels)
        pending = g("walkin_grants_pending", "People entitled whom the group does not hold yet.", labels=labels)
        overdue = g("walkin_grants_overdue", "Pending grants past their deadline (policy §7).", labels=labels)
        waiting = g(
            "walkin_people_waiting", "People not entitled for what one party can fix.", labels=[*labels, "actor"]
        )
        expiring = g(
            "walkin_certifications_expiring",
            "Entitled people whose access ends within the warning window.",
            labels=labels,
        )
        held = g("walkin_removals_held", "Members whose removal the deletion guard holds, not released.", labels=labels)
        for name, f in figures.items():
            key = [name, self.target]
            for kind, at in f.last_success.items():
                success.add_metric([*key, kind], at.timestamp())
            if f.members is not None:
                members.add_metric(key, f.members)
            pending.add_metric(key, f.pending)
            overdue.add_metric(key, f.overdue)
            for actor, n in f.waiting.items():
                waiting.add_metric([*key, actor], n)
            expiring.add_metric(key, f.expiring)
            held.add_metric(key, f.held)
        yield from (success, members, pending, overdue, waiting, expiring, held)


def _one(family: GaugeMetricFamily, value: float) -> GaugeMetricFamily:
    family.add_metric([], value)
    return family
