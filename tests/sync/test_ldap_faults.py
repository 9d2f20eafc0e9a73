"""The LDAP target when things go wrong: slapd stopped before or during a run,
refused credentials, failover, TLS, SASL EXTERNAL, and concurrent use."""

from __future__ import annotations

import ssl
from concurrent.futures import ThreadPoolExecutor

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.base import (
    Outcome,
    PersonKey,
    TargetAuthError,
    TargetMisconfigured,
    TargetUnavailable,
    WriteRefused,
)
from sync.targets.ldap_filters import normalise_dn

from .slapd import PEOPLE_DN, child_dn, free_port


class Sleeps(list):
    """A ``sleep`` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def stop_after_modifies(monkeypatch: pytest.MonkeyPatch, count: int, action) -> None:
    """Run ``action`` once ``count`` modify requests have been answered."""
    modify = ldap3.Connection.modify
    done = []

    def wrapper(self, dn, changes, controls=None):
        answer = modify(self, dn, changes, controls)
        done.append(dn)
        if len(done) == count:
            action()
        return answer

    monkeypatch.setattr(ldap3.Connection, "modify", wrapper)


def count_calls(monkeypatch: pytest.MonkeyPatch, method: str) -> list[None]:
    """A list that grows by one at each call of ``ldap3.Connection.<method>`` (the
    library's, wrapped: the target's own code runs unchanged)."""
    calls: list[None] = []
    original = getattr(ldap3.Connection, method)

    def counted(self, *args, **kwargs):
        calls.append(None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, method, counted)
    return calls


def people(count: int) -> list[str]:
    return [child_dn("uid", f"user{i:05d}", PEOPLE_DN) for i in range(count)]


def test_slapd_restarts_with_its_data(slapd):
    """The fixture's stop()/start() keep the port and the data."""
    dn = slapd.add_person("alice")
    port = slapd.port
    slapd.stop()
    assert not slapd.running
    slapd.start()
    assert slapd.port == port
    assert slapd.admin().search(dn, "(objectClass=*)", ldap3.BASE)


@pytest.mark.parametrize("operation", ["read", "resolve", "add"])
def test_outage_is_retried_with_capped_backoff(slapd, make_target, operation):
    """With slapd down, each call is tried retry_attempts times, waiting base·2ⁿ capped,
    then raises TargetUnavailable caused by the ldap3 error."""
    sleeps = Sleeps()
    target = make_target(sleep=sleeps, retry_attempts=4, retry_backoff_base=0.5, retry_backoff_cap=1.0)
    slapd.stop()
    with pytest.raises(TargetUnavailable) as caught:
        if operation == "read":
            target.read_members(slapd.group_dn)
        elif operation == "resolve":
            target.resolve([PersonKey("p", "alice")])
        else:
            target.add_members(slapd.group_dn, people(1))
    assert sleeps == [0.5, 1.0, 1.0]
    assert isinstance(caught.value.__cause__, LDAPException)


def test_reconnects_after_a_restart(slapd, ldap_target):
    """A connection broken by a slapd restart is replaced on the next call."""
    ldap_target.add_members(slapd.group_dn, people(2))
    slapd.stop()
    slapd.start()
    assert ldap_target.read_members(slapd.group_dn) == {normalise_dn(m) for m in people(2)}


def test_outage_during_a_write_reports_what_was_written(slapd, make_target, monkeypatch):
    """slapd stops after two of four batches: TargetUnavailable carries a partial result
    naming exactly the 1,000 members written; a later run writes the rest."""
    target = make_target(batch_size=500)
    members = people(2000)
    stop_after_modifies(monkeypatch, 2, slapd.stop)
    with pytest.raises(TargetUnavailable) as caught:
        target.add_members(slapd.group_dn, members)
    partial = caught.value.partial
    assert partial is not None and sorted(partial.done()) == sorted(members[:1000])
    assert set(partial.outcomes) == set(members[:1000])  # the rest: no outcome, not written
    monkeypatch.undo()
    slapd.start()
    assert target.read_members(slapd.group_dn) == {normalise_dn(m) for m in members[:1000]}
    again = target.add_members(slapd.group_dn, members)
    assert len(again.done()) == 2000 and again.requests == 2
    assert {detail for _, detail in again.outcomes.values()} == {"already a member", "added"}


def test_outage_healed_within_the_retries(slapd, make_target, monkeypatch):
    """slapd goes away after the first batch and is back by the first retry: the write completes."""
    target = make_target(batch_size=100, sleep=lambda _seconds: slapd.start())
    members = people(300)
    stop_after_modifies(monkeypatch, 1, slapd.stop)
    result = target.add_members(slapd.group_dn, members)
    assert len(result.done()) == 300 and result.requests == 4  # three batches, one sent twice
    assert len(target.read_members(slapd.group_dn)) == 300


@pytest.mark.parametrize("operation", ["read", "resolve", "add"])
def test_refused_credentials_are_not_retried(slapd, make_target, operation):
    """A wrong password raises TargetAuthError at once; nothing is written."""
    sleeps = Sleeps()
    target = make_target(sleep=sleeps, bind_password="wrong")
    with pytest.raises(TargetAuthError):
        if operation == "read":
            target.read_members(slapd.group_dn)
        elif operation == "resolve":
            target.resolve([PersonKey("p", "alice")])
        else:
            target.add_members(slapd.group_dn, people(1))
    assert sleeps == []
    assert slapd.member_values() == [slapd.placeholder_dn]


def test_fails_over_to_the_next_url(slapd, make_target):
    """With the first URL dead, the second serves the call, and is kept for the next."""
    sleeps = Sleeps()
    target = make_target(sleep=sleeps, urls=[f"ldap://127.0.0.1:{free_port()}", slapd.url])
    assert target.read_members(slapd.group_dn) == set()
    target.close()
    assert target.read_members(slapd.group_dn) == set()
    assert sleeps == []


def _socket(target) -> object:
    return target._session.connection().socket


def test_start_tls_verifies_against_the_ca_file(slapd, make_target):
    """StartTLS on ldap:// with the test CA: the connection is encrypted and works."""
    target = make_target(start_tls=True, ca_file=slapd.ca_file)
    target.add_members(slapd.group_dn, people(1))
    assert target.read_members(slapd.group_dn) == {normalise_dn(people(1)[0])}
    assert isinstance(_socket(target), ssl.SSLSocket)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_ldaps_verifies_against_the_ca_file(slapd, make_target, host):
    """ldaps:// with the test CA, by IP address or host name (both in the certificate)."""
    target = make_target(urls=[slapd.ldaps_url.replace("127.0.0.1", host)], ca_file=slapd.ca_file)
    assert target.read_members(slapd.group_dn) == set()
    assert isinstance(_socket(target), ssl.SSLSocket)


@pytest.mark.parametrize("start_tls", [True, False], ids=["starttls", "ldaps"])
def test_untrusted_certificate_is_refused_at_once(slapd, make_target, monkeypatch, start_tls):
    """A server certificate the trust store does not vouch for (no CA file) stops the
    call after one connection: it is a setting to fix, not an outage to wait out."""
    url = slapd.url if start_tls else slapd.ldaps_url
    sleeps = Sleeps()
    target = make_target(urls=[url], start_tls=start_tls, retry_attempts=4, sleep=sleeps)
    opens = count_calls(monkeypatch, "__init__")  # one Connection per attempt
    with pytest.raises(TargetMisconfigured) as caught:
        target.read_members(slapd.group_dn)
    assert str(caught.value) == (
        f"read members of {slapd.group_dn}: the server's TLS certificate was not trusted (self-signed certificate "
        "in certificate chain); set WALKIN_LDAP__CA_FILE to the PEM file of the CA that issued it")
    assert (len(opens), sleeps) == (1, [])


def test_bad_password_is_refused_at_once(slapd, make_target, monkeypatch):
    """invalidCredentials (49): "credentials refused" after one bind, naming the settings."""
    sleeps = Sleeps()
    target = make_target(bind_password="wrong", retry_attempts=4, sleep=sleeps)
    binds = count_calls(monkeypatch, "bind")
    with pytest.raises(TargetAuthError, match=r": credentials refused \(49 invalidCredentials\); check "
                                              r"WALKIN_LDAP__BIND_DN and WALKIN_LDAP__BIND_PASSWORD$"):
        target.read_members(slapd.group_dn)
    assert (len(binds), sleeps) == (1, [])


def test_simple_bind_without_tls_where_tls_is_required(slapd, make_target, monkeypatch):
    """A directory that refuses simple binds over plain LDAP (slapd: confidentialityRequired
    13; AD: strongerAuthRequired 8) is answered at once with the way out; StartTLS works."""
    sleeps = Sleeps()
    target = make_target(retry_attempts=4, sleep=sleeps)
    with slapd.requiring(olcSecurity="simple_bind=128"):
        binds = count_calls(monkeypatch, "bind")
        with pytest.raises(TargetAuthError) as caught:
            target.read_members(slapd.group_dn)
        assert (len(binds), sleeps) == (1, [])
        said = str(caught.value)
        assert "requires a protected connection or a stronger bind (13 confidentialityRequired" in said
        assert "use LDAPS (an ldaps:// URL in WALKIN_LDAP__URLS) or StartTLS (WALKIN_LDAP__START_TLS=true)" in said
        assert make_target(start_tls=True, ca_file=slapd.ca_file).read_members(slapd.group_dn) == set()


def test_stronger_auth_required_is_refused_at_once_with_the_hint(slapd, make_target):
    """strongerAuthRequired (8) on a read (slapd ``requires strong``, anonymous): at once, with the hint."""
    sleeps = Sleeps()
    anonymous = make_target(bind_dn=None, bind_password=None, retry_attempts=4, sleep=sleeps)
    with slapd.requiring(olcRequires="strong"):
        with pytest.raises(TargetAuthError, match=r"\(8 strongerAuthRequired.*\); use LDAPS .* or StartTLS"):
            anonymous.resolve([PersonKey("p", "alice")])
    assert sleeps == []


def test_stopped_directory_is_retried_then_unreachable(slapd, make_target, monkeypatch):
    """Connection refused is transient: every attempt connects again, then "unreachable"."""
    sleeps = Sleeps()
    target = make_target(retry_attempts=4, sleep=sleeps)
    slapd.stop()
    opens = count_calls(monkeypatch, "__init__")  # one Connection per attempt
    with pytest.raises(TargetUnavailable, match=r"^read members of .*: directory unreachable \(.*\) after 4 attempts$"):
        target.read_members(slapd.group_dn)
    assert (len(opens), len(sleeps)) == (4, 3)


def test_sasl_external_over_ldapi(slapd, make_target):
    """SASL EXTERNAL over ldapi:// binds as the identity slapd maps our uid to (the
    rootdn): the write succeeds, where an anonymous one is refused."""
    target = make_target(urls=[slapd.ldapi_url], sasl_mechanism="EXTERNAL", bind_dn=None, bind_password=None)
    assert target.add_members(slapd.group_dn, people(1)).failed() == {}
    assert target.read_members(slapd.group_dn) == {normalise_dn(people(1)[0])}
    anonymous = make_target(bind_dn=None, bind_password=None)
    with pytest.raises(TargetAuthError, match=r"strongerAuthRequired.*StartTLS"):
        anonymous.add_members(slapd.group_dn, people(2))


def test_write_without_rights_is_refused(slapd, make_target, monkeypatch):
    """An account that may read but not write gets WriteRefused (50), with the partial
    result of what was done before (here: nothing), and no split into per-value requests."""
    target = make_target(bind_dn=slapd.reader_dn, bind_password=slapd.reader_password, batch_size=10)
    assert target.read_members(slapd.group_dn) == set()
    with pytest.raises(WriteRefused, match="50 insufficientAccessRights") as caught:
        target.add_members(slapd.group_dn, people(30))
    assert caught.value.partial is not None and caught.value.partial.outcomes == {}
    assert caught.value.partial.requests == 1


def test_one_target_shared_by_threads(slapd, ldap_target):
    """Reads, resolves and writes from eight threads on one target (SAFE_SYNC) all succeed."""
    keys = [f"t{i:03d}" for i in range(80)]
    dns = slapd.add_people(keys)

    def work(index: int) -> tuple[int, int]:
        mine = keys[index * 10:(index + 1) * 10]
        found = ldap_target.resolve([PersonKey(k, k) for k in mine])
        written = ldap_target.add_members(slapd.group_dn, list(found.values()))
        return len(found), len(written.done())

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(work, range(8)))
        reads = list(pool.map(lambda _i: len(ldap_target.read_members(slapd.group_dn)) <= 80, range(8)))
    assert outcomes == [(10, 10)] * 8 and all(reads)
    assert ldap_target.read_members(slapd.group_dn) == {normalise_dn(dn) for dn in dns}


def test_close_then_use_again(slapd, ldap_target):
    """close() releases the connection; a later call opens a new one."""
    ldap_target.read_members(slapd.group_dn)
    ldap_target.close()
    ldap_target.close()
    assert ldap_target.add_members(slapd.group_dn, people(1)).outcomes[people(1)[0]] == (Outcome.DONE, "added")


def test_missing_openldap_is_explained(monkeypatch):
    """Without slapd the fixture skips (CI turns skips into failures) and says what to install."""
    from . import slapd as harness

    assert harness.missing_tools() is None
    monkeypatch.setattr(harness, "SLAPD", "/nonexistent/slapd")
    assert harness.missing_tools() == "/nonexistent/slapd is not installed (apt-get install slapd ldap-utils)"
