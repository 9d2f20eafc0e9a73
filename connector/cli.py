"""The ``walkin`` command line."""

from __future__ import annotations

import click

from connector.settings import Settings


class _Commands(click.Group):
    """The ``walkin`` group: a bad setting, mapping file or store becomes one line
    (exit 1) at this one boundary, whichever command met it (connector/setting_problems.py)."""

    def invoke(self, ctx: click.Context):
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        from connector.setting_problems import mapping_line, settings_line, source_line
        from connector.store.engine import SchemaBehind
        from mappings.model import MappingError
        from sync.checkpoints import AuditProblem
        from sync.levers import LeverError
        from sync.reports import UnknownEntitlement

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            raise click.ClickException(settings_line(exc)) from None
        except SettingsError as exc:
            raise click.ClickException(source_line(exc)) from None
        except MappingError as exc:
            raise click.ClickException(mapping_line(exc.problems, exc.source)) from None
        except SchemaBehind as exc:
            raise click.ClickException(str(exc)) from None
        except (LeverError, UnknownEntitlement) as exc:  # a lever refused, a report asked of nothing: nothing changed
            raise click.ClickException(str(exc)) from None
        except AuditProblem as exc:  # a key, checkpoint or export file the audit commands cannot use
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
def main() -> None:
    """walkin: SCIM provisioning connector for IC Walk-in Scheduling."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=int,
    help="Worker processes (SQLite serialises writes; use PostgreSQL for many).",
)
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker (gthread only).")
@click.option(
    "--worker-class",
    "kind",
    type=click.Choice(["gevent", "gthread"]),
    default="gevent",
    show_default=True,
    help="gevent: a greenlet per connection, slow clients cannot starve the service; gthread: only "
    "behind a proxy that buffers whole requests.",
)
@click.option(
    "--body-timeout",
    "body_seconds",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a request body (gevent; the headers have the keep-alive 5 s).",
)
def serve(host: str, port: int, workers: int, threads: int, kind: str, body_seconds: float) -> None:
    """Run the SCIM service under gunicorn (a production WSGI server)."""
    from connector.metrics_dir import metrics_directory

    with metrics_directory() as metrics_dir:  # before prometheus-client is imported (see there)
        from connector.server import WorkerKind, run

        run(
            Settings(),
            host=host,
            port=port,
            workers=workers,
            threads=threads,
            kind=WorkerKind(kind),
            body_seconds=body_seconds,
            metrics_dir=metrics_dir,
        )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address (anything else is refused).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--people", default=300, show_default=True, type=click.IntRange(0, 5000), help="Generated people beside §8's."
)
def demo(host: str, port: int, people: int) -> None:
    """Try the whole flow on this machine: a scratch store with the policy's worked
    examples and generated people, the worker on the embedded target, and the console
    with a demo sign-in (no identity provider) on loopback."""
    from connector.demo import run

    try:
        run(host, port, people, say=lambda line: click.echo(line, err=True))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def migrate() -> None:
    """Create or upgrade the store's schema to the newest revision, and fold the
    users' person keys again when WALKIN_SYNC__PERSON_KEY changed."""
    from connector.store.database import Store

    settings = Settings()
    Store(settings.database_url, person_key=settings.sync.person_key).dispose()
    click.echo(f"schema is up to date on {_safe_url(settings.database_url)} (person keys: {settings.sync.person_key})")


@main.group("import")
def import_() -> None:
    """Import data exported by other district systems."""


@import_.command("certifications")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
def import_certifications(csv_file: str) -> None:
    """Import the training system's completion export (CSV with a header:
    userName or employeeNumber, course, kind, completed_on).

    Idempotent; bad rows are reported with their line number and skipped; the
    good rows are written all at once. Exit status 1 when any row was bad.
    """
    from connector.certifications import import_certifications as run_import
    from connector.clock import of_command
    from connector.store.database import Store

    settings = Settings()
    try:
        with open(csv_file, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{csv_file} is not UTF-8 text") from None
    store = Store(settings.database_url, person_key=settings.sync.person_key)
    try:
        report = run_import(store, text, of_command())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.dispose()
    for error in report.errors:
        click.echo(error, err=True)
    click.echo(
        f"{report.rows} rows: {report.added} completions added to {report.users_changed} users, "
        f"{report.unchanged} already known, {len(report.errors)} rejected"
    )
    if report.errors:
        raise SystemExit(1)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _register() -> None:
    """Commands of the other parts of the system."""
    from connector.admin.cli import commands as admin_commands
    from mappings.cli import commands as mapping_commands
    from sync.cli import commands as sync_commands

    for command in [*mapping_commands(), *sync_commands(), *admin_commands()]:
        main.add_command(command)


_register()


if __name__ == "__main__":
    main()
