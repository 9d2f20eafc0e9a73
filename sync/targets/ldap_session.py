"""One bound ldap3 connection to a directory, with failover, retry and error sorting.

:class:`LdapSession` hands a bound connection to an operation and runs it again
when the directory is unreachable, too busy or unavailable: it drops the broken
connection, waits (exponential backoff, capped), reconnects to the first server of
the failover list that answers, and after the configured number of attempts raises
:class:`TargetUnavailable`. Only transient failures are retried (:func:`is_transient`:
connection refused or lost, timeouts, busy 51, unavailable 52); every other ldap3
exception reaches the caller at once, untranslated, so that it can act on a result
code (a stale member value, a missing group).

:func:`ldap_errors` is the one place where ldap3 exceptions become the target
errors of :mod:`sync.targets.base` (:func:`translate`): the LDAP target runs every
directory access inside it, and nothing outside ``sync/targets/`` sees ldap3.

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
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TypeVar

from ldap3 import ANONYMOUS, NONE, SAFE_SYNC, SASL, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPMaximumRetriesError,
    LDAPOperationResult,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)

from . import ldap3_import  # noqa: F401  (must precede the ldap3 imports)
from .base import (
    GroupNotFound,
    TargetAuthError,
    TargetError,
    TargetMisconfigured,
    TargetUnavailable,
    WriteRefused,
)
from .ldap_settings import LdapSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Result codes worth retrying: busy (51), unavailable (52), and other (80), which AD
#: returns for transient server-side conditions (RFC 4511 §4.1.9, MS-ADTS 3.1.1.3.1.5).
TRANSIENT_RESULTS = frozenset({51, 52, 80})

#: Result codes refusing who we are (RFC 4511 Appendix A): authMethodNotSupported,
#: inappropriateAuthentication, invalidCredentials (AD adds "data 52e" and kin).
CREDENTIAL_RESULTS = frozenset({7, 48, 49})

#: Result codes asking for a protected connection or a stronger bind:
#: strongerAuthRequired (AD refuses simple binds over plain LDAP with it, slapd
#: anonymous writes) and confidentialityRequired (slapd's ``olcSecurity``).
PROTECTION_RESULTS = frozenset({8, 13})

#: Results about our connection or identity, never about one value of a request.
SESSION_RESULTS = CREDENTIAL_RESULTS | PROTECTION_RESULTS

#: noSuchObject, invalidDNSyntax: the base of the operation does not exist.
MISSING_RESULTS = frozenset({32, 34})

#: insufficientAccessRights.
NOT_ALLOWED = 50

PROTECTION_HINT = (
    "use LDAPS (an ldaps:// URL in WALKIN_LDAP__URLS) or StartTLS (WALKIN_LDAP__START_TLS=true), and a bind DN or SASL"
)


class Access(StrEnum):
    """What an operation does, which decides what a refusal means."""

    READ = "read"
    WRITE = "write"


def untrusted_certificate(exc: BaseException) -> str | None:
    """Why the server's certificate failed verification, when that is what ``exc`` is.

    ldap3 wraps the ``ssl.SSLCertVerificationError`` (LDAPS: in an
    ``LDAPSocketOpenError``'s text; StartTLS: as the context of an
    ``LDAPStartTLSError``), so both the chain and the text are searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) and getattr(current, "verify_message", None):
            return current.verify_message
        text = str(current)
        found = re.search(r"certificate verify failed:?\s*([^(\]\'\"]*)", text, re.IGNORECASE)
        if found or "CERTIFICATE_VERIFY_FAILED" in text:
            return (found.group(1).strip() if found else "") or "certificate verify failed"
        current = current.__cause__ or current.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later (on a new connection) may succeed.

    A certificate that fails verification looks like a failed connection to ldap3,
    but fails the same way every time.
    """
    if isinstance(exc, LDAPOperationResult):
        return exc.result in TRANSIENT_RESULTS
    if not isinstance(
        exc, (LDAPCommunicationError, LDAPResponseTimeoutError, LDAPMaximumRetriesError, LDAPStartTLSError, OSError)
    ):
        return False
    return untrusted_certificate(exc) is None


def translate(exc: BaseException, what: str, *, access: Access = Access.READ, group: str | None = None) -> TargetError:
    """The target error for an ldap3 exception (or ``OSError``) raised while doing ``what``.

    :param access: a refusal of a write is :class:`WriteRefused`; of a read, the
        account's rights (:class:`TargetAuthError`) or the directory's state.
    :param group: the group ``what`` works on: noSuchObject then means
        :class:`GroupNotFound`.
    """
    if isinstance(exc, TargetError):
        return exc
    reason = untrusted_certificate(exc)
    if reason is not None:
        return TargetMisconfigured(
            f"{what}: the server's TLS certificate was not trusted ({reason}); set WALKIN_LDAP__CA_FILE to the "
            "PEM file of the CA that issued it"
        )
    if isinstance(exc, LDAPOperationResult):
        code = exc.result
        if code in CREDENTIAL_RESULTS:
            return TargetAuthError(
                f"{what}: credentials refused ({describe(exc)}); "
                "check WALKIN_LDAP__BIND_DN and WALKIN_LDAP__BIND_PASSWORD"
            )
        if code in PROTECTION_RESULTS:
            return TargetAuthError(
                f"{what}: the directory requires a protected connection or a stronger bind "
                f"({describe(exc)}); {PROTECTION_HINT}"
            )
        if code in MISSING_RESULTS:
            if group is not None:
                return GroupNotFound(group)
            return TargetMisconfigured(f"{what}: {describe(exc)}: the base entry does not exist")
        if access is Access.WRITE:
            return WriteRefused(f"{group or what}: {describe(exc)}")
        if code == NOT_ALLOWED:
            return TargetAuthError(f"{what}: not allowed ({describe(exc)}): the bind account needs read access")
        return TargetUnavailable(f"{what}: {describe(exc)}")
    if access is Access.WRITE and not is_transient(exc):  # client-side, e.g. a DN ldap3 cannot encode
        return WriteRefused(f"{group or what}: {describe(exc)}")
    return TargetUnavailable(f"{what}: {describe(exc)}")


@contextmanager
def ldap_errors(what: str, *, access: Access = Access.READ, group: str | None = None) -> Iterator[None]:
    """Run the block with every ldap3 exception (and ``OSError``) raised as its
    target error (:func:`translate`), caused by it; target errors pass through."""
    try:
        yield
    except TargetError:
        raise
    except (LDAPException, OSError) as exc:
        raise translate(exc, what, access=access, group=group) from exc


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

    def wrap_socket(self, connection, do_handshake=False):
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
        if (
            settings.bind_password is not None
            and not settings.start_tls
            and any(
                url.lower().startswith("ldap://") and not url.lower().startswith(("ldap://127.", "ldap://localhost"))
                for url in settings.urls
            )
        ):
            log.warning(
                "LDAP simple bind over unencrypted ldap:// sends the password in clear; use ldaps:// or start_tls"
            )

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
            auth = {
                "authentication": SASL,
                "sasl_mechanism": s.sasl_mechanism,
                # EXTERNAL needs an (empty) initial response, or slapd answers
                # saslBindInProgress and ldap3 stops there.
                "sasl_credentials": "",
            }
        elif s.bind_dn:
            auth = {
                "authentication": SIMPLE,
                "user": s.bind_dn,
                "password": s.bind_password.get_secret_value() if s.bind_password else "",
            }
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
        :raises LDAPException: any other ldap3 error, at once, for the caller to act on
            or translate (:func:`ldap_errors`).
        """
        s = self.settings
        for attempt in range(1, s.retry_attempts + 1):
            conn = None
            try:
                conn = self.connection()
                return operation(conn)
            except (LDAPException, OSError) as exc:
                if not is_transient(exc):
                    raise
                failure: BaseException = exc
            if conn is not None:
                self.discard(conn)
            if attempt == s.retry_attempts:
                kind = "busy or unavailable" if isinstance(failure, LDAPOperationResult) else "unreachable"
                raise TargetUnavailable(
                    f"{what}: directory {kind} ({describe(failure)}) after {attempt} "
                    f"attempt{'s' if attempt > 1 else ''}"
                ) from failure
            delay = min(s.retry_backoff_cap, s.retry_backoff_base * 2 ** (attempt - 1))
            log.warning(
                "%s failed (%s); attempt %d of %d in %.1f s",
                what,
                describe(failure),
                attempt + 1,
                s.retry_attempts,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        dispose(conn)
