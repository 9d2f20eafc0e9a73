"""The embedded target: each entitlement's group kept in the store itself
(``WALKIN_SYNC__TARGET=store``), so that a new user sees the whole flow — SCIM in,
a decision, the group — with nothing else to install (``walkin demo``). A person's
"directory entry" is their SCIM record: the member identifier is its id, found for
anyone the store holds. Not for production: the district's group lives in its
directory, and this one grants nothing there."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from connector.clock import Clock, SystemClock
from connector.store.database import Store
from connector.store.keys import fold_key
from connector.store.models import EmbeddedMemberRow, UserRow, table_of

from ..settings import TargetKind
from .base import GroupNotFound, Outcome, PersonKey, Target, TargetUnavailable, WriteResult, one_person_per_entry

_SLICE = 500


class EmbeddedTarget(Target):
    name = TargetKind.STORE
    write_batch = _SLICE

    def __init__(self, store: Store, groups: AbstractSet[str], clock: Clock | None = None) -> None:
        """:param groups: the groups that exist (the entitlements' names)."""
        self.store, self.groups, self.clock = store, frozenset(groups), clock or SystemClock()

    def _check(self, group: str) -> None:
        if group not in self.groups:
            raise GroupNotFound(group)

    def read_members(self, group: str) -> set[str]:
        self._check(group)
        try:
            with self.store.connection_read() as conn:
                return set(conn.scalars(select(EmbeddedMemberRow.member).where(EmbeddedMemberRow.group == group)))
        except OperationalError as exc:
            raise TargetUnavailable(f"the store cannot be read: {exc.orig}") from exc

    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        """A person's entry is the SCIM record whose person key (folded as the store
        keeps it, unique) is theirs: its id."""
        by_key: dict[str, list[str]] = {}
        for person in people:
            by_key.setdefault(fold_key(person.key), []).append(person.person_id)
        keys = [k for k in by_key if k]
        found: dict[str, str] = {}
        try:
            with self.store.connection_read() as conn:
                for i in range(0, len(keys), _SLICE):
                    rows = conn.execute(
                        select(UserRow.person_key, UserRow.id).where(UserRow.person_key.in_(keys[i : i + _SLICE]))
                    )
                    for key, user_id in rows:
                        for person_id in by_key.get(key or "", []):
                            found[person_id] = user_id
        except OperationalError as exc:
            raise TargetUnavailable(f"the store cannot be read: {exc.orig}") from exc
        kept, _shared = one_person_per_entry(people, found, fold_key)
        return kept

    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        self._check(group)
        if members:
            now = self.clock.now()
            self._write(lambda conn: self._insert(conn, group, members, now))
        return _done(members)

    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        self._check(group)
        if members:
            e = EmbeddedMemberRow
            self._write(lambda conn: conn.execute(delete(e).where(e.group == group, e.member.in_(members))))
        return _done(members)

    def has_members(self, group: str, members: list[str]) -> set[str]:
        self._check(group)
        e = EmbeddedMemberRow
        with self.store.connection_read() as conn:
            return set(conn.scalars(select(e.member).where(e.group == group, e.member.in_(members))))

    @staticmethod
    def _insert(conn, group: str, members: list[str], now) -> None:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table_of(EmbeddedMemberRow)).on_conflict_do_nothing(index_elements=["group", "member"])
        conn.execute(stmt, [{"group": group, "member": m, "since": now} for m in members])

    def _write(self, change) -> None:
        try:
            with self.store.connection_write() as conn:
                change(conn)
        except OperationalError as exc:
            raise TargetUnavailable(f"the store cannot be written: {exc.orig}") from exc


def _done(members: list[str]) -> WriteResult:
    return WriteResult({m: (Outcome.DONE, "") for m in members}, requests=1 if members else 0)
