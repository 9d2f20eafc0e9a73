"""A hostile or broken mapping file fails at once, in one line naming the key path."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mappings.loading import MAX_DEPTH, MAX_MAPPING_BYTES, MAX_NODES
from mappings.model import DEFAULT_MAPPING_PATH, MappingError, load_mapping

SHIPPED = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8")
ROOT = Path(__file__).resolve().parents[2]

# Ten levels, each nine aliases of the one before: 9⁹ (387 million) values once
# expanded, in 230 bytes. The first alias is the first value of the second level.
LAUGHS = "[&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(
    f"&l{level} [{', '.join([f'*l{level - 1}'] * 9)}]" for level in range(1, 10)
) + "]"


def _with_policy(key: str, value: str) -> str:
    """The shipped mapping with ``policy.KEY`` set to ``value`` (YAML text)."""
    # Every policy setting has a default, so the section can be replaced whole.
    return re.sub(r"^policy:\n(?:[ #].*\n|\n)*", f"policy:\n  {key}: {value}\n", SHIPPED, count=1, flags=re.M)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CASES = {
    "billion-laughs-in-recert-warning-days": (
        _with_policy("recert_warning_days", LAUGHS),
        "policy.recert_warning_days[1][0]: YAML aliases are not allowed (*l0): write the value out (line 8, column 81)",
    ),
    "billion-laughs-in-holidays": (
        _with_policy("holidays", LAUGHS),
        "policy.holidays[1][0]: YAML aliases are not allowed (*l0)",
    ),
    "900-deep-list": (
        _with_policy("holidays", _deep(900)), f"policy.holidays{'[0]' * (MAX_DEPTH - 1)}: nested more than"
    ),
    "900-deep-mapping": ("{k: " * 900 + "1" + "}" * 900, f"{'.'.join(['k'] * MAX_DEPTH)}: nested more than"),
    "too-many-values": (
        _with_policy("holidays", "[" + ", ".join(["2025-12-25"] * MAX_NODES) + "]"),
        f"policy.holidays[{MAX_NODES - 5}]: more than {MAX_NODES:,} values in the file",
    ),
    "oversize-file": (SHIPPED + "#" * MAX_MAPPING_BYTES, f"file is larger than {MAX_MAPPING_BYTES:,} bytes"),
    "long-bad-value": (_with_policy("recert_warning_days", "'" + "9" * 200_000 + "'"), "policy.recert_warning_days: "),
    "long-bad-date": (_with_policy("holidays", "['" + "2" * 200_000 + "']"), "policy.holidays[0]: invalid date '2222"),
    "long-bad-zone": (_with_policy("time_zone", "'" + "Z" * 200_000 + "'"), "policy.time_zone: unknown time zone 'ZZZ"),
    "syntax-error": ("policy:\n  holidays: [2025-12-25,\n", "policy.holidays: not valid YAML: while parsing"),
    "not-utf-8": (b"policy: \xff\n", "not UTF-8 text (byte 8)"),
    # PyYAML's reader refuses it while the loader is built, before any parsing.
    "control-character": (b"policy:\n  \x1f: 1\n", "not valid YAML: character U+001F (at character 11) is not allowed"),
}


@pytest.mark.parametrize(("text", "message"), list(CASES.values()), ids=list(CASES))
def test_a_hostile_mapping_fails_in_one_short_line(tmp_path: Path, text: str | bytes, message: str) -> None:
    """Each bound stops loading within a second of this process's CPU (not wall time: other
    processes on a shared machine must not make it fail), with one line naming the key path."""
    path = tmp_path / "walkin.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    # The loader's own cost: the collector off while it runs, so that collections of the
    # whole test session's heap (thousands of tests' objects) are not counted as its.
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        with pytest.raises(MappingError) as caught:
            load_mapping(path)
        elapsed = time.process_time() - started
    finally:
        gc.enable()
    said = str(caught.value)
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert "\n" not in said
    assert said.startswith(f"mapping {path}: {message}"), said
    assert len(said) <= 300 + len(str(path))


def test_a_file_of_many_bad_values_lists_ten_and_counts_the_rest(tmp_path: Path) -> None:
    """Thousands of bad holidays make an eleven-line message, not thousands of lines."""
    path = tmp_path / "walkin.yaml"
    path.write_text(_with_policy("holidays", "[" + ", ".join(["x"] * 5000) + "]"), encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert len(caught.value.problems) == 5000
    lines = str(caught.value).splitlines()
    assert len(lines) == 11
    assert lines[-1] == f"mapping {path}: … and 4990 more problems"


def test_a_special_file_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    """/dev/zero is refused as too large rather than read for ever."""
    started = time.process_time()
    with pytest.raises(MappingError, match="file is larger than"):
        load_mapping("/dev/zero")
    assert time.process_time() - started < 1.0


def test_the_limit_is_a_parameter(tmp_path: Path) -> None:
    """A caller may lower (or raise) the size limit; the shipped mapping is far below it."""
    load_mapping(DEFAULT_MAPPING_PATH)
    with pytest.raises(MappingError, match="larger than 1,000 bytes"):
        load_mapping(DEFAULT_MAPPING_PATH, max_bytes=1000)


def test_walkin_start_up_with_an_alias_bomb_says_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The real ``walkin`` command refuses the file in one line and exits non-zero."""
    mapping = tmp_path / "walkin.yaml"
    mapping.write_text(_with_policy("recert_warning_days", LAUGHS), encoding="utf-8")
    facts = tmp_path / "facts.jsonl"
    facts.write_text("", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALKIN_")}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "evaluate", str(facts), "--at", "2026-01-05",
         "--mapping", str(mapping)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=30, check=False,
    )
    assert time.perf_counter() - started < 10
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    said = [line for line in result.stderr.splitlines() if "walkin.yaml" in line]
    assert len(said) == 1, result.stderr
    assert said[0].endswith(f"mapping {mapping}: policy.recert_warning_days[1][0]: YAML aliases are not allowed "
                            f"(*l0): write the value out (line 8, column 81)"), said
