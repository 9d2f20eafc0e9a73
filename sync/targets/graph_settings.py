"""Settings of the Entra ID target (Microsoft Graph).

A plain pydantic model nested in the connector's ``Settings`` as ``graph`` (so
``WALKIN_GRAPH__TENANT_ID=…``, ``WALKIN_GRAPH__CLIENT_ID=…``,
``WALKIN_GRAPH__CERTIFICATE__PRIVATE_KEY_PATH=/etc/walkin/graph.key``,
``WALKIN_GRAPH__CERTIFICATE__THUMBPRINT=…``). It reads no environment variables itself.

The defaults follow Graph's documented limits (``shared/docs/directories.md``): at
most 20 members per ``members@odata.bind`` PATCH and 20 requests per ``$batch``;
3,000 directory writes per app and tenant in 150 s, of which the target uses 2,800
so that another writer of the same app (an administrator's script) is not starved.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: Graph's own limits, not tunable: members per PATCH and requests per $batch.
GRAPH_BATCH_LIMIT = 20


class CertificateCredential(BaseModel):
    """A certificate registered on the app: its private key and its thumbprint."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    private_key_path: str
    """PEM file holding the certificate's private key (``-----BEGIN PRIVATE KEY-----``)."""

    thumbprint: str = Field(pattern=r"^[0-9A-Fa-f]{40}$")
    """SHA-1 thumbprint of the certificate as the app registration shows it (40 hex digits)."""

    passphrase: SecretStr | None = None
    """Passphrase of the private key, when it is encrypted."""


class GraphSettings(BaseModel):
    """How to reach Microsoft Graph, how people map to Entra users, and how hard to push."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    tenant_id: str = Field(min_length=1)
    """Directory (tenant) id, a GUID, or a verified domain such as ``district.org``."""

    client_id: str = Field(min_length=1)
    """Application (client) id of the app registration. It needs the application
    permissions ``GroupMember.ReadWrite.All`` and, for lookups, ``User.Read.All``."""

    certificate: CertificateCredential | None = None
    """Certificate credential (preferred to a secret). Exactly one of ``certificate``
    and ``client_secret`` is required."""

    client_secret: SecretStr | None = None
    """Client secret, when no certificate is configured."""

    authority_host: str = "https://login.microsoftonline.com"
    """Microsoft Entra sign-in host (``https://login.microsoftonline.us`` for US Government)."""

    graph_url: str = "https://graph.microsoft.com/v1.0"
    """Graph root including the version (``https://graph.microsoft.us/v1.0`` for US
    Government). The token scope is ``<scheme>://<host>/.default`` of this URL."""

    match: Literal["object_id", "userPrincipalName", "employeeId"] = "object_id"
    """How a person's key (``sync.person_key``) finds their Entra user: ``object_id``
    when the key already is the user's object id (e.g. ``externalId`` set by Entra
    provisioning) — no lookup; otherwise the user property compared with the key."""

    lookup_values_per_query: int = Field(default=15, ge=1, le=15)
    """Keys per ``$filter=<property> in (…)`` lookup (Graph allows up to 15 values in
    an ``in`` expression); 1 sends ``<property> eq '…'`` queries instead. Up to 20
    such queries travel in one ``$batch``."""

    lookup_cache_seconds: float = Field(default=900.0, ge=0)
    """How long the target reuses a user it looked up (0: never). Kept short: the
    reconcile keeps its own cache of resolved people (``sync.resolve_ttl_hours``) and
    asks again only when that expires, which a longer cache here would defeat."""

    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a TCP/TLS connection."""

    read_timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for the answer to one request."""

    retry_attempts: int = Field(default=8, ge=1, le=50)
    """Attempts of one request answered 429, 502, 503 or 504, or not answered at all,
    before giving up with TargetUnavailable."""

    retry_backoff_base: float = Field(default=1.0, ge=0)
    """Upper bound (seconds) of the first random wait when no ``Retry-After`` is given;
    doubled per attempt (exponential backoff with full jitter)."""

    retry_backoff_cap: float = Field(default=60.0, ge=0)
    """Longest backoff wait between attempts, in seconds. A ``Retry-After`` is waited
    out as given (retrying early still counts against the quota), within ``retry_max_wait``."""

    retry_max_wait: float = Field(default=300.0, ge=0)
    """Most seconds one request may spend waiting between attempts; a longer throttle
    gives up with TargetUnavailable rather than blocking the worker."""

    write_budget: int = Field(default=2800, ge=1)
    """Directory writes sent per ``write_window_seconds`` at most (Graph allows 3,000 per
    150 s per app and tenant). A PATCH adding up to 20 members is one write; each
    DELETE in a ``$batch`` is one. The target sleeps rather than exceed it."""

    write_window_seconds: float = Field(default=150.0, gt=0)
    """Length of the sliding window of ``write_budget``."""

    consistency_window: float = Field(default=30.0, ge=0)
    """How long a member that Graph says does not exist is retried (a just-created
    user can be missing on some replicas for a few seconds) before it is FAILED."""

    circuit_breaker_failures: int = Field(default=10, ge=1)
    """Consecutive failed requests (no answer, 502, 503, 504) after which the circuit
    opens: the call in progress raises TargetUnavailable and later calls fail at once."""

    circuit_breaker_reset_seconds: float = Field(default=60.0, ge=0)
    """How long an open circuit stays open before one trial request is let through."""

    @field_validator("authority_host", "graph_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> GraphSettings:
        if (self.certificate is None) == (self.client_secret is None):
            raise ValueError("give exactly one of certificate (preferred) and client_secret")
        return self

    @property
    def authority(self) -> str:
        """The tenant's authority URL, as msal wants it."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def scope(self) -> str:
        """The ``.default`` scope of the Graph resource ``graph_url`` points at."""
        parts = urlsplit(self.graph_url)
        return f"{parts.scheme}://{parts.netloc}/.default"
