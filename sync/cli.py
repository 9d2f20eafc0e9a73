"""``walkin sync``, ``walkin worker`` and ``walkin audit``."""

from __future__ import annotations

import logging
import sys

import click

from connector.settings import Settings


def _context(progress: bool = True):
    from .context import build_context

    return build_context(Settings(), progress=(lambda m: click.echo(m, err=True)) if progress else None)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan (who, add/remove, why); write nothing.")
@click.option("--entitlement", "entitlements", multiple=True, help="Only this entitlement (repeatable).")
@click.option("--user", help="Only this person (userName, externalId or id).")
@click.option("--allow-removals", "release", type=int, metavar="RUN_ID",
              help="Apply the removals the deletion guard held in run RUN_ID.")
def sync(dry_run: bool, entitlements: tuple[str, ...], user: str | None, release: int | None) -> None:
    """Reconcile now: make each entitlement's group match today's decisions.

    Exit status: 0 done; 3 removals held by the deletion guard (release them with
    --allow-removals RUN_ID); 1 failed, partial or refused.
    """
    from .audit import find_person
    from .reconcile import reconcile
    from .targets.base import TargetError
    from .worker import entitlements_with_groups

    try:
        ctx = _context()
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    names = list(entitlements) or entitlements_with_groups(ctx)
    unknown = [n for n in names if n not in ctx.mapping.entitlements]
    if unknown:
        raise click.UsageError(f"unknown entitlement(s): {', '.join(unknown)}")
    person_ids = None
    if user:
        with ctx.store.read() as session:
            found = find_person(session, user)
        if found is None:
            raise click.UsageError(f"no user '{user}' in the store")
        person_ids = [found]
    worst = 0
    for name in names:
        result = reconcile(ctx, name, kind="release" if release else "manual", person_ids=person_ids,
                           dry_run=dry_run, release=release)
        if dry_run:
            _print_plan(name, result.plan)
        else:
            click.echo(f"{name}: run {result.run_id} {result.status.value} {result.counts}"
                       + (f" — {result.detail}" if result.detail else ""))
            if result.held:
                click.echo(f"  {len(result.held)} removals held: review, then `walkin sync --allow-removals "
                           f"{result.run_id}`")
        worst = max(worst, result.exit_code if not dry_run else 0)
    sys.exit(worst)


def _print_plan(name: str, plan) -> None:
    for change in plan.adds:
        click.echo(f"{name}\tadd\t{change.member}\t-")
    for change in plan.removes:
        click.echo(f"{name}\tremove\t{change.member}\t{','.join(change.reasons)}")
    for decision in plan.unresolved:
        click.echo(f"{name}\tunresolved\t{decision.person_id}\tno directory entry")
    click.echo(f"{name}: {len(plan.adds)} to add, {len(plan.removes)} to remove, {plan.kept} kept", err=True)


@click.command()
@click.option("--once", is_flag=True, help="Process what is waiting, then exit.")
def worker(once: bool) -> None:
    """Run the sync worker: journal events within seconds, full reconciles on schedule."""
    from .worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    w = Worker(_context(progress=False))
    if once:
        while w.step():
            pass
        return
    w.install_signals()
    w.run_forever()


@click.command()
@click.option("--user", help="userName, externalId or id.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Entries from this date (UTC).")
@click.option("--entitlement")
@click.option("--run", "run_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def audit(user: str | None, since, entitlement: str | None, run_id: int | None, fmt: str) -> None:
    """Show the audit trail: every grant, revoke, hold, drift and failure, and why."""
    from connector.store.database import Store

    from .audit import read, render

    settings = Settings()
    store = Store(settings.database_url)
    with store.read() as session:
        rows = read(session, user=user, since=since.date() if since else None, entitlement=entitlement,
                    run_id=run_id)
    click.echo(render(rows, fmt), nl=False)


def commands() -> list[click.Command]:
    return [sync, worker, audit]


