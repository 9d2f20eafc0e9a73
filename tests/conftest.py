"""Fixture chain: settings → clock → store → app → client (→ the sync context of
the sync tests, which takes the same ``clock``).

``clock`` is one :class:`~connector.clock.FrozenClock` per test, standing at
:data:`NOON` until the test moves it: the SCIM service stamps memberships and
journal events with it, and the sync decides on its date, so no test depends on
the machine's date.

The ``store`` fixture runs every test twice when ``WALKIN_TEST_POSTGRES_URL`` is
set: once on a throw-away SQLite file and once on PostgreSQL (a database created
for this test session and dropped after it).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connector import create_app
from connector.clock import FrozenClock
from connector.settings import Settings
from connector.store.database import Store
from connector.store.models import Base

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
METRICS_TOKEN = "test-metrics-token-9876543210"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
POSTGRES_URL = os.environ.get("WALKIN_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("WALKIN_TEST_REQUIRE_POSTGRES") == "1"

#: Where every test's clock stands unless the test moves it: 12:00 in Denver.
NOON = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)

BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL or REQUIRE_POSTGRES else [])


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.fail("WALKIN_TEST_REQUIRE_POSTGRES=1 but WALKIN_TEST_POSTGRES_URL is not set")
    admin_url = make_url(POSTGRES_URL)
    name = f"walkin_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_store(request):
    url = request.getfixturevalue("postgres_url")
    store = Store(url)
    yield store
    store.dispose()


def _truncate(store: Store) -> None:
    """Empty every table of the shared PostgreSQL test database, and start the audit
    chain again as the migration leaves it.

    ``audit_log`` refuses TRUNCATE (a BEFORE TRUNCATE trigger, migration 0007), as
    it refuses UPDATE and DELETE. The test database's owner (a superuser here) lets
    this one transaction skip ordinary triggers (``session_replication_role =
    replica``, reset when it ends) rather than disabling the trigger for good, so
    every test still runs against the triggers as migrated."""
    from connector.store.chain import GENESIS

    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with store.engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, :genesis)"), {"genesis": GENESIS})


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A migrated SQLite database, copied for each test (migrating costs more)."""
    path = tmp_path_factory.mktemp("template") / "walkin.db"
    Store(f"sqlite:///{path}").dispose()
    return path


def sqlite_copy(template, tmp_path) -> str:
    """A private copy of the migrated template database, as a URL."""
    path = tmp_path / "walkin.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("_sqlite_template"), tmp_path)
    store = request.getfixturevalue("_postgres_store")
    _truncate(store)
    return store.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, scim_token=[TOKEN], max_request_bytes=256 * 1024,
                    metrics={"token": [METRICS_TOKEN]})


@pytest.fixture
def clock() -> FrozenClock:
    """The test's one clock, shared by the SCIM app and the sync context."""
    return FrozenClock(NOON)


@pytest.fixture(scope="session")
def faketime_preload(tmp_path_factory) -> str:
    """``LD_PRELOAD`` for child processes put on the test's clock (tests/faketime)."""
    from tests import faketime

    why = faketime.missing()
    if why:
        pytest.skip(f"child processes on the test's clock need libfaketime: {why}")
    return faketime.build_preload(tmp_path_factory.mktemp("faketime"))


@pytest.fixture
def store(request, settings):
    if settings.database_url.startswith("postgresql"):
        yield request.getfixturevalue("_postgres_store")  # shared; emptied by database_url
        return
    store = Store(settings.database_url, auto_migrate=False)
    yield store
    store.dispose()


@pytest.fixture
def app(settings, store, clock):
    return create_app(settings, store=store, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()


# ------------------------------------------------------------- no secret in any log

#: Every credential the tests configure, by value. None may appear in any log line of
#: the run: the records of this process and the log files the subprocesses wrote.
SECRETS = {
    TOKEN,
    METRICS_TOKEN,
    "admin-secret",  # tests/sync/slapd.py ROOT_PASSWORD
    "reader-secret",  # READER_PASSWORD
    "S3rvice-pass",  # tests/sync/ad.py
    "not-a-secret",  # tests/sync/graph_fake.py client secret
    "Walkin-Adm1n-Secret",  # tests/sync/samba.py ADMIN_PASSWORD
}
#: Admin API tokens are made at random: found by their shape.
ADMIN_TOKEN = re.compile(r"wka_[A-Za-z0-9_-]{20,}")


class _EveryLine(logging.Handler):
    """Keeps every secret-bearing line the test run logs in this process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is pytest's to report
            return
        if any(secret in line for secret in SECRETS) or ADMIN_TOKEN.search(line):
            self.leaks.append(line[:300])


_every_line = _EveryLine()


def pytest_configure(config):
    # Every record that reaches the root logger, and walkin's own from INFO up (what a
    # deployment logs by default). Other libraries keep the level tests expect.
    logging.getLogger().addHandler(_every_line)
    walkin = logging.getLogger("walkin")
    if walkin.level == logging.NOTSET or walkin.level > logging.INFO:
        walkin.setLevel(logging.INFO)


def _log_files(config) -> list[Path]:
    """The log files the run's subprocesses wrote (``walkin serve``, ``walkin worker``,
    slapd, samba…) under pytest's temporary directory."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return []
    base = factory.getbasetemp()
    return [p for p in base.rglob("*") if p.is_file() and (p.suffix == ".log" or p.name.endswith(".log.txt"))]


def _secret_leaks(config) -> list[str]:
    leaks = list(_every_line.leaks)
    for path in _log_files(config):
        text_ = path.read_text(errors="replace")
        for secret in SECRETS:
            if secret in text_:
                leaks.append(f"{path}: contains {secret[:4]}…")
        found = ADMIN_TOKEN.search(text_)
        if found:
            leaks.append(f"{path}: contains an admin API token {found.group()[:8]}…")
    return leaks

_skipped: list[str] = []


def pytest_runtest_logreport(report):
    # pytest reports an expected failure (xfail) as skipped; it ran, so it is not one.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """No secret in any log of the run (else the run fails, naming where). With
    WALKIN_TEST_FAIL_ON_SKIP=1 (CI), a skipped test fails the run: the PostgreSQL and
    slapd integration tests are required there."""
    leaks = _secret_leaks(session.config)
    if leaks:
        print(f"\n{len(leaks)} log line(s) or file(s) hold a test secret:")
        for leak in leaks[:20]:
            print(f"  {leak}")
        session.exitstatus = 1
    if os.environ.get("WALKIN_TEST_FAIL_ON_SKIP") == "1" and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped but WALKIN_TEST_FAIL_ON_SKIP=1:")
        for nodeid in _skipped[:20]:
            print(f"  {nodeid}")
        session.exitstatus = 1
