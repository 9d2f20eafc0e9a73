"""Tables of the store.

Each SCIM resource is kept whole as JSON (``data``: the normalised representation
without ``id``/``meta``), plus the columns filters and uniqueness need. String
columns used by filters on case-insensitive attributes (RFC 7643 ``caseExact:
false``) hold the lower-cased value, so comparisons and ``LIKE`` run on an index
the same way on SQLite and PostgreSQL. Uniqueness is enforced by unique indexes,
never by a read-then-write check, so concurrent creates cannot both win.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """The model's Core table, for Core statements (insert, upsert, executemany).

    SQLAlchemy types ``__table__`` as any ``FromClause``; a declarative model mapped
    to its own table, as every model here is, has a ``Table``.
    """
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


INDEXED_MAX = 512  # characters in a filterable/unique column (PostgreSQL btree entries are bounded)

_ID = String(64)
_TEXT = String(INDEXED_MAX)


POSTGRESQL_ONLY: set[str] = set()
"""Indexes only PostgreSQL has (the migrations create them there alone)."""


def _prefix_index(name: str, column: str) -> Index:
    """On PostgreSQL, an index that serves ``LIKE 'prefix%'`` under any collation
    (migration 0012; SQLite's plain indexes do already)."""
    POSTGRESQL_ONLY.add(name)
    return Index(name, column, postgresql_ops={column: "text_pattern_ops"}).ddl_if(dialect="postgresql")


_PREFIXED = ("user_name", "display_name", "name_given", "name_family", "employee_number")
"""The names a search compares by their start (sync/lookup.py)."""


class UserRow(Base):
    __tablename__ = "scim_user"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_modified: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    data: Mapped[dict] = mapped_column(JSON, nullable=False)

    user_name: Mapped[str] = mapped_column(_TEXT, nullable=False, unique=True)  # lower-cased
    external_id: Mapped[str | None] = mapped_column(_TEXT, unique=True)
    display_name: Mapped[str | None] = mapped_column(_TEXT, index=True)
    nick_name: Mapped[str | None] = mapped_column(_TEXT)
    title: Mapped[str | None] = mapped_column(_TEXT)
    user_type: Mapped[str | None] = mapped_column(_TEXT)
    active: Mapped[bool | None] = mapped_column(Boolean, index=True)
    name_formatted: Mapped[str | None] = mapped_column(_TEXT)
    name_family: Mapped[str | None] = mapped_column(_TEXT, index=True)
    name_given: Mapped[str | None] = mapped_column(_TEXT, index=True)
    employee_number: Mapped[str | None] = mapped_column(_TEXT, index=True)
    department: Mapped[str | None] = mapped_column(_TEXT)
    cost_center: Mapped[str | None] = mapped_column(_TEXT)
    organization: Mapped[str | None] = mapped_column(_TEXT)
    division: Mapped[str | None] = mapped_column(_TEXT)
    manager_id: Mapped[str | None] = mapped_column(_TEXT, index=True)
    job_code: Mapped[str | None] = mapped_column(_TEXT, index=True)
    location_code: Mapped[str | None] = mapped_column(_TEXT, index=True)
    assignment_start: Mapped[str | None] = mapped_column(_TEXT)
    person_key: Mapped[str | None] = mapped_column(_TEXT)
    """The ``sync.person_key`` attribute folded as the directory compares it
    (connector/store/keys.py); unique, so no two users reach one directory entry.
    None: no value, or a value another user's folds to as well (left by a
    migration or a change of the setting: see connector/store/person_keys.py)."""

    __table_args__ = (
        # Every user's version without touching the (large) rows: a full sync run reads
        # it for everyone to tell whose stored decision still holds (sync/decisions.py).
        Index("ix_scim_user_id_version", "id", "version"),
        Index("ux_scim_user_person_key", "person_key", unique=True),  # NULL any number of times
        *(_prefix_index(f"ix_scim_user_{c}_prefix", c) for c in _PREFIXED),
    )


class UserEmailRow(Base):
    __tablename__ = "scim_user_email"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"), nullable=False, index=True)
    value: Mapped[str | None] = mapped_column(_TEXT, index=True)  # lower-cased
    type: Mapped[str | None] = mapped_column(_TEXT)  # lower-cased
    primary: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (_prefix_index("ix_scim_user_email_value_prefix", "value"),)


class CertificationRow(Base):
    __tablename__ = "scim_user_certification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"), nullable=False, index=True)
    course: Mapped[str | None] = mapped_column(_TEXT, index=True)  # lower-cased
    kind: Mapped[str | None] = mapped_column(_TEXT)  # lower-cased
    completed_on: Mapped[str | None] = mapped_column(_TEXT)


class GroupRow(Base):
    __tablename__ = "scim_group"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_modified: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    data: Mapped[dict] = mapped_column(JSON, nullable=False)

    display_name: Mapped[str] = mapped_column(_TEXT, nullable=False, unique=True)  # lower-cased
    display: Mapped[str] = mapped_column(_TEXT, nullable=False)  # as sent, for users' ``groups.display``
    external_id: Mapped[str | None] = mapped_column(_TEXT, unique=True)


class MemberRow(Base):
    """One member of a group, and when that membership began (the policy dates
    approvals by it)."""

    __tablename__ = "scim_group_member"

    group_id: Mapped[str] = mapped_column(ForeignKey("scim_group.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    member_type: Mapped[str] = mapped_column(String(16), nullable=False)  # "User" | "Group"
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_scim_group_member_member", "member_id"),)


class JournalRow(Base):
    """Append-only record of every change the access policy reads.

    Written in the same transaction as the change itself, so a consumer that
    reads the journal in ``seq`` order never misses a change that committed.
    """

    __tablename__ = "change_journal"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[str | None] = mapped_column(_ID, index=True)
    group_id: Mapped[str | None] = mapped_column(_ID)
    detail: Mapped[dict] = mapped_column(JSON, nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="scim")
    note: Mapped[str | None] = mapped_column(Text)


# ----------------------------------------------------------------- sync state


class SyncRunRow(Base):
    """One reconcile of one entitlement into one target."""

    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # full | daily | event | manual | release
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    counts: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    held: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # removals held by the guard
    released_by: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    release_requested_by: Mapped[str | None] = mapped_column(String(256))
    """The administrator who released the held removals from the admin API; the
    worker applies them (sync/worker.py)."""
    release_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # The metrics' "last successful run" and "group size" (sync/gauges.py): the newest
    # run of an entitlement, target, kind and status, found by a backward index scan.
    __table_args__ = (Index("ix_sync_run_outcome", "entitlement", "target", "kind", "status", "id"),)


class AuditRow(Base):
    """Append-only audit trail: UPDATE, DELETE, a REPLACE over an entry (SQLite) and
    TRUNCATE (PostgreSQL) are refused by triggers; each entry is chained to the one
    before it (``seq``, ``prev_hash``, ``hash``: connector/store/chain.py)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    journal_seq: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[str | None] = mapped_column(_ID, index=True)
    user_name: Mapped[str | None] = mapped_column(_TEXT)
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    member: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    reasons: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    evidence: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(256))
    """Who asked for it, for an administrator's or approver's act (``name (token 3)``); None for the sync's own."""
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """The entry's place in the chain: 1, 2, 3… in the one order entries were appended."""
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    """Hex SHA-256 of the entry's canonical content, ``prev_hash`` included."""

    __table_args__ = (Index("ux_audit_log_seq", "seq", unique=True),)


class ChainHeadRow(Base):
    """The audit chain's newest entry (one row): locked by every append, so appends
    of several processes take turns (connector/store/chain.py)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AccessLossRow(Base):
    """The date of a person's most recent revoke of an entitlement (policy §4's
    ``lost_access_on``)."""

    __tablename__ = "access_loss"

    person_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    entitlement: Mapped[str] = mapped_column(String(64), primary_key=True)
    lost_on: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD
    run_id: Mapped[int | None] = mapped_column(Integer)


class OverrideRow(Base):
    """An administrator's audited exception (policy §2 ``overrides``). Never edited:
    ended (``ended_at``) and replaced by a new one (sync/overrides.py)."""

    __tablename__ = "access_override"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(_ID, nullable=False, index=True)
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    effect: Mapped[str] = mapped_column(String(8), nullable=False)  # grant | deny
    until: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    by: Mapped[str] = mapped_column(String(256), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(256))
    end_reason: Mapped[str | None] = mapped_column(Text)


class ApprovalRecordRow(Base):
    """A principal's or manager's approval recorded through walkin (policy §2: "from
    approval-group membership or an approval record"), dated the day it was recorded.
    Withdrawn, never deleted (sync/approvals.py)."""

    __tablename__ = "approval_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(_ID, nullable=False)
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    location: Mapped[str] = mapped_column(_TEXT, nullable=False)
    approved_on: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD, district date
    approver: Mapped[str] = mapped_column(_TEXT, nullable=False)  # the approver's userName
    approver_id: Mapped[str | None] = mapped_column(_ID)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(256), nullable=False)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_by: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (Index("ix_approval_record_person", "person_id"),)


class AdminTokenRow(Base):
    """A bearer token of the admin API (connector/admin/tokens.py): only its SHA-256
    digest is kept; it expires, and may be revoked."""

    __tablename__ = "admin_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # viewer | approver | admin
    approver: Mapped[str | None] = mapped_column(_TEXT)  # an approver token's person (their SCIM id)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(256), nullable=False)

    __table_args__ = (UniqueConstraint("digest", name="uq_admin_token_digest"),)


class DecisionChangeRow(Base):
    """A person's stored decision changed (or was first made): the history behind
    ``walkin report history``. Written by the run that stored the new decision."""

    __tablename__ = "decision_change"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_on: Mapped[str] = mapped_column(String(10), nullable=False)
    run_id: Mapped[int | None] = mapped_column(Integer)
    person_id: Mapped[str] = mapped_column(_ID, nullable=False)
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    entitled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    by_override: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reasons: Mapped[str] = mapped_column(Text, nullable=False)
    valid_through: Mapped[str | None] = mapped_column(String(10))

    __table_args__ = (Index("ix_decision_change_person", "person_id", "id"),)


class DirectoryEntryRow(Base):
    """Where a person was found in a target (cached resolve), so a reconcile does
    not search the directory for everyone every time."""

    __tablename__ = "directory_entry"

    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    key: Mapped[str] = mapped_column(_TEXT, nullable=False)
    member: Mapped[str] = mapped_column(Text, nullable=False)
    resolved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    # On SQLite the rows live in the primary-key B-tree: a full run scans them in key order.
    __table_args__ = {"sqlite_with_rowid": False}


class DecisionRow(Base):
    """The sync's last decision for a person and entitlement, with what it rested on
    (see sync/decisions.py): a full reconcile re-decides only people whose basis
    changed or whose recheck day has come. A cache: losing it only costs time."""

    __tablename__ = "sync_decision"

    entitlement: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    basis: Mapped[str] = mapped_column(Text, nullable=False)
    decided_on: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD
    recheck_on: Mapped[str | None] = mapped_column(String(10))  # None: no later day can change it
    entitled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    by_override: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reasons: Mapped[str] = mapped_column(Text, nullable=False)  # reason codes joined by ","
    valid_through: Mapped[str | None] = mapped_column(String(10))
    entitled_since: Mapped[str | None] = mapped_column(String(10))
    # What the reports read without deciding anyone again (sync/reports/): the facts
    # they filter by, who must act next, and what a grant by the rules rests on.
    active: Mapped[bool | None] = mapped_column(Boolean)
    role: Mapped[str | None] = mapped_column(_TEXT)
    location: Mapped[str | None] = mapped_column(_TEXT)
    waiting_on: Mapped[str | None] = mapped_column(String(16))  # mappings.vocabulary.Actor
    approver: Mapped[str | None] = mapped_column(_TEXT)
    approved_on: Mapped[str | None] = mapped_column(String(10))
    chain: Mapped[str | None] = mapped_column(Text)  # "full 2025-09-15, recert 2026-05-01"

    __table_args__ = (
        Index("ix_sync_decision_entitled", "entitlement", "entitled", "valid_through"),
        Index("ix_sync_decision_waiting", "entitlement", "waiting_on", "location"),
        {"sqlite_with_rowid": False},  # as directory_entry
    )


class HoldingRow(Base):
    """A directory entry the connector granted an entitlement to, and for whom: the
    link that survives renames, deletions and interrupted runs. Written in the same
    transaction as the audit entry of the confirmed add, deleted with that of the
    confirmed removal (see sync/recorder.py)."""

    __tablename__ = "sync_holding"

    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    entitlement: Mapped[str] = mapped_column(String(64), primary_key=True)
    member: Mapped[str] = mapped_column(Text, primary_key=True)  # in the target's normal form
    person_id: Mapped[str] = mapped_column(_ID, nullable=False)
    user_name: Mapped[str | None] = mapped_column(_TEXT)  # for the audit of a revoke after the person is deleted
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    run_id: Mapped[int | None] = mapped_column(Integer)

    # A run reads the holdings of the people it decides: (target, entitlement) = and person IN (…);
    # the members report pages them in userName order (a page is a range of this index).
    __table_args__ = (
        Index("ix_sync_holding_person", "target", "entitlement", "person_id"),
        Index("ix_sync_holding_name", "target", "entitlement", "user_name", "person_id"),
    )


class PendingChangeRow(Base):
    """A change handed to the directory whose outcome is not recorded yet. Written
    before the directory is asked, deleted in the transaction that records the
    outcome; rows left by a killed run are settled by the next run of the group
    (sync/recovery.py), which asks the directory what happened."""

    __tablename__ = "sync_pending"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    grp: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # grant | revoke | move | drift
    member: Mapped[str] = mapped_column(Text, nullable=False)
    person_id: Mapped[str | None] = mapped_column(_ID)
    user_name: Mapped[str | None] = mapped_column(_TEXT)
    reasons: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    evidence: Mapped[str | None] = mapped_column(String(64))
    journal_seq: Mapped[int | None] = mapped_column(BigInteger)


class GroupLockRow(Base):
    """Who writes a group now: one run per (target, group) at a time, across
    processes. A lease, renewed while the run lives; an expired lease, or an owner
    process on this host that no longer exists, may be taken over (sync/lock.py)."""

    __tablename__ = "sync_lock"

    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    grp: Mapped[str] = mapped_column(String(512), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(128), nullable=False)  # host:pid:token
    host: Mapped[str] = mapped_column(String(128), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class StoreSettingRow(Base):
    """What the store's derived columns were computed with (name → value), so a
    process started with other settings computes them again: ``person_key`` (the
    attribute path the users' ``person_key`` column holds) and ``person_key_folding``
    (:data:`connector.store.keys.FOLDING`)."""

    __tablename__ = "store_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class SyncCursorRow(Base):
    """How far the journal has been turned into jobs."""

    __tablename__ = "sync_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class SyncJobRow(Base):
    """Work for the workers: re-decide one person (or everyone), claimed with a lease."""

    __tablename__ = "sync_job"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    person_id: Mapped[str | None] = mapped_column(_ID)  # None: a full reconcile
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | running | done | failed
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_sync_job_status", "status", "id"),
        Index("ix_sync_job_person", "person_id", "id"),  # a person's jobs, newest last (sync/requests.py)
        # At most one pending job per person: new events fold into it.
        Index(
            "ux_sync_job_pending_person",
            "person_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class NoticeRow(Base):
    """A notice to send (sync/notices/): once per (kind, whom it is about, occasion,
    entitlement) ever, inserted beside what causes it, drained by the workers."""

    __tablename__ = "notice_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    about: Mapped[str] = mapped_column(String(128), nullable=False)  # a person id, a location, "helpdesk", "admins"
    occasion: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. "2027-06-30:30", a date, "run:12"
    entitlement: Mapped[str] = mapped_column(String(64), nullable=False)
    person_id: Mapped[str | None] = mapped_column(_ID)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | sent | skipped
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    recipients: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("kind", "about", "occasion", "entitlement", name="uq_notice_once"),
        Index("ix_notice_due", "status", "next_attempt_at"),
    )


class EmbeddedMemberRow(Base):
    """A member of a group kept in the store itself (``WALKIN_SYNC__TARGET=store``,
    sync/targets/embedded.py): for evaluation, with no directory to install. The
    member is the SCIM user's id."""

    __tablename__ = "embedded_member"

    group: Mapped[str] = mapped_column(String(128), primary_key=True)
    member: Mapped[str] = mapped_column(_ID, primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class WorkerHeartbeatRow(Base):
    """A sync worker saying it is alive (sync/heartbeat.py): ``/readyz`` and the
    metrics tell a stopped or stuck worker by the age of the newest ``beat_at``."""

    __tablename__ = "worker_heartbeat"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:thread, as it claims jobs
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
