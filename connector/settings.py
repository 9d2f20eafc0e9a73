"""Typed settings, loaded once from the environment (prefix ``WALKIN_``).

Nested sections use ``__`` as the delimiter, e.g. ``WALKIN_SCIM__MAX_PAGE_SIZE``.
The settings object is built once by the caller (``create_app`` or the CLI) and
passed down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from connector.console.settings import ConsoleSettings
from sync.audit_settings import AuditSettings
from sync.notices.settings import NotifySettings
from sync.settings import SyncSettings
from sync.targets.graph_settings import GraphSettings
from sync.targets.ldap_settings import LdapSettings


class ScimSettings(BaseModel):
    """How the SCIM endpoints behave."""

    max_page_size: int = Field(default=1000, ge=1, le=10000)
    """The largest ``count`` a list or search returns; larger requests are capped
    (RFC 7644 §3.4.2.4 lets the provider choose)."""

    default_page_size: int = Field(default=100, ge=1, le=10000)
    """Page size when the client sends no ``count``."""

    max_operations: int = Field(default=1000, ge=1)
    """Most operations accepted in one PATCH request."""

    max_filter_length: int = Field(default=4096, ge=64)
    """Longest filter expression accepted (longer ones are 400 invalidFilter)."""

    read_budget_seconds: float = Field(default=5.0, gt=0, le=300)
    """Seconds the database may spend on one list or search (SQLite: its statements
    together; PostgreSQL: each of them — the page and its count, per resource type);
    beyond, it stops and the answer is 400 ``tooMany`` saying the filter was
    too expensive. The filter limits bound its size; this bounds its cost (100
    ``co`` comparisons on 8,000 users took 4.5 s). An indexed ``eq`` takes
    milliseconds at 100,000 users."""

    max_values_per_attribute: int = Field(default=500, ge=1)
    """Most values a multi-valued attribute of a User may hold (``emails``,
    ``phoneNumbers``, ``roles``, the walkin ``certifications``…); a POST, PUT or
    PATCH that would leave more is 400 tooMany and changes nothing. Entra sends a
    handful of each; a training history grows by a few completions a year, so 500
    lasts a career and refuses only a runaway or hostile client. Group members are
    not values of this kind (see ``max_request_bytes``)."""


class AdminSettings(BaseModel):
    """The administrator's levers and the admin API (``WALKIN_ADMIN__…``)."""

    max_override_days: int = Field(default=90, ge=1, le=3660)
    """Longest an override may run: ``--until`` at most this many days after today."""
    token_days: int = Field(default=90, ge=1, le=3660)
    """Lifetime of a new admin API token unless ``walkin admin-token create --days`` says otherwise."""
    max_token_days: int = Field(default=365, ge=1, le=3660)
    """Longest lifetime an admin API token may be given."""
    max_simulate_mapping_bytes: int = Field(default=262_144, ge=1024)
    """Largest mapping a what-if request may upload (the mapping file's own limit by default)."""


class LogFormat(StrEnum):
    """How log lines are written (``WALKIN_LOG_FORMAT``)."""

    TEXT = "text"
    """One human-readable line per record (the default)."""
    JSON = "json"
    """One JSON object per line, for a log shipper (connector/logs.py)."""


class MetricsSettings(BaseModel):
    """The Prometheus metrics (``WALKIN_METRICS__…``)."""

    token: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Bearer tokens a scraper presents on ``/metrics`` (the service's and the
    worker's), comma-separated for rotation. Not a SCIM token: a scraper must not be
    able to provision. With none configured every scrape is refused (401)."""

    worker_host: str = "127.0.0.1"
    """Address the worker's ``/metrics`` listens on."""

    worker_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the worker's ``/metrics`` (its runs, target writes, Graph throttling);
    unset: the worker serves none. The store's figures (journal lag, pending grants…)
    are the service's ``/metrics``, whichever worker is running."""

    @field_validator("token", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class HealthSettings(BaseModel):
    """Readiness and the worker's heartbeat (``WALKIN_HEALTH__…``)."""

    heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    """How often a worker records that it is alive (sync/heartbeat.py)."""

    worker_stale_seconds: float = Field(default=300.0, ge=0)
    """``/readyz`` answers 503 once the newest worker heartbeat is older than this
    (0: the worker is not checked). Longer than a full reconcile's pause between
    rounds is not needed: a worker beats between runs and from a thread during them."""


class Settings(BaseSettings):
    """Everything the connector can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="WALKIN_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = "sqlite:///walkin.db"
    """SQLAlchemy URL of the store. The default is an SQLite file in the working
    directory; use ``postgresql+psycopg://…`` when several server processes or
    workers share the store."""

    scim_token: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Bearer tokens accepted on ``/scim/v2``. Several may be given, separated by
    commas, so a token can be rotated without downtime. With none configured every
    SCIM request is refused (401): the service never runs open."""

    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger ones are answered 413."""

    base_url: str | None = None
    """Public base URL used in ``meta.location`` (e.g. ``https://walkin.example.org``).
    When unset, the URL the request arrived on is used."""

    scim: ScimSettings = Field(default_factory=ScimSettings)

    mapping_path: Path | None = None
    """The mapping file (attribute mapping and access policy settings). Unset: the
    shipped ``mappings/walkin.yaml``."""

    sync: SyncSettings = Field(default_factory=SyncSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """Signed checkpoints of the audit chain (``WALKIN_AUDIT__SIGNING_KEY_PATH``,
    ``WALKIN_AUDIT__CHECKPOINT_DIR``)."""
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)

    log_format: LogFormat = LogFormat.TEXT
    """``json``: one JSON object per line (service, gunicorn's error and access logs,
    worker); ``text``: plain lines."""

    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    """The lowest level logged."""

    ldap: LdapSettings | None = None
    """The LDAP / Active Directory target (``WALKIN_LDAP__URLS='["ldaps://dc1"]'``,
    ``WALKIN_LDAP__PEOPLE_BASE=…``); required when ``sync.target`` is ``ldap``."""

    graph: GraphSettings | None = None
    """The Entra ID target through Microsoft Graph (``WALKIN_GRAPH__TENANT_ID=…``,
    ``WALKIN_GRAPH__CLIENT_ID=…``, a certificate or a client secret); required when
    ``sync.target`` is ``entra``."""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        """A URL SQLAlchemy can open: SQLite (whose file's folder must exist) or PostgreSQL."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
            ) from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"the store is SQLite or PostgreSQL, not {backend}")
        database = url.database or ""
        if backend == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
            folder = Path(database).resolve().parent
            if not folder.is_dir():
                raise ValueError(f"the folder {folder} of the SQLite file does not exist")
        return value

    @field_validator("scim_token", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
