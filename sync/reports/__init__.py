"""Reports: who has access and why, what is late, who waits for whom, what expires,
what was lost, and what the runs did — pure queries over the stored decisions
(with the standing stored beside each, mappings/standing.py), the connector's
holdings of each group, the audit trail and the journal.

Each report is one or a few indexed queries; Python touches only the rows it
returns (a pending person's deadline, a waiting person's approvers), never the
whole district. The stored decisions are those of the last run that decided each
person: the worker decides everyone at the start of each district day and each
changed person within seconds, so the reports are as fresh as the worker is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from mappings.model import Mapping
from sync.levers import stamp

__all__ = ["REPORTS", "Filters", "Options", "Report", "ReportContext", "history", "render", "stamp"]


@dataclass(frozen=True)
class ReportContext:
    """What every report is asked against: the mapping, the target whose group it
    reads (``ldap``, ``entra``, ``memory``), and today (district date)."""

    mapping: Mapping
    target: str
    today: date


@dataclass(frozen=True)
class Filters:
    """Which people a report covers."""

    entitlement: str = "walkin"
    location: str | None = None
    role: str | None = None
    locations: frozenset[str] | None = None
    """A scope: only these locations (an approver's). None: every location."""


@dataclass(frozen=True)
class Options:
    """Per-report options: a period (``losses``, ``drift``, ``unresolved``,
    ``failed``), a window (``expiring``) and how many runs (``runs``)."""

    since: date | None = None
    until: date | None = None
    within_days: int | None = None
    limit: int = 100
    overdue: bool = False
    """``pending``: only those past their deadline."""
    offset: int = 0
    page_size: int | None = None
    """A page of the rows, ``page_size`` from ``offset``, for a report that pages in
    the database (``members``: its rows are most of a district); others ignore it and
    return every row. See :attr:`Report.total`."""


@dataclass
class Report:
    """A report's rows (values are text, numbers, booleans or null; dates
    ``YYYY-MM-DD``) in the order of ``columns``, and a summary."""

    name: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    as_of: date
    summary: dict[str, Any] = field(default_factory=dict)
    offset: int = 0
    total: int | None = None
    """When the report paged in the database: ``rows`` are ``total``'s rows from
    ``offset``. None: ``rows`` are all of them."""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "as_of": self.as_of.isoformat(),
            "summary": self.summary,
            "columns": list(self.columns),
            "rows": self.rows,
        }


ReportFunction = Callable[[Session, ReportContext, Filters, Options], Report]


class UnknownEntitlement(ValueError):
    """A filter names an entitlement the mapping does not define."""


def check_filters(ctx: ReportContext, filters: Filters) -> None:
    """:raises UnknownEntitlement: when the filter's entitlement is not in the mapping."""
    if filters.entitlement not in ctx.mapping.entitlements:
        known = ", ".join(ctx.mapping.entitlements)
        raise UnknownEntitlement(f"unknown entitlement '{filters.entitlement}'; known: {known}")


def render(report: Report, fmt: str) -> str:
    """The report as an aligned text table (with its summary), JSON or CSV."""
    if fmt == "json":
        return json.dumps(report.to_json_dict(), indent=1, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(report.columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in report.rows)
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format '{fmt}': table, json or csv")
    return _table(report)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _table(report: Report) -> str:
    columns = list(report.columns)
    cells = [[_cell(row.get(c)) or "-" for c in columns] for row in report.rows]
    widths = [min(40, max([len(c), *(len(r[i]) for r in cells)])) for i, c in enumerate(columns)]
    lines = [f"{report.name} as of {report.as_of}: " + _summary(report.summary)]
    if cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def _summary(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()) or "-"


def _registry() -> dict[str, ReportFunction]:
    from . import access, trail

    return {
        "members": access.members,
        "pending": access.pending,
        "waiting": access.waiting,
        "expiring": access.expiring,
        "losses": trail.losses,
        "drift": trail.drift,
        "unresolved": trail.unresolved,
        "failed": trail.failed,
        "held": trail.held,
        "runs": trail.runs,
    }


REPORTS: dict[str, ReportFunction] = _registry()


def history(session: Session, ctx: ReportContext, person_id: str, at: date | None = None) -> Report:
    """One person's timeline (see :mod:`sync.reports.timeline`)."""
    from .timeline import history as person_history

    return person_history(session, ctx, person_id, at)
