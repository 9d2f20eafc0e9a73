"""The audit chain: every audit entry carries its place (``seq``), the hash of the
entry before it (``prev_hash``) and its own ``hash`` — the SHA-256 of its canonical
content with ``prev_hash`` in it — so changing, removing, inserting or reordering an
entry breaks the chain from there on (sync/verification.py tells which).

:func:`append` is the only way an entry joins ``audit_log``; the sync's bulk writes
(sync/ledger.py ``write_audit``) and the levers' one-entry acts (sync/levers.py
``record``) both go through it, so there is one order and one hash rule.

The canonical form is the entry's fields of :data:`CHAINED` as one JSON object with
its keys sorted, no white space, non-ASCII text as UTF-8 and ``at`` as an ISO 8601
instant in UTC to the microsecond — what ``json.dumps(entry, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` writes too, so an auditor can
recompute it without walkin. The storage key ``id`` is not part of it: the chain's
order is ``seq``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from .models import AuditRow, ChainHeadRow, table_of

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64

#: The fields an entry's hash covers (never change this list: every stored hash rests on it).
CHAINED = (
    "seq",
    "prev_hash",
    "at",
    "run_id",
    "journal_seq",
    "person_id",
    "user_name",
    "entitlement",
    "target",
    "member",
    "action",
    "reasons",
    "evidence",
    "result",
    "detail",
    "actor",
)

_HEAD_ID = 1
_SORTED = tuple(sorted(CHAINED))
_chained_values = itemgetter(*_SORTED)  # an append's fast path: the canonical keys in order, no sort per entry


def instant(at: datetime | str) -> str:
    """``at`` as the chain writes it: ISO 8601 in UTC with microseconds and ``Z``.
    A naive value is UTC (SQLite hands stored instants back without their zone)."""
    if isinstance(at, str):
        return at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over (see the module's docstring)."""
    content = {name: entry.get(name) for name in CHAINED}
    content["at"] = instant(entry["at"])
    try:
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # text orjson refuses (an unpaired surrogate): the standard library's same form
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the entry's canonical form (its ``prev_hash`` included)."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def head(conn: Connection, *, lock: bool = False) -> tuple[int, str]:
    """The chain's newest ``(seq, hash)`` as recorded beside it; ``lock``: held until
    the transaction ends (PostgreSQL ``FOR UPDATE``; SQLite writers hold the whole
    database anyway)."""
    stmt = select(ChainHeadRow.seq, ChainHeadRow.hash).where(ChainHeadRow.id == _HEAD_ID)
    row = conn.execute(stmt.with_for_update() if lock else stmt).one()
    return row[0], row[1]


def append(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` (the columns of :class:`AuditRow`, every one of them, in each) to
    the end of the chain, in order, in the caller's transaction.

    The one-row chain head is locked first: a second writer on PostgreSQL waits
    there until this transaction ends, then reads the head it left, so two
    workers appending at once still make one chain (and a rolled-back run hands
    its numbers back). One executemany for all the entries; ``seq``, ``prev_hash``
    and ``hash`` are set on the dicts given.
    """
    if not entries:
        return
    seq, prev = head(conn, lock=True)
    sha256, dumps = hashlib.sha256, orjson.dumps
    given: datetime | None = None
    stamp, at_utc = "", None
    for entry in entries:
        if entry["at"] is not given:  # a run's entries share one instant: converted and formatted once
            given = entry["at"]
            at_utc = given.astimezone(UTC) if given.tzinfo is not None else given.replace(tzinfo=UTC)
            stamp = instant(at_utc)
        entry["at"] = at_utc  # stored as hashed: SQLite keeps the wall time it is given
        seq += 1
        entry["seq"], entry["prev_hash"] = seq, prev
        content = dict(zip(_SORTED, _chained_values(entry)))  # sorted already: what OPT_SORT_KEYS writes
        content["at"] = stamp
        try:
            blob = dumps(content)
        except TypeError:
            blob = canonical(content)
        prev = entry["hash"] = sha256(blob).hexdigest()
    conn.execute(insert(table_of(AuditRow)), entries)
    conn.execute(update(ChainHeadRow).where(ChainHeadRow.id == _HEAD_ID).values(seq=seq, hash=prev))
