"""``walkin audit``: show the trail; ``verify`` its chain (in the store, or an export
offline) against the signed checkpoints; ``export`` it with the chain; ``keygen``
the checkpoints' signing key."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.settings import Settings

from .reports.cli import DAY


def _store(settings: Settings):
    from .cli import _read_only_store

    return _read_only_store(settings.database_url)


@click.group(invoke_without_command=True)
@click.option("--user", help="userName, externalId or id (a deleted user's id or userName too).")
@click.option("--since", type=DAY, help="Entries from this date (UTC).")
@click.option("--entitlement")
@click.option("--run", "run_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
def audit(ctx: click.Context, user: str | None, since, entitlement: str | None, run_id: int | None, fmt: str) -> None:
    """Show the audit trail: every grant, revoke, hold, drift and failure, and why.

    `walkin audit verify` checks that it was not changed; `walkin audit export`
    hands it out with its chain.
    """
    if ctx.invoked_subcommand is not None:
        if user or since or entitlement or run_id is not None or fmt != "table":
            raise click.UsageError(f"the options of `walkin audit` do not apply to `audit {ctx.invoked_subcommand}`")
        return
    from .audit import read, render
    from .lookup import AmbiguousUser

    store = _store(Settings())
    try:
        with store.session_read() as session:
            rows = read(
                session, user=user, since=since.date() if since else None, entitlement=entitlement, run_id=run_id
            )
    except AmbiguousUser as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.dispose()
    click.echo(render(rows, fmt), nl=False)


@audit.command()
@click.option(
    "--checkpoints",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Hold the chain against the signed checkpoints in this folder (catches removed newest entries and a "
    "rebuilt chain).",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The checkpoints' public key (PEM); default: the public half of WALKIN_AUDIT__SIGNING_KEY_PATH.",
)
@click.option(
    "--file",
    "export",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify this export (walkin audit export) instead of the store: offline, no database needed.",
)
def verify(folder: Path | None, public_key: Path | None, export: Path | None) -> None:
    """Recompute the audit chain and name the first entry changed, removed, inserted
    or reordered. Exit status 0: intact; 1: broken (one line says where and how)."""
    from connector.store.chain import head

    from . import audit_export, checkpoints
    from .verification import against_checkpoints, against_head, summary, walk

    key, found = None, []
    if folder is not None:
        key = _public_key(public_key)
        found = checkpoints.read_all(folder)
        if not found:
            raise click.ClickException(f"no checkpoints in {folder}")
    wanted = {c.seq for c in found}
    if export is not None:
        seen, finding = walk(
            audit_export.read(export), from_genesis=False, wanted=wanted, locate=audit_export.locate_in_file(export)
        )
        recorded = None
    else:
        store = _store(Settings())
        try:
            with store.connection_read() as conn:
                seen, finding = walk(
                    audit_export.from_store(conn),
                    from_genesis=True,
                    wanted=wanted,
                    locate=audit_export.locate_in_store(conn),
                )
                recorded = head(conn)
        finally:
            store.dispose()
    coverage = None
    if finding is None and key is not None:
        coverage, finding = against_checkpoints(seen, found, key, whole=export is None)
    if finding is None and recorded is not None:
        finding = against_head(seen, recorded)
    if finding is not None:
        raise click.ClickException(str(finding))
    click.echo(summary(seen, coverage))


def _public_key(path: Path | None):
    from .checkpoints import load_public_key

    if path is not None:
        return load_public_key(path)
    configured = Settings().audit.signing_key_path
    if configured is None:
        raise click.UsageError("give --public-key, or set WALKIN_AUDIT__SIGNING_KEY_PATH")
    return load_public_key(configured)


@audit.command()
@click.option("--since", type=DAY, help="From the first entry of this date (UTC) to the newest; default: all.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this new file (never over an existing one); default: standard output.",
)
def export(since, fmt: str, output: Path | None) -> None:
    """Export the audit trail with its chain (seq, prev_hash, hash): every entry from
    the first of --since on, so `walkin audit verify --file` can check it offline."""
    from . import audit_export

    store = _store(Settings())
    try:
        with store.connection_read() as conn:
            start = audit_export.first_seq_since(conn, since.date()) if since else 1
            entries = audit_export.from_store(conn, start) if start is not None else iter(())
            if output is None:
                n = audit_export.write(entries, audit_export.ExportFormat(fmt), sys.stdout)
            else:
                try:
                    with open(output, "x", encoding="utf-8", newline="") as handle:
                        n = audit_export.write(entries, audit_export.ExportFormat(fmt), handle)
                except FileExistsError:
                    raise click.ClickException(f"{output} exists: an export never overwrites a file") from None
    finally:
        store.dispose()
    click.echo(f"{n} entries exported", err=True)


@audit.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path: Path) -> None:
    """Make an Ed25519 key for the checkpoints: PATH (private, mode 0600: the
    worker's WALKIN_AUDIT__SIGNING_KEY_PATH) and PATH.pub (for auditors)."""
    from .checkpoints import key_id
    from .checkpoints import keygen as make_key

    try:
        public = make_key(path)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists: a key is never overwritten") from None
    click.echo(f"wrote {path} (private) and {path}.pub (public); key {key_id(public)}")
