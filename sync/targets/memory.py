"""An in-memory target: the reference implementation of the contract, for tests
and dry runs."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from .base import GroupNotFound, Outcome, PersonKey, Target, TargetUnavailable, WriteResult


class MemoryTarget(Target):
    name = "memory"

    def __init__(self, groups: dict[str, set[str]] | None = None, directory: dict[str, str] | None = None) -> None:
        self.groups: dict[str, set[str]] = {g: set(m) for g, m in (groups or {}).items()}
        self.directory: dict[str, str] = dict(directory or {})  # key → member id
        self.available = True
        self.writes = 0

    def _group(self, group: str) -> set[str]:
        if not self.available:
            raise TargetUnavailable("memory target is switched off")
        if group not in self.groups:
            raise GroupNotFound(group)
        return self.groups[group]

    def read_members(self, group: str) -> set[str]:
        return set(self._group(group))

    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        if not self.available:
            raise TargetUnavailable("memory target is switched off")
        return {p.person_id: self.directory[p.key] for p in people if p.key in self.directory}

    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, set.add)

    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None
                       ) -> WriteResult:
        return self._write(group, members, set.discard)

    def _write(self, group: str, members: list[str], change) -> WriteResult:
        current = self._group(group)
        result = WriteResult(requests=1 if members else 0)
        for member in members:
            change(current, member)
            result.outcomes[member] = (Outcome.DONE, "")
        self.writes += len(members)
        return result
