"""Stored decisions: what the sync last decided for each person, and what it rested on.

Deciding a person means reading their whole stored User and turning it into facts;
for a district that is most of a full reconcile's time, and on most days almost
nobody's decision can have changed. So every run stores each decision it makes with
its *basis* and its *recheck day*, and a full run re-decides only the people for whom
one of these no longer holds:

* the **basis** is unchanged. It digests everything the person's facts are made of
  and everything that turns facts into a decision: the user's version (the store
  bumps it at every write to the user, so any change to any attribute counts), each
  approval-group membership with its start and the group's stored data, the
  person's loss dates, overrides and approval records, the mapping, and the source of the policy code
  (a new mapping file or a new release re-decides everyone);
* the evaluation day is on or after the day it was decided and before its **recheck
  day** — :func:`mappings.policy.next_change`, the first day on which the same facts
  could give another answer (an expiry, a completion or approval dated in the
  future, an override ending).

Everyone else keeps their stored decision. The directory side is never cached
here: each full run still reads the whole group and compares. The basis is
computed *before* the person's data is read, so a change racing with a run leaves a
basis that no longer matches and the person is decided again next time — never the
other way round. The table is a cache: emptying it only makes the next run slower.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import String, and_, delete, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

import mappings.calendar
import mappings.facts
import mappings.model
import mappings.policy
import mappings.standing
import mappings.vocabulary
from connector.store.models import (
    AccessLossRow,
    ApprovalRecordRow,
    DecisionChangeRow,
    DecisionRow,
    DirectoryEntryRow,
    MemberRow,
    OverrideRow,
    UserRow,
    table_of,
)
from mappings.model import Mapping
from mappings.policy import Decision
from mappings.standing import Standing

from . import ledger
from . import people as people_module

_CHUNK = 500
#: The code a decision is made by: a change to any of these files re-decides everyone.
_POLICY_CODE = (
    mappings.policy,
    mappings.facts,
    mappings.calendar,
    mappings.model,
    mappings.vocabulary,
    mappings.standing,
    people_module,
)


def fingerprint(mapping: Mapping) -> str:
    """A digest of the mapping and of the policy's source code."""
    return hashlib.sha256(mapping.model_dump_json().encode() + _code_digest()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _code_digest() -> bytes:
    """The policy's source, read once per process (every run, event runs included, needs it)."""
    digest = hashlib.sha256()
    for module in _POLICY_CODE:
        if module.__file__ is None:
            raise RuntimeError(f"{module.__name__} has no source file")
        digest.update(Path(module.__file__).read_bytes())
    return digest.digest()


def _basis(head: str, version: int, extra: str | None) -> str:
    return f"{head}{version}|{extra}" if extra else f"{head}{version}"


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _extras(
    session: Session, approvals: dict[str, dict], ids: list[str] | None = None, between: tuple[str, str] | None = None
) -> dict[str, str]:
    """person id → the part of their basis beyond the user's version (people with
    none are absent): of the given people, or of the people whose id lies
    ``between`` two ids (inclusive, in the database's order)."""
    parts: dict[str, list[str]] = defaultdict(list)

    conn = session.connection()  # Core: plain rows, no ORM loading

    def rows(stmt, column, *conditions) -> Iterable:
        stmt = stmt.where(*conditions)
        if ids is None:
            if between is not None:
                stmt = stmt.where(column.between(*between))
            return conn.execute(stmt).all()
        return (row for chunk in _chunks(ids) for row in conn.execute(stmt.where(column.in_(chunk))))

    meaning = _meanings(approvals)
    since = type_coerce(MemberRow.since, String)  # the stored text: nothing to parse
    for chunk in _chunks(list(meaning)):
        stmt = select(MemberRow.member_id, MemberRow.group_id, since).where(MemberRow.group_id.in_(chunk))
        for member, group, began in rows(stmt, MemberRow.member_id):
            parts[member].append(f"m{meaning[group]}@{began}")
    for person, entitlement, lost_on in rows(
        select(AccessLossRow.person_id, AccessLossRow.entitlement, AccessLossRow.lost_on), AccessLossRow.person_id
    ):
        parts[person].append(f"l{entitlement}@{lost_on}")
    for row in rows(
        select(
            OverrideRow.person_id,
            OverrideRow.entitlement,
            OverrideRow.effect,
            OverrideRow.until,
            OverrideRow.reason,
            OverrideRow.by,
        ),
        OverrideRow.person_id,
        OverrideRow.ended_at.is_(None),
    ):
        parts[row[0]].append("o" + json.dumps(list(row[1:])))
    for row in rows(
        select(
            ApprovalRecordRow.person_id,
            ApprovalRecordRow.id,
            ApprovalRecordRow.entitlement,
            ApprovalRecordRow.location,
            ApprovalRecordRow.approved_on,
            ApprovalRecordRow.approver,
        ),
        ApprovalRecordRow.person_id,
        ApprovalRecordRow.withdrawn_at.is_(None),
    ):
        parts[row[0]].append("a" + json.dumps(list(row[1:])))
    return {person: "|".join(sorted(items)) for person, items in parts.items()}


def _meanings(approvals: dict[str, dict]) -> dict[str, str]:
    """group id → what the approval group says (all but its members), in 12 characters."""
    return {
        gid: hashlib.blake2b(
            json.dumps({k: v for k, v in group.items() if k != "members"}, sort_keys=True, default=str).encode(),
            digest_size=6,
        ).hexdigest()
        for gid, group in approvals.items()
    }


def bases(
    session: Session, mapping_fingerprint: str, approvals: dict[str, dict], person_ids: list[str]
) -> dict[str, str]:
    """person id → basis of the given people who are in the store: the fingerprint,
    the user's version, then the sorted memberships (``m<group digest>@<since>``),
    loss dates (``l<entitlement>@<day>``) and overrides (``o[…]``), if any. Plain
    text, not a digest: comparing it is as cheap, and it shows what changed.

    :param approvals: the approval groups (:func:`sync.people.approval_groups`).
    """
    ids = sorted(set(person_ids))
    extras = _extras(session, approvals, ids)
    head = mapping_fingerprint + ":"
    out = {}
    for chunk in _chunks(ids):
        for person, version in session.execute(select(UserRow.id, UserRow.version).where(UserRow.id.in_(chunk))):
            out[person] = _basis(head, version, extras.get(person))
    return out


class Surveyed(NamedTuple):
    """One person in a full run's survey."""

    person_id: str
    basis: str
    """Their basis now."""
    holds: bool | None
    """Whether their stored decision entitles them, when it still holds (their basis
    unchanged, on or after the day it was made, before its recheck day); else ``None``."""
    stored: bool
    """Whether a stored decision exists at all."""
    member: str | None
    """Their cached directory entry (as cached), if any."""
    key: str | None
    """The matching key that entry was found by."""
    fresh: bool
    """Whether that entry was resolved after ``fresh_after``."""


def survey(
    session: Session,
    entitlement: str,
    target: str,
    mapping_fingerprint: str,
    approvals: dict[str, dict],
    today: date,
    fresh_after: datetime,
    batch: int = 5000,
) -> Generator[list[Surveyed], None, None]:
    """Every person in the store (in no particular order) with their basis, whether
    their stored decision holds, and their cached directory entry — one query over
    the users, the stored decisions and the entry cache (a full run's first look at
    everyone), answered ``batch`` people at a time so the caller can act on the
    first people before the last are read.

    The people come in id order, so each batch's memberships, loss dates and
    overrides are read for its range of ids, when the batch is: the first people are
    answered after a twentieth of that reading, not all of it (the writer starts
    sooner). Each range is read after the users it covers, and before their data
    is (:func:`sync.people.load_people`), so a basis is never fresher than the
    facts decided on it (see the module doc)."""
    day = today.isoformat()
    d, e = DecisionRow, DirectoryEntryRow
    in_date = and_(d.decided_on <= day, or_(d.recheck_on.is_(None), d.recheck_on > day))
    stmt = (
        select(UserRow.id, UserRow.version, d.basis, in_date, d.entitled, e.member, e.key, e.resolved_at >= fresh_after)
        .outerjoin(d, and_(d.person_id == UserRow.id, d.entitlement == entitlement))
        .outerjoin(e, and_(e.person_id == UserRow.id, e.target == target))
        # PostgreSQL: a server-side cursor, so the first rows come before the last are
        # sent (SQLite steps through its result as it is read anyway)
        .order_by(UserRow.id)  # SQLite walks the (id, version) index: no sort
        .execution_options(stream_results=True, max_row_buffer=batch)
    )
    head = mapping_fingerprint + ":"
    with session.connection().execute(stmt) as result:  # closed also when the caller stops early
        for rows in result.partitions(batch):
            extras = _extras(session, approvals, between=(rows[0][0], rows[-1][0]))
            out = []
            for person, version, stored_basis, usable, entitled, member, key, fresh in rows:
                basis = _basis(head, version, extras.get(person))
                holds = bool(entitled) if stored_basis == basis and usable else None
                out.append(Surveyed(person, basis, holds, stored_basis is not None, member, key, bool(fresh)))
            yield out


def count(session: Session, entitlement: str) -> int:
    """How many decisions of the entitlement are stored."""
    return (
        session.scalar(select(func.count()).select_from(DecisionRow).where(DecisionRow.entitlement == entitlement)) or 0
    )


Decided = tuple[str, Decision, date | None, Standing]
"""What a run stores for a person: basis, decision, recheck day, standing."""


def save(
    session: Session,
    entitlement: str,
    decided: dict[str, Decided],
    now: datetime,
    run_id: int | None = None,
    notify: bool = False,
) -> None:
    """Store ``person id → (basis, decision, recheck day, standing)``, replacing what
    was there, and note in ``decision_change`` (at ``now``, by run ``run_id``) each
    person whose decision is new or differs from the stored one in entitlement,
    override, reasons or valid-through — a person's history. With ``notify``, a
    stored decision that changes entitlement also puts a granted or lost notice in
    the outbox, in the same transaction (sync/notices/).

    An upsert, so two workers storing the same person at once both succeed (the later
    one wins; both decisions were right for their basis).
    """
    if not decided:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table_of(DecisionRow))  # Core: executemany, not the ORM's bulk path
    stmt = stmt.on_conflict_do_update(
        index_elements=["entitlement", "person_id"],
        set_={name: stmt.excluded[name] for name in _UPDATED},
    )
    conn, items = session.connection(), list(decided.items())
    for i in range(0, len(items), ledger.WRITE_SLICE):  # a cold run stores everyone's: a slice of rows at a time
        rows = [_row(entitlement, person, *value) for person, value in items[i : i + ledger.WRITE_SLICE]]
        changed = _changed(conn, entitlement, rows)
        conn.execute(stmt, rows)
        if changed:
            conn.execute(
                insert(table_of(DecisionChangeRow)),
                [{**{k: row[k] for k in _HISTORY}, "at": now, "run_id": run_id} for _, row in changed],
            )
            if notify:
                from .notices import due, outbox

                was = [(before, row) for before, row in changed if before is not None]
                outbox.enqueue(conn, due.from_changes(entitlement, was, now))


def _row(entitlement: str, person: str, basis: str, d: Decision, recheck: date | None, standing: Standing) -> dict:
    grounds = standing.grounds
    return {
        "entitlement": entitlement,
        "person_id": person,
        "basis": basis,
        "decided_on": d.at.isoformat(),
        "recheck_on": None if recheck is None else recheck.isoformat(),
        "entitled": d.entitled,
        "by_override": d.by_override,
        "reasons": ",".join(d.reasons),
        "valid_through": None if d.valid_through is None else d.valid_through.isoformat(),
        "entitled_since": None if d.entitled_since is None else d.entitled_since.isoformat(),
        "active": standing.active,
        "role": standing.role,
        "location": standing.location,
        "waiting_on": None if standing.waiting_on is None else standing.waiting_on.value,
        "approver": grounds.approver,
        "approved_on": grounds.approved_on,
        "chain": grounds.chain,
    }


#: The columns of a decision that make a change worth a line in the person's history.
_COMPARED = ("entitled", "by_override", "reasons", "valid_through")
_HISTORY = ("person_id", "entitlement", "decided_on", *_COMPARED)


def _changed(conn, entitlement: str, rows: list[dict]) -> list[tuple[bool | None, dict]]:
    """The rows whose decision differs from the stored one (or that have none), each
    with whether the stored one was entitled (None: there was none)."""
    d = DecisionRow
    stored = {
        person: tuple(rest)
        for person, *rest in conn.execute(
            select(d.person_id, d.entitled, d.by_override, d.reasons, d.valid_through).where(
                d.entitlement == entitlement, d.person_id.in_([row["person_id"] for row in rows])
            )
        )
    }
    return [
        (None if before is None else before[0], row)
        for row in rows
        if (before := stored.get(row["person_id"]))
        != (row["entitled"], row["by_override"], row["reasons"], row["valid_through"])
    ]


_UPDATED = (
    "basis",
    "decided_on",
    "recheck_on",
    "entitled",
    "by_override",
    "reasons",
    "valid_through",
    "entitled_since",
    "active",
    "role",
    "location",
    "waiting_on",
    "approver",
    "approved_on",
    "chain",
)


def forget(session: Session, entitlement: str, person_ids: Iterable[str] | None = None) -> None:
    """Drop stored decisions of the given people, or (``None``) of people no longer in the store."""
    base = delete(DecisionRow).where(DecisionRow.entitlement == entitlement)
    if person_ids is None:
        session.execute(base.where(~ledger.in_store(DecisionRow.person_id)))
        return
    for chunk in _chunks(sorted(set(person_ids))):
        session.execute(base.where(DecisionRow.person_id.in_(chunk)))
