"""The store object: one engine, a reader and a writer session factory."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mappings.scim import AttributePath

from . import person_keys
from .engine import SchemaBehind, begin, check_schema, make_engine, migrate


class _WriterLock:
    """Queues SQLite writers of this process (a mutex) and of other processes (an
    ``flock`` beside the database file).

    SQLite itself makes a second writer sleep and poll until the first is done,
    which wastes most of a busy server's time; a lock that wakes its waiter at
    once keeps writes flowing. PostgreSQL needs none of this.
    """

    def __init__(self, database: str | None) -> None:
        self._mutex = threading.Lock()
        self._path = os.path.abspath(database) + ".write.lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a fork gets its own descriptor
            self._fd, self._pid = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600), os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class ReadTooCostly(Exception):
    """A read stopped by its time budget (:meth:`Store.connection_read`)."""


#: SQLite virtual-machine steps between two looks at the clock (about a millisecond).
_STEPS = 20_000


@contextmanager
def _within(conn: Connection, budget: float) -> Iterator[None]:
    """Stop ``conn``'s statements once ``budget`` seconds have gone (see :meth:`Store.connection_read`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(max(1, int(budget * 1000)))})
        try:
            yield
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled
                raise ReadTooCostly(budget) from None
            raise
        return
    # A sqlite3.Connection: SQLAlchemy's DBAPIConnection protocol does not declare
    # set_progress_handler, and types the attribute as optional (None once closed).
    raw: Any = conn.connection.dbapi_connection
    deadline = time.monotonic() + budget
    stopped = [False]

    def check() -> int:
        if time.monotonic() > deadline:
            stopped[0] = True
            return 1  # SQLite stops the statement: OperationalError "interrupted"
        return 0

    raw.set_progress_handler(check, _STEPS)
    try:
        yield
    except OperationalError:
        if stopped[0]:
            raise ReadTooCostly(budget) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)


def _must_exist(url: str) -> None:
    """A read-only store on an SQLite file that is not there: say so (connecting
    would create an empty file)."""
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in (None, "", ":memory:")
        and not database.startswith("file:")
        and not os.path.exists(database)
    ):
        raise SchemaBehind(f"no store at {database}: run `walkin migrate` (or start `walkin serve`) to create it")


class Store:
    """Owns the engine. Four transactions, each committing on success and rolling
    back on any exception, named by what they yield and whether they write:

    - ``session_read()`` / ``session_write()``: an ORM :class:`~sqlalchemy.orm.Session`
      (the sync, the CLI commands, the tests);
    - ``connection_read(budget=None)`` / ``connection_write()``: a Core
      :class:`~sqlalchemy.Connection`, for the SCIM request paths, which run a few
      prebuilt statements and need no ORM unit of work.

    On SQLite only these four begin a real transaction (:func:`.engine.begin`): a
    bare ``engine.begin()`` runs each statement on its own.
    """

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        memory_map: bool = True,
        person_key: str | None = None,
        read_only: bool = False,
    ) -> None:
        """:param memory_map: read an SQLite file through a memory map (the SCIM
            service's many small reads); off for processes that scan whole tables now
            and then (the sync), where it would only count the file's pages into
            their resident memory.
        :param person_key: the ``sync.person_key`` setting, which the users'
            ``person_key`` column holds folded (:mod:`.person_keys`). Migrating then
            folds every user's key again if the store recorded another attribute.
            None: whatever the store recorded (read on first use), for processes
            that do not configure it.
        :param read_only: for the commands that only read (``walkin audit``,
            ``explain``, ``sync --dry-run``): never migrates, creates no file, and
            the database refuses writes; the schema must be at this release's head.
        :raises ValueError: ``person_key`` is not a single-valued string attribute.
        :raises SchemaBehind: read-only, and the schema is not at head (or, for an
            SQLite file, there is no file)."""
        self.read_only = read_only
        self.configured_person_key = person_keys.key_path(person_key) if person_key is not None else None
        if read_only:
            _must_exist(url)
        self.engine: Engine = make_engine(url, memory_map=memory_map, read_only=read_only)
        self._person_key = self.configured_person_key
        if read_only:
            check_schema(self.engine)
        elif auto_migrate:
            self._person_key = migrate(self.engine, self.configured_person_key)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        sqlite = self.engine.dialect.name == "sqlite"
        self._lock = _WriterLock(self.engine.url.database) if sqlite and not read_only else None

    @property
    def person_key(self) -> AttributePath:
        """The attribute whose folded value every user write stores as its person key."""
        if self._person_key is None:  # not migrated by this process: as recorded
            with self.connection_read() as conn:
                self._person_key = person_keys.recorded_path(conn)
        return self._person_key

    @contextmanager
    def session_read(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            begin(session.connection(), write=False)
            yield session

    @contextmanager
    def session_write(self) -> Iterator[Session]:
        with self._write_lock(), self._sessions() as session, session.begin():
            begin(session.connection(), write=True)
            yield session

    @contextmanager
    def connection_read(self, budget: float | None = None) -> Iterator[Connection]:
        """A read transaction. ``budget``: seconds its statements may take — on
        SQLite all of them together (a progress handler that interrupts the
        statement running when the time is up), on PostgreSQL each one
        (``statement_timeout``, local to the transaction; a page is its rows and
        its count, per resource type). Beyond, the database stops the
        statement and :class:`ReadTooCostly` is raised. The cost of a read is then
        bounded whatever the filter, like its size already is."""
        with self.engine.connect() as conn, conn.begin():
            begin(conn, write=False)
            if budget is None:
                yield conn
                return
            with _within(conn, budget):
                yield conn

    @contextmanager
    def connection_write(self) -> Iterator[Connection]:
        with self._write_lock(), self.engine.connect() as conn, conn.begin():
            begin(conn, write=True)
            yield conn

    def _write_lock(self):
        return self._lock.held() if self._lock else nullcontext()

    def refresh_statistics(self, written: dict[str, int]) -> None:
        """Have PostgreSQL's planner look again (``ANALYZE``) at the tables a bulk
        write grew past what the planner believes they hold (``written``: table →
        rows just written). Until autovacuum gets to it, a table that grew from
        nothing to tens of thousands of rows in one run is planned as if it were
        empty — a lookup by ``person_id IN (…)`` then filters every row instead of
        using the index (19 s instead of 2 ms for 10,000 people at 100,000). A table
        the planner already knows to be larger is left alone. SQLite plans from the
        schema: nothing to do."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as conn:
            for table, rows in written.items():
                believed = conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table})
                if believed is not None and believed < rows:
                    conn.execute(text(f'ANALYZE "{table}"'))
            conn.commit()

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock:
            self._lock.close()
