"""What happened: access lost (``losses``), members nobody maps to removed
(``drift``), entitled people without a directory entry (``unresolved``), writes
that failed (``failed``), removals the deletion guard holds (``held``) and the runs
themselves (``runs``). Periods are district days, inclusive; the default is the
last 30 days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from connector.store.models import AuditRow, DecisionRow, SyncRunRow, UserRow

from . import Filters, Options, Report, ReportContext, check_filters, stamp
from .access import scoped

DEFAULT_DAYS = 30


def _period(ctx: ReportContext, options: Options) -> tuple[date, date, datetime, datetime]:
    until = options.until or ctx.today
    since = options.since or until - timedelta(days=DEFAULT_DAYS - 1)
    zone = ctx.mapping.policy.zone
    start = datetime.combine(since, time(), zone).astimezone(UTC)
    end = datetime.combine(until + timedelta(days=1), time(), zone).astimezone(UTC)
    return since, until, start, end


def _audit(name: str, action: str, latest_only: bool = False):
    def report(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
        check_filters(ctx, filters)
        since, until, start, end = _period(ctx, options)
        a, d = AuditRow, DecisionRow
        stmt = select(
            a.id, a.at, a.run_id, a.user_name, a.person_id, a.member, a.reasons, a.detail, d.location, d.role
        ).outerjoin(d, and_(d.entitlement == a.entitlement, d.person_id == a.person_id))
        stmt = scoped(
            stmt.where(
                a.entitlement == filters.entitlement,
                a.target == ctx.target,
                a.action == action,
                a.at >= start,
                a.at < end,
            ),
            filters,
        ).order_by(a.id.desc())
        rows, seen = [], set()
        for r in session.connection().execute(stmt):
            if latest_only:
                if r.person_id in seen:
                    continue
                seen.add(r.person_id)
            rows.append(
                {
                    "at": stamp(r.at),
                    "run_id": r.run_id,
                    "user_name": r.user_name,
                    "location": r.location,
                    "role": r.role,
                    "member": r.member,
                    "reasons": ",".join(r.reasons or []),
                    "detail": r.detail,
                    "person_id": r.person_id,
                }
            )
        summary = {name: len(rows), "since": since.isoformat(), "until": until.isoformat()}
        return Report(name, _AUDIT_COLUMNS, rows, ctx.today, summary)

    report.__name__ = name
    report.__doc__ = f"Audit entries '{action}' in the period, newest first" + (
        " (each person's latest)." if latest_only else "."
    )
    return report


_AUDIT_COLUMNS = ("at", "run_id", "user_name", "location", "role", "member", "reasons", "detail", "person_id")

losses = _audit("losses", "revoke")
drift = _audit("drift", "drift")
failed = _audit("failed", "failed")
unresolved = _audit("unresolved", "unresolved", latest_only=True)


def held(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """Removals the deletion guard holds, run by run: who would be removed and why,
    and whether an administrator has released them."""
    check_filters(ctx, filters)
    runs = session.execute(
        select(SyncRunRow)
        .where(
            SyncRunRow.entitlement == filters.entitlement,
            SyncRunRow.target == ctx.target,
            SyncRunRow.status == "held",
            SyncRunRow.released_by.is_(None),
        )
        .order_by(SyncRunRow.id.desc())
    ).scalars()
    rows = _held_rows(session, list(runs))
    summary = {"held": len(rows), "runs": len({r["run_id"] for r in rows})}
    return Report("held", _HELD_COLUMNS, rows, ctx.today, summary)


def _held_rows(session: Session, runs: list[SyncRunRow]) -> list[dict]:
    """Each removal the runs hold: who, why, and whether its release is requested."""
    rows = [
        {
            "run_id": run.id,
            "held_at": stamp(run.started_at),
            "member": item.get("member"),
            "reasons": ",".join(item.get("reasons") or []),
            "guard": run.detail,
            "release_requested_by": run.release_requested_by,
            "person_id": item.get("person_id"),
        }
        for run in runs
        for item in run.held
    ]
    names = _names(session, [r["person_id"] for r in rows if r["person_id"]])
    for row in rows:
        row["user_name"] = names.get(row["person_id"])
    return rows


_HELD_COLUMNS = ("run_id", "held_at", "user_name", "member", "reasons", "guard", "release_requested_by", "person_id")


def _names(session: Session, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        rows = session.execute(
            select(UserRow.id, UserRow.data["userName"].as_string()).where(UserRow.id.in_(ids[i : i + 500]))
        )
        out.update((person, name) for person, name in rows)
    return out


def runs(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """The latest runs of the entitlement (``options.limit``), newest first: kind,
    status, counts, duration, and who released a hold."""
    check_filters(ctx, filters)
    stmt = (
        select(SyncRunRow)
        .where(SyncRunRow.entitlement == filters.entitlement, SyncRunRow.target == ctx.target)
        .order_by(SyncRunRow.id.desc())
        .limit(options.limit)
    )
    rows = [_run_row(run) for run in session.scalars(stmt)]
    summary = {"runs": len(rows), "not_ok": sum(1 for r in rows if r["status"] not in ("ok", "running"))}
    return Report("runs", _RUN_COLUMNS, rows, ctx.today, summary)


def run(session: Session, ctx: ReportContext, run_id: int) -> dict | None:
    """One run as ``runs`` shows it, with the removals it holds (if it still does)
    listed as ``held`` shows them; None when there is no such run of this target."""
    found = session.get(SyncRunRow, run_id)
    if found is None or found.target != ctx.target:
        return None
    holds = found.status == "held" and found.released_by is None
    return {
        **_run_row(found),
        "entitlement": found.entitlement,
        "held_removals": _held_rows(session, [found]) if holds else [],
    }


def _run_row(run: SyncRunRow) -> dict:
    counts = run.counts or {}
    finished = run.finished_at
    return {
        "run_id": run.id,
        "kind": run.kind,
        "dry_run": run.dry_run,
        "status": run.status,
        "started_at": stamp(run.started_at),
        "duration_seconds": None if finished is None else round((finished - run.started_at).total_seconds(), 3),
        "added": counts.get("added"),
        "removed": counts.get("removed"),
        "held": counts.get("held"),
        "failed": counts.get("failed"),
        "unresolved": counts.get("unresolved"),
        "released_by_run": run.released_by,
        "release_requested_by": run.release_requested_by,
        "detail": run.detail,
    }


_RUN_COLUMNS = (
    "run_id",
    "kind",
    "dry_run",
    "status",
    "started_at",
    "duration_seconds",
    "added",
    "removed",
    "held",
    "failed",
    "unresolved",
    "released_by_run",
    "release_requested_by",
    "detail",
)
