"""One person's timeline: the SCIM changes the policy reads (the journal), each
change of their stored decision with its reasons (``decision_change``), and every
audit entry about them (grants, revokes, holds, overrides, approvals) — merged in
time order; and, for a date, their access as it stood at its end."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.store.models import AuditRow, DecisionChangeRow, JournalRow

from . import Report, ReportContext, stamp

_COLUMNS = ("at", "source", "what", "entitlement", "entitled", "reasons", "detail")


def history(session: Session, ctx: ReportContext, person_id: str, at: date | None = None) -> Report:
    """The person's timeline, oldest first. With ``at``: only what happened by the end
    of that district day, and the summary gives, per entitlement, whether they were
    in the group then and the decision in force."""
    end = None
    if at is not None:
        end = datetime.combine(at + timedelta(days=1), time(), ctx.mapping.policy.zone).astimezone(UTC)
    events: list[tuple[datetime, int, dict]] = []
    j = select(JournalRow).where(JournalRow.user_id == person_id)
    a = select(AuditRow).where(or_(AuditRow.person_id == person_id))
    c = select(DecisionChangeRow).where(DecisionChangeRow.person_id == person_id)
    if end is not None:
        j, a, c = j.where(JournalRow.at < end), a.where(AuditRow.at < end), c.where(DecisionChangeRow.at < end)
    for row in session.scalars(j.order_by(JournalRow.seq)):
        events.append((_utc(row.at), 0, _journal(row)))
    for change in session.scalars(c.order_by(DecisionChangeRow.id)):
        events.append((_utc(change.at), 1, _change(change)))
    in_group: dict[str, bool] = {}
    for entry in session.scalars(a.order_by(AuditRow.id)):
        events.append((_utc(entry.at), 2, _audit(entry)))
        if entry.result == "ok" and entry.action in ("grant", "revoke", "move"):
            in_group[entry.entitlement] = entry.action == "grant"
    events.sort(key=lambda item: (item[0], item[1]))
    rows = [row for _, _, row in events]
    summary: dict = {"events": len(rows)}
    if at is not None:
        summary["on"] = at.isoformat()
        decided: dict[str, dict] = {}
        for event in rows:
            if event["source"] == "decision":
                decided[event["entitlement"]] = event
        for name in ctx.mapping.entitlements:
            if name in decided or name in in_group:
                verdict = decided.get(name)
                summary[name] = {
                    "in_group": in_group.get(name, False),
                    "entitled": None if verdict is None else verdict["entitled"],
                    "reasons": None if verdict is None else verdict["reasons"],
                }
    return Report("history", _COLUMNS, rows, ctx.today, summary)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _journal(row: JournalRow) -> dict:
    detail = row.detail or {}
    if row.event == "user.updated":  # {field: [old, new]} (connector/store/journal.py view_changes)
        parts = [f"{field}: {_short(pair[0])} → {_short(pair[1])}" for field, pair in sorted(detail.items())]
    else:
        parts = [f"{field}={_short(value)}" for field, value in sorted(detail.items()) if value not in (None, [], {})]
    return {
        "at": stamp(row.at),
        "source": row.source,
        "what": row.event,
        "entitlement": None,
        "entitled": None,
        "reasons": None,
        "detail": "; ".join(parts) or None,
    }


def _short(value: object, limit: int = 120) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _change(row: DecisionChangeRow) -> dict:
    verdict = "entitled" + (" by override" if row.by_override else "") if row.entitled else "not entitled"
    through = f"; valid through {row.valid_through}" if row.valid_through else ""
    return {
        "at": stamp(row.at),
        "source": "decision",
        "what": f"decided {verdict} on {row.decided_on}" + (f" (run {row.run_id})" if row.run_id else ""),
        "entitlement": row.entitlement,
        "entitled": row.entitled,
        "reasons": row.reasons,
        "detail": through.lstrip("; ") or None,
    }


def _audit(row: AuditRow) -> dict:
    actor = f" by {row.actor}" if row.actor else ""
    return {
        "at": stamp(row.at),
        "source": "audit",
        "what": f"{row.action} {row.result}{actor}",
        "entitlement": row.entitlement,
        "entitled": None,
        "reasons": ",".join(row.reasons or []) or None,
        "detail": row.detail or row.member,
    }
