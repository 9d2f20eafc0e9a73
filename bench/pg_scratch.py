"""Throw-away PostgreSQL databases for the benchmarks (``--postgres ADMIN_URL``):
created on a loopback server only, remembered, and dropped by :func:`drop_all` at exit."""

from __future__ import annotations

import sys

created: list[tuple[str, str]] = []  # (admin url, database) not dropped yet


def engine(admin: str):
    """An autocommit engine on the admin URL; refuses a server that is not on loopback."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if make_url(admin).host not in (None, "127.0.0.1", "localhost", "::1"):
        raise SystemExit("--postgres must point at a server on loopback")
    return create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def url(admin: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def create(admin: str, name: str, template: str | None = None) -> str:
    """(Re)create database ``name`` (optionally from ``template``); return its URL."""
    admin_engine = engine(admin)
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin_engine.dispose()
    if (admin, name) not in created:
        created.append((admin, name))
    return url(admin, name)


def drop(admin: str, name: str) -> None:
    admin_engine = engine(admin)
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_engine.dispose()
    if (admin, name) in created:
        created.remove((admin, name))


def drop_all() -> None:
    """Best effort, at exit: drop every database still remembered."""
    for admin, name in list(created):
        try:
            drop(admin, name)
        except Exception as exc:
            print(f"cleanup: database {name}: {exc}", file=sys.stderr)
