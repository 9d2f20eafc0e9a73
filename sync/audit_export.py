"""The audit chain read out: from the store in seq order, written as JSON Lines or
CSV with every chained field (``walkin audit export``), and read back from such a
file for an offline ``walkin audit verify --file``.

JSON Lines: one object per entry, the fields of :data:`FIELDS`, ``at`` as the chain
writes it. CSV: a header of :data:`FIELDS`; ``reasons`` as a JSON array; a null
value is ``\\N`` (as PostgreSQL's COPY writes it) and a value that begins with a
backslash has it doubled, so every value reads back exactly — an empty cell is an
empty string.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Connection, func, select

from connector.store.chain import CHAINED, instant
from connector.store.models import AuditRow, table_of

from .checkpoints import AuditProblem

#: The columns of an export, in order.
FIELDS = ("seq", "id", *(name for name in CHAINED if name != "seq"), "hash")
_INTEGERS = {"seq", "id", "run_id", "journal_seq"}
_NULL = "\\N"
_READ_SLICE = 5000


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class ExportProblem(AuditProblem):
    """A file that is not an export of the audit chain."""


# ------------------------------------------------------------------ the store


def first_seq_since(conn: Connection, since: date) -> int | None:
    """The seq of the oldest entry dated ``since`` (UTC) or later: an export runs from
    there to the head, every entry in between, so it is one unbroken stretch."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    table = table_of(AuditRow)
    return conn.scalar(select(func.min(table.c.seq)).where(table.c.at >= start))


def from_store(conn: Connection, from_seq: int = 1) -> Iterator[dict[str, Any]]:
    """Every entry from ``from_seq`` on, in seq order (read a slice at a time)."""
    table = table_of(AuditRow)
    columns = [table.c[name] for name in FIELDS]
    after = from_seq - 1
    while True:
        rows = conn.execute(select(*columns).where(table.c.seq > after).order_by(table.c.seq).limit(_READ_SLICE))
        batch = [dict(zip(FIELDS, row)) for row in rows]
        for entry in batch:
            entry["at"] = instant(entry["at"])
            yield entry
        if len(batch) < _READ_SLICE:
            return
        after = batch[-1]["seq"]


def locate_in_store(conn: Connection):
    """A :data:`sync.verification.Locate` over the store (only asked once a link is broken)."""
    table = table_of(AuditRow)

    def locate(hash_: str) -> tuple[int, int | None] | None:
        row = conn.execute(select(table.c.seq, table.c.id).where(table.c.hash == hash_).limit(1)).first()
        return (row[0], row[1]) if row else None

    return locate


# ------------------------------------------------------------------ the file


def write(entries: Iterator[dict[str, Any]], fmt: ExportFormat, out: IO[str]) -> int:
    """Write ``entries`` to ``out``. :returns: how many."""
    n = 0
    if fmt is ExportFormat.JSONL:
        for entry in entries:
            out.write(orjson.dumps({name: entry[name] for name in FIELDS}).decode() + "\n")
            n += 1
        return n
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for entry in entries:
        writer.writerow([_cell(name, entry[name]) for name in FIELDS])
        n += 1
    return n


def _cell(name: str, value: Any) -> str:
    if value is None:
        return _NULL
    if name == "reasons":
        return orjson.dumps(value).decode()
    text = str(value)
    return "\\" + text if text.startswith("\\") else text


def _value(name: str, cell: str) -> Any:
    if cell == _NULL:
        return None
    if name == "reasons":
        return orjson.loads(cell)
    if cell.startswith("\\"):
        cell = cell[1:]
    return int(cell) if name in _INTEGERS else cell


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of an export file (JSON Lines or CSV, told by its first character).

    :raises ExportProblem: naming the line that is not an entry."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            first = handle.read(1)
            handle.seek(0)
            yield from (_json_lines(handle, path) if first == "{" else _csv_rows(handle, path))
    except OSError as exc:
        raise ExportProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def _json_lines(handle: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
            yield {name: entry[name] for name in FIELDS}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ExportProblem(f"{path} line {number} is not an audit entry of an export") from None


def _csv_rows(handle: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    reader = csv.reader(handle)
    if tuple(next(reader, ())) != FIELDS:
        raise ExportProblem(f"{path} is not an export of the audit chain (JSON Lines, or CSV with its header)")
    for row in reader:
        try:
            yield {name: _value(name, cell) for name, cell in zip(FIELDS, row, strict=True)}
        except (ValueError, orjson.JSONDecodeError):
            raise ExportProblem(f"{path} line {reader.line_num} is not an audit entry of an export") from None


def locate_in_file(path: Path):
    """A :data:`sync.verification.Locate` over an export (read again, only once a link is broken)."""
    found: dict[str, tuple[int, int | None]] = {}

    def locate(hash_: str) -> tuple[int, int | None] | None:
        if not found:
            found.update({e["hash"]: (e["seq"], e["id"]) for e in read(path)})
        return found.get(hash_)

    return locate
