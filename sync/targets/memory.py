"""An in-memory target: the reference implementation of the contract, for tests
and dry runs."""

from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet

from connector.store.keys import fold_key

from ..settings import TargetKind
from .base import GroupNotFound, Outcome, PersonKey, Target, TargetUnavailable, WriteResult, one_person_per_entry

log = logging.getLogger(__name__)


class MemoryTarget(Target):
    name = TargetKind.MEMORY

    def __init__(self, groups: dict[str, set[str]] | None = None, directory: dict[str, str] | None = None) -> None:
        self.groups: dict[str, set[str]] = {g: set(m) for g, m in (groups or {}).items()}
        self.directory: dict[str, str] = dict(directory or {})  # key → member id
        self.available = True
        self.writes = 0
        self.last_shared: dict[str, list[str]] = {}
        """As :attr:`LdapTarget.last_shared <sync.targets.ldap.LdapTarget.last_shared>`."""

    def _group(self, group: str) -> set[str]:
        if not self.available:
            raise TargetUnavailable("memory target is switched off")
        if group not in self.groups:
            raise GroupNotFound(group)
        return self.groups[group]

    def read_members(self, group: str) -> set[str]:
        return set(self._group(group))

    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        """Keys compare as a ``caseIgnoreMatch`` attribute does (``fold_key``); a key
        several entries hold resolves to none of them, and people sharing a key or
        an entry are left unresolved (:func:`one_person_per_entry`), as in the LDAP target."""
        if not self.available:
            raise TargetUnavailable("memory target is switched off")
        entries: dict[str, set[str]] = {}
        for key, member in self.directory.items():
            entries.setdefault(fold_key(key), set()).add(member)
        found = {}
        for person in people:
            matches = entries.get(fold_key(person.key), set())
            if len(matches) == 1:
                found[person.person_id] = next(iter(matches))
        found, self.last_shared = one_person_per_entry(people, found, fold_key)
        for group in sorted({tuple(ids) for ids in self.last_shared.values()}):
            log.warning("people %s share one key or one entry; left unresolved", ", ".join(group))
        return found

    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, set.add)

    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, set.discard)

    def _write(self, group: str, members: list[str], change) -> WriteResult:
        current = self._group(group)
        result = WriteResult(requests=1 if members else 0)
        for member in members:
            change(current, member)
            result.outcomes[member] = (Outcome.DONE, "")
        self.writes += len(members)
        return result
