"""Notices: telling people before they lose access, and why when they do.

Six kinds (:class:`NoticeKind`): recertification reminders before ``valid_through``,
access granted, access lost (the reason in plain words and exactly what regains it),
the approvers' daily digest of staff waiting for them, overdue grants to the help
desk, held removals to the administrators.

Exactly once: a notice is a row of the outbox (``notice_outbox``), unique per
(kind, whom it is about, occasion, entitlement), inserted with ON CONFLICT DO
NOTHING in the transaction that causes it — a granted or lost notice beside the
decision change that stores it (sync/decisions.py), the daily ones by the pass over
the reports after each full run (:mod:`.due`). The worker drains the outbox
(:mod:`.delivery`): it claims rows under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two workers never claim one row), renders each from the person's
current record (:mod:`.messages`), sends it over SMTP (:mod:`.mailer`) and marks it
sent with its Message-ID, audited; an SMTP failure leaves it pending with a backoff,
so an outage loses nothing. A notice is built with the same Message-ID on every
attempt, so the one case SMTP cannot make exactly-once — the worker dying after the
server accepted a message and before the row was marked — is a duplicate a mail
system can recognise.
"""

from __future__ import annotations

from enum import StrEnum


class NoticeKind(StrEnum):
    REMINDER = "reminder"
    """To the person, at each of ``reminder_days`` before ``valid_through``."""
    GRANTED = "granted"
    """To the person: they gained the entitlement."""
    LOST = "lost"
    """To the person: they lost it — why, and what regains it."""
    APPROVAL_NEEDED = "approval_needed"
    """A daily digest to a location's approvers: staff certified but without a (current) approval."""
    OVERDUE = "overdue"
    """A daily digest to the help desk: grants past their two-business-day deadline."""
    HELD = "held"
    """To the administrators: removals the deletion guard holds, once per run."""


class NoticeStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"
    """Not to be sent: the kind is turned off, nobody to send it to, the person is not active."""
