"""``walkin sync``, ``walkin worker`` and ``walkin explain`` (``walkin audit``: sync/audit_cli.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from connector.settings import Settings

from .reports.cli import DAY


@contextmanager
def _opened(progress: bool = True, read_only: bool = False) -> Iterator:
    """The sync context from the settings; its store and target are closed after use.
    ``read_only``: the store is opened for reading only (and never migrated)."""
    from connector.clock import of_command

    from .context import build_context
    from .targets.base import TargetError

    settings = Settings()
    store = _read_only_store(settings.database_url) if read_only else None
    try:
        ctx = build_context(
            settings,
            store=store,
            progress=(lambda m: click.echo(m, err=True)) if progress else None,
            clock=of_command(),
        )
    except TargetError as exc:
        if store is not None:
            store.dispose()
        raise click.ClickException(str(exc)) from None
    try:
        yield ctx
    finally:
        ctx.target.close()
        ctx.store.dispose()


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan (who, add/remove, why); write nothing.")
@click.option("--entitlement", "entitlements", multiple=True, help="Only this entitlement (repeatable).")
@click.option("--user", help="Only this person (userName, externalId or id).")
@click.option(
    "--allow-removals",
    "release",
    type=int,
    metavar="RUN_ID",
    help="Apply the removals the deletion guard held in run RUN_ID.",
)
def sync(dry_run: bool, entitlements: tuple[str, ...], user: str | None, release: int | None) -> None:
    """Reconcile now: make each entitlement's group match today's decisions.

    Exit status: 0 done; 3 removals held by the deletion guard (release them with
    --allow-removals RUN_ID); 1 failed, partial or refused.
    """
    from .worker import entitlements_with_groups

    with _opened(read_only=dry_run) as ctx:
        names = list(entitlements) or entitlements_with_groups(ctx)
        unknown = [n for n in names if n not in ctx.mapping.entitlements]
        if unknown:
            raise click.UsageError(f"unknown entitlement(s): {', '.join(unknown)}")
        person_ids = None
        if user:
            with ctx.store.session_read() as session:
                person_ids = [_one_person(session, user)]
        worst = _sync_all(ctx, names, person_ids, dry_run, release)
        if not dry_run and ctx.settings.audit.checkpoints:
            from .checkpoints import Checkpointer

            Checkpointer(ctx.settings.audit, ctx.store).write_now(ctx.clock.now())
    sys.exit(worst)


def _read_only_store(url: str, **kwargs):
    """The store for a command that only reads: never migrated, writes refused. A
    store that is not there or not at this release's schema raises SchemaBehind,
    which the ``walkin`` group turns into one line (connector/cli.py)."""
    from connector.store.database import Store

    return Store(url, read_only=True, **kwargs)


def _one_person(session, user: str) -> str:
    """The id of the one person ``user`` names; a usage error (exit 2) when it names
    nobody, or several people (listed, so the caller can give one's id)."""
    from .lookup import AmbiguousUser, one_person

    try:
        found = one_person(session, user)
    except AmbiguousUser as exc:
        raise click.UsageError(str(exc)) from None
    if found is None:
        raise click.UsageError(f"no user '{user}' in the store")
    return found


def _sync_all(ctx, names: list[str], person_ids: list[str] | None, dry_run: bool, release: int | None) -> int:
    from .ledger import RunKind, RunStatus
    from .reconcile import reconcile

    worst = 0
    for name in names:
        result = reconcile(
            ctx,
            name,
            kind=RunKind.RELEASE if release else RunKind.MANUAL,
            person_ids=person_ids,
            dry_run=dry_run,
            release=release,
        )
        if dry_run:
            if result.status is not RunStatus.OK:  # the plan could not be made: say why, never "0 to add"
                click.echo(f"{name}: dry run {result.status.value} — {result.detail}", err=True)
            else:
                _print_plan(name, result.plan)
        else:
            click.echo(
                f"{name}: run {result.run_id} {result.status.value} {result.counts}"
                + (f" — {result.detail}" if result.detail else "")
            )
            if result.held:
                click.echo(
                    f"  {len(result.held)} removals held: review, then `walkin sync --allow-removals {result.run_id}`"
                )
        worst = max(worst, result.exit_code)
    return worst


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
    from connector import logs

    from . import metrics
    from .worker import Worker

    logs.configure(Settings())
    with _opened(progress=False) as ctx:
        w = Worker(ctx)
        if once:
            beat = w.heartbeat()
            beat.beat()
            while w.step():
                pass
            return
        served = ctx.settings.metrics
        server = (
            None if served.worker_port is None else metrics.serve(served.worker_host, served.worker_port, served.token)
        )
        w.install_signals()
        try:
            w.run_forever()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()


@click.command()
@click.argument("user")
@click.option("--at", "at", type=DAY, help="Evaluation date (default: today).")
@click.option("--entitlement", default="walkin", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(user: str, at, entitlement: str, as_json: bool) -> None:
    """Explain a person's access: every requirement with its evidence, and what to do next.

    USER is a userName, externalId or id from the store.
    """
    import json as json_module

    from connector.clock import of_command
    from mappings.advice import explain_decision
    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping
    from mappings.policy import explain as explain_policy

    from .people import load_people

    settings = Settings()
    mapping = load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    if entitlement not in mapping.entitlements:
        raise click.UsageError(f"unknown entitlement '{entitlement}'")
    store = _read_only_store(settings.database_url)
    try:
        with store.session_read() as session:
            person_id = _one_person(session, user)
            person = load_people(session, mapping, settings.sync.person_key, [person_id])[0]
    finally:
        store.dispose()
    day = at.date() if at else of_command().today(mapping.policy.zone)
    decision, evidence = explain_policy(person.facts, entitlement, day, mapping)
    result = explain_decision(person.user_name or person_id, person.facts, decision, evidence, mapping, person.problems)
    click.echo(json_module.dumps(result.to_json_dict(), default=str) if as_json else result.to_text(), nl=as_json)


def commands() -> list[click.Command]:
    from .audit_cli import audit
    from .check import check_target
    from .levers_cli import commands as lever_commands
    from .notices.cli import notify
    from .reports.cli import commands as report_commands

    return [sync, worker, audit, explain, check_target, notify, *report_commands(), *lever_commands()]
