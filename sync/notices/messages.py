"""A notice made into a message: its recipients from the store as they are now (a
person's primary work email; a location's approvers; the help desk; the
administrators), its words from templates the district may replace
(``WALKIN_NOTIFY__TEMPLATE_DIR``: a file there replaces the shipped one of its
name), and for a person what ``walkin explain`` would tell them today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import HoldingRow, UserRow
from mappings.advice import explain_decision
from mappings.calendar import local_date
from mappings.model import Mapping
from mappings.policy import explain as explain_policy
from mappings.vocabulary import ReasonCode

from . import NoticeKind
from .mailer import Message
from .outbox import Notice
from .settings import NotifySettings

SHIPPED = Path(__file__).parent / "templates"

#: A reason code in the words a person reads in a loss notice.
REASON_WORDS = {
    ReasonCode.NOT_ACTIVE: "your employment record is no longer active",
    ReasonCode.ROLE_NOT_ELIGIBLE: "your role or location changed to one this access is not for",
    ReasonCode.CERT_BEFORE_LOSS: "your certification was completed before an earlier loss of access",
    ReasonCode.NOT_CERTIFIED: "no Walk-In Scheduling certification is on record for you",
    ReasonCode.CERT_EXPIRED: "your certification expired",
    ReasonCode.NO_APPROVAL: "there is no approval from the principal or manager of your location",
    ReasonCode.APPROVAL_STALE: "your approval was given before your current role or location began",
    ReasonCode.PREREQUISITE_MISSING: "you no longer hold the access it depends on",
    ReasonCode.DENIED_BY_OVERRIDE: "an administrator blocked it",
}


@dataclass(frozen=True)
class Skip:
    """Not to be sent, and why."""

    why: str


@dataclass(frozen=True)
class Wait:
    """Not yet: the directory does not show it yet (a grant not written, a removal held)."""

    why: str


#: How long a granted or lost notice waits for the directory to show it; beyond, it
#: is no longer news (the grant never landed, the removal was not released) and is skipped.
MAX_WAIT = timedelta(days=7)


def compose(
    session: Session,
    mapping: Mapping,
    settings: NotifySettings,
    person_key: str,
    target: str,
    notice: Notice,
    now: datetime,
) -> Message | Skip | Wait:
    """The message for ``notice``, or why it is not to be sent (yet)."""
    today = local_date(now, mapping.policy.zone)
    if notice.kind in settings.disabled:
        return Skip(f"{notice.kind.value} notices are turned off (WALKIN_NOTIFY__DISABLED)")
    if notice.kind in (NoticeKind.GRANTED, NoticeKind.LOST):
        held = session.scalar(
            select(HoldingRow.member).where(
                HoldingRow.target == target,
                HoldingRow.entitlement == notice.entitlement,
                HoldingRow.person_id == notice.person_id,
            )
        )
        # Told when the directory shows it: granted once in the group, lost once out of it.
        if (held is None) == (notice.kind is NoticeKind.GRANTED):
            if now - notice.created_at > MAX_WAIT:
                return Skip(f"the directory never showed it within {MAX_WAIT.days} days")
            return Wait("not yet in the group" if notice.kind is NoticeKind.GRANTED else "still in the group")
    if notice.kind in (NoticeKind.REMINDER, NoticeKind.GRANTED, NoticeKind.LOST):
        return _to_person(session, mapping, settings, person_key, notice, today)
    if notice.kind is NoticeKind.APPROVAL_NEEDED:
        to = _approver_emails(session, mapping, notice.entitlement, notice.about)
        if not to:
            return Skip(f"no approver of {notice.about} with an email address")
        place = mapping.locations.get(notice.about)
        context = {**notice.payload, "place": f"{notice.about} ({place.name})" if place else notice.about}
    elif notice.kind is NoticeKind.OVERDUE:
        if not settings.helpdesk:
            return Skip("no help desk mailbox (WALKIN_NOTIFY__HELPDESK)")
        to, context = [settings.helpdesk], dict(notice.payload)
    else:
        if not settings.administrators:
            return Skip("no administrators' addresses (WALKIN_NOTIFY__ADMINISTRATORS)")
        to, context = list(settings.administrators), dict(notice.payload)
    return _render(settings, notice, to, {**context, "entitlement": notice.entitlement, "today": today.isoformat()})


def _to_person(
    session: Session, mapping: Mapping, settings: NotifySettings, person_key: str, notice: Notice, today: date
) -> Message | Skip:
    from sync.people import load_people

    found = load_people(session, mapping, person_key, [notice.person_id]) if notice.person_id else []
    if not found:
        return Skip("the person is no longer in the store")
    person = found[0]
    if not person.facts.active and not (notice.kind is NoticeKind.LOST and settings.loss_to_inactive):
        return Skip("the person's record is not active")
    data = session.scalar(select(UserRow.data).where(UserRow.id == person.person_id)) or {}
    email = work_email(data)
    if email is None:
        return Skip("the person has no email address")
    decision, evidence = explain_policy(person.facts, notice.entitlement, today, mapping)
    told = explain_decision(person.user_name or person.person_id, person.facts, decision, evidence, mapping)
    reasons = [code for code in (notice.payload.get("reasons") or "").split(",") if code]
    context = {
        **notice.payload,
        "name": _first_name(data) or person.user_name,
        "entitlement": notice.entitlement,
        "today": today.isoformat(),
        "why": [REASON_WORDS.get(ReasonCode(code), code) for code in reasons if code in ReasonCode.__members__],
        "next_steps": told.next_steps,
        "entitled_now": decision.entitled,
    }
    return _render(settings, notice, [email], context)


def work_email(data: dict) -> str | None:
    """The SCIM record's primary email, else its work email, else its first (RFC 7643 §4.1.2)."""
    emails = [e for e in data.get("emails") or [] if isinstance(e, dict) and isinstance(e.get("value"), str)]
    for choose in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work", lambda e: True):
        for email in emails:
            if choose(email) and "@" in email["value"]:
                return email["value"]
    return None


def _first_name(data: dict) -> str | None:
    name = data.get("name")
    return name.get("givenName") if isinstance(name, dict) and isinstance(name.get("givenName"), str) else None


def _approver_emails(session: Session, mapping: Mapping, entitlement: str, location: str) -> list[str]:
    from sync.approvals import approvers_of

    names = approvers_of(session, mapping, entitlement, {location}).get(location, [])
    if not names:
        return []
    rows = session.scalars(select(UserRow.data).where(UserRow.user_name.in_([n.lower() for n in names])))
    return sorted({email for data in rows if (email := work_email(data))})


def _render(settings: NotifySettings, notice: Notice, to: list[str], context: dict) -> Message:
    text_env, html_env = _environments(settings.template_dir)
    text = text_env.get_template(f"{notice.kind.value}.txt").render(**context)
    first, _, body = text.partition("\n")
    subject = first.removeprefix("Subject:").strip()
    html = html_env.get_template(f"{notice.kind.value}.html").render(subject=subject, **context)
    domain = settings.sender.rpartition("@")[2] or "localhost"
    return Message(tuple(to), subject, body.lstrip("\n"), html, f"<walkin-notice-{notice.id}@{domain}>")


@cache
def _environments(folder: Path | None) -> tuple[Environment, Environment]:
    loader = ChoiceLoader(
        [FileSystemLoader(str(folder)), FileSystemLoader(str(SHIPPED))] if folder else [FileSystemLoader(str(SHIPPED))]
    )
    text = Environment(loader=loader, undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    html = Environment(loader=loader, undefined=StrictUndefined, autoescape=select_autoescape(["html"]))
    return text, html
