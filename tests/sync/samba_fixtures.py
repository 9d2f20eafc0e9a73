"""Fixtures of the tests against a real Samba AD DC (tests/sync/samba.py); a test
module imports the ones it uses.

- ``samba_server`` (session): the domain provisioned and populated once into a
  template; skipped with the reason when Samba cannot run here (CI installs it and
  fails on skips).
- ``samba`` (function): a fresh instance copied from the template and running,
  stopped and deleted after the test: every test starts from the template's people
  and groups, ``samba.group_dn`` empty.
- ``samba_settings``: :class:`LdapSettings` of the ``ad`` flavour for it: verified
  LDAPS with the instance's CA, bound as Administrator, people matched by
  sAMAccountName, no placeholder (AD groups may be empty).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.targets.ldap_settings import LdapSettings

from .samba import PEOPLE_FILTER, SambaDc, missing_tools


@pytest.fixture(scope="session")
def samba_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDc]:
    why = missing_tools()
    if why:
        pytest.skip(f"the Active Directory tests need a local Samba AD DC: {why}")
    server = SambaDc(tmp_path_factory.mktemp("samba"))
    try:
        server.provision()
        yield server
    finally:
        server.remove()


@pytest.fixture
def samba(samba_server: SambaDc) -> Iterator[SambaDc]:
    """A running instance in the template's state, for this test alone."""
    samba_server.fresh()
    yield samba_server
    samba_server.discard()


def samba_ldap_settings(samba: SambaDc, **overrides: object) -> LdapSettings:
    values: dict[str, object] = {
        "urls": [samba.ldaps_url], "ca_file": samba.ca_file, "flavour": "ad",
        "bind_dn": samba.admin_dn, "bind_password": samba.admin_password,
        "people_base": samba.people_dn, "match_attribute": "sAMAccountName", "people_filter": PEOPLE_FILTER,
        "placeholder_member": None,
        "retry_attempts": 3, "retry_backoff_base": 0.0, "connect_timeout": 2.0, "receive_timeout": 10.0,
    }
    values.update(overrides)
    return LdapSettings(**values)


@pytest.fixture
def samba_settings(samba: SambaDc) -> LdapSettings:
    return samba_ldap_settings(samba)
