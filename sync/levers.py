"""What the administrator's levers (overrides, approval records, sync and release
requests) share: who is acting, and the errors a refused act raises — translated
once at each boundary (the CLI's one line, the admin API's JSON error)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from connector.store import chain
from connector.store.journal import Event, append
from connector.store.models import UserRow

#: The ``target`` of an audit entry about a lever: it changed the store, not a directory.
ADMIN_TARGET = "admin"


@dataclass(frozen=True)
class Acting:
    """Who asks: a name (a person, or a token's name) and, through the admin API, the
    token id."""

    name: str
    token_id: int | None = None

    def __str__(self) -> str:
        return self.name if self.token_id is None else f"{self.name} (token {self.token_id})"


class LeverError(Exception):
    """A lever refused to act; nothing was changed."""


class Invalid(LeverError, ValueError):
    """The request itself is wrong (an unknown entitlement, a date out of range, an empty reason)."""


class NotFound(LeverError, LookupError):
    """What the request names does not exist (a person, an override, a run)."""


class Conflict(LeverError):
    """The request contradicts the current state (an override already ended, a run not held)."""


class Forbidden(LeverError, PermissionError):
    """The actor may not do this (an approver outside their locations)."""


def record(
    conn: Connection,
    now: datetime,
    acting: Acting,
    *,
    action: str,
    entitlement: str,
    person_id: str | None,
    user_name: str | None,
    detail: str,
    event: Event | None = None,
    journal: dict | None = None,
    target: str = ADMIN_TARGET,
) -> None:
    """Audit a lever's act with its actor and, when it changes what a person is
    decided on, journal it (the worker re-decides them within seconds) — in the
    caller's transaction, beside the change itself."""
    chain.append(
        conn,
        [
            {
                "at": now,
                "run_id": None,
                "journal_seq": None,
                "person_id": person_id,
                "user_name": user_name,
                "entitlement": entitlement,
                "target": target,
                "member": None,
                "action": action,
                "reasons": [],
                "evidence": None,
                "result": "ok",
                "detail": detail,
                "actor": str(acting),
            }
        ],
    )
    if event is not None:
        append(conn, now, [(event, person_id, None, {**(journal or {}), "actor": str(acting)})], source="admin")


def user_name(session: Session, person_id: str, must_exist: bool = True) -> str | None:
    """The person's userName; None when they have none (or, unless ``must_exist``,
    are no longer in the store).

    :raises NotFound: when ``must_exist`` and the person is not in the store.
    """
    data = session.scalar(select(UserRow.data).where(UserRow.id == person_id))
    if data is None:
        if must_exist:
            raise NotFound(f"no user with id '{person_id}' in the store")
        return None
    return data.get("userName")


def stamp(value: datetime | None) -> str | None:
    """An instant as the levers and reports show it: ISO 8601 in UTC, to the second
    (the store keeps UTC; SQLite hands it back without its zone)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
