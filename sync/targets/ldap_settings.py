"""Settings of the LDAP / Active Directory target.

A plain pydantic model nested in the connector's ``Settings`` as ``ldap`` (so
``WALKIN_LDAP__URLS='["ldaps://dc1.example.org"]'``, ``WALKIN_LDAP__PEOPLE_BASE=…``).
It reads no environment variables itself.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_SCHEMES = ("ldap://", "ldaps://", "ldapi://")


class LdapSettings(BaseModel):
    """How to reach the directory and where people and group members live."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    urls: list[str] = Field(min_length=1)
    """Server URL(s): ``ldap://host:389``, ``ldaps://host:636`` or ``ldapi://%2Frun%2Fslapd%2Fldapi``.
    With several, they form a failover pool tried in order; the first that answers
    (and binds) is used until it fails."""

    bind_dn: str | None = None
    """DN to bind as with a simple bind (for AD also ``user@domain``). Unset with no
    ``sasl_mechanism``: an anonymous bind."""

    bind_password: SecretStr | None = None
    """Password of ``bind_dn``."""

    sasl_mechanism: str | None = None
    """A SASL mechanism instead of a simple bind. ``EXTERNAL`` is supported: the
    identity of the ``ldapi://`` peer (its uid/gid) is used, mapped by the server
    (slapd ``olcAuthzRegexp``)."""

    start_tls: bool = False
    """Upgrade ``ldap://`` connections with StartTLS (RFC 4513 §3) before binding."""

    ca_file: str | None = None
    """PEM file of the CA(s) that signed the server certificate, for StartTLS and
    ``ldaps://``. Unset: the system's trust store. The certificate is always verified."""

    flavour: Literal["openldap", "ad"] = "openldap"
    """``ad`` for Active Directory (ranged reads of ``member``, groups may be empty);
    ``openldap`` for slapd and other RFC 4519 servers."""

    people_base: str
    """Search base (subtree) under which people are looked up."""

    match_attribute: str = "uid"
    """Attribute holding a person's matching key: ``uid`` on OpenLDAP; ``employeeID``
    or ``sAMAccountName`` on AD."""

    people_filter: str | None = None
    """An extra filter ANDed with every people search, e.g. ``(objectClass=inetOrgPerson)``
    or, on AD, ``(&(objectCategory=person)(objectClass=user))`` so that groups and
    computers sharing a ``sAMAccountName`` never match."""

    match_case_insensitive: bool = True
    """Whether ``match_attribute`` compares without regard to case (its equality rule
    is ``caseIgnoreMatch``, as for ``uid`` and AD's string attributes). Set ``False``
    for a ``caseExactMatch`` attribute."""

    member_attribute: str = "member"
    """Attribute of the group that lists its members' DNs."""

    placeholder_member: str | None = None
    """A DN kept in the group so it never becomes empty, because ``groupOfNames``
    requires at least one ``member`` (RFC 4519 §3.5), e.g.
    ``cn=placeholder,dc=example,dc=org``. It is never removed and never reported as a
    member. Leave unset for AD, whose groups may be empty."""

    batch_size: int = Field(default=500, ge=1, le=5000)
    """Most member values sent in one modify request."""

    resolve_chunk_size: int = Field(default=200, ge=1, le=1000)
    """Most keys in one ``(|(uid=…)(uid=…))`` search filter."""

    page_size: int = Field(default=1000, ge=1, le=10000)
    """Page size of the paged-results control (RFC 2696). AD's MaxPageSize is 1,000."""

    permissive_modify: bool | None = None
    """Send the permissive-modify control (``1.2.840.113556.1.4.1413``), which makes
    adding a present value or deleting an absent one succeed. ``None`` means on: AD
    (2008+) and OpenLDAP both honour it. Set ``False`` for servers that reject it;
    stale values are then handled by splitting the request."""

    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a TCP connection to a server."""

    receive_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for the answer to one request."""

    retry_attempts: int = Field(default=4, ge=1, le=20)
    """Attempts of one operation when the directory is unreachable or busy (result
    codes 51 busy, 52 unavailable, 80 other), before giving up with TargetUnavailable."""

    retry_backoff_base: float = Field(default=0.5, ge=0)
    """Seconds to wait before the second attempt; doubled before each further one."""

    retry_backoff_cap: float = Field(default=30.0, ge=0)
    """Longest wait between two attempts, in seconds."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.lower().startswith(_SCHEMES):
                raise ValueError(f"{url!r} is not an ldap://, ldaps:// or ldapi:// URL")
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises on a port that is not a number in range
            except ValueError as exc:
                raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
            if not url.lower().startswith("ldapi://") and not parts.hostname:
                raise ValueError(f"{url!r} names no host")
        return urls

    @field_validator("sasl_mechanism")
    @classmethod
    def _check_sasl(cls, value: str | None) -> str | None:
        if value is not None and value.upper() != "EXTERNAL":
            raise ValueError(f"SASL mechanism {value!r} is not supported (EXTERNAL is)")
        return value.upper() if value else value

    @field_validator("people_filter")
    @classmethod
    def _check_filter(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("(") and value.endswith(")")):
            raise ValueError("people_filter must be a parenthesised LDAP filter, e.g. (objectClass=person)")
        return value

    @model_validator(mode="after")
    def _check_bind(self) -> LdapSettings:
        if self.bind_password is not None and self.bind_dn is None and self.sasl_mechanism is None:
            raise ValueError("bind_password is set but bind_dn is not")
        if self.start_tls and any(url.lower().startswith("ldaps://") for url in self.urls):
            raise ValueError("start_tls cannot be combined with ldaps:// URLs (they are TLS already)")
        return self

    @property
    def use_permissive_modify(self) -> bool:
        """Whether the permissive-modify control is sent (``None`` means on)."""
        return self.permissive_modify is not False
