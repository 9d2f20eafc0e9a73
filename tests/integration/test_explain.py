"""``walkin explain`` on the policy's worked examples, read from the store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from tests.integration import examples


@pytest.fixture
def section8(client, store, settings, monkeypatch):
    monkeypatch.setenv("WALKIN_DATABASE_URL", settings.database_url)
    return examples.load(client, store)


@pytest.mark.parametrize("name", sorted(examples.EXPECTED))
def test_explain_matches_the_worked_example(section8, name):
    """--json gives the §8 decision and one row per requirement."""
    result = CliRunner().invoke(main, ["explain", examples.user_name(name), "--at", "2026-11-29", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    entitled, reasons, valid_through = examples.EXPECTED[name]
    assert out["decision"]["entitled"] is entitled
    assert out["decision"]["reasons"] == reasons
    assert out["decision"]["valid_through"] == valid_through
    failing = [r["code"] for r in out["requirements"] if r["status"] == "fail"]
    assert failing == reasons
    assert len(out["requirements"]) == 7


def test_explain_in_plain_words(section8):
    """The text form says what to do next, as the district would say it."""
    runner = CliRunner()
    i = runner.invoke(main, ["explain", examples.user_name("I"), "--at", "2026-11-29"]).output
    assert "Your access ended on 2026-10-01. Complete the full Walk-In Scheduling Certification eLearning — the " \
           "recertification quiz is not enough to regain access" in i
    g = runner.invoke(main, ["explain", examples.user_name("G"), "--at", "2026-11-29"]).output
    assert "Ask the principal or manager of 0789 (Example High School) to approve you." in g
    assert "[ ] Principal's or manager's approval for 0789" in g
    a = runner.invoke(main, ["explain", examples.user_name("A"), "--at", "2026-11-29"]).output
    assert "You have access." in a and "valid through 2027-06-30" in a
    m = runner.invoke(main, ["explain", examples.user_name("M"), "--at", "2026-11-29"]).output
    assert "Complete the Walk-In Scheduling Certification in Learning Space and ask the principal" in m
    assert runner.invoke(main, ["explain", "nobody@x", "--at", "2026-11-29"]).exit_code == 2
