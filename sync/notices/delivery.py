"""The worker's part: enqueue the day's notices after a full run, and drain the
outbox — claim, compose, send, mark — within the per-minute rate limit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sync.context import SyncContext
from sync.ledger import AuditAction
from sync.levers import Acting, record
from sync.reports import ReportContext

from . import outbox
from .due import daily
from .mailer import MailError, send
from .messages import Skip, Wait, compose

log = logging.getLogger("walkin.notices")

#: Who the audit trail says sent a notice.
SENDER = Acting("walkin notices")
BATCH = 50
#: How soon a notice waiting for the directory is looked at again.
WAIT = timedelta(minutes=5)


@dataclass
class Delivered:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)


def plan_today(ctx: SyncContext, entitlements: list[str]) -> int:
    """Put today's reminders and digests in the outbox. :returns: how many were new."""
    settings = ctx.settings.notify
    now = ctx.clock.now()
    report = ReportContext(ctx.mapping, ctx.target_name, ctx.today())
    with ctx.store.session_write() as session:
        rows = daily(session, report, settings, entitlements, now)
        return outbox.enqueue(session.connection(), rows)


def deliver(ctx: SyncContext, worker: str) -> Delivered:
    """Send what is due, at most ``per_minute`` a minute across workers. A failed send
    leaves the notice pending with a doubling wait; the rest of the batch waits with
    it (the server is likely down), untried."""
    settings = ctx.settings.notify
    done = Delivered()
    now = ctx.clock.now()
    room = settings.per_minute - outbox.sent_since(ctx.store, now - timedelta(minutes=1))
    claimed = outbox.claim(ctx.store, worker, now, min(room, BATCH), timedelta(seconds=settings.lease_seconds))
    for index, notice in enumerate(claimed):
        with ctx.store.session_read() as session:
            message = compose(
                session, ctx.mapping, settings, ctx.settings.sync.person_key, ctx.target_name, notice, now
            )
        if isinstance(message, Skip):
            outbox.mark_skipped(ctx.store, notice, worker, message.why)
            done.skipped += 1
            continue
        if isinstance(message, Wait):
            outbox.postpone(ctx.store, [notice], worker, now + WAIT)
            done.waiting += 1
            continue
        try:
            send(settings, message)
        except MailError as exc:
            retry = outbox.mark_failed(ctx.store, notice, worker, ctx.clock.now(), settings.retry_seconds, str(exc))
            outbox.postpone(ctx.store, claimed[index + 1 :], worker, retry)
            log.warning("notice %s (%s) not sent, retry at %s: %s", notice.id, notice.kind.value, retry, exc)
            done.failed += 1
            done.errors.append(str(exc))
            break
        sent_at = ctx.clock.now()
        with ctx.store.connection_write() as conn:
            if outbox.mark_sent(conn, notice, worker, sent_at, list(message.to), message.message_id):
                record(
                    conn,
                    sent_at,
                    SENDER,
                    action=AuditAction.NOTIFY,
                    entitlement=notice.entitlement,
                    person_id=notice.person_id,
                    user_name=None,
                    detail=(
                        f"{notice.kind.value} notice {notice.id} ({notice.occasion}) to {', '.join(message.to)}, "
                        f"Message-ID {message.message_id}"
                    ),
                    target="mail",
                )
        done.sent += 1
    return done
