"""Overrides: an administrator's audited, time-boxed exception (policy §2, §4).

An override is never edited: it is ended (``end_override``) and, to change it,
replaced by a new one — setting an override for a person and entitlement that
already have one in force ends the old one in the same transaction ("replaced by
#N"). Every change is journalled, so the worker re-decides the person within
seconds, and audited with its actor. ``until`` is inclusive (policy §4: unexpired
while ``at <= until``); the first run of the day after it (the day-start run)
re-decides the person without it, because the stored decision's recheck day is
``until + 1`` (mappings.policy.next_change).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.settings import AdminSettings
from connector.store.database import Store
from connector.store.journal import Event
from connector.store.models import OverrideRow, UserRow, table_of
from mappings.model import Mapping
from mappings.vocabulary import Effect

from .ledger import AuditAction
from .levers import Acting, Conflict, Invalid, NotFound, record, stamp
from .levers import user_name as name_of

MAX_REASON = 2000


def set_override(
    store: Store,
    clock: Clock,
    mapping: Mapping,
    admin: AdminSettings,
    *,
    person_id: str,
    entitlement: str,
    effect: Effect,
    until: date,
    reason: str,
    acting: Acting,
) -> dict:
    """Grant or deny ``entitlement`` to a person through ``until`` (inclusive).

    :raises Invalid: an unknown entitlement, an empty reason, ``until`` in the past
        or more than ``admin.max_override_days`` days ahead.
    :raises NotFound: no such person in the store.
    """
    today = clock.today(mapping.policy.zone)
    if entitlement not in mapping.entitlements:
        raise Invalid(f"unknown entitlement '{entitlement}'; known: {', '.join(mapping.entitlements)}")
    reason = reason.strip()
    if not reason:
        raise Invalid("an override needs a reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"the reason is longer than {MAX_REASON} characters")
    if until < today:
        raise Invalid(f"until {until} is in the past (today is {today})")
    latest = today + timedelta(days=admin.max_override_days)
    if until > latest:
        raise Invalid(f"until {until} is beyond the longest override, {admin.max_override_days} days: {latest} at most")
    now = clock.now()
    with store.session_write() as session:
        user_name = name_of(session, person_id)
        previous = session.scalars(
            select(OverrideRow).where(
                OverrideRow.person_id == person_id,
                OverrideRow.entitlement == entitlement,
                OverrideRow.ended_at.is_(None),
            )
        ).all()
        conn = session.connection()
        new_id = conn.execute(
            insert(table_of(OverrideRow))
            .values(
                person_id=person_id,
                entitlement=entitlement,
                effect=effect.value,
                until=until.isoformat(),
                reason=reason,
                by=str(acting),
                created_at=now,
            )
            .returning(table_of(OverrideRow).c.id)
        ).scalar_one()
        for old in previous:
            _end(session, old, now, acting, f"replaced by override {new_id}", user_name)
        record(
            conn,
            now,
            acting,
            action=AuditAction.OVERRIDE,
            entitlement=entitlement,
            person_id=person_id,
            user_name=user_name,
            detail=f"override {new_id}: {effect.value} through {until}: {reason}",
            event=Event.OVERRIDE_SET,
            journal={"override": new_id, "effect": effect.value, "until": until.isoformat()},
        )
        return _view(session.get_one(OverrideRow, new_id), user_name)


def end_override(store: Store, clock: Clock, *, override_id: int, reason: str, acting: Acting) -> dict:
    """End an override now (the person is re-decided without it).

    :raises NotFound: no such override. :raises Conflict: it has already ended.
    :raises Invalid: an empty reason.
    """
    reason = reason.strip()
    if not reason:
        raise Invalid("ending an override needs a reason")
    now = clock.now()
    with store.session_write() as session:
        row = session.get(OverrideRow, override_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no override {override_id}")
        if row.ended_at is not None:
            raise Conflict(f"override {override_id} already ended on {row.ended_at:%Y-%m-%d} ({row.end_reason})")
        user_name = name_of(session, row.person_id, must_exist=False)
        _end(session, row, now, acting, reason, user_name)
        session.flush()
        return _view(row, user_name)


def list_overrides(session: Session, *, person_id: str | None = None, include_ended: bool = False) -> list[dict]:
    """Overrides, newest first: those not ended (the default), or all."""
    stmt = select(OverrideRow, UserRow.data["userName"].as_string()).outerjoin(
        UserRow, UserRow.id == OverrideRow.person_id
    )
    if person_id is not None:
        stmt = stmt.where(OverrideRow.person_id == person_id)
    if not include_ended:
        stmt = stmt.where(OverrideRow.ended_at.is_(None))
    return [_view(row, name) for row, name in session.execute(stmt.order_by(OverrideRow.id.desc()))]


def _end(session: Session, row: OverrideRow, now: datetime, acting: Acting, reason: str, user_name: str | None) -> None:
    session.execute(
        update(OverrideRow)
        .where(OverrideRow.id == row.id, OverrideRow.ended_at.is_(None))
        .values(ended_at=now, ended_by=str(acting), end_reason=reason)
    )
    session.refresh(row)
    record(
        session.connection(),
        now,
        acting,
        action=AuditAction.OVERRIDE_END,
        entitlement=row.entitlement,
        person_id=row.person_id,
        user_name=user_name,
        detail=f"override {row.id} ({row.effect} through {row.until}) ended: {reason}",
        event=Event.OVERRIDE_ENDED,
        journal={"override": row.id},
    )


def _view(row: OverrideRow, user_name: str | None) -> dict:
    """An override as the CLI and the admin API show it (dates ``YYYY-MM-DD``)."""
    return {
        "id": row.id,
        "person_id": row.person_id,
        "user_name": user_name,
        "entitlement": row.entitlement,
        "effect": row.effect,
        "until": row.until,
        "reason": row.reason,
        "by": row.by,
        "created_at": stamp(row.created_at),
        "ended_at": stamp(row.ended_at),
        "ended_by": row.ended_by,
        "end_reason": row.end_reason,
    }
