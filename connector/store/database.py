"""The store object: one engine, a reader and a writer session factory."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from .engine import make_engine, migrate, writer


class Store:
    """Owns the engine. ``read()`` and ``write()`` give a session in a transaction
    that commits on success and rolls back on any exception."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.engine: Engine = make_engine(url)
        if auto_migrate:
            migrate(self.engine)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(writer(self.engine), expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._writer() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness probe: any failure means "not ready"
            return False

    def dispose(self) -> None:
        self.engine.dispose()
