"""Notification settings (``WALKIN_NOTIFY__…``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator

from . import NoticeKind


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    """Plain connection upgraded with STARTTLS (port 587): refused if the server does not offer it."""
    TLS = "tls"
    """Implicit TLS from the first byte (port 465)."""
    NONE = "none"
    """No TLS: only for a relay on the same host or a test server on loopback."""


class NotifySettings(BaseModel):
    """Email reminders and notices. Off until ``enabled``; every kind can be turned off."""

    enabled: bool = False
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """CA certificates (PEM) the SMTP server's certificate is checked against, instead of the system's."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    sender: str = "walkin@localhost"
    """The From address."""
    helpdesk: str | None = None
    """The help desk's mailbox: overdue grants."""
    administrators: list[str] = Field(default_factory=list)
    """The administrators' addresses: held removals."""
    reminder_days: list[int] = Field(default_factory=lambda: [60, 30, 7])
    """Days before ``valid_through`` a reminder is sent (one per point reached)."""
    disabled: list[NoticeKind] = Field(default_factory=list)
    """Kinds not sent (``["granted"]``): they are recorded as skipped."""
    loss_to_inactive: bool = False
    """Send the loss notice to a person whose record is not active (a departure)."""
    per_minute: int = Field(default=60, ge=1, le=10_000)
    """Most messages sent in any minute, across workers."""
    retry_seconds: float = Field(default=60.0, ge=1, le=3600)
    """Wait after a failed send; doubled at each failure, at most an hour."""
    lease_seconds: int = Field(default=300, ge=30, le=3600)
    """How long a worker holds the notices it claimed (longer than an SMTP timeout)."""
    template_dir: Path | None = None
    """A folder of the district's own templates, each replacing the shipped one of its name."""

    @field_validator("reminder_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(day < 1 or day > 366 for day in value):
            raise ValueError("reminder days are 1 to 366")
        return sorted(set(value), reverse=True)

    @field_validator("ca_file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @field_validator("template_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value
