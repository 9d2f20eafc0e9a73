"""What the sync writes to the store: runs, the audit trail, loss dates and
the cache of resolved directory entries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.store import chain
from connector.store.models import (
    AccessLossRow,
    AuditRow,
    DirectoryEntryRow,
    HoldingRow,
    PendingChangeRow,
    SyncRunRow,
    UserRow,
    table_of,
)
from mappings.policy import Decision

from .people import Person


class RunKind(StrEnum):
    FULL = "full"  # everyone, on the worker's schedule
    DAILY = "daily"  # the first full run of a district day (expiries take effect)
    EVENT = "event"  # the people of some journal events
    MANUAL = "manual"  # walkin sync
    RELEASE = "release"  # walkin sync --allow-removals: a held run's removals


#: Kinds that cover everyone (their counts tell the group's size).
EVERYONE = (RunKind.FULL, RunKind.DAILY, RunKind.MANUAL)
WRITE_SLICE = 2000  # rows built and sent per executemany when a run writes many (bounded memory)


class RunStatus(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # its process went away mid-run; the next run of the group settled it
    BUSY = "busy"  # another run held the group (never stored: nothing was done)
    OK = "ok"
    HELD = "held"  # adds applied, removals held by the deletion guard
    PARTIAL = "partial"  # some writes failed or the directory went away mid-run
    FAILED = "failed"  # nothing (more) could be done: directory unreadable, auth failure
    REFUSED = "refused"  # a safety rail stopped the run before any write


class AuditAction(StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"
    DRIFT = "drift"  # a member nobody maps to, removed
    MOVE = "move"  # an old entry of a person who keeps the entitlement through another entry, removed
    HOLD = "hold"  # a removal held by the deletion guard
    RELEASE = "release"  # an administrator released held removals
    FAILED = "failed"  # a write the directory refused or that could not be made
    UNRESOLVED = "unresolved"  # an entitled person with no directory entry
    REFUSED = "refused"  # the run refused to act (empty store, unreadable group)
    # The administrator's levers (sync/levers.py), with their actor:
    OVERRIDE = "override"  # an override set
    OVERRIDE_END = "override_end"  # an override ended
    APPROVE = "approve"  # an approval recorded
    WITHDRAW = "withdraw"  # an approval withdrawn
    SYNC_REQUEST = "sync_request"  # "sync this person now"
    RELEASE_REQUEST = "release_request"  # held removals released from the admin API
    TOKEN = "token"  # an admin API token created or revoked
    NOTIFY = "notify"  # a notice sent by email (sync/notices/)


class AuditResult(StrEnum):
    OK = "ok"
    FAILED = "failed"
    HELD = "held"
    SKIPPED = "skipped"


def evidence_digest(person: Person | None, decision: Decision | None) -> str | None:
    """A digest of the facts and decision a change rested on, so an auditor can
    tell whether two entries were decided on the same evidence."""
    if person is None or decision is None:
        return None
    # pydantic's own JSON (field order fixed by the model; the one dict, lost_access_on,
    # is built in key order by user_to_facts) and the decision's fixed-order JSON line.
    blob = person.facts.model_dump_json() + "\n" + decision.to_json()
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class AuditEntry:
    action: AuditAction
    result: AuditResult
    person_id: str | None = None
    user_name: str | None = None
    member: str | None = None
    reasons: list[str] = field(default_factory=list)
    evidence: str | None = None
    detail: str | None = None
    journal_seq: int | None = None


def start_run(session: Session, *, kind: RunKind, entitlement: str, target: str, dry_run: bool, now: datetime) -> int:
    row = SyncRunRow(
        kind=kind,
        entitlement=entitlement,
        target=target,
        dry_run=dry_run,
        started_at=now,
        status=RunStatus.RUNNING.value,
        counts={},
        held=[],
    )
    session.add(row)
    session.flush()
    return row.id


def finish_run(
    session: Session, run_id: int, *, status: RunStatus, counts: dict, held: list, detail: str | None, now: datetime
) -> None:
    row = session.get(SyncRunRow, run_id)
    if row is None:
        raise LookupError(f"no sync run {run_id}")
    row.status, row.counts, row.held, row.detail, row.finished_at = status.value, counts, held, detail, now


def write_audit(
    session: Session, entries: list[AuditEntry], *, run_id: int | None, entitlement: str, target: str, now: datetime
) -> None:
    if not entries:
        return
    # Core, not the ORM's bulk insert: one executemany instead of rows grouped and
    # copied by the unit of work; chained in the order given.
    chain.append(
        session.connection(),
        [
            {
                "at": now,
                "run_id": run_id,
                "journal_seq": e.journal_seq,
                "person_id": e.person_id,
                "user_name": e.user_name,
                "entitlement": entitlement,
                "target": target,
                "member": e.member,
                "action": e.action.value,
                "reasons": e.reasons,
                "evidence": e.evidence,
                "result": e.result.value,
                "detail": e.detail,
                "actor": None,
            }
            for e in entries
        ],
    )


def record_losses(session: Session, person_ids: list[str], entitlement: str, on: date, run_id: int) -> None:
    """Remember the revoke date (policy §4 ``lost_access_on``) for each person."""
    if not person_ids:
        return
    session.execute(
        delete(AccessLossRow).where(AccessLossRow.entitlement == entitlement, AccessLossRow.person_id.in_(person_ids))
    )
    session.connection().execute(
        insert(table_of(AccessLossRow)),
        [{"person_id": p, "entitlement": entitlement, "lost_on": on.isoformat(), "run_id": run_id} for p in person_ids],
    )


def recent_removals(session: Session, entitlement: str, target: str, since: datetime) -> int:
    """Removals applied since ``since`` (the deletion guard counts a trickle too)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditRow)
            .where(
                AuditRow.entitlement == entitlement,
                AuditRow.target == target,
                AuditRow.at >= since,
                AuditRow.action.in_([AuditAction.REVOKE.value, AuditAction.DRIFT.value]),
                AuditRow.result == AuditResult.OK.value,
            )
        )
        or 0
    )


# ------------------------------------------------------ resolved directory entries


class Entry(NamedTuple):
    """A cached directory entry of a person (plain tuples: a full run holds one per person)."""

    key: str
    member: str
    resolved_at: datetime


def cached_entries(session: Session, target: str, person_ids: list[str] | None) -> dict[str, Entry]:
    stmt = select(
        DirectoryEntryRow.person_id, DirectoryEntryRow.key, DirectoryEntryRow.member, DirectoryEntryRow.resolved_at
    ).where(DirectoryEntryRow.target == target)
    if person_ids is None:
        return {p: Entry(k, m, r) for p, k, m, r in session.execute(stmt)}
    out = {}
    for i in range(0, len(person_ids), 500):
        out.update(
            {
                p: Entry(k, m, r)
                for p, k, m, r in session.execute(stmt.where(DirectoryEntryRow.person_id.in_(person_ids[i : i + 500])))
            }
        )
    return out


def in_store(person_id):
    """Whether a user with this id is in the store — NOT EXISTS, not NOT IN: PostgreSQL
    plans the former as an anti-join, the latter, once the ids outgrow ``work_mem``,
    as a scan of the users per row (15 s at 100,000 people)."""
    return exists().where(UserRow.id == person_id)


def entries_of_departed(session: Session, target: str) -> dict[str, Entry]:
    """Cached entries of people no longer in the store (a full run tells their
    removal, a revoke, from drift by them)."""
    stmt = select(
        DirectoryEntryRow.person_id, DirectoryEntryRow.key, DirectoryEntryRow.member, DirectoryEntryRow.resolved_at
    ).where(DirectoryEntryRow.target == target, ~in_store(DirectoryEntryRow.person_id))
    return {p: Entry(k, m, r) for p, k, m, r in session.execute(stmt)}


def store_entries(session: Session, target: str, found: dict[str, tuple[str, str]], now: datetime) -> None:
    """Cache ``person id → (key, member)``, replacing older entries.

    An upsert: two workers caching the same person at once must not fail each
    other's run record on the primary key."""
    if not found:
        return
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = upsert(table_of(DirectoryEntryRow))
    stmt = stmt.on_conflict_do_update(
        index_elements=[DirectoryEntryRow.target, DirectoryEntryRow.person_id],
        set_={"key": stmt.excluded.key, "member": stmt.excluded.member, "resolved_at": stmt.excluded.resolved_at},
    )
    conn, items = session.connection(), list(found.items())
    for i in range(0, len(items), WRITE_SLICE):  # a cold run caches everyone: never all the rows at once
        conn.execute(
            stmt,
            [
                {"target": target, "person_id": p, "key": k, "member": m, "resolved_at": now}
                for p, (k, m) in items[i : i + WRITE_SLICE]
            ],
        )


def forget_entries(session: Session, target: str, person_ids: list[str]) -> None:
    for i in range(0, len(person_ids), 500):
        session.execute(
            delete(DirectoryEntryRow).where(
                DirectoryEntryRow.target == target, DirectoryEntryRow.person_id.in_(person_ids[i : i + 500])
            )
        )


# ------------------------------------------------------------- what we granted


class Holding(NamedTuple):
    """A directory entry granted an entitlement by the connector, and to whom."""

    person_id: str
    user_name: str | None


def holdings(
    session: Session, target: str, entitlement: str, person_ids: list[str] | None = None
) -> dict[str, Holding]:
    """member → who it was granted to: every holding, or those of the given people."""
    stmt = select(HoldingRow.member, HoldingRow.person_id, HoldingRow.user_name).where(
        HoldingRow.target == target, HoldingRow.entitlement == entitlement
    )
    if person_ids is None:
        return {m: Holding(p, u) for m, p, u in session.execute(stmt)}
    out = {}
    for i in range(0, len(person_ids), 500):
        out.update(
            {
                m: Holding(p, u)
                for m, p, u in session.execute(stmt.where(HoldingRow.person_id.in_(person_ids[i : i + 500])))
            }
        )
    return out


def holdings_of_members(session: Session, target: str, entitlement: str, members: list[str]) -> dict[str, Holding]:
    """member → who it was granted to, for the given members (as held: normalised)."""
    stmt = select(HoldingRow.member, HoldingRow.person_id, HoldingRow.user_name).where(
        HoldingRow.target == target, HoldingRow.entitlement == entitlement
    )
    out = {}
    for i in range(0, len(members), 500):
        out.update(
            {m: Holding(p, u) for m, p, u in session.execute(stmt.where(HoldingRow.member.in_(members[i : i + 500])))}
        )
    return out


def hold(
    session: Session,
    target: str,
    entitlement: str,
    granted: list[tuple[str, str, str | None]],
    now: datetime,
    run_id: int | None,
) -> None:
    """Record ``(member, person id, userName)`` as granted (an upsert: the member is
    now that person's)."""
    if not granted:
        return
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = upsert(table_of(HoldingRow))
    stmt = stmt.on_conflict_do_update(
        index_elements=[HoldingRow.target, HoldingRow.entitlement, HoldingRow.member],
        set_={
            "person_id": stmt.excluded.person_id,
            "user_name": stmt.excluded.user_name,
            "since": stmt.excluded.since,
            "run_id": stmt.excluded.run_id,
        },
    )
    conn, rows = session.connection(), list(dict((g[0], g) for g in granted).values())
    for i in range(0, len(rows), WRITE_SLICE):  # a first run adopts the whole group: a slice at a time
        conn.execute(
            stmt,
            [
                {
                    "target": target,
                    "entitlement": entitlement,
                    "member": m,
                    "person_id": p,
                    "user_name": u,
                    "since": now,
                    "run_id": run_id,
                }
                for m, p, u in rows[i : i + WRITE_SLICE]
            ],
        )


def unhold(session: Session, target: str, entitlement: str, members: list[str]) -> None:
    for i in range(0, len(members), 500):
        session.execute(
            delete(HoldingRow).where(
                HoldingRow.target == target,
                HoldingRow.entitlement == entitlement,
                HoldingRow.member.in_(members[i : i + 500]),
            )
        )


def people_holding(session: Session, target: str, person_ids: list[str]) -> set[str]:
    """Which of these people hold some entry in any entitlement of ``target``."""
    out: set[str] = set()
    for i in range(0, len(person_ids), 500):
        out.update(
            session.scalars(
                select(HoldingRow.person_id).where(
                    HoldingRow.target == target, HoldingRow.person_id.in_(person_ids[i : i + 500])
                )
            )
        )
    return out


# ------------------------------------------------------ changes awaiting outcome


def pend(session: Session, rows: list[dict]) -> None:
    """Record changes about to be handed to the directory (see PendingChangeRow)."""
    if rows:
        session.connection().execute(insert(table_of(PendingChangeRow)), rows)


def unpend(session: Session, run_id: int, members: list[str]) -> None:
    for i in range(0, len(members), 500):
        session.execute(
            delete(PendingChangeRow).where(
                PendingChangeRow.run_id == run_id, PendingChangeRow.member.in_(members[i : i + 500])
            )
        )


def drop_pending(session: Session, ids: list[int]) -> None:
    for i in range(0, len(ids), 500):
        session.execute(delete(PendingChangeRow).where(PendingChangeRow.id.in_(ids[i : i + 500])))


def pending_of(session: Session, target: str, group: str, *, other_than: int | None) -> list[PendingChangeRow]:
    stmt = select(PendingChangeRow).where(PendingChangeRow.target == target, PendingChangeRow.grp == group)
    if other_than is not None:
        stmt = stmt.where(PendingChangeRow.run_id != other_than)
    return list(session.scalars(stmt.order_by(PendingChangeRow.id)))


def mark_interrupted(
    session: Session, entitlement: str, target: str, *, other_than: int | None, now: datetime
) -> list[int]:
    """Close the run rows of this entitlement and target still ``running`` — their
    processes are gone, since the caller holds the group's lock — as ``interrupted``."""
    stmt = select(SyncRunRow).where(
        SyncRunRow.entitlement == entitlement, SyncRunRow.target == target, SyncRunRow.status == RunStatus.RUNNING.value
    )
    if other_than is not None:
        stmt = stmt.where(SyncRunRow.id != other_than)
    ids = []
    for row in session.scalars(stmt):
        row.status, row.finished_at = RunStatus.INTERRUPTED.value, now
        row.detail = ((row.detail + "; ") if row.detail else "") + "interrupted: its process went away mid-run"
        ids.append(row.id)
    return ids
