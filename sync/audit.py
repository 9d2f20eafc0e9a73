"""Reading the audit trail for administrators (``walkin audit``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.store.models import AuditRow, UserRow

COLUMNS = ["at", "run_id", "journal_seq", "action", "result", "entitlement", "target", "user_name", "person_id",
           "member", "reasons", "evidence", "detail"]


def find_person(session: Session, user: str) -> str | None:
    """A person id from a userName (any case), externalId or id."""
    return session.scalar(select(UserRow.id).where(
        or_(UserRow.id == user, UserRow.user_name == user.lower(), UserRow.external_id == user)).limit(1))


def read(session: Session, *, user: str | None = None, since: date | None = None,
         entitlement: str | None = None, run_id: int | None = None, limit: int = 10000) -> list[dict]:
    stmt = select(AuditRow).order_by(AuditRow.id)
    if user:
        person = find_person(session, user)
        stmt = stmt.where(or_(AuditRow.person_id == (person or user), AuditRow.user_name == user))
    if since:
        stmt = stmt.where(AuditRow.at >= datetime.combine(since, time.min, tzinfo=timezone.utc))
    if entitlement:
        stmt = stmt.where(AuditRow.entitlement == entitlement)
    if run_id is not None:
        stmt = stmt.where(AuditRow.run_id == run_id)
    rows = session.scalars(stmt.limit(limit))
    return [_row(r) for r in rows]


def _row(r: AuditRow) -> dict:
    at = r.at if r.at.tzinfo else r.at.replace(tzinfo=timezone.utc)
    return {"at": at.isoformat(timespec="seconds"), "run_id": r.run_id, "journal_seq": r.journal_seq,
            "action": r.action, "result": r.result, "entitlement": r.entitlement, "target": r.target,
            "user_name": r.user_name, "person_id": r.person_id, "member": r.member, "reasons": r.reasons,
            "evidence": r.evidence, "detail": r.detail}


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
    shown = ["at", "action", "result", "entitlement", "user_name", "reasons", "run_id", "detail"]
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
