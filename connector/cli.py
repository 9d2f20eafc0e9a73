"""The ``walkin`` command line."""

from __future__ import annotations

import click

from connector.settings import Settings


@click.group()
def main() -> None:
    """walkin: SCIM provisioning connector for IC Walk-in Scheduling."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int,
              help="Worker processes (SQLite serialises writes; use PostgreSQL for many).")
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run the SCIM service under gunicorn (a production WSGI server)."""
    from connector.server import run

    run(Settings(), host=host, port=port, workers=workers, threads=threads)


@main.command()
def migrate() -> None:
    """Create or upgrade the store's schema to the newest revision."""
    from connector.store.database import Store

    settings = Settings()
    Store(settings.database_url).dispose()
    click.echo(f"schema is up to date on {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register_optional() -> None:
    """Commands of the other parts of the system, when they are installed."""
    try:
        from mappings.cli import commands
    except ImportError:
        return
    for command in commands():
        main.add_command(command)


_register_optional()
