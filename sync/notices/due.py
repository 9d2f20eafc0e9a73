"""Which notices are due: granted and lost from the decision changes a run stores
(:func:`from_changes`, called in that run's transaction), and the daily ones from
the reports (:func:`daily`): reminders from ``expiring``, the approvers' digest from
``waiting``, the help desk's from ``pending --overdue``, the administrators' from
``held``. Each report is one indexed query over the people concerned, so the pass
costs what the notices do, not what the district does. Pure but for those queries;
nothing here sends or decides."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime

from sqlalchemy.orm import Session

from sync.reports import REPORTS, Filters, Options, ReportContext

from . import NoticeKind
from .outbox import new
from .settings import NotifySettings


def from_changes(entitlement: str, changes: list[tuple[bool, dict]], now: datetime) -> list[dict]:
    """Granted and lost notices for stored decisions that changed entitlement:
    ``(was entitled, the new decision's row)`` each. A first decision (nothing stored
    before, as after the first run) is no change, so nobody is told of access they
    always had."""
    rows = []
    for was, row in changes:
        if was == row["entitled"]:
            continue
        payload = {key: row[key] for key in ("reasons", "valid_through", "location", "role", "by_override")}
        if row["entitled"]:
            occasion = row["entitled_since"] or row["decided_on"]
            rows.append(
                new(
                    NoticeKind.GRANTED,
                    row["person_id"],
                    occasion,
                    entitlement,
                    now,
                    person_id=row["person_id"],
                    payload=payload,
                )
            )
        else:
            rows.append(
                new(
                    NoticeKind.LOST,
                    row["person_id"],
                    row["decided_on"],
                    entitlement,
                    now,
                    person_id=row["person_id"],
                    payload=payload,
                )
            )
    return rows


def daily(
    session: Session, ctx: ReportContext, settings: NotifySettings, entitlements: list[str], now: datetime
) -> list[dict]:
    """Today's reminders and digests for the entitlements the sync decides."""
    rows: list[dict] = []
    today = ctx.today.isoformat()
    for entitlement in entitlements:
        filters = Filters(entitlement=entitlement)
        if settings.reminder_days and ctx.mapping.entitlements[entitlement].certification is not None:
            rows += _reminders(session, ctx, settings, filters, now)
        waiting = REPORTS["waiting"](session, ctx, filters, Options())
        by_location: dict[str, list[dict]] = defaultdict(list)
        for r in waiting.rows:
            if r["actor"] == "approver" and r["location"]:
                by_location[r["location"]].append(_person_line(r))
        for location, people in sorted(by_location.items()):
            rows.append(
                new(
                    NoticeKind.APPROVAL_NEEDED,
                    location,
                    today,
                    entitlement,
                    now,
                    payload={"location": location, "people": people},
                )
            )
        overdue = REPORTS["pending"](session, ctx, filters, Options(overdue=True))
        if overdue.rows:
            people = [
                {k: r.get(k) for k in ("user_name", "location", "entitled_since", "deadline", "held_up_by")}
                for r in overdue.rows
            ]
            rows.append(new(NoticeKind.OVERDUE, "helpdesk", today, entitlement, now, payload={"people": people}))
        rows += _held(session, ctx, filters, now)
    return rows


def _reminders(
    session: Session, ctx: ReportContext, settings: NotifySettings, filters: Filters, now: datetime
) -> list[dict]:
    """A reminder at each point of ``reminder_days`` reached: the nearest point not
    passed (45 days left: the 60-day reminder, if it was not sent — a worker that was
    down on the day sends it late rather than never)."""
    expiring = REPORTS["expiring"](session, ctx, filters, Options(within_days=max(settings.reminder_days)))
    rows = []
    for r in expiring.rows:
        if r["by_override"]:
            continue  # an override's end is not a certification's: nothing the person can renew
        reached = [day for day in settings.reminder_days if r["days_left"] <= day]
        if not reached:
            continue
        point = min(reached)
        payload = {k: r[k] for k in ("valid_through", "days_left", "school_year_end", "renews_with")}
        payload["point"] = point
        rows.append(
            new(
                NoticeKind.REMINDER,
                r["person_id"],
                f"{r['valid_through']}:{point}",
                filters.entitlement,
                now,
                person_id=r["person_id"],
                payload=payload,
            )
        )
    return rows


def _held(session: Session, ctx: ReportContext, filters: Filters, now: datetime) -> list[dict]:
    """One notice per set of held removals: each later run that holds the same
    removals again (hourly, until someone releases them) is no news; its occasion is
    the set's digest, and it names the newest run to release."""
    held = REPORTS["held"](session, ctx, filters, Options())
    by_run: dict[int, list[dict]] = defaultdict(list)
    for r in held.rows:
        by_run[r["run_id"]].append({k: r.get(k) for k in ("user_name", "member", "reasons", "guard")})
    newest: dict[str, tuple[int, list[dict]]] = {}
    for run_id, removals in sorted(by_run.items()):
        members = "\n".join(sorted(str(r["member"]) for r in removals))
        newest[hashlib.sha256(members.encode()).hexdigest()[:32]] = (run_id, removals)
    return [
        new(
            NoticeKind.HELD,
            "admins",
            f"held:{key}",
            filters.entitlement,
            now,
            payload={"run_id": run_id, "removals": removals},
        )
        for key, (run_id, removals) in newest.items()
    ]


def decided_entitlements(session: Session) -> list[str]:
    """The entitlements the sync decides (has stored decisions of)."""
    from sqlalchemy import select

    from connector.store.models import DecisionRow

    return sorted(session.scalars(select(DecisionRow.entitlement).distinct()))


def _person_line(row: dict) -> dict:
    return {k: row.get(k) for k in ("user_name", "location", "role", "reasons", "next_step")}
