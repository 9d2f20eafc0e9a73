"""The planner: desired members (people entitled today) against actual members
(the group as the directory holds it) → adds and removes, each with its reason.

Pure: no clock, store or directory. Members are compared in the target's
normalised form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from mappings.policy import Decision


class Action(StrEnum):
    GRANT = "grant"  # add an entitled person
    REVOKE = "revoke"  # remove a person who no longer qualifies
    MOVE = "move"  # remove an entry granted to a person who keeps the entitlement, but not through it
    DRIFT = "drift"  # remove a member no person of the store maps to


DRIFT_REASON = "UNKNOWN_MEMBER"
MOVE_REASON = "ENTRY_CHANGED"


@dataclass(frozen=True)
class Change:
    action: Action
    member: str
    person_id: str | None
    decision: Decision | None

    @property
    def reasons(self) -> tuple[str, ...]:
        if self.action is Action.DRIFT:
            return (DRIFT_REASON,)
        if self.action is Action.MOVE:
            return (MOVE_REASON,)
        return tuple(str(r) for r in self.decision.reasons) if self.decision else ()


@dataclass
class Plan:
    adds: list[Change] = field(default_factory=list)
    removes: list[Change] = field(default_factory=list)
    unresolved: list[Decision] = field(default_factory=list)
    """Entitled people with no directory entry: reported, never silently dropped."""
    kept: int = 0
    actual_size: int = 0
    guard_reason: str | None = None
    """Why the deletion guard held this plan's removals, when it did."""

    @property
    def empty(self) -> bool:
        return not self.adds and not self.removes


def plan(
    decisions: Iterable[Decision],
    members: Mapping[str, str],
    actual: set[str],
    known: Mapping[str, str],
    *,
    allowlist: Iterable[str] = (),
    full: bool = True,
    settled: Iterable[str] = (),
    holders: Mapping[str, str] | None = None,
    with_adds: bool = True,
) -> Plan:
    """Compute the changes that make ``actual`` equal the entitled people.

    :param decisions: today's decision for every person in scope.
    :param members: person id → their member identifier (resolved people only).
    :param actual: the group's current members.
    :param known: member identifier → person id for every person the store maps to
        a directory entry (used to tell a revoke from drift).
    :param allowlist: members never removed.
    :param full: whether ``decisions`` covers every person. Only a full plan
        removes drift (members nobody maps to); a plan for a few people never
        touches members outside them.
    :param settled: members of further people whose (stored) decision entitles
        them and who are already in ``actual``: kept as they are, never drift.
    :param holders: member → the person it was granted to (the connector's
        holdings). A member granted to a person decided here that is no longer their
        entry (a rename: their key now finds another entry, or none) is removed on
        their behalf: a revoke when they no longer qualify, else a move (they keep the
        entitlement through their new entry). It is never drift, and never removed
        for them when it has become another decided person's entry: that person's
        decision rules it.
    :param with_adds: ``False`` when the adds were planned already (a full run plans
        each chunk's adds as it decides it and writes them at once): only removals,
        the unresolved and the kept are planned then.
    """
    out = Plan(actual_size=len(actual))
    allowed = set(allowlist)
    in_scope: set[str] = set(settled)
    out.kept = len(in_scope)
    decisions_by_person: dict[str, Decision] = {}
    for decision in decisions:
        decisions_by_person[decision.person_id] = decision
        member = members.get(decision.person_id)
        if member is None:
            if decision.entitled:
                out.unresolved.append(decision)
            continue
        in_scope.add(member)
        present = member in actual
        if decision.entitled and not present:
            if with_adds:
                out.adds.append(Change(Action.GRANT, member, decision.person_id, decision))
        elif not decision.entitled and present and member not in allowed:
            out.removes.append(Change(Action.REVOKE, member, decision.person_id, decision))
        elif present:
            out.kept += 1
    if holders:
        _old_entries(out, decisions_by_person, members, actual, holders, known, in_scope, allowed)
    if full:
        for member in sorted(actual - in_scope - allowed):
            person = known.get(member)
            out.removes.append(Change(Action.DRIFT, member, person, None))
    return out


def _old_entries(
    out: Plan,
    decisions: Mapping[str, Decision],
    members: Mapping[str, str],
    actual: set[str],
    holders: Mapping[str, str],
    known: Mapping[str, str],
    in_scope: set[str],
    allowed: set[str],
) -> None:
    """Removals of entries granted to people decided here that are no longer theirs
    (see :func:`plan`)."""
    for member in sorted(set(holders) & actual - in_scope - allowed):
        person = holders[member]
        decision = decisions.get(person)
        if decision is None:
            continue
        owner = known.get(member)
        if owner is not None and owner != person:
            continue  # another person's entry now: their decision, in their run
        in_scope.add(member)
        action = Action.MOVE if decision.entitled else Action.REVOKE
        out.removes.append(Change(action, member, person, decision))


@dataclass(frozen=True)
class GuardVerdict:
    hold: bool
    why: str = ""


def deletion_guard(
    removals: int, group_size: int, *, max_removals: int, max_percent: float, floor: int
) -> GuardVerdict:
    """Whether a run's removals must be held for an administrator (like Entra's
    accidental-deletion prevention): more than ``max_removals``, or more than
    ``max_percent`` of the group — but never for ``floor`` removals or fewer."""
    if removals <= floor:
        return GuardVerdict(False)
    if removals > max_removals:
        return GuardVerdict(True, f"{removals} removals exceed the limit of {max_removals}")
    if group_size and removals * 100 > max_percent * group_size:
        share = removals * 100 / group_size
        return GuardVerdict(
            True, f"{removals} removals are {share:.0f}% of {group_size} members (limit {max_percent:g}%)"
        )
    return GuardVerdict(False)
