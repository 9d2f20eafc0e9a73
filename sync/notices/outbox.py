"""The outbox: notices inserted once ever, claimed by one worker at a time, marked
sent or skipped, or left pending with a backoff after a failed send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connector.store.database import Store
from connector.store.models import NoticeRow, table_of

from . import NoticeKind, NoticeStatus

MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Notice:
    """An outbox row as the delivery sees it."""

    id: int
    kind: NoticeKind
    about: str
    occasion: str
    entitlement: str
    person_id: str | None
    payload: dict
    attempts: int
    created_at: datetime


def new(
    kind: NoticeKind,
    about: str,
    occasion: str,
    entitlement: str,
    now: datetime,
    *,
    person_id: str | None = None,
    payload: dict | None = None,
) -> dict:
    """An outbox row to :func:`enqueue`."""
    return {
        "kind": kind.value,
        "about": about,
        "occasion": occasion,
        "entitlement": entitlement,
        "person_id": person_id,
        "payload": payload or {},
        "created_at": now,
        "status": NoticeStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
    }


def enqueue(conn: Connection, rows: list[dict]) -> int:
    """Insert the notices not already in the outbox (ever), in the caller's
    transaction. :returns: how many were new."""
    if not rows:
        return 0
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table_of(NoticeRow)).on_conflict_do_nothing(
        index_elements=["kind", "about", "occasion", "entitlement"]
    )
    before = _count(conn)
    conn.execute(stmt, rows)
    return _count(conn) - before


def _count(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(NoticeRow)) or 0


def sent_since(store: Store, since: datetime) -> int:
    with store.connection_read() as conn:
        return conn.scalar(select(func.count()).select_from(NoticeRow).where(NoticeRow.sent_at >= since)) or 0


def claim(store: Store, worker: str, now: datetime, limit: int, lease: timedelta) -> list[Notice]:
    """Up to ``limit`` due notices, claimed by ``worker`` until ``now + lease``. On
    PostgreSQL the rows are locked and others' locked rows skipped, so two workers
    never claim the same notice; SQLite has one writer at a time."""
    if limit <= 0:
        return []
    n = NoticeRow
    with store.session_write() as session:
        stmt = (
            select(n)
            .where(
                n.status == NoticeStatus.PENDING.value,
                n.next_attempt_at <= now,
                or_(n.claimed_until.is_(None), n.claimed_until < now),
            )
            .order_by(n.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.scalars(stmt).all()
        if not rows:
            return []
        session.execute(
            update(n).where(n.id.in_([r.id for r in rows])).values(claimed_by=worker, claimed_until=now + lease)
        )
        return [notice_of(r) for r in rows]


def notice_of(row: NoticeRow | dict) -> Notice:
    """An outbox row (or a row about to be one, as :func:`new` makes it) as a :class:`Notice`."""
    r = row if isinstance(row, dict) else {c: getattr(row, c) for c in _FIELDS}
    created = r["created_at"]
    return Notice(
        r.get("id") or 0,
        NoticeKind(r["kind"]),
        r["about"],
        r["occasion"],
        r["entitlement"],
        r["person_id"],
        dict(r["payload"]),
        r["attempts"],
        created if created.tzinfo else created.replace(tzinfo=UTC),
    )


_FIELDS = ("id", "kind", "about", "occasion", "entitlement", "person_id", "payload", "attempts", "created_at")


def mark_sent(
    conn: Connection, notice: Notice, worker: str, now: datetime, recipients: list[str], message_id: str
) -> bool:
    """:returns: False when the claim was lost (another worker took the notice over)."""
    done = conn.execute(
        update(NoticeRow)
        .where(
            NoticeRow.id == notice.id, NoticeRow.claimed_by == worker, NoticeRow.status == NoticeStatus.PENDING.value
        )
        .values(
            status=NoticeStatus.SENT.value,
            sent_at=now,
            recipients=", ".join(recipients),
            message_id=message_id,
            attempts=notice.attempts + 1,
            claimed_until=None,
            detail=None,
        )
    )
    return done.rowcount == 1


def mark_skipped(store: Store, notice: Notice, worker: str, why: str) -> None:
    with store.connection_write() as conn:
        conn.execute(
            update(NoticeRow)
            .where(NoticeRow.id == notice.id, NoticeRow.claimed_by == worker)
            .values(status=NoticeStatus.SKIPPED.value, claimed_until=None, detail=why[:2000])
        )


def postpone(store: Store, notices: list[Notice], worker: str, until: datetime) -> None:
    """Give back claimed notices not tried (the server is down): due again at ``until``."""
    if not notices:
        return
    with store.connection_write() as conn:
        conn.execute(
            update(NoticeRow)
            .where(NoticeRow.id.in_([n.id for n in notices]), NoticeRow.claimed_by == worker)
            .values(next_attempt_at=until, claimed_until=None)
        )


def mark_failed(store: Store, notice: Notice, worker: str, now: datetime, first_wait: float, error: str) -> datetime:
    """Leave the notice pending, to be tried again after a doubling wait. :returns: when."""
    wait = min(timedelta(seconds=first_wait * 2**notice.attempts), MAX_BACKOFF)
    with store.connection_write() as conn:
        conn.execute(
            update(NoticeRow)
            .where(NoticeRow.id == notice.id, NoticeRow.claimed_by == worker)
            .values(attempts=notice.attempts + 1, next_attempt_at=now + wait, claimed_until=None, detail=error[:2000])
        )
    return now + wait
