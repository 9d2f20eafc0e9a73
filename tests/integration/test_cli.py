"""``walkin sync`` / ``walkin audit`` / ``walkin worker --once`` from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from connector.cli import main
from sync.context import build_context
from sync.worker import full_due
from tests.sync import people as P


def _env(monkeypatch, sync_settings) -> None:
    ldap = sync_settings.ldap
    for key, value in {
        "WALKIN_DATABASE_URL": sync_settings.database_url,
        "WALKIN_MAPPING_PATH": str(sync_settings.mapping_path),
        "WALKIN_SYNC__TARGET": "ldap",
        "WALKIN_SYNC__MAX_REMOVALS": "2",
        "WALKIN_LDAP__URLS": json.dumps(ldap.urls),
        "WALKIN_LDAP__BIND_DN": ldap.bind_dn,
        "WALKIN_LDAP__BIND_PASSWORD": ldap.bind_password.get_secret_value(),
        "WALKIN_LDAP__PEOPLE_BASE": ldap.people_base,
        "WALKIN_LDAP__PLACEHOLDER_MEMBER": ldap.placeholder_member,
    }.items():
        monkeypatch.setenv(key, value)


def test_dry_run_then_sync_then_held_removals_then_release(client, store, slapd, sync_settings, clock, monkeypatch):
    """--dry-run prints the plan and writes nothing; a mass removal exits 3 until released."""
    _env(monkeypatch, sync_settings)
    uids = [f"c{i}" for i in range(8)]
    slapd.add_people(uids)
    ids = [P.create(client, P.person(u)) for u in uids]
    P.approvers(client, "0123", ids)
    runner = CliRunner()

    dry = runner.invoke(main, ["sync", "--dry-run"], obj=clock)
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("\tadd\t") == 8 and len(slapd.member_values()) == 1

    done = runner.invoke(main, ["sync"], obj=clock)
    assert done.exit_code == 0, done.output
    assert len(slapd.member_values()) == 9

    for user_id in ids:
        P.patch(client, user_id, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    held = runner.invoke(main, ["sync", "--entitlement", "walkin"], obj=clock)
    assert held.exit_code == 3, held.output
    assert "8 removals held" in held.output and len(slapd.member_values()) == 9
    run_id = held.output.split("--allow-removals ")[1].split("`")[0]

    released = runner.invoke(main, ["sync", "--allow-removals", run_id], obj=clock)
    assert released.exit_code == 0, released.output
    assert slapd.member_values() == [slapd.placeholder_dn]

    audit = runner.invoke(main, ["audit", "--user", "c3", "--format", "json"], obj=clock)
    actions = [json.loads(line)["action"] for line in audit.output.splitlines()]
    assert actions == ["grant", "hold", "revoke"]
    revoke = json.loads(audit.output.splitlines()[-1])
    assert revoke["reasons"] == ["NO_APPROVAL"] and revoke["evidence"] and revoke["run_id"] == int(run_id) + 1
    table = runner.invoke(main, ["audit", "--since", "2000-01-01"], obj=clock)
    assert table.exit_code == 0 and table.output.splitlines()[0].split()[:3] == ["at", "action", "result"]
    csv_out = runner.invoke(main, ["audit", "--format", "csv"], obj=clock)
    assert csv_out.output.splitlines()[0].startswith("at,run_id,journal_seq,action")


def test_sync_one_user_and_unknown_names(client, store, slapd, sync_settings, clock, monkeypatch):
    """--user narrows the run to one person; unknown users or entitlements are usage errors."""
    _env(monkeypatch, sync_settings)
    slapd.add_people(["solo", "other"])
    solo = P.create(client, P.person("solo"))
    other = P.create(client, P.person("other"))
    P.approvers(client, "0123", [solo, other])
    runner = CliRunner()
    result = runner.invoke(main, ["sync", "--user", "SOLO"], obj=clock)
    assert result.exit_code == 0, result.output
    assert len(slapd.member_values()) == 2  # placeholder + solo only
    assert runner.invoke(main, ["sync", "--user", "nobody"], obj=clock).exit_code == 2
    assert runner.invoke(main, ["sync", "--entitlement", "nope"], obj=clock).exit_code == 2


def test_worker_once_drains_the_journal(client, store, slapd, sync_settings, clock, monkeypatch):
    """``walkin worker --once`` processes what is waiting and exits."""
    _env(monkeypatch, sync_settings)
    slapd.add_people(["once"])
    P.approvers(client, "0123", [P.create(client, P.person("once"))])
    result = CliRunner().invoke(main, ["worker", "--once"], obj=clock)
    assert result.exit_code == 0, result.output
    assert len(slapd.member_values()) == 2


def test_full_reconcile_schedule(sync_settings, store, clock):
    """Due after the interval, and once after the district's day start."""
    ctx = build_context(sync_settings, store=store, clock=clock)
    denver_0004 = datetime(2026, 7, 1, 6, 4, tzinfo=UTC)  # 00:04 in Denver (MDT)
    assert full_due(ctx, None, denver_0004)
    assert not full_due(ctx, denver_0004 - timedelta(minutes=30), denver_0004)
    assert full_due(ctx, denver_0004 - timedelta(minutes=30), denver_0004 + timedelta(minutes=2))  # 00:06
    assert not full_due(ctx, denver_0004 + timedelta(minutes=1), denver_0004 + timedelta(minutes=30))
    assert full_due(ctx, denver_0004, denver_0004 + timedelta(hours=1, minutes=1))
    ctx.target.close()


def test_a_dry_run_against_an_unreachable_directory_exits_1_with_the_reason(client, store, slapd, sync_settings,
                                                                             clock, monkeypatch):
    """Not "0 to add, 0 to remove" and exit 0: the plan could not be made. And the
    first run's progress line counts the people whose stored decision held (none),
    never a negative number."""
    _env(monkeypatch, sync_settings)
    slapd.add_people(["d1", "d2"])
    ids = [P.create(client, P.person(u)) for u in ("d1", "d2")]
    P.approvers(client, "0123", ids)
    runner = CliRunner()
    first = runner.invoke(main, ["sync", "--dry-run"], obj=clock)
    assert first.exit_code == 0, first.output
    assert "2 people decided afresh; the stored decisions of 0 others hold" in first.output

    monkeypatch.setenv("WALKIN_LDAP__URLS", json.dumps([f"ldap://127.0.0.1:{_free_port()}"]))
    monkeypatch.setenv("WALKIN_LDAP__RETRY_ATTEMPTS", "1")
    dry = runner.invoke(main, ["sync", "--dry-run"], obj=clock)
    assert dry.exit_code == 1, dry.output
    assert "to add" not in dry.output and "walkin: dry run failed — the directory could not be read" in dry.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
