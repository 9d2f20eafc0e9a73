"""The one interface every directory target implements.

A target knows directories, not SCIM: it reads a group's members, finds the
directory entries of people (by a matching key such as a uid or an employee
number), and adds or removes members. Library errors (ldap3, HTTP) are
translated into :class:`TargetError` subclasses inside the target; nothing above
``sync/targets/`` ever sees an ldap3 or requests exception.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum


class TargetError(Exception):
    """Base of every error a target raises.

    A write that stops part-way attaches what it did as ``partial``: members with an
    outcome there were settled, members without one were not written.
    """

    partial: WriteResult | None = None


class TargetUnavailable(TargetError):
    """The directory cannot be reached or did not answer (retry later)."""


class TargetAuthError(TargetError):
    """The target refused our credentials: stop, nothing was written."""


class TargetMisconfigured(TargetError):
    """The target's settings cannot work (a server certificate not trusted, a base that
    does not exist): stop and say which setting to fix; retrying will not help."""


class GroupNotFound(TargetError):
    """The configured group does not exist in the directory."""


class WriteRefused(TargetError):
    """The directory refused a write for a reason retrying will not fix."""


def partial_result(error: TargetError) -> WriteResult | None:
    """The members written before ``error`` interrupted a batch write, if known."""
    return getattr(error, "partial", None)


@dataclass(frozen=True)
class PersonKey:
    """How a person is looked up in a directory: ``person_id`` is the SCIM id,
    ``key`` the value of the matching attribute (e.g. userName → uid)."""

    person_id: str
    key: str


def one_person_per_entry(
    people: list[PersonKey], found: dict[str, str], fold: Callable[[str], str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Keep only the people of a resolve who have their directory entry to themselves.

    The store refuses a second user whose key folds like another's, so this never
    drops anyone in a sound store; it is the targets' defence in depth, since an
    entry given to two people is granted on behalf of one and revoked on behalf of
    the other at every run.

    :param found: person id → member identifier, as the directory answered.
    :param fold: how the target compares keys.
    :returns: ``found`` without anyone whose folded key another person of ``people``
        shares, or whose entry another person was given; and, for each of those,
        every person id sharing their key or entry (theirs included), sorted.
    """
    by_key: dict[str, set[str]] = {}
    for person in people:
        folded = fold(person.key)
        if folded:
            by_key.setdefault(folded, set()).add(person.person_id)
    by_member: dict[str, set[str]] = {}
    for person_id, member in found.items():
        by_member.setdefault(member, set()).add(person_id)
    shared: dict[str, set[str]] = {}
    for ids in (*by_key.values(), *by_member.values()):
        if len(ids) > 1:
            for person_id in ids:
                shared.setdefault(person_id, set()).update(ids)
    kept = {person_id: member for person_id, member in found.items() if person_id not in shared}
    return kept, {person_id: sorted(ids) for person_id, ids in shared.items()}


class Outcome(StrEnum):
    DONE = "done"  # the change is in the directory (also when it already was)
    FAILED = "failed"  # the directory refused this member; see the detail


@dataclass
class WriteResult:
    """Per-member outcome of a batch write: member → (outcome, detail)."""

    outcomes: dict[str, tuple[Outcome, str]] = field(default_factory=dict)
    requests: int = 0

    def done(self) -> list[str]:
        return [m for m, (o, _) in self.outcomes.items() if o is Outcome.DONE]

    def failed(self) -> dict[str, str]:
        return {m: d for m, (o, d) in self.outcomes.items() if o is Outcome.FAILED}


class Target(ABC):
    """A directory holding one group per entitlement.

    Member identifiers are opaque strings chosen by the target (a DN for LDAP, an
    object id for Entra), compared exactly after :meth:`normalise`.

    A full run writes from one thread while it resolves people from another
    (:mod:`sync.writer`): a target must allow that.
    """

    name: str = "target"

    write_batch: int = 1
    """How many members one write request carries; a caller that writes as it
    goes hands over multiples of it, so no request goes out part-empty."""

    @abstractmethod
    def read_members(self, group: str) -> set[str]:
        """Every member of ``group``, complete (all pages, all ranges).

        :returns: normalised member identifiers.
        :raises GroupNotFound: the group does not exist.
        :raises TargetUnavailable: the directory could not be read; callers must
            then not remove anyone.
        """

    @abstractmethod
    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        """Find the directory entries of ``people`` in bulk.

        No entry is given to two people: when several people of the call share a key
        (as the directory compares keys) or an entry, none of them is resolved
        (:func:`one_person_per_entry`), and a warning names them.

        :returns: ``person_id → member identifier`` for those found; people absent
            from the result have no directory entry (callers report them).
        :raises TargetUnavailable: the directory could not be searched.
        """

    @abstractmethod
    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        """Add members, writing only what is missing; a member already present counts as done.

        ``current``, when given, is the group's complete membership (normalised) as the
        caller read it in this run and updated with its own confirmed writes since; a
        target may plan with it instead of reading the group again. Without it the
        target finds out for itself.

        :raises TargetUnavailable: the directory went away; members without an
            outcome in a partial result were not written.
        :raises GroupNotFound: the group does not exist.
        """

    @abstractmethod
    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        """Remove members; a member already absent counts as done. ``current``: as for
        :meth:`add_members`.

        :raises TargetUnavailable: as for :meth:`add_members`.
        :raises GroupNotFound: the group does not exist.
        """

    def has_members(self, group: str, members: list[str]) -> set[str]:
        """Which of ``members`` are in ``group`` (for runs about a few people).

        The default reads the whole group; targets override it with a cheaper check.

        :raises GroupNotFound, TargetUnavailable: as :meth:`read_members`.
        """
        return self.read_members(group) & set(members)

    def normalise(self, member: str) -> str:
        """The comparable form of a member identifier (DNs compare case-insensitively)."""
        return member

    def close(self) -> None:  # noqa: B027 - an optional hook: a target holding nothing has nothing to release
        """Release connections."""
