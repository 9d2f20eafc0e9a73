"""``walkin explain X`` / ``walkin sync --user X`` / ``walkin audit --user X`` act on
the one person X names, and refuse (exit 2, candidates listed) an X naming several."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from connector.cli import main
from connector.store.models import SyncRunRow
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from tests.conftest import AUTH
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, dn, mapping_with_groups

SHARED = "pat@d.org"


@pytest.fixture
def two_pats(client, store, settings, clock, monkeypatch):
    """Pat's userName is the other Pat's externalId; both were granted walkin once."""
    monkeypatch.setenv("WALKIN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WALKIN_SYNC__TARGET", "memory")
    pat = P.create(client, P.person(SHARED))
    other = P.create(client, {**P.person("other.pat@d.org"), "externalId": SHARED})
    P.approvers(client, "0123", [pat, other])
    target = MemoryTarget(groups={GROUP: set()}, directory={SHARED: dn("pat"), "other.pat@d.org": dn("other")})
    settings.sync.target = "ldap"
    reconcile(SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock), "walkin")
    return {"pat": pat, "other": other}


def _runs(store) -> int:
    with store.session_read() as s:
        return s.scalar(select(func.count()).select_from(SyncRunRow))


@pytest.mark.parametrize("command", [
    ["explain", SHARED, "--at", "2026-11-29"],
    ["sync", "--user", SHARED],
    ["sync", "--user", SHARED, "--dry-run"],
    ["audit", "--user", SHARED],
], ids=["explain", "sync", "sync-dry-run", "audit"])
def test_a_value_naming_two_people_is_a_usage_error_listing_both(two_pats, store, clock, command):
    """Exit 2 with every candidate's id, userName and externalId; nothing is run."""
    runs = _runs(store)
    result = CliRunner().invoke(main, command, obj=clock)
    assert result.exit_code == 2, result.output
    assert "names 2 users (by id, userName or externalId); give the id of one:" in result.output
    assert f"id {two_pats['pat']}  userName {SHARED}  externalId -" in result.output
    assert f"id {two_pats['other']}  userName other.pat@d.org  externalId {SHARED}" in result.output
    assert _runs(store) == runs


@pytest.mark.parametrize("command", [
    ["explain", "nobody@d.org", "--at", "2026-11-29"],
    ["sync", "--user", "nobody@d.org"],
], ids=["explain", "sync"])
def test_a_value_naming_nobody_is_the_no_user_error(two_pats, store, clock, command):
    """Exit 2, "no user 'X' in the store", as before."""
    result = CliRunner().invoke(main, command, obj=clock)
    assert result.exit_code == 2 and "no user 'nobody@d.org' in the store" in result.output, result.output


def test_the_id_picks_one_of_the_two(two_pats, clock):
    """Given the id the error listed, each command acts on that person alone."""
    runner = CliRunner()
    explained = runner.invoke(main, ["explain", two_pats["other"], "--at", "2026-11-29", "--json"], obj=clock)
    assert explained.exit_code == 0, explained.output
    out = json.loads(explained.output)
    assert (out["person"], out["decision"]["person_id"]) == ("other.pat@d.org", two_pats["other"])
    trail = runner.invoke(main, ["audit", "--user", two_pats["pat"], "--format", "json"], obj=clock)
    assert trail.exit_code == 0, trail.output
    rows = [json.loads(line) for line in trail.output.splitlines()]
    assert [(r["action"], r["person_id"]) for r in rows] == [("grant", two_pats["pat"])]
    by_user_name = runner.invoke(main, ["audit", "--user", "OTHER.PAT@d.org", "--format", "json"], obj=clock)
    assert [json.loads(line)["person_id"] for line in by_user_name.output.splitlines()] == [two_pats["other"]]


def test_audit_of_a_value_naming_nobody_still_shows_a_deleted_users_trail(two_pats, client, clock):
    """A deleted user is in no candidate list; their entries are still found by id."""
    assert client.delete(f"/scim/v2/Users/{two_pats['pat']}", headers=AUTH).status_code == 204
    trail = CliRunner().invoke(main, ["audit", "--user", two_pats["pat"], "--format", "json"], obj=clock)
    assert trail.exit_code == 0, trail.output
    assert [json.loads(line)["action"] for line in trail.output.splitlines()] == ["grant"]
    # With Pat gone, the shared value names one person in the store: the other Pat.
    shared = CliRunner().invoke(main, ["audit", "--user", SHARED, "--format", "json"], obj=clock)
    assert shared.exit_code == 0, shared.output
    assert two_pats["other"] in {json.loads(line)["person_id"] for line in shared.output.splitlines()}
