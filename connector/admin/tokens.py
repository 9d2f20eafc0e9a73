"""Admin API tokens: separate from the SCIM tokens (which are settings, for the
provisioning client), each with a name, a role, an expiry and, for an approver, the
person it acts for. Only a SHA-256 digest of each token is stored, so the store's
contents cannot be replayed; the token is shown once, when it is created.

A token is 256 random bits (``secrets.token_urlsafe(32)``) behind a ``wka_`` prefix
that secret scanners can match. With that much entropy a plain SHA-256 suffices (a
slow password hash guards against guessing low-entropy secrets, which these are
not), and looking the digest up by an index leaks nothing usable: timing can at most
reveal a prefix of the digest of a guess, never of a token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from connector.clock import Clock
from connector.settings import AdminSettings
from connector.store.database import Store
from connector.store.models import AdminTokenRow, table_of
from sync.ledger import AuditAction
from sync.levers import Acting, Conflict, Invalid, NotFound, record, stamp, user_name

from .roles import AdminRole, Caller

PREFIX = "wka_"
MAX_NAME = 128


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    store: Store,
    clock: Clock,
    admin: AdminSettings,
    *,
    name: str,
    role: AdminRole,
    approver_id: str | None,
    days: int | None,
    acting: Acting,
) -> tuple[str, dict]:
    """A new token and its record. The token itself is returned only here.

    :raises Invalid: an empty or long name, a lifetime beyond ``admin.max_token_days``,
        an approver token without its person (or another role with one).
    :raises NotFound: the approver is not in the store.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Invalid(f"a token needs a name of 1 to {MAX_NAME} characters")
    days = admin.token_days if days is None else days
    if not 1 <= days <= admin.max_token_days:
        raise Invalid(f"a token lives 1 to {admin.max_token_days} days (WALKIN_ADMIN__MAX_TOKEN_DAYS), not {days}")
    if (role is AdminRole.APPROVER) != (approver_id is not None):
        raise Invalid("an approver token needs --approver (the person it approves as); other roles take none")
    token = PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + timedelta(days=days)
    with store.session_write() as session:
        approver = user_name(session, approver_id) if approver_id else None
        conn = session.connection()
        new_id = conn.execute(
            insert(table_of(AdminTokenRow))
            .values(
                name=name,
                role=role.value,
                approver=approver_id,
                digest=digest_of(token),
                created_at=now,
                expires_at=expires,
                created_by=str(acting),
            )
            .returning(table_of(AdminTokenRow).c.id)
        ).scalar_one()
        record(
            conn,
            now,
            acting,
            action=AuditAction.TOKEN,
            entitlement="-",
            person_id=approver_id,
            user_name=approver,
            detail=f"admin token {new_id} '{name}' ({role.value}) created, expires {expires:%Y-%m-%d}",
        )
        return token, _view(session.get_one(AdminTokenRow, new_id), approver)


def revoke_token(store: Store, clock: Clock, *, token_id: int, acting: Acting) -> dict:
    """Revoke a token now.

    :raises NotFound: no such token. :raises Conflict: it is revoked already.
    """
    now = clock.now()
    with store.session_write() as session:
        row = session.get(AdminTokenRow, token_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no admin token {token_id}")
        if row.revoked_at is not None:
            raise Conflict(f"admin token {token_id} was revoked on {row.revoked_at:%Y-%m-%d}")
        session.execute(update(AdminTokenRow).where(AdminTokenRow.id == token_id).values(revoked_at=now))
        record(
            session.connection(),
            now,
            acting,
            action=AuditAction.TOKEN,
            entitlement="-",
            person_id=None,
            user_name=None,
            detail=f"admin token {token_id} '{row.name}' ({row.role}) revoked",
        )
        session.refresh(row)
        return _view(row, user_name(session, row.approver, must_exist=False) if row.approver else None)


def list_tokens(session: Session) -> list[dict]:
    """Every token's record (never the token or its digest), newest first."""
    rows = session.scalars(select(AdminTokenRow).order_by(AdminTokenRow.id.desc())).all()
    return [_view(row, user_name(session, row.approver, must_exist=False) if row.approver else None) for row in rows]


def authenticate(session: Session, presented: str, now: datetime) -> Caller | None:
    """The caller a presented token belongs to; None when it is unknown, expired or revoked."""
    if not presented.startswith(PREFIX) or len(presented) > 256:
        return None
    row = session.scalars(select(AdminTokenRow).where(AdminTokenRow.digest == digest_of(presented))).first()
    if row is None or row.revoked_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires <= now:
        return None
    return Caller(row.id, row.name, AdminRole(row.role), expires, row.approver)


def _view(row: AdminTokenRow, approver: str | None) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "approver_id": row.approver,
        "approver": approver,
        "created_at": stamp(row.created_at),
        "expires_at": stamp(row.expires_at),
        "revoked_at": stamp(row.revoked_at),
        "created_by": row.created_by,
    }
