"""Checking the audit chain: recompute it entry by entry and name the first one that
was changed, removed, inserted or reordered; then hold it against the signed
checkpoints, which catch what the chain alone cannot (its newest entries removed,
the whole of it rebuilt).

Pure functions over entries — dicts of the chained fields plus ``id`` and
``hash`` — read from the store or from an export (``walkin audit verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connector.store.chain import GENESIS, entry_hash

from .checkpoints import Checkpoint, key_id


class Breach(StrEnum):
    """What was done to the chain, as far as it tells."""

    CHANGED = "changed"  # an entry's content no longer matches its hash (or its hash was recomputed)
    REMOVED = "removed"  # entries missing from the middle (a gap in seq)
    INSERTED = "inserted"  # entries that the next one links past
    REORDERED = "reordered"  # an entry links to one written after it
    TRUNCATED = "truncated"  # the newest entries removed (a checkpoint, or the chain head, saw more)
    REBUILT = "rebuilt"  # consistent, but not the chain a checkpoint signed
    FORGED = "forged"  # a checkpoint not signed by the key


@dataclass(frozen=True)
class Finding:
    """The first thing wrong, at the entry it concerns."""

    breach: Breach
    seq: int | None
    entry_id: int | None
    why: str

    def __str__(self) -> str:
        where = "" if self.seq is None else f" at seq {self.seq}" + (f" (id {self.entry_id})" if self.entry_id else "")
        return f"audit chain broken: {self.breach.value}{where}: {self.why}"


#: Where the entry with a given hash is: ``(seq, id)``, or None when no entry has it.
Locate = Callable[[str], tuple[int, int | None] | None]


@dataclass
class Walk:
    """What a walk over the chain saw."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    head: str = GENESIS
    at_seq: dict[int, str] = field(default_factory=dict)  # hashes at the seqs asked for


def walk(
    entries: Iterable[Mapping[str, Any]],
    *,
    from_genesis: bool,
    wanted: Collection[int] = (),
    locate: Locate = lambda _hash: None,
) -> tuple[Walk, Finding | None]:
    """Recompute the chain over ``entries`` (in seq order) and stop at the first break.

    :param from_genesis: the entries are the whole chain (the store): the first must
        be seq 1 linked to :data:`GENESIS`. Otherwise (an export) the chain is
        checked from its first entry's ``prev_hash`` on.
    :param wanted: seqs whose hashes to remember (the checkpoints').
    :param locate: finds an entry by hash, to tell a reorder from an insertion.
    """
    seen = Walk()
    prev_seq, prev_hash, prev_id = (0, GENESIS, None) if from_genesis else (None, "", None)
    for entry in entries:
        seq, entry_id = entry["seq"], entry.get("id")
        if prev_seq is None:
            prev_seq, prev_hash = seq - 1, entry["prev_hash"]
        if seq > prev_seq + 1:
            missing = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1}–{seq - 1}"
            return seen, Finding(Breach.REMOVED, prev_seq + 1, None, f"{missing} missing before seq {seq}")
        if seq <= prev_seq:
            return seen, Finding(Breach.REORDERED, seq, entry_id, f"it comes after seq {prev_seq}")
        if entry["prev_hash"] != prev_hash:
            return seen, _link_broken(entry, prev_seq, prev_id, locate)
        if entry_hash(entry) != entry["hash"]:
            return seen, Finding(Breach.CHANGED, seq, entry_id, "its content does not match its hash")
        if seen.first is None:
            seen.first = seq
        seen.count, seen.last, seen.head = seen.count + 1, seq, entry["hash"]
        if seq in wanted:
            seen.at_seq[seq] = entry["hash"]
        prev_seq, prev_hash, prev_id = seq, entry["hash"], entry_id
    return seen, None


def _link_broken(entry: Mapping[str, Any], prev_seq: int, prev_id: int | None, locate: Locate) -> Finding:
    """``entry`` does not link to the one before it: say which entry is out of place."""
    seq, entry_id = entry["seq"], entry.get("id")
    if prev_seq == 0:
        return Finding(Breach.CHANGED, seq, entry_id, "the first entry does not link to the chain's start (0…0)")
    found = locate(entry["prev_hash"])
    if found is None:
        return Finding(
            Breach.CHANGED,
            prev_seq,
            prev_id,
            f"its hash is not the one seq {seq} links to: it was changed and its hash recomputed, or replaced",
        )
    at, at_id = found
    if at > seq:
        return Finding(
            Breach.REORDERED, seq, entry_id, f"it links to seq {at} (id {at_id}), which comes after it: entries moved"
        )
    return Finding(
        Breach.INSERTED, at + 1, None, f"seq {seq} links to seq {at}: the entries from seq {at + 1} were put in between"
    )


# ----------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Coverage:
    """How many checkpoints were held against the entries, and how many fell outside them."""

    checked: int = 0
    before: int = 0  # older than an export's first entry
    after: int = 0  # newer than an export's last entry

    def __str__(self) -> str:
        outside = [f"{n} {where} the export" for n, where in ((self.before, "before"), (self.after, "after")) if n]
        told = f"{self.checked} checkpoint{'' if self.checked == 1 else 's'} verified"
        return told + (f" ({', '.join(outside)} not covered)" if outside else "")


def against_checkpoints(
    seen: Walk, checkpoints: list[Checkpoint], key: Ed25519PublicKey, *, whole: bool
) -> tuple[Coverage, Finding | None]:
    """Hold the walked chain against ``checkpoints`` (oldest first), each signed by ``key``.

    :param whole: the walk covered the whole chain as it is now (the store): a
        checkpoint beyond its end means its newest entries were removed. An export
        may simply end before a later checkpoint."""
    checked = before = after = 0
    for checkpoint in checkpoints:
        if not checkpoint.signed_by(key):
            return Coverage(checked, before, after), Finding(
                Breach.FORGED,
                checkpoint.seq,
                None,
                f"checkpoint {checkpoint.name} is not signed by key {key_id(key)} (it names key "
                f"{checkpoint.key or 'none'}): forged, or altered",
            )
        if checkpoint.seq == 0:  # signed while the chain was empty, which every chain began as
            checked += 1
            continue
        if seen.last is None or checkpoint.seq > seen.last:
            if not whole:
                after += 1
                continue
            end = seen.last or 0
            return Coverage(checked, before, after), Finding(
                Breach.TRUNCATED,
                end + 1,
                None,
                f"checkpoint {checkpoint.name} of {checkpoint.at} saw the chain up to seq {checkpoint.seq}; it ends at "
                f"seq {end} now: its newest entries were removed",
            )
        if seen.first is not None and checkpoint.seq < seen.first:
            before += 1
            continue
        if seen.at_seq.get(checkpoint.seq) != checkpoint.hash:
            return Coverage(checked, before, after), Finding(
                Breach.REBUILT,
                checkpoint.seq,
                None,
                f"its hash is not the one checkpoint {checkpoint.name} of {checkpoint.at} signed: the chain was "
                "rebuilt up to here",
            )
        checked += 1
    return Coverage(checked, before, after), None


def against_head(seen: Walk, head: tuple[int, str]) -> Finding | None:
    """Hold the walked chain against the head recorded beside it (audit_chain_head),
    which every append moves: entries removed from the end without it moving show."""
    seq, hash_ = head
    last = seen.last or 0
    if seq > last:
        return Finding(
            Breach.TRUNCATED, last + 1, None, f"the chain head records seq {seq}, the newest entry is seq {last}"
        )
    if seq < last:
        return Finding(Breach.INSERTED, seq + 1, None, f"entries after the recorded head (seq {seq}) were added")
    if hash_ != seen.head:
        return Finding(Breach.REBUILT, seq, None, "its hash is not the one the chain head records")
    return None


def summary(seen: Walk, coverage: Coverage | None) -> str:
    """The one line of a chain that verified."""
    if seen.count == 0:
        line = "audit chain intact: no entries"
    else:
        line = f"audit chain intact: {seen.count} entries, seq {seen.first}–{seen.last}, head {seen.head[:16]}…"
    return line + (f"; {coverage}" if coverage is not None else "")
