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
    JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


_ID = String(64)
_TEXT = String(512)


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


class UserEmailRow(Base):
    __tablename__ = "scim_user_email"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("scim_user.id", ondelete="CASCADE"), nullable=False, index=True)
    value: Mapped[str | None] = mapped_column(_TEXT, index=True)  # lower-cased
    type: Mapped[str | None] = mapped_column(_TEXT)  # lower-cased
    primary: Mapped[bool | None] = mapped_column(Boolean)


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

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[str | None] = mapped_column(_ID, index=True)
    group_id: Mapped[str | None] = mapped_column(_ID)
    detail: Mapped[dict] = mapped_column(JSON, nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="scim")
    note: Mapped[str | None] = mapped_column(Text)
