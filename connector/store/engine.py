"""Engine set-up for SQLite (embedded default) and PostgreSQL, and schema migration."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from connector import jsontext
from mappings.scim import AttributePath

from . import person_keys

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, *, memory_map: bool = True, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, a busy timeout, foreign
    keys and case-sensitive ``LIKE`` (so case-exact attributes compare exactly, as
    they do on PostgreSQL).

    :param read_only: the database refuses every write on these connections
        (SQLite ``query_only``; PostgreSQL ``default_transaction_read_only``), and
        the journal mode is left as the database has it."""
    parsed = make_url(url)
    codec = {"json_serializer": jsontext.dumps}
    if parsed.get_backend_name() != "sqlite":
        # Every statement planned for its own values and the tables as they are now.
        # psycopg prepares a statement run five times, and PostgreSQL then settles on
        # one generic plan, costed when the statement was young: a cold run's lookups
        # of 500 people's stored decisions were planned while the table was empty (a
        # sequential scan), and kept that plan as the run's own uncommitted rows grew
        # it to 100,000 — each lookup then compared every row with every id.
        options = "-c plan_cache_mode=force_custom_plan"
        given = parsed.query.get("options")  # the URL's own (?options=...) come first
        if isinstance(given, str):
            options = f"{given} {options}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"options": options}, **codec
        )
    memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        poolclass=StaticPool if memory else None,
        **codec,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        cur = dbapi_conn.cursor()
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        elif not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~40 MB of WAL, not every 4 MB: a write dirties a page of
            # each index it touches, and the pages written again and again (index
            # tails, the journal) are then copied into the database once, not ten times.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            # Read the database file through a memory map: a connection drops its page
            # cache whenever another one has committed, so with writes in between every
            # read would otherwise copy its pages in again with a system call each.
            if memory_map:
                cur.execute("PRAGMA mmap_size=1073741824")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


_WRITERS_IN_TURN = text("SELECT pg_advisory_xact_lock(727275)")


def begin(conn: Connection, *, write: bool) -> None:
    """Open the database transaction of ``conn`` (after SQLAlchemy's own ``begin()``).

    pysqlite's transaction handling is off (``isolation_level=None``), so on SQLite
    the transaction is begun here, IMMEDIATE for writers so two writers queue on the
    busy timeout instead of failing to upgrade a read lock. Issued by the caller, not
    from a ``begin`` event: any engine event listener makes SQLAlchemy dispatch
    events around every statement, a tenth of a SCIM request's cost. PostgreSQL
    begins on its own.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
    elif write:
        # Writers take turns (a transaction-scoped advisory lock, taken before any
        # row lock, so it cannot deadlock): change-journal numbers are then handed out
        # in commit order. Otherwise a transaction could commit event 51 while event
        # 50 is still in flight, and the worker's cursor, past 51, would never see 50.
        # SQLite writers take turns anyway.
        conn.execute(_WRITERS_IN_TURN)


class SchemaBehind(Exception):
    """The store's schema is not the one this release needs (read-only commands
    never migrate: ``walkin migrate`` does)."""


def check_schema(engine: Engine) -> None:
    """:raises SchemaBehind: the database has no schema, or another revision than
    this release's newest."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaBehind(
            f"the store at {where} has schema revision {current or 'none (empty)'}, this release "
            f"needs {head}: run `walkin migrate`"
        )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of several processes starting at once."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(727274)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(os.path.abspath(database) + ".migrate.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine, person_key: AttributePath | None = None) -> AttributePath:
    """Bring the schema to the newest revision (Alembic), creating it if needed, and,
    given ``person_key``, make the users' person keys hold that attribute
    (:func:`.person_keys.align`: folded again for everyone if another was recorded).

    :returns: the person key attribute the store now holds.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as conn:
        begin(conn, write=True)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return person_keys.after_upgrade(conn, person_key)
