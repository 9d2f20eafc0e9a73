"""``walkin evaluate``: facts as JSON lines in, one decision per person and entitlement out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mappings.cli import commands, evaluate
from mappings.model import DEFAULT_MAPPING_PATH
from tests.mappings.people import EXAMPLES, full, person_json

DECISION_FIELDS = {"person_id", "entitlement", "at", "entitled", "by_override", "reasons", "valid_through", "entitled_since"}
ENTITLEMENTS = ["walkin", "elementary_scheduling", "secondary_scheduling"]


def facts_file(tmp_path: Path, *lines: dict[str, Any] | str) -> Path:
    """A JSON-lines file; dicts are encoded, strings written as they are."""
    path = tmp_path / "facts.jsonl"
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(evaluate, list(args), input=input)


def decisions(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_one_decision_per_person_per_entitlement(tmp_path: Path) -> None:
    """Every entitlement of the mapping is decided for every person, in order."""
    path = facts_file(tmp_path, person_json(id="A"), person_json(id="B", active=False))
    result = run(str(path), "--at", "2026-11-29")
    assert result.exit_code == 0, result.output
    out = decisions(result)
    assert [(d["person_id"], d["entitlement"]) for d in out] == [
        (person, name) for person in ("A", "B") for name in ENTITLEMENTS
    ]
    assert all(set(d) == DECISION_FIELDS for d in out)
    assert out[0] == {
        "person_id": "A",
        "entitlement": "walkin",
        "at": "2026-11-29",
        "entitled": True,
        "by_override": False,
        "reasons": [],
        "valid_through": "2027-06-30",
        "entitled_since": "2025-09-20",
    }
    assert out[3]["reasons"] == ["NOT_ACTIVE"]
    assert result.stderr == ""


def test_the_worked_examples_through_the_command(tmp_path: Path) -> None:
    """Persons A–M of policy §8 come out as the policy says."""
    path = facts_file(tmp_path, *(person_json(id=name, **example[0]) for name, example in EXAMPLES.items()))
    result = run(str(path), "--at", "2026-11-29", "--entitlement", "walkin")
    assert result.exit_code == 0, result.output
    got = {d["person_id"]: (d["entitled"], d["reasons"], d["valid_through"]) for d in decisions(result)}
    assert got == {name: (entitled, reasons, vt) for name, (_, entitled, reasons, vt) in EXAMPLES.items()}


def test_a_bad_line_is_reported_with_its_number_and_skipped(tmp_path: Path) -> None:
    """Bad lines go to stderr as 'line N: problem'; good ones are still decided; exit 1."""
    path = facts_file(
        tmp_path,
        person_json(id="A"),
        "{not json",
        person_json(id="C", assignment_start="2024-13-01"),
        "",
        person_json(id="E"),
    )
    result = run(str(path), "--at", "2026-11-29", "--entitlement", "walkin")
    assert result.exit_code == 1
    assert [d["person_id"] for d in decisions(result)] == ["A", "E"]
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("line 2: Invalid JSON")
    assert errors[1].startswith("line 3: assignment_start: Input should be a valid date")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (["walkin"], ["walkin"]),
        (["elementary_scheduling"], ["elementary_scheduling"]),
        (["secondary_scheduling", "walkin"], ["secondary_scheduling", "walkin"]),
        (["walkin", "walkin"], ["walkin"]),
    ],
    ids=["walkin", "dependent-alone", "given-order", "repeated"],
)
def test_entitlement_option_narrows(tmp_path: Path, asked: list[str], expected: list[str]) -> None:
    """--entitlement decides only the named entitlements, in the order given."""
    path = facts_file(tmp_path, person_json(certifications=[full("2025-09-15"), full("2026-01-10", "Elementary Scheduling Certification")]))
    args = [arg for name in asked for arg in ("--entitlement", name)]
    result = run(str(path), "--at", "2026-11-29", *args)
    assert result.exit_code == 0, result.output
    out = decisions(result)
    assert [d["entitlement"] for d in out] == expected
    if expected == ["elementary_scheduling"]:
        assert out[0]["entitled"] is True
        assert out[0]["entitled_since"] == "2026-01-10"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "2026-11-29", "--entitlement", "walk_in"], "unknown entitlement 'walk_in'"),
        (["--at", "2026-13-01"], "invalid date '2026-13-01'"),
        (["--at", "29/11/2026"], "invalid date '29/11/2026'"),
        ([], "Missing option '--at'"),
    ],
    ids=["unknown-entitlement", "impossible-date", "other-format", "no-date"],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    """Mistakes on the command line are usage errors (exit 2) with the reason."""
    result = run(str(facts_file(tmp_path, person_json())), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_broken_mapping_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    """--mapping with a mistake stops before reading any facts."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("grace_days: 0", "grace_dayz: 0", 1), encoding="utf-8"
    )
    result = run(str(facts_file(tmp_path, person_json())), "--at", "2026-11-29", "--mapping", str(broken))
    assert result.exit_code == 2
    assert "entitlements.walkin.certification.grace_dayz: unknown field" in result.stderr


def test_another_mapping_changes_the_rules(tmp_path: Path) -> None:
    """--mapping replaces the shipped mapping."""
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("grace_days: 0 ", "grace_days: 5 ", 1), encoding="utf-8"
    )
    path = facts_file(tmp_path, person_json())
    result = run(str(path), "--at", "2027-07-03", "--entitlement", "walkin", "--mapping", str(custom))
    assert decisions(result)[0]["valid_through"] == "2027-07-05"
    assert decisions(result)[0]["entitled"] is True


def test_facts_from_stdin() -> None:
    """'-' reads the facts from standard input."""
    result = run("-", "--at", "2026-11-29", "--entitlement", "walkin", input=json.dumps(person_json()) + "\n")
    assert result.exit_code == 0
    assert decisions(result)[0]["entitled"] is True


def test_commands_for_the_walkin_group() -> None:
    """The package offers evaluate to the walkin command group."""
    assert commands() == [evaluate]
    assert evaluate.name == "evaluate"


def test_module_entry_point(tmp_path: Path) -> None:
    """python -m mappings.cli evaluate runs the same command."""
    path = facts_file(tmp_path, person_json(), "oops")
    completed = subprocess.run(
        [sys.executable, "-m", "mappings.cli", "evaluate", str(path), "--at", "2026-11-29", "--entitlement", "walkin"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert json.loads(completed.stdout)["entitled"] is True
    assert completed.stderr.startswith("line 2: Invalid JSON")
