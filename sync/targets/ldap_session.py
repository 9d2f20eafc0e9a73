"""One bound ldap3 connection to a directory, with failover, retry and error sorting.

:class:`LdapSession` hands a bound connection to an operation and runs it again
when the directory is unreachable, too busy or unavailable: it drops the broken
connection, waits (exponential backoff, capped), reconnects to the first server of
the failover list that answers, and after the configured number of attempts raises
:class:`TargetUnavailable`. Credentials refused raise :class:`TargetAuthError` at
once. Every other ldap3 exception is left to the caller, who knows what it means
(a missing group, a stale member value).

Why not ldap3's own machinery:

- ``ServerPool``: when no server answers, it sleeps ``POOLING_LOOP_TIMEOUT`` (10 s, a
  process-wide setting) per cycle and probes each server with an extra TCP connect;
  failing over here takes one connect per server and the backoff is ours.
- ``SAFE_RESTARTABLE``: it retries up to 30 times, 10 s apart, inside one call,
  which would block a sync cycle for minutes; ``SAFE_SYNC`` plus the retry loop
  here keeps the bound explicit.
- ldap3's ``Tls`` checks host names with ``ssl.match_hostname``, deprecated since
  Python 3.7 and removed in 3.12; :class:`VerifyingTls` lets the standard library's
  ``SSLContext`` verify the chain and the host name instead.
"""

from __future__ import annotations

import logging
import math
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from . import ldap3_import  # noqa: F401  (must precede the ldap3 imports)
from ldap3 import ANONYMOUS, NONE, SAFE_SYNC, SASL, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPMaximumRetriesError,
    LDAPOperationResult,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)

from .base import TargetAuthError, TargetUnavailable
from .ldap_settings import LdapSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Result codes worth retrying: busy (51), unavailable (52), and other (80), which AD
#: returns for transient server-side conditions (RFC 4511 §4.1.9, MS-ADTS 3.1.1.3.1.5).
TRANSIENT_RESULTS = frozenset({51, 52, 80})

#: Result codes meaning our identity is refused or too weak (RFC 4511 Appendix A):
#: authMethodNotSupported, strongerAuthRequired, confidentialityRequired,
#: inappropriateAuthentication, invalidCredentials.
AUTH_RESULTS = frozenset({7, 8, 13, 48, 49})


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later (on a new connection) may succeed."""
    if isinstance(exc, LDAPOperationResult):
        return exc.result in TRANSIENT_RESULTS
    return isinstance(
        exc, (LDAPCommunicationError, LDAPResponseTimeoutError, LDAPMaximumRetriesError, LDAPStartTLSError, OSError)
    )


def describe(exc: BaseException) -> str:
    """A one-line account of an ldap3 exception for logs and outcome details."""
    if isinstance(exc, LDAPOperationResult):
        message = f": {exc.message}" if exc.message else ""
        return f"{exc.result} {exc.description}{message}"
    return f"{type(exc).__name__}: {exc}"


class VerifyingTls(Tls):
    """ldap3 ``Tls`` that verifies the server certificate and host name with the
    standard library (``ssl.create_default_context``) rather than ldap3's
    ``ssl.match_hostname`` call."""

    def wrap_socket(self, connection, do_handshake=False):  # noqa: ANN001 - ldap3's signature
        context = ssl.create_default_context(cafile=self.ca_certs_file)
        connection.socket = context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


def connection_options(settings: LdapSettings) -> dict:
    """The ldap3 ``Connection`` options every connection of the target uses."""
    return {
        "raise_exceptions": True,
        # ldap3 packs this into SO_RCVTIMEO as an integer.
        "receive_timeout": max(1, math.ceil(settings.receive_timeout)),
        # Ranges are followed by LdapTarget itself (see ldap.py).
        "auto_range": False,
        # With auto_range off, ldap3's empty-attribute filling deletes the plain
        # attribute once per ranged one and fails with KeyError on AD's second
        # slice (member;range=1500-* asked, member;range=1500-2999 returned);
        # absent attributes are handled by the target anyway.
        "return_empty_attributes": False,
        "auto_referrals": False,
        "read_only": False,
    }


def dispose(conn: Connection | None) -> None:
    """Close ``conn`` and its socket without raising (ldap3 leaves the socket of a
    failed open or handshake unclosed)."""
    if conn is None:
        return
    try:
        if not conn.closed:
            conn.unbind()
    except (LDAPException, OSError):
        pass
    sock = getattr(conn, "socket", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
        conn.socket = None


class LdapSession:
    """A lazily opened, shared, thread-safe (``SAFE_SYNC``) bound connection."""

    def __init__(
        self,
        settings: LdapSettings,
        *,
        connection_factory: Callable[[], Connection] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._factory = connection_factory or self._open_any
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._preferred = 0  # index in settings.urls of the server that last answered
        if settings.bind_password is not None and not settings.start_tls and any(
            url.lower().startswith("ldap://") and not url.lower().startswith(("ldap://127.", "ldap://localhost"))
            for url in settings.urls
        ):
            log.warning("LDAP simple bind over unencrypted ldap:// sends the password in clear; "
                        "use ldaps:// or start_tls")

    # ------------------------------------------------------------ connecting

    def _tls(self) -> Tls:
        return VerifyingTls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.settings.ca_file)

    def _open(self, url: str) -> Connection:
        """Open, secure and bind one connection to ``url``."""
        s = self.settings
        secure = s.start_tls or url.lower().startswith("ldaps://")
        # A new Server per connection: ldap3 keeps per-server state (current_address)
        # that, once set, can make a later failed open look successful.
        server = Server(url, get_info=NONE, connect_timeout=s.connect_timeout, tls=self._tls() if secure else None)
        if s.sasl_mechanism:
            auth = {"authentication": SASL, "sasl_mechanism": s.sasl_mechanism,
                    # EXTERNAL needs an (empty) initial response, or slapd answers
                    # saslBindInProgress and ldap3 stops there.
                    "sasl_credentials": ""}
        elif s.bind_dn:
            auth = {"authentication": SIMPLE, "user": s.bind_dn,
                    "password": s.bind_password.get_secret_value() if s.bind_password else ""}
        else:
            auth = {"authentication": ANONYMOUS}
        conn = Connection(server, client_strategy=SAFE_SYNC, **connection_options(s), **auth)
        try:
            conn.open()
            if s.start_tls and not url.lower().startswith(("ldaps://", "ldapi://")):
                conn.start_tls()
            bound = conn.bind()[0]
        except BaseException:
            dispose(conn)
            raise
        if not bound:
            result = conn.result or {}
            dispose(conn)
            raise TargetAuthError(f"bind to {url} refused: {result.get('description')} {result.get('message') or ''}")
        return conn

    def _open_any(self) -> Connection:
        """Bind to the first server that answers, starting with the one that last did."""
        urls = self.settings.urls
        last: BaseException | None = None
        for step in range(len(urls)):
            index = (self._preferred + step) % len(urls)
            try:
                conn = self._open(urls[index])
            except LDAPException as exc:
                if not is_transient(exc):
                    raise
                log.warning("LDAP server %s unreachable: %s", urls[index], describe(exc))
                last = exc
                continue
            self._preferred = index
            return conn
        if last is None:
            raise TargetUnavailable("no LDAP server URL configured")
        raise last

    def connection(self) -> Connection:
        """The shared bound connection, opened on first use."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                dispose(self._conn)
                self._conn = None
                self._conn = self._factory()
            return self._conn

    def discard(self, conn: Connection) -> None:
        """Drop ``conn`` (broken); the next operation reconnects."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
        dispose(conn)

    # ------------------------------------------------------------ running

    def run(self, what: str, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on a bound connection, retrying transient failures.

        :raises TargetUnavailable: still unreachable/busy after the last attempt.
        :raises TargetAuthError: the bind was refused.
        :raises LDAPException: any other ldap3 error, for the caller to translate.
        """
        s = self.settings
        for attempt in range(1, s.retry_attempts + 1):
            conn = None
            try:
                conn = self.connection()
                return operation(conn)
            except LDAPOperationResult as exc:
                if exc.result in AUTH_RESULTS:
                    if conn is not None:
                        self.discard(conn)
                    raise TargetAuthError(f"{what}: credentials refused ({describe(exc)})") from exc
                if not is_transient(exc):
                    raise
                failure: BaseException = exc
            except (LDAPException, OSError) as exc:
                if not is_transient(exc):
                    raise
                failure = exc
            if conn is not None:
                self.discard(conn)
            if attempt == s.retry_attempts:
                raise TargetUnavailable(f"{what}: {describe(failure)} (after {attempt} attempts)") from failure
            delay = min(s.retry_backoff_cap, s.retry_backoff_base * 2 ** (attempt - 1))
            log.warning("%s failed (%s); attempt %d of %d in %.1f s", what, describe(failure), attempt + 1,
                        s.retry_attempts, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        dispose(conn)
