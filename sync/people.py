"""People as the policy sees them, read from the store in bulk.

One query each for users, memberships (with their groups), losses and
overrides — never one query per person — then the pure converter
:func:`mappings.facts.user_to_facts` turns each stored User into facts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from connector.store.keys import fold_key
from connector.store.models import AccessLossRow, ApprovalRecordRow, GroupRow, MemberRow, OverrideRow, UserRow
from mappings.facts import Approval, Effect, Override, PersonFacts, user_to_facts
from mappings.model import Mapping
from mappings.scim import parse_path

_CHUNK = 500


@dataclass(frozen=True)
class Person:
    person_id: str
    user_name: str | None
    key: str | None
    """The value matched against the directory (the ``sync.person_key`` attribute, as
    sent), or None: no value, or one the store holds no unique person key for (see
    :func:`resolvable_key`)."""
    facts: PersonFacts
    problems: tuple[str, ...]


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def load_people(
    session: Session,
    mapping: Mapping,
    person_key: str,
    person_ids: Iterable[str] | None = None,
    *,
    approvals: dict[str, dict] | None = None,
) -> list[Person]:
    """Every person (or the given ones) with facts ready for :func:`decide`.

    Approval-group memberships are only read for groups some approval rule
    matches, so a large unrelated group costs nothing. ``approvals`` (from
    :func:`approval_groups`) saves reading the groups again for each chunk.
    """
    ids = None if person_ids is None else sorted(set(person_ids))
    if ids == []:
        return []
    groups = approvals if approvals is not None else approval_groups(session, mapping)
    # The small tables first, then the users one at a time, each turned into facts as
    # it is read: the documents are never all held at once (they are most of the read).
    memberships = _memberships(session, groups, ids)
    losses = _losses(session, ids)
    overrides = _overrides(session, ids)
    records = _approval_records(session, ids)
    key_path = parse_path(person_key)
    people = []
    for user_id, user, stored_key in _users(session, ids):
        user["id"] = user_id  # the document is this call's own (parsed just now)
        facts, problems = user_to_facts(
            user,
            [(groups[g], since) for g, since in memberships.get(user_id, ())],
            mapping,
            losses.get(user_id),
            overrides.get(user_id, ()),
        )
        recorded = records.get(user_id)
        if recorded:  # both sources of approvals feed the same fact (policy §2)
            facts = facts.model_copy(update={"approvals": facts.approvals + tuple(recorded)})
        people.append(
            Person(
                user_id, user.get("userName"), resolvable_key(key_path.read(user), stored_key), facts, tuple(problems)
            )
        )
    return people


def resolvable_key(value: object, stored: str | None) -> str | None:
    """The key to find a person's directory entry by: their ``sync.person_key`` value,
    only when the store holds it, folded, as their unique person key
    (``scim_user.person_key``, see connector/store/person_keys.py).

    Otherwise None, and the person is reported unresolved: a key several users fold
    to (left empty by the store), or a store filled from another attribute than this
    process's setting, would let one directory entry be decided for two people.
    """
    if not isinstance(value, str) or stored is None or fold_key(value) != stored:
        return None
    return value


def _users(session: Session, ids: list[str] | None) -> Iterator[tuple[str, dict, str | None]]:
    """(id, stored User, stored person key) of everyone (in id order) or of the given
    people who are in the store, as they are read.

    The JSON text is read with orjson (several times faster than the standard
    library: this is a full run's largest read). It reads an integer beyond 64 bits
    as a float, which facts never read (they are strings, booleans and dates); such
    a document falls back to the standard library anyway. PostgreSQL is asked for
    the text too (a cast: a ``json`` value is kept as sent), which its driver would
    otherwise parse with the standard library; SQLite stores it as text already."""
    columns = select(UserRow.id, cast(UserRow.data, Text), UserRow.person_key)
    conn = session.connection()  # Core rows: no ORM processing per user
    statements = (
        [columns.order_by(UserRow.id)] if ids is None else [columns.where(UserRow.id.in_(c)) for c in _chunks(ids)]
    )
    for statement in statements:
        for user_id, data, key in conn.execute(statement):
            yield user_id, _document(data), key


def _document(value: str | dict) -> dict:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def approval_groups(session: Session, mapping: Mapping) -> dict[str, dict]:
    """Groups that some entitlement's approval rule recognises, by id."""
    rules = [rule for e in mapping.entitlements.values() for rule in e.approval_groups]
    found = {}
    for group_id, data in session.execute(select(GroupRow.id, GroupRow.data)):
        group = {**data, "id": group_id}
        if any(rule.location_of(group) is not None for rule in rules):
            found[group_id] = group
    return found


def _memberships(session: Session, groups: dict[str, dict], user_ids: list[str] | None) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    group_ids = list(groups)
    for chunk in _chunks(group_ids):
        stmt = select(MemberRow.member_id, MemberRow.group_id, MemberRow.since).where(MemberRow.group_id.in_(chunk))
        if user_ids is not None:
            for users in _chunks(user_ids):
                for member, group, since in session.execute(stmt.where(MemberRow.member_id.in_(users))):
                    out[member].append((group, since))
        else:
            for member, group, since in session.execute(stmt):
                out[member].append((group, since))
    return out


def _losses(session: Session, ids: list[str] | None) -> dict[str, dict[str, date]]:
    out: dict[str, dict[str, date]] = defaultdict(dict)
    stmt = select(AccessLossRow)
    rows = (
        session.scalars(stmt).all()
        if ids is None
        else [r for chunk in _chunks(ids) for r in session.scalars(stmt.where(AccessLossRow.person_id.in_(chunk)))]
    )
    for row in rows:
        out[row.person_id][row.entitlement] = date.fromisoformat(row.lost_on)
    return out


def _approval_records(session: Session, ids: list[str] | None) -> dict[str, list[Approval]]:
    """person id → their approval records still in force (sync/approvals.py)."""
    out: dict[str, list[Approval]] = defaultdict(list)
    stmt = select(ApprovalRecordRow).where(ApprovalRecordRow.withdrawn_at.is_(None))
    rows = (
        session.scalars(stmt).all()
        if ids is None
        else [r for chunk in _chunks(ids) for r in session.scalars(stmt.where(ApprovalRecordRow.person_id.in_(chunk)))]
    )
    for row in sorted(rows, key=lambda r: r.id):
        out[row.person_id].append(
            Approval(  # validated: the columns are text, and the date is parsed here
                entitlement=row.entitlement,
                location=row.location,
                approved_on=date.fromisoformat(row.approved_on),
                approver=row.approver,
            )
        )
    return out


def _overrides(session: Session, ids: list[str] | None) -> dict[str, list[Override]]:
    out: dict[str, list[Override]] = defaultdict(list)
    stmt = select(OverrideRow).where(OverrideRow.ended_at.is_(None))
    rows = (
        session.scalars(stmt).all()
        if ids is None
        else [r for chunk in _chunks(ids) for r in session.scalars(stmt.where(OverrideRow.person_id.in_(chunk)))]
    )
    for row in rows:
        out[row.person_id].append(
            Override(
                entitlement=row.entitlement,
                effect=Effect(row.effect),
                until=date.fromisoformat(row.until),
                reason=row.reason,
                by=row.by,
            )
        )
    return out
