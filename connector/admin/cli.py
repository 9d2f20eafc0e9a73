"""``walkin admin-token create|list|revoke``: the admin API's tokens, made on the
server's shell by someone who already has it (the token is printed once)."""

from __future__ import annotations

import click

from connector.settings import Settings


@click.group("admin-token")
def admin_token() -> None:
    """Admin API tokens (separate from the SCIM tokens): create, list, revoke."""


@admin_token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "approver", "admin"]), required=True)
@click.option("--approver", "approver", help="approver tokens: the person it approves as (userName, externalId or id).")
@click.option("--days", type=click.IntRange(min=1), help="Lifetime (default WALKIN_ADMIN__TOKEN_DAYS).")
@click.option("--by", required=True, help="Who creates it (kept in the audit trail).")
def create(name: str, role: str, approver: str | None, days: int | None, by: str) -> None:
    """Create a token NAME with a role; prints the token once — store it now."""
    from connector.clock import of_command
    from connector.store.database import Store
    from sync.cli import _one_person
    from sync.levers import Acting

    from .roles import AdminRole
    from .tokens import create_token

    settings = Settings()
    store = Store(settings.database_url, person_key=settings.sync.person_key)
    try:
        approver_id = None
        if approver:
            with store.session_read() as session:
                approver_id = _one_person(session, approver)
        token, row = create_token(
            store,
            of_command(),
            settings.admin,
            name=name,
            role=AdminRole(role),
            approver_id=approver_id,
            days=days,
            acting=Acting(f"{by} (cli)"),
        )
    finally:
        store.dispose()
    click.echo(f"admin token {row['id']} '{row['name']}' ({row['role']}) expires {row['expires_at'][:10]}", err=True)
    click.echo(token)


@admin_token.command("list")
def list_command() -> None:
    """Every token: id, name, role, approver, expiry, revoked (never the token)."""
    from connector.store.database import Store

    from .tokens import list_tokens

    settings = Settings()
    store = Store(settings.database_url, read_only=True)
    try:
        with store.session_read() as session:
            rows = list_tokens(session)
    finally:
        store.dispose()
    for r in rows:
        state = f"revoked {r['revoked_at'][:10]}" if r["revoked_at"] else f"expires {r['expires_at'][:10]}"
        approver = f"\tas {r['approver'] or r['approver_id']}" if r["approver_id"] else ""
        click.echo(f"{r['id']}\t{r['name']}\t{r['role']}\t{state}\tby {r['created_by']}{approver}")


@admin_token.command("revoke")
@click.argument("token_id", type=int)
@click.option("--by", required=True, help="Who revokes it (kept in the audit trail).")
def revoke(token_id: int, by: str) -> None:
    """Revoke token TOKEN_ID now."""
    from connector.clock import of_command
    from connector.store.database import Store
    from sync.levers import Acting

    from .tokens import revoke_token

    settings = Settings()
    store = Store(settings.database_url, person_key=settings.sync.person_key)
    try:
        row = revoke_token(store, of_command(), token_id=token_id, acting=Acting(f"{by} (cli)"))
    finally:
        store.dispose()
    click.echo(f"admin token {row['id']} '{row['name']}' revoked")


def commands() -> list[click.Command]:
    return [admin_token]
