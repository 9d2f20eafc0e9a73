"""``walkin check-target``: sign in to the configured directory and read its groups.

For whoever sets a target up: do the credentials work, and can the connector read
the group(s) the mapping names? It answers before the first sync writes anything,
printing what it found (member count, the first few members) or exactly what failed,
and exits 0 when every group was read, 1 otherwise. It writes nothing and needs no
store.
"""

from __future__ import annotations

import sys

import click

from connector.settings import Settings

from .settings import TargetKind


def describe(settings: Settings) -> str:
    """One line naming the target and how the connector signs in to it (no secrets)."""
    kind = settings.sync.target
    if kind == TargetKind.ENTRA and settings.graph is not None:
        g = settings.graph
        credential = f"certificate {g.certificate.thumbprint}" if g.certificate else "client secret"
        return f"target entra: tenant {g.tenant_id}, client {g.client_id} ({credential}), {g.graph_url}"
    if kind == TargetKind.LDAP and settings.ldap is not None:
        ldap = settings.ldap
        who = ldap.bind_dn or (f"SASL {ldap.sasl_mechanism}" if ldap.sasl_mechanism else "anonymous")
        return f"target ldap: {', '.join(ldap.urls)} as {who}"
    return f"target {kind}"


def _sign_in(target) -> str | None:
    """Sign in now when the target can (Entra: acquire a token); what to report."""
    from .targets.graph import GraphTarget

    if isinstance(target, GraphTarget):
        target.client.tokens.token()
        return "signed in: access token acquired"
    return None


@click.command("check-target")
@click.option("--entitlement", "entitlements", multiple=True, help="Only this entitlement's group (repeatable).")
@click.option(
    "--show", default=5, show_default=True, type=click.IntRange(min=0), help="How many members to list per group."
)
def check_target(entitlements: tuple[str, ...], show: int) -> None:
    """Sign in to the configured target and read the group(s) the mapping names.

    Prints each group's member count and first members, or exactly what failed.
    Exit status: 0 every group was read; 1 otherwise. Nothing is written.
    """
    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping

    from .context import group_for, make_target
    from .targets.base import TargetError

    settings = Settings()
    mapping = load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    kind = settings.sync.target
    names = list(entitlements) or list(mapping.evaluation_order)
    unknown = [n for n in names if n not in mapping.entitlements]
    if unknown:
        raise click.UsageError(f"unknown entitlement(s): {', '.join(unknown)}")
    groups = {name: group_for(mapping, name, kind) for name in names}
    click.echo(describe(settings))
    store = None
    if kind == "store":
        from connector.store.database import Store

        store = Store(settings.database_url, read_only=True)
    try:
        target, _ = make_target(settings, store=store, mapping=mapping)
    except TargetError as exc:
        click.echo(f"FAILED: {exc}")
        sys.exit(1)
    try:
        sys.exit(0 if _check(target, groups, kind, show) else 1)
    finally:
        target.close()
        if store is not None:
            store.dispose()


def _check(target, groups: dict[str, str | None], kind: str, show: int) -> bool:
    from .targets.base import TargetError

    try:
        said = _sign_in(target)
    except TargetError as exc:
        click.echo(f"sign-in FAILED ({type(exc).__name__}): {exc}")
        return False
    if said:
        click.echo(said)
    if not any(groups.values()):
        click.echo(f"the mapping names no {kind} group: nothing to read")
        return False
    ok = True
    for name, group in groups.items():
        if group is None:
            click.echo(f"{name}: no {kind} group in the mapping (skipped)")
            continue
        try:
            members = sorted(target.read_members(group))
        except TargetError as exc:
            click.echo(f"{name}: {group}: FAILED ({type(exc).__name__}): {exc}")
            ok = False
            continue
        listed = ", ".join(members[:show]) + (", …" if len(members) > show else "")
        click.echo(
            f"{name}: {group}: {len(members)} member{'s' if len(members) != 1 else ''}"
            + (f": {listed}" if listed else "")
        )
    return ok
