"""``walkin evaluate``: decide entitlements for person facts read as JSON lines.

:func:`commands` lists the commands (:data:`evaluate`) for the ``walkin`` group; they
also run on their own: ``python -m mappings.cli evaluate FACTS.jsonl --at YYYY-MM-DD``.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import IO, Any

import click

from mappings.facts import FactsError, PersonFacts
from mappings.fields import parse_iso_date
from mappings.model import DEFAULT_MAPPING_PATH, Mapping, MappingError, load_mapping
from mappings.policy import decide_all

# Decisions are written in batches: one write per line costs more than deciding.
_BATCH_LINES = 2048


class IsoDateParam(click.ParamType):
    """A command-line date written ``YYYY-MM-DD``."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        try:
            return parse_iso_date(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _load(mapping_path: Path | None) -> Mapping:
    try:
        return load_mapping(mapping_path or DEFAULT_MAPPING_PATH)
    except MappingError as exc:
        raise click.BadParameter(str(exc), param_hint="'--mapping'") from exc


def _names(mapping: Mapping, asked: tuple[str, ...]) -> tuple[str, ...]:
    for name in asked:
        if name not in mapping.entitlements:
            known = ", ".join(mapping.entitlements)
            raise click.BadParameter(f"unknown entitlement {name!r}; known: {known}", param_hint="'--entitlement'")
    # Repeating a name must not repeat its decisions.
    return tuple(dict.fromkeys(asked)) or tuple(mapping.entitlements)


def evaluate_lines(
    lines: IO[bytes], at: date, mapping: Mapping, names: tuple[str, ...], out: IO[str], err: IO[str]
) -> int:
    """Write one decision per person per entitlement to ``out`` as JSON lines.

    A line that is not valid facts is reported on ``err`` with its line number and
    skipped; blank lines are ignored.

    :returns: the number of bad lines.
    """
    bad = 0
    batch: list[str] = []
    from_json = PersonFacts.from_json
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            facts = from_json(line)
        except FactsError as exc:
            bad += 1
            err.write(f"line {number}: {exc}\n")
            continue
        for decision in decide_all(facts, at, mapping, names).values():
            batch.append(decision.to_json())
        if len(batch) >= _BATCH_LINES:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    return bad


@click.command("evaluate")
@click.argument("facts_path", metavar="FACTS.jsonl", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--at", "at", required=True, type=IsoDateParam(), help="Evaluation date (district calendar date).")
@click.option(
    "--entitlement",
    "entitlements",
    multiple=True,
    metavar="NAME",
    help="Decide only this entitlement (repeatable). Default: every entitlement of the mapping.",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Mapping file. Default: the shipped {DEFAULT_MAPPING_PATH.name}.",
)
@click.pass_context
def evaluate(
    ctx: click.Context, facts_path: str, at: date, entitlements: tuple[str, ...], mapping_path: Path | None
) -> None:
    """Decide access for each person in FACTS.jsonl (one JSON object per line, '-' for stdin).

    Writes one JSON decision per person per entitlement to stdout. Bad lines are
    reported on stderr with their line number and skipped; the exit status is then 1.
    """
    mapping = _load(mapping_path)
    names = _names(mapping, entitlements)
    # Opened here rather than by click.File, so a usage error cannot leave it open.
    with click.open_file(facts_path, "rb") as lines:
        bad = evaluate_lines(lines, at, mapping, names, sys.stdout, sys.stderr)
    sys.stdout.flush()
    if bad:
        ctx.exit(1)


def commands() -> list[click.Command]:
    """The commands this package adds to the ``walkin`` command group."""
    return [evaluate]


if __name__ == "__main__":
    click.Group("walkin", commands=commands())()
