"""``walkin report NAME`` (members, pending, waiting, expiring, losses, drift,
unresolved, failed, held, runs, history USER) and ``walkin simulate``. Read-only:
the store is opened for reading and never migrated."""

from __future__ import annotations

import click

from connector.settings import Settings


class _Day(click.DateTime):
    """A district day, YYYY-MM-DD, between mappings.calendar.FIRST_DAY and LAST_DAY."""

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d"])

    def convert(self, value, param, ctx):
        from mappings.calendar import FIRST_DAY, LAST_DAY

        day = super().convert(value, param, ctx)
        if not FIRST_DAY <= day.date() <= LAST_DAY:
            self.fail(f"{value} is not between {FIRST_DAY} and {LAST_DAY}", param, ctx)
        return day


DAY = _Day()
_FORMAT = click.Choice(["table", "json", "csv"])


def _context(settings: Settings, mapping_path=None):
    from connector.clock import of_command
    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping

    from . import ReportContext

    mapping = load_mapping(mapping_path or settings.mapping_path or DEFAULT_MAPPING_PATH)
    return ReportContext(mapping, settings.sync.target.value, of_command().today(mapping.policy.zone))


def _store(settings: Settings):
    from connector.store.database import Store

    return Store(settings.database_url, read_only=True)


@click.group()
def report() -> None:
    """Who has access and why, what is late, who waits for whom, what expires, what was lost."""


def _report_command(name: str) -> click.Command:
    from . import REPORTS

    function = REPORTS[name]

    @click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
    @click.option("--entitlement", default="walkin", show_default=True)
    @click.option("--location", help="Only people at this location code.")
    @click.option("--role", help="Only people in this role (after the job-code table).")
    @click.option("--since", type=DAY, help="Period start, a district day (losses, drift, unresolved, failed).")
    @click.option("--until", type=DAY, help="Period end, inclusive (default: today).")
    @click.option("--within", "within_days", type=click.IntRange(min=0), help="Window in days (expiring).")
    @click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Runs shown (runs).")
    @click.option("--overdue", is_flag=True, help="Only those past their deadline (pending).")
    def command(fmt, entitlement, location, role, since, until, within_days, limit, overdue) -> None:
        from . import Filters, Options, render

        settings = Settings()
        ctx = _context(settings)
        filters = Filters(entitlement=entitlement, location=location, role=role)
        options = Options(
            since=since.date() if since else None,
            until=until.date() if until else None,
            within_days=within_days,
            limit=limit,
            overdue=overdue,
        )
        store = _store(settings)
        try:
            with store.session_read() as session:
                result = function(session, ctx, filters, options)
        finally:
            store.dispose()
        click.echo(render(result, fmt), nl=False)

    command.__doc__ = (function.__doc__ or name).split("\n\n")[0]
    return click.command(name)(command)


@click.command("history")
@click.argument("user")
@click.option("--at", type=DAY, help="Only what happened by the end of this district day, and access as it stood.")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def history_command(user: str, at, fmt: str) -> None:
    """One person's timeline: SCIM changes, decision changes with reasons, grants and revokes."""
    from sync.cli import _one_person

    from . import history, render

    settings = Settings()
    ctx = _context(settings)
    store = _store(settings)
    try:
        with store.session_read() as session:
            result = history(session, ctx, _one_person(session, user), at.date() if at else None)
    finally:
        store.dispose()
    click.echo(render(result, fmt), nl=False)


@click.command()
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False), help="A proposed mapping.")
@click.option("--at", type=DAY, help="Decide on this day (default: today).")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def simulate(mapping_path: str | None, at, fmt: str) -> None:
    """What-if: who would gain and who would lose access under a new mapping and/or
    on another day, against today's stored decisions. Writes nothing."""
    from mappings.model import load_mapping

    from ..simulate import simulate as run_simulation
    from . import render

    settings = Settings()
    ctx = _context(settings)
    proposed = load_mapping(mapping_path) if mapping_path else None
    store = _store(settings)
    try:
        with store.session_read() as session:
            result = run_simulation(
                session, ctx.mapping, proposed, ctx.today, at.date() if at else None, settings.sync.person_key
            )
    finally:
        store.dispose()
    click.echo(render(result, fmt), nl=False)


def commands() -> list[click.Command]:
    from . import REPORTS

    for name in REPORTS:
        report.add_command(_report_command(name))
    report.add_command(history_command)
    return [report, simulate]
