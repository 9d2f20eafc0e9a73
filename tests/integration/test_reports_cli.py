"""``walkin report``, ``walkin override``, ``walkin approve`` and ``walkin simulate``
on the policy's §8 district, after a run on the memory target."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from tests.integration import examples
from tests.sync.test_reconcile import GROUP, mapping_with_groups


@pytest.fixture
def district(client, store, settings, clock, monkeypatch):
    """§8 people in the store, decided on 2026-11-29 (the fake clock's day)."""
    monkeypatch.setenv("WALKIN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WALKIN_SYNC__TARGET", "ldap")
    examples.load(client, store)
    directory = {examples.user_name(n): f"uid={n},ou=people" for n in examples.PEOPLE}
    settings.sync.target = "ldap"
    ctx = SyncContext(store, settings, mapping_with_groups(), MemoryTarget({GROUP: set()}, directory), "ldap",
                      clock=clock)
    assert reconcile(ctx, "walkin").status.value == "ok"
    return clock


def invoke(clock, *args: str):
    """A ``walkin`` command on the test's clock."""
    return CliRunner().invoke(main, list(args), obj=clock)


def run(clock, *args: str) -> str:
    result = invoke(clock, *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_members_report_of_the_worked_examples(district):
    """A, C, E and K are the members (JSON), each with the approval their grant rests on."""
    out = json.loads(run(district, "report", "members", "--format", "json"))
    rows = {r["user_name"]: r for r in out["rows"]}
    assert set(rows) == {examples.user_name(n) for n in "ACEK"}
    assert rows[examples.user_name("C")]["chain"] == "full 2024-09-10, recert 2026-05-01"
    assert rows[examples.user_name("E")]["approver"] == "WalkIn-Approvers-0456"


def test_waiting_report_and_csv(district):
    """G and H wait for an approver; B, D, I and J for themselves (CSV has a header row)."""
    out = json.loads(run(district, "report", "waiting", "--format", "json"))
    actors = {r["user_name"]: r["actor"] for r in out["rows"]}
    assert actors == {examples.user_name("G"): "approver", examples.user_name("H"): "approver",
                      **{examples.user_name(n): "person" for n in "BDIJ"}}
    csv_text = run(district, "report", "waiting", "--format", "csv")
    assert csv_text.splitlines()[0].startswith("actor,who_acts,user_name")
    assert "approver" in run(district, "report", "waiting")


def test_history_and_unknown_entitlement(district):
    """A's history shows its decision and grant; an unknown entitlement is one line, exit 1."""
    text = run(district, "report", "history", examples.user_name("A"))
    assert "decided entitled on 2026-11-29" in text and "grant ok" in text
    result = invoke(district, *["report", "members", "--entitlement", "nope"])
    assert result.exit_code == 1 and "unknown entitlement 'nope'" in result.output


def test_override_cli_round_trip(district):
    """grant → list → end; a second end is refused in one line."""
    out = run(district, "override", "grant", examples.user_name("B"), "--until", "2026-12-15", "--reason", "audit",
              "--by", "dots-admin")
    override_id = out.split()[1].rstrip(":")
    assert examples.user_name("B") in run(district, "override", "list")
    run(district, "override", "end", override_id, "--reason", "done", "--by", "dots-admin")
    again = invoke(district, *["override", "end", override_id, "--reason", "x", "--by", "y"])
    assert again.exit_code == 1 and "already ended" in again.output
    too_long = invoke(district, *["override", "deny", examples.user_name("B"), "--until", "2027-06-01",
                                         "--reason", "x", "--by", "y"])
    assert too_long.exit_code == 1 and "longest override" in too_long.output


def test_approve_needs_an_eligible_approver(district):
    """A (an Office Professional) may not approve G at 0789: one line, exit 1, nothing recorded."""
    result = invoke(district, *["approve", examples.user_name("G"), "--location", "0789",
                                       "--by", examples.user_name("A")])
    assert result.exit_code == 1 and "may not approve for 0789" in result.output


def test_simulate_school_year_end(district):
    """On 2027-07-01 A, C and E lose access (CERT_EXPIRED); K (valid through 2028) keeps it."""
    out = json.loads(run(district, "simulate", "--at", "2027-07-01", "--format", "json"))
    losses = {r["user_name"] for r in out["rows"] if r["change"] == "loss"}
    assert losses == {examples.user_name(n) for n in "ACE"}
    assert out["summary"]["by_reason"] == {"walkin loss: CERT_EXPIRED": 3}


def test_audit_shows_the_actor_and_days_are_bounded(district):
    """`walkin audit` shows who set an override; a day beyond the calendar is a usage error, not a traceback."""
    run(district, "override", "grant", examples.user_name("B"), "--until", "2026-12-15", "--reason", "audit",
        "--by", "dots-admin")
    table = run(district, "audit", "--user", examples.user_name("B"))
    assert "actor" in table.splitlines()[0] and "dots-admin (cli)" not in table and "dots-admin" in table
    rows = [json.loads(line) for line in run(district, "audit", "--user", examples.user_name("B"), "--format",
                                             "json").splitlines()]
    assert [r["actor"] for r in rows if r["action"] == "override"] == ["dots-admin"]
    far = invoke(district, *["report", "losses", "--until", "9999-12-31"])
    assert far.exit_code == 2 and "is not between 1900-01-01 and 2999-12-31" in far.output
