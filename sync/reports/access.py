"""Who has access and why (``members``), who is owed it (``pending``), who waits
for whom (``waiting``) and whose access ends soon (``expiring``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from typing import cast

from sqlalchemy import Select, String, and_, case, func, select, type_coerce
from sqlalchemy.orm import Session

from connector.store.models import (
    AuditRow,
    DecisionRow,
    DirectoryEntryRow,
    HoldingRow,
    OverrideRow,
    SyncJobRow,
    SyncRunRow,
    UserRow,
    table_of,
)
from mappings.calendar import grant_deadline, local_date
from mappings.vocabulary import Actor, ReasonCode

from ..approvals import approvers_of
from ..bulk import without_cycle_collection
from . import Filters, Options, Report, ReportContext, check_filters

_CHUNK = 500
_USER_NAME = UserRow.data["userName"].as_string()


def scoped(stmt: Select, filters: Filters) -> Select:
    """The filters' location, role and scope, on the stored decisions."""
    d = DecisionRow
    if filters.location is not None:
        stmt = stmt.where(d.location == filters.location)
    if filters.role is not None:
        stmt = stmt.where(d.role == filters.role)
    if filters.locations is not None:
        stmt = stmt.where(d.location.in_(sorted(filters.locations)))
    return stmt


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


@without_cycle_collection  # a row dict per holder, most of a district: see sync/bulk.py
def members(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """Everyone the connector holds in the entitlement's group, with why: since when
    they are in it, since when entitled, valid through, the approval and chain the
    grant rests on — or the override that holds it, or why they are to be removed."""
    check_filters(ctx, filters)
    h, d = HoldingRow, DecisionRow
    stmt = scoped(
        select(
            h.person_id,
            h.user_name,
            h.member,
            type_coerce(h.since, String),  # as stored: converted once per distinct value (_day_of)
            d.entitled,
            d.by_override,
            d.reasons,
            d.entitled_since,
            d.valid_through,
            d.approver,
            d.approved_on,
            d.chain,
            d.role,
            d.location,
        )
        .outerjoin(d, and_(d.entitlement == h.entitlement, d.person_id == h.person_id))
        .where(h.target == ctx.target, h.entitlement == filters.entitlement),
        filters,
    ).order_by(h.user_name, h.person_id)
    total = None
    if options.page_size is not None:
        total, by_override, removed = _member_counts(session, ctx, filters)
        stmt = stmt.offset(options.offset).limit(options.page_size)
    rows = session.connection().execute(stmt).all()
    day_of = _day_of(session, ctx)
    overrides = _overrides(session, filters.entitlement, [r[0] for r in rows if r[5]])
    out = []
    counts = {"by override": 0, "to be removed": 0}
    # Unpacked rows and a dict display: a group holds most of a district.
    for person, user, member, since, entitled, by_override, reasons, *rest in rows:
        entitled_since, valid_through, approver, approved_on, chain, role, location = rest
        if entitled is None:
            status = "not decided yet"
        elif by_override:
            status = "by override"
            counts[status] += 1
        elif entitled:
            status = "entitled"
        else:
            status = f"to be removed ({reasons})"
            counts["to be removed"] += 1
        out.append(
            {
                "user_name": user,
                "location": location,
                "role": role,
                "in_group_since": day_of(since),
                "entitled_since": entitled_since,
                "valid_through": valid_through,
                "approver": approver,
                "approved_on": approved_on,
                "chain": chain,
                "override": overrides.get(person) if by_override else None,
                "status": status,
                "member": member,
                "person_id": person,
            }
        )
    if total is None:
        summary = {"members": len(out), "by_override": counts["by override"], "to_be_removed": counts["to be removed"]}
        return Report("members", _MEMBER_COLUMNS, out, ctx.today, summary)
    summary = {"members": total, "by_override": by_override, "to_be_removed": removed}
    return Report("members", _MEMBER_COLUMNS, out, ctx.today, summary, offset=options.offset, total=total)


def _member_counts(session: Session, ctx: ReportContext, filters: Filters) -> tuple[int, int, int]:
    """The members report's summary, counted by the database: members, by override, to be removed."""
    h, d = HoldingRow, DecisionRow
    stmt = scoped(
        select(
            func.count(),
            func.count(case((d.by_override.is_(True), 1))),
            func.count(case((and_(d.entitled.is_(False), d.by_override.is_not(True)), 1))),
        )
        .select_from(h)
        .outerjoin(d, and_(d.entitlement == h.entitlement, d.person_id == h.person_id))
        .where(h.target == ctx.target, h.entitlement == filters.entitlement),
        filters,
    )
    total, by_override, removed = session.execute(stmt).one()
    return total, by_override, removed


def _day_of(session: Session, ctx: ReportContext) -> Callable[[object], str]:
    """A holding's ``since`` as stored → its district date, ``YYYY-MM-DD``.

    The stored value is turned into a datetime by the column type's own result
    processor (what SQLAlchemy would do for every row), but once per distinct value:
    every holding a run records carries the run's instant, and a first run records
    most of a district's. PostgreSQL's driver hands back a datetime itself."""
    dialect = session.get_bind().dialect
    column = table_of(HoldingRow).c.since
    to_datetime = column.type.dialect_impl(dialect).result_processor(dialect, None)
    zone = ctx.mapping.policy.zone

    @cache
    def day_of(stored: object) -> str:
        since = to_datetime(stored) if to_datetime is not None and isinstance(stored, str) else stored
        return local_date(cast(datetime, since), zone).isoformat()

    return day_of


_MEMBER_COLUMNS = (
    "user_name",
    "location",
    "role",
    "in_group_since",
    "entitled_since",
    "valid_through",
    "approver",
    "approved_on",
    "chain",
    "override",
    "status",
    "member",
    "person_id",
)


def _overrides(session: Session, entitlement: str, person_ids: list[str]) -> dict[str, str]:
    o = OverrideRow
    out: dict[str, str] = {}
    for chunk in _chunks(person_ids):
        rows = session.scalars(
            select(o)
            .where(o.entitlement == entitlement, o.person_id.in_(chunk), o.ended_at.is_(None), o.effect == "grant")
            .order_by(o.id)
        )
        for row in rows:
            out[row.person_id] = f"override {row.id}: grant through {row.until} by {row.by} ({row.reason})"
    return out


def pending(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """Everyone entitled by the stored decision whom the connector does not hold in
    the group: since when, the deadline (end of the second business day after,
    district holidays skipped), whether it has passed, and what holds it up."""
    check_filters(ctx, filters)
    d, h, e = DecisionRow, HoldingRow, DirectoryEntryRow
    stmt = scoped(
        select(
            d.person_id,
            _USER_NAME,
            d.entitled_since,
            d.decided_on,
            d.by_override,
            d.location,
            d.role,
            d.valid_through,
            e.member,
        )
        .join(UserRow, UserRow.id == d.person_id)
        .outerjoin(h, and_(h.target == ctx.target, h.entitlement == d.entitlement, h.person_id == d.person_id))
        .outerjoin(e, and_(e.target == ctx.target, e.person_id == d.person_id))
        .where(d.entitlement == filters.entitlement, d.entitled.is_(True), h.person_id.is_(None)),
        filters,
    )
    rows = session.connection().execute(stmt).all()
    ids = [r.person_id for r in rows]
    last_audit = _last_audit(session, ctx.target, filters.entitlement, ids)
    queued = _queued(session, ids)
    last_run = session.execute(
        select(SyncRunRow.id, SyncRunRow.status, SyncRunRow.detail)
        .where(
            SyncRunRow.entitlement == filters.entitlement,
            SyncRunRow.target == ctx.target,
            SyncRunRow.dry_run.is_(False),
        )
        .order_by(SyncRunRow.id.desc())
        .limit(1)
    ).first()
    holidays = ctx.mapping.policy.holiday_set
    out = []
    for r in rows:
        start = date.fromisoformat(r.entitled_since or r.decided_on)
        deadline = grant_deadline(start, holidays)
        out.append(
            {
                "user_name": r[1],
                "location": r.location,
                "role": r.role,
                "entitled_since": start.isoformat(),
                "deadline": deadline.isoformat(),
                "overdue": ctx.today > deadline,
                "by_override": r.by_override,
                "held_up_by": _hold_up(r.member, last_audit.get(r.person_id), queued.get(r.person_id), last_run),
                "person_id": r.person_id,
            }
        )
    if options.overdue:
        out = [row for row in out if row["overdue"]]
    out.sort(key=lambda row: (row["deadline"], row["user_name"] or ""))
    summary = {"pending": len(out), "overdue": sum(1 for row in out if row["overdue"])}
    return Report("pending", _PENDING_COLUMNS, out, ctx.today, summary)


_PENDING_COLUMNS = (
    "user_name",
    "location",
    "role",
    "entitled_since",
    "deadline",
    "overdue",
    "by_override",
    "held_up_by",
    "person_id",
)


def _last_audit(session: Session, target: str, entitlement: str, ids: list[str]) -> dict[str, tuple]:
    """person → (action, day, detail) of their latest grant, failed or unresolved entry."""
    a = AuditRow
    out: dict[str, tuple] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(a.person_id, a.action, a.at, a.detail)
            .where(
                a.target == target,
                a.entitlement == entitlement,
                a.person_id.in_(chunk),
                a.action.in_(["grant", "failed", "unresolved"]),
            )
            .order_by(a.id)
        )
        for person, action, at, detail in rows:
            if person is not None:
                out[person] = (action, at, detail)
    return out


def _queued(session: Session, ids: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(SyncJobRow.person_id, SyncJobRow.created_at).where(
                SyncJobRow.person_id.in_(chunk), SyncJobRow.status.in_(["pending", "running"])
            )
        )
        out.update((person, created) for person, created in rows if person is not None)
    return out


def _hold_up(member: str | None, audit: tuple | None, queued: object, last_run) -> str:
    if audit is not None and audit[0] == "failed":
        return f"the directory write failed on {audit[1]:%Y-%m-%d}: {audit[2] or 'no detail'}"
    if member is None:
        return "no directory entry matches them (unresolved): check their account in the directory"
    if queued is not None:
        return "a sync of their change is queued for the worker"
    if last_run is not None and last_run.status in ("failed", "refused", "partial", "interrupted"):
        return f"the last run ({last_run.id}) {last_run.status}: {last_run.detail or 'no detail'}"
    return "not written yet: no run since they became entitled"


@without_cycle_collection  # see members
def waiting(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """Everyone not entitled for exactly what one party can fix, grouped by who
    must act: the location's approvers, the person, or HR (mappings/standing.py)."""
    check_filters(ctx, filters)
    d = DecisionRow
    stmt = scoped(
        select(d.person_id, _USER_NAME, d.waiting_on, d.location, d.role, d.reasons, d.valid_through)
        .join(UserRow, UserRow.id == d.person_id)
        .where(d.entitlement == filters.entitlement, d.waiting_on.is_not(None)),
        filters,
    )
    rows = session.connection().execute(stmt).all()
    places = {r.location for r in rows if r.waiting_on == Actor.APPROVER and r.location}
    approvers = approvers_of(session, ctx.mapping, filters.entitlement, places)
    definition = ctx.mapping.entitlements[filters.entitlement]
    course = definition.certification.course if definition.certification else "course"
    order = {Actor.APPROVER.value: 0, Actor.PERSON.value: 1, Actor.HR.value: 2}
    out = []
    for r in rows:
        reasons = r.reasons.split(",") if r.reasons else []
        if r.waiting_on == Actor.APPROVER:
            who = ", ".join(approvers.get(r.location, [])) or f"no approver on record for {r.location}"
            step = (
                f"approve again for {r.location} (the approval predates their current assignment)"
                if ReasonCode.APPROVAL_STALE in reasons
                else f"approve for {r.location}"
            )
        elif r.waiting_on == Actor.PERSON:
            who = r[1] or r.person_id
            step = _person_step(reasons, course, r.valid_through)
        else:
            who = "HR"
            missing = [w for w, v in (("job code", r.role), ("location", r.location)) if v is None]
            step = f"send the {' and '.join(missing or ['assignment start date'])}"
        out.append(
            {
                "actor": r.waiting_on,
                "who_acts": who,
                "user_name": r[1],
                "location": r.location,
                "role": r.role,
                "reasons": r.reasons,
                "next_step": step,
                "person_id": r.person_id,
            }
        )
    out.sort(key=lambda row: (order[row["actor"]], row["location"] or "", row["user_name"] or ""))
    summary = {actor.value: sum(1 for row in out if row["actor"] == actor) for actor in Actor}
    return Report("waiting", _WAITING_COLUMNS, out, ctx.today, summary)


_WAITING_COLUMNS = ("actor", "who_acts", "user_name", "location", "role", "reasons", "next_step", "person_id")


def _person_step(reasons: Iterable[str], course: str, valid_through: str | None) -> str:
    codes = set(reasons)
    if ReasonCode.CERT_BEFORE_LOSS in codes:
        return f"complete the full {course} eLearning (a quiz is not enough after a loss of access)"
    if ReasonCode.CERT_EXPIRED in codes:
        return f"complete the full {course} eLearning (expired after {valid_through})"
    return f"complete the {course}"


@without_cycle_collection  # see members
def expiring(session: Session, ctx: ReportContext, filters: Filters, options: Options) -> Report:
    """Everyone entitled whose certification ends within the window (default the
    policy's ``recert_warning_days``), whether that is the school-year end, and
    whether the recertification quiz still renews it or only the full course does."""
    check_filters(ctx, filters)
    window = options.within_days if options.within_days is not None else ctx.mapping.policy.recert_warning_days
    last = ctx.today + timedelta(days=window)
    d = DecisionRow
    stmt = scoped(
        select(d.person_id, _USER_NAME, d.location, d.role, d.valid_through, d.by_override)
        .join(UserRow, UserRow.id == d.person_id)
        .where(
            d.entitlement == filters.entitlement,
            d.entitled.is_(True),
            d.valid_through >= ctx.today.isoformat(),
            d.valid_through <= last.isoformat(),
        ),
        filters,
    ).order_by(d.valid_through, UserRow.user_name)
    calendar = ctx.mapping.policy.calendar
    year = calendar.school_year(ctx.today)
    year_end = calendar.last_day(year).isoformat()
    rule = ctx.mapping.entitlements[filters.entitlement].certification
    quiz = rule is not None and year not in rule.full_course_years
    renews = "the recertification quiz" if quiz else "only the full eLearning (no quiz this school year)"
    days_left = lru_cache(maxsize=None)(lambda through: (date.fromisoformat(through) - ctx.today).days)
    out = [
        {
            "user_name": user,
            "location": location,
            "role": role,
            "valid_through": through,
            "days_left": days_left(through),
            "school_year_end": through == year_end,
            "renews_with": renews,
            "by_override": by_override,
            "person_id": person,
        }
        for person, user, location, role, through, by_override in session.connection().execute(stmt)
    ]
    summary = {
        "expiring": len(out),
        "within_days": window,
        "at_school_year_end": sum(r["school_year_end"] for r in out),
    }
    return Report("expiring", _EXPIRING_COLUMNS, out, ctx.today, summary)


_EXPIRING_COLUMNS = (
    "user_name",
    "location",
    "role",
    "valid_through",
    "days_left",
    "school_year_end",
    "renews_with",
    "by_override",
    "person_id",
)
