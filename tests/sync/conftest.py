"""Fixtures of the sync tests: a real slapd, LDAP settings and targets, and the
``target`` fixture that runs the contract tests on every target.

- ``slapd_server`` (session): a :class:`~tests.sync.slapd.Slapd` started once on free
  loopback ports; skipped with the reason when OpenLDAP is not installed.
- ``slapd`` (function): the same server, running (a fault test may have stopped it)
  with the base DIT restored: ou=people empty, ``cn=walkin,ou=groups`` holding only
  the placeholder. Call ``slapd.stop()`` / ``slapd.start()`` to simulate an outage.
- ``ldap_settings`` / ``ldap_target``: settings and a target bound as the rootdn.
- ``target``: a :class:`Directory` over the memory target, over slapd, and over the
  Entra target talking to a stateful fake of Microsoft Graph (``graph_fake.py``)
  served through ``responses``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import responses

from connector.store.database import Store
from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.base import Target
from sync.targets.embedded import EmbeddedTarget
from sync.targets.ldap import LdapTarget
from sync.targets.ldap_filters import normalise_dn
from sync.targets.ldap_settings import LdapSettings
from sync.targets.memory import MemoryTarget
from tests.conftest import NOON

from .graph_fake import FakeGraph, graph_target
from .samba_fixtures import samba, samba_server, samba_settings  # noqa: F401 - fixtures of test_samba_ad.py
from .slapd import GROUP_DN, PEOPLE_DN, Slapd, child_dn, free_port, missing_tools


def no_sleep(_seconds: float) -> None:
    """Retry backoff that does not wait (tests)."""


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    why = missing_tools()
    if why:
        pytest.skip(f"the LDAP target tests need a local OpenLDAP slapd: {why}")
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.setup()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slapd(slapd_server: Slapd) -> Slapd:
    """The session's slapd, running, with the base DIT restored."""
    slapd_server.start()
    slapd_server.reset()
    return slapd_server


def slapd_settings(slapd: Slapd, **overrides: object) -> LdapSettings:
    values: dict[str, object] = {
        "urls": [slapd.url], "bind_dn": slapd.root_dn, "bind_password": slapd.root_password,
        "people_base": slapd.people_dn, "match_attribute": "uid", "placeholder_member": slapd.placeholder_dn,
        "retry_attempts": 3, "retry_backoff_base": 0.0, "connect_timeout": 2.0, "receive_timeout": 10.0,
    }
    values.update(overrides)
    return LdapSettings(**values)


@pytest.fixture
def ldap_settings(slapd: Slapd) -> LdapSettings:
    return slapd_settings(slapd)


@pytest.fixture
def ldap_target(ldap_settings: LdapSettings) -> Iterator[LdapTarget]:
    target = LdapTarget(ldap_settings, sleep=no_sleep)
    yield target
    target.close()


@pytest.fixture
def make_target(slapd: Slapd) -> Iterator[Callable[..., LdapTarget]]:
    """``make_target(**overrides)``: an LdapTarget on the slapd with some settings
    changed; closed after the test."""
    made: list[LdapTarget] = []

    def make(*, sleep: Callable[[float], None] = no_sleep, **overrides: object) -> LdapTarget:
        target = LdapTarget(slapd_settings(slapd, **overrides), sleep=sleep)
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


# ---------------------------------------------------------------- contract harness


@dataclass
class Directory:
    """A target plus what the contract tests need to arrange and check its directory
    without going through the target."""

    target: Target
    group: str
    missing_group: str
    kind: str
    slapd: Slapd | None = None
    memory_people: dict[str, str] = field(default_factory=dict)
    graph: FakeGraph | None = None
    store: Store | None = None

    def person(self, key: str) -> str:
        """Create a person whose matching key is ``key``; return their member identifier."""
        if self.slapd is not None:
            return normalise_dn(self.slapd.add_person(key))
        if self.graph is not None:
            return self.graph.add_user(key)
        if self.store is not None:
            from connector.store.users import insert_user

            with self.store.connection_write() as conn:
                return insert_user(conn, {"userName": key}, NOON, key=self.store.person_key).id
        member = normalise_dn(child_dn("uid", key, PEOPLE_DN))
        assert isinstance(self.target, MemoryTarget)
        self.target.directory[key] = member
        return member

    def members(self) -> set[str]:
        """The group's members read directly (placeholder excluded)."""
        if self.slapd is not None:
            values = {normalise_dn(v) for v in self.slapd.member_values(self.group)}
            return values - {normalise_dn(self.slapd.placeholder_dn)}
        if self.graph is not None:
            return set(self.graph.groups[self.group])
        if self.store is not None:
            return self.target.read_members(self.group)
        assert isinstance(self.target, MemoryTarget)
        return set(self.target.groups[self.group])

    def seed(self, members: list[str]) -> None:
        """Make ``members`` the group's members directly."""
        if self.slapd is not None:
            self.slapd.set_members([self.slapd.placeholder_dn, *members], self.group)
        elif self.graph is not None:
            self.graph.groups[self.group] = set(members)
        elif self.store is not None:
            self.target.remove_members(self.group, sorted(self.target.read_members(self.group)))
            self.target.add_members(self.group, members)
        else:
            assert isinstance(self.target, MemoryTarget)
            self.target.groups[self.group] = set(members)

    def unreachable(self) -> Target:
        """A target of the same kind whose directory cannot be reached."""
        if self.slapd is not None:
            return LdapTarget(slapd_settings(self.slapd, urls=[f"ldap://127.0.0.1:{free_port()}"],
                                             retry_attempts=2), sleep=no_sleep)
        if self.store is not None:  # a store whose file is gone: an empty database, no tables
            return EmbeddedTarget(Store(f"sqlite:///{self.store.engine.url.database}.gone", auto_migrate=False),
                                  {self.group})
        if self.graph is not None:  # neither sign-in nor Graph answers (responses refuses the hosts)
            return graph_target(authority_host="https://login.unreachable.test",
                                graph_url="https://graph.unreachable.test/v1.0", retry_attempts=2)
        down = MemoryTarget({self.group: set()})
        down.available = False
        return down


@pytest.fixture(params=["memory", "slapd", "entra", "store"])
def target(request: pytest.FixtureRequest, tmp_path) -> Iterator[Directory]:
    """Each contract test runs on the memory target, on a real slapd, on the Entra
    target against a stateful Graph fake, and on the embedded target (an SQLite store)."""
    missing = f"cn=nonexistent,ou=groups,{PEOPLE_DN.split(',', 1)[1]}"
    if request.param == "store":
        store = Store(f"sqlite:///{tmp_path / 'embedded.db'}")
        yield Directory(EmbeddedTarget(store, {"walkin"}), "walkin", "nonexistent", "store", store=store)
        store.dispose()
        return
    if request.param == "memory":
        yield Directory(MemoryTarget({GROUP_DN: set()}), GROUP_DN, missing, "memory")
        return
    if request.param == "entra":
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            fake = FakeGraph(page_size=2)  # small pages: every read follows @odata.nextLink
            fake.register(rsps)
            entra = graph_target()
            yield Directory(entra, fake.add_group(), "0d7c9a4e-1b2f-4e8d-9a6c-3f5b7e1d2c4a", "entra", graph=fake)
            entra.close()
        return
    server: Slapd = request.getfixturevalue("slapd")
    ldap = LdapTarget(slapd_settings(server), sleep=no_sleep)
    yield Directory(ldap, GROUP_DN, missing, "slapd", slapd=server)
    ldap.close()
