"""``walkin override``, ``walkin approve`` and ``walkin withdraw``: the
administrator's levers on the command line (the admin API offers the same)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from connector.settings import Settings

from .reports.cli import DAY


@contextmanager
def _levers() -> Iterator[tuple]:
    """Settings, mapping, store (migrated: these commands write) and clock."""
    from connector.clock import of_command
    from connector.store.database import Store
    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping

    settings = Settings()
    mapping = load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    store = Store(settings.database_url, person_key=settings.sync.person_key)
    try:
        yield settings, mapping, store, of_command()
    finally:
        store.dispose()


def _person(store, user: str) -> str:
    from .cli import _one_person

    with store.session_read() as session:
        return _one_person(session, user)


@click.group()
def override() -> None:
    """Administrator's exceptions: grant or deny an entitlement until a date."""


def _set(effect_name: str) -> click.Command:
    @click.argument("user")
    @click.option("--entitlement", default="walkin", show_default=True)
    @click.option("--until", type=DAY, required=True, help="Last day it applies (inclusive).")
    @click.option("--reason", required=True)
    @click.option("--by", required=True, help="Who decided it (kept in the audit trail).")
    def command(user: str, entitlement: str, until, reason: str, by: str) -> None:
        from mappings.vocabulary import Effect

        from .levers import Acting
        from .overrides import set_override

        with _levers() as (settings, mapping, store, clock):
            row = set_override(
                store,
                clock,
                mapping,
                settings.admin,
                person_id=_person(store, user),
                entitlement=entitlement,
                effect=Effect(effect_name),
                until=until.date(),
                reason=reason,
                acting=Acting(by),
            )
        click.echo(
            f"override {row['id']}: {row['effect']} {row['entitlement']} to {row['user_name']} through {row['until']}"
        )

    command.__doc__ = f"{effect_name.capitalize()} USER the entitlement through --until (at most the longest override)."
    return click.command(effect_name)(command)


@override.command("list")
@click.option("--user", help="Only this person's.")
@click.option("--all", "include_ended", is_flag=True, help="Ended ones too.")
def list_command(user: str | None, include_ended: bool) -> None:
    """Overrides in force (or all), newest first."""
    from .overrides import list_overrides

    with _levers() as (_, _, store, _):
        person = _person(store, user) if user else None
        with store.session_read() as session:
            rows = list_overrides(session, person_id=person, include_ended=include_ended)
    for r in rows:
        ended = f"  ended {r['ended_at'][:10]} by {r['ended_by']}: {r['end_reason']}" if r["ended_at"] else ""
        click.echo(
            f"{r['id']}\t{r['user_name']}\t{r['entitlement']}\t{r['effect']}\tthrough {r['until']}\t"
            f"by {r['by']}: {r['reason']}{ended}"
        )


@override.command("end")
@click.argument("override_id", type=int)
@click.option("--reason", required=True)
@click.option("--by", required=True)
def end_command(override_id: int, reason: str, by: str) -> None:
    """End override ID now (the person is re-decided without it)."""
    from .levers import Acting
    from .overrides import end_override

    with _levers() as (_, _, store, clock):
        row = end_override(store, clock, override_id=override_id, reason=reason, acting=Acting(by))
    click.echo(f"override {row['id']} ended")


override.add_command(_set("grant"))
override.add_command(_set("deny"))


def _approval_command(name: str) -> click.Command:
    @click.argument("user")
    @click.option("--location", required=True, help="The location code the approval is for.")
    @click.option("--entitlement", default="walkin", show_default=True)
    @click.option("--by", "approver", required=True, help="The approver (userName, externalId or id).")
    def command(user: str, location: str, entitlement: str, approver: str) -> None:
        from .approvals import approve, withdraw
        from .levers import Acting

        with _levers() as (settings, mapping, store, clock):
            approver_id = _person(store, approver)
            act = approve if name == "approve" else withdraw
            result = act(
                store,
                clock,
                mapping,
                settings.sync.person_key,
                person_id=_person(store, user),
                location=location,
                entitlement=entitlement,
                approver_id=approver_id,
                acting=Acting(f"{approver} (cli)"),
            )
        rows = result if isinstance(result, list) else [result]
        for r in rows:
            state = f"withdrawn {r['withdrawn_at'][:10]}" if r["withdrawn_at"] else f"approved on {r['approved_on']}"
            click.echo(f"approval {r['id']}: {r['user_name']} for {r['location']} ({r['entitlement']}) {state}")

    command.__doc__ = (
        "Record an approval of USER for a location, dated today; --by must be an approver of it."
        if name == "approve"
        else "Withdraw USER's approval records for a location; --by must be an approver of it."
    )
    return click.command(name)(command)


def commands() -> list[click.Command]:
    return [override, _approval_command("approve"), _approval_command("withdraw")]
