"""Reading the audit trail for administrators (``walkin audit``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.store.models import AuditRow

from .lookup import one_person

COLUMNS = [
    "at",
    "run_id",
    "journal_seq",
    "action",
    "result",
    "entitlement",
    "target",
    "actor",
    "user_name",
    "person_id",
    "member",
    "reasons",
    "evidence",
    "detail",
]


def read(
    session: Session,
    *,
    user: str | None = None,
    since: date | None = None,
    entitlement: str | None = None,
    run_id: int | None = None,
    limit: int = 10000,
) -> list[dict]:
    """Audit entries, oldest first. ``user`` names one person as :func:`one_person`
    does; one that names nobody in the store (a deleted user) is matched against the
    entries' person id and userName as given.

    :raises AmbiguousUser: when ``user`` names more than one person.
    """
    stmt = select(AuditRow).order_by(AuditRow.id)
    if user:
        person = one_person(session, user)
        stmt = stmt.where(or_(AuditRow.person_id == (person or user), AuditRow.user_name == user))
    if since:
        stmt = stmt.where(AuditRow.at >= datetime.combine(since, time.min, tzinfo=UTC))
    if entitlement:
        stmt = stmt.where(AuditRow.entitlement == entitlement)
    if run_id is not None:
        stmt = stmt.where(AuditRow.run_id == run_id)
    rows = session.scalars(stmt.limit(limit))
    return [_row(r) for r in rows]


def _row(r: AuditRow) -> dict:
    at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
    return {
        "at": at.isoformat(timespec="seconds"),
        "run_id": r.run_id,
        "journal_seq": r.journal_seq,
        "action": r.action,
        "result": r.result,
        "entitlement": r.entitlement,
        "target": r.target,
        "actor": r.actor,
        "user_name": r.user_name,
        "person_id": r.person_id,
        "member": r.member,
        "reasons": r.reasons,
        "evidence": r.evidence,
        "detail": r.detail,
    }


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return "\n".join(json.dumps(r) for r in rows) + ("\n" if rows else "")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "reasons": " ".join(r["reasons"])})
        return buffer.getvalue()
    shown = ["at", "action", "result", "entitlement", "user_name", "reasons", "run_id", "actor", "detail"]
    table = [[_cell(r[c]) for c in shown] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in table]) for i, c in enumerate(shown)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(shown, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in table]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
