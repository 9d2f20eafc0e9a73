"""The LDAP / Active Directory target (ldap3).

Members are DNs. Every DN this target returns (from :meth:`LdapTarget.read_members`
and :meth:`LdapTarget.resolve`) is in the normal form of
:func:`~sync.targets.ldap_filters.normalise_dn` (lower-case, canonical escaping), so
the two compare with ``==``. When writing, the DN exactly as the directory spelled
it (remembered from the last resolve or read) is sent, so ``member`` values keep the
entries' own case.

Directory facts honoured here (see ``shared/docs/directories.md``):

- ``member`` is read completely: AD returns at most 1,500 values per read and puts
  them in ``member;range=0-1499``; the ranges are followed here (not with ldap3's
  ``auto_range``, which keeps a flag on the strategy object that a failed follow-up
  search leaves set, after which ranges are silently no longer followed, and which
  stops quietly when a follow-up returns no entry). A read that cannot be completed
  raises, never returns part of a group.
- Writes are MODIFY_ADD / MODIFY_DELETE of at most ``batch_size`` values, never
  MODIFY_REPLACE. A modify is atomic: one present value (add, result 20) or absent
  value (delete, 16) fails the whole request. The permissive-modify control turns
  those into success; without it (or if a server ignores it) the request is split in
  halves until the stale values are isolated, and a single stale value counts as
  done. AD answers an add of an existing member with 68 (entryAlreadyExists) and a
  delete of a non-member with 53 (unwillingToPerform); in the ``ad`` flavour those
  are split the same way and a single value is checked with a ``(member=…)`` read.
- ``groupOfNames`` needs one ``member``: the configured placeholder is never removed,
  and when a removal would empty a group lacking it, it is added in the same request.
- Searches use the paged-results control, one search per chunk of keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from ldap3 import BASE, DEREF_NEVER, MODIFY_ADD, MODIFY_DELETE, NO_ATTRIBUTES, SUBTREE, Connection
from ldap3.core.exceptions import LDAPOperationResult

from ..settings import TargetKind
from . import ldap3_import  # noqa: F401  (must precede the ldap3 imports)
from .base import (
    GroupNotFound,
    Outcome,
    PersonKey,
    Target,
    TargetError,
    TargetUnavailable,
    WriteResult,
    one_person_per_entry,
)
from .ldap_filters import (
    ANY_ENTRY,
    check_attribute,
    equality,
    fold_key,
    match_any_chunks,
    normalise_dn,
    parse_range,
    ranged,
)
from .ldap_session import MISSING_RESULTS, SESSION_RESULTS, Access, LdapSession, describe, ldap_errors
from .ldap_settings import LdapSettings

log = logging.getLogger(__name__)

PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"

#: has_members checks up to this many members one by one; more, by reading the group.
PROBE_LIMIT = 20

#: Results that concern the whole request, so splitting it cannot help:
#: operationsError, protocolError, referral, unavailableCriticalExtension,
#: insufficientAccessRights, loopDetect, affectsMultipleDSAs.
REFUSED_RESULTS = frozenset({1, 2, 10, 12, 50, 54, 71})

#: The result a stale value gives per operation (RFC 4511 §4.6): the desired state.
STALE_RESULT = {MODIFY_ADD: 20, MODIFY_DELETE: 16}

#: What AD answers instead for a present (add) or absent (delete) member; also used
#: for real refusals, so a single value is checked before it counts as done.
AD_STALE_RESULT = {MODIFY_ADD: 68, MODIFY_DELETE: 53}


def _is_dn(value: str) -> bool:
    try:
        normalise_dn(value)
    except ValueError:
        return False
    return True


@dataclass
class _Write:
    """State of one add_members/remove_members call."""

    group: str
    op: int  # MODIFY_ADD or MODIFY_DELETE
    result: WriteResult
    placeholder_pending: bool = False


@dataclass(frozen=True)
class _Item:
    """One value to write and the caller's member strings it stands for."""

    value: str
    members: tuple[str, ...]


class LdapTarget(Target):
    """A group in an LDAP directory (OpenLDAP ``groupOfNames``) or Active Directory.

    Safe to share between threads (one ``SAFE_SYNC`` connection). ``WriteResult.requests``
    counts the modify requests sent, a request re-sent after an outage included.
    Writes find out what the group holds first (the caller's view of it, a probe per
    member for a few members, or one complete read), so only missing (or present)
    values are sent and every member gets a precise outcome.
    """

    name = TargetKind.LDAP

    def __init__(
        self,
        settings: LdapSettings,
        *,
        connection_factory: Callable[[], Connection] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """:param connection_factory: returns a bound ldap3 connection (tests use it to
        serve a recorded AD); by default the URLs of ``settings`` are tried in order.
        :param sleep: how to wait between retries."""
        check_attribute(settings.member_attribute)
        check_attribute(settings.match_attribute)
        self.settings = settings
        self.write_batch = settings.batch_size
        self._session = LdapSession(settings, connection_factory=connection_factory, sleep=sleep)
        self._placeholder = normalise_dn(settings.placeholder_member) if settings.placeholder_member else None
        self._spelling: dict[str, str] = {}  # normal form → DN as the directory wrote it
        self.last_ambiguous: dict[str, list[str]] = {}
        """After :meth:`resolve` (the latest call, from any thread): person_id → the DNs
        of the several entries whose matching attribute holds that person's key. Those
        people are left unresolved rather than matched to one of them at random."""
        self.last_shared: dict[str, list[str]] = {}
        """After :meth:`resolve` (the latest call, from any thread): person_id → the ids
        of every person of that call sharing their key (as ``match_attribute``
        compares it) or their entry, theirs included. Those people are left
        unresolved: one entry is never granted for one of them and revoked for another."""

    def normalise(self, member: str) -> str:
        try:
            return normalise_dn(member)
        except ValueError:
            return member.strip().lower()

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------------ reading

    def read_members(self, group: str) -> set[str]:
        members = set(self._read_values(group))
        members.discard(self._placeholder)
        return members

    def has_members(self, group: str, members: list[str]) -> set[str]:
        """Which of ``members`` (normal form returned) are in ``group``.

        Up to :data:`PROBE_LIMIT` members are checked with one ``(member=<dn>)``
        base-scope read each (the server compares with distinguishedNameMatch), which
        beats reading a group of thousands through AD's ranges; more are answered
        from one complete read.
        """
        wanted = {self.normalise(m): m for m in members}
        if self._placeholder is not None:
            wanted.pop(self._placeholder, None)
        if len(wanted) > PROBE_LIMIT:
            return self.read_members(group) & set(wanted)
        if not self._group_exists(group):
            raise GroupNotFound(group)
        return {normal for normal, given in wanted.items() if self._is_member(group, self._spelling.get(normal, given))}

    def _read_values(self, group: str) -> dict[str, str]:
        """The group's member values: normal form → value as stored (placeholder included)."""
        what = f"read members of {group}"
        with ldap_errors(what, group=group):
            raw = self._session.run(what, lambda conn: self._read_ranged(conn, group))
        values: dict[str, str] = {}
        for value in raw:
            normal = self.normalise(value)
            values[normal] = value
            self._spelling.setdefault(normal, value)
        return values

    def _read_ranged(self, conn: Connection, group: str) -> list[str]:
        """All values of the member attribute, following AD's ranged retrieval
        (``member;range=0-1499``, then ``member;range=1500-*`` … until ``…-*``)."""
        attribute = self.settings.member_attribute
        values: list[str] = []
        low = 0
        entry = self._base_entry(conn, group, [attribute])
        if entry is None:
            raise GroupNotFound(group)
        while True:
            chunk, following = self._slice(entry, attribute, low)
            values.extend(chunk)
            if following is None:
                return values
            if following <= low:
                raise TargetUnavailable(f"ranged read of {group} does not advance past {low}")
            low = following
            entry = self._base_entry(conn, group, [ranged(attribute, low)])
            if entry is None:
                raise TargetUnavailable(f"{group} vanished during a ranged read at {low}")

    @staticmethod
    def _base_entry(conn: Connection, dn: str, attributes: list[str]) -> dict | None:
        _, _, response, _ = conn.search(dn, ANY_ENTRY, BASE, DEREF_NEVER, attributes=attributes)
        return next((r for r in response or () if r.get("type") == "searchResEntry"), None)

    @staticmethod
    def _slice(entry: dict, attribute: str, low: int) -> tuple[list[str], int | None]:
        """The values in ``entry`` and where the next range starts (``None``: done)."""
        plain: list[bytes] = []
        for name, raw in entry["raw_attributes"].items():
            base, _, options = name.partition(";")
            if base.lower() != attribute.lower():
                continue
            bounds = parse_range(name)
            if bounds is None:
                if not options:
                    plain = raw or []
                continue
            _, first, last = bounds
            if first != low:
                raise TargetUnavailable(f"ranged read returned {name} when {low}-* was asked for")
            return [v.decode() for v in raw or ()], None if last is None else last + 1
        if low:
            raise TargetUnavailable(f"ranged read returned no {attribute};range={low}-… slice")
        return [v.decode() for v in plain], None

    # ------------------------------------------------------------------ resolving

    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        s = self.settings

        def fold(value: str) -> str:
            return fold_key(value, case_insensitive=s.match_case_insensitive)

        wanted: dict[str, list[PersonKey]] = {}
        for person in people:
            folded = fold(person.key)
            if folded:
                wanted.setdefault(folded, []).append(person)
        # The key as the person's data spells it: the directory applies its own
        # matching rule to it (the folding above only groups and checks the answers).
        keys = [persons[0].key for persons in wanted.values()]
        found: dict[str, dict[str, str]] = {}  # folded key → {normal DN: DN}
        for search_filter, _ in match_any_chunks(s.match_attribute, keys, max_values=s.resolve_chunk_size):
            if s.people_filter:
                search_filter = f"(&{s.people_filter}{search_filter})"
            for entry in self._search_people(search_filter):
                for name, raw in entry["raw_attributes"].items():
                    if name.partition(";")[0].lower() != s.match_attribute.lower():
                        continue
                    for value in raw:
                        key = fold(value.decode(errors="replace"))
                        if key in wanted:
                            found.setdefault(key, {})[self.normalise(entry["dn"])] = entry["dn"]
        resolved: dict[str, str] = {}
        ambiguous: dict[str, list[str]] = {}
        for key, persons in wanted.items():
            entries = found.get(key, {})
            if len(entries) > 1:
                for person in persons:
                    ambiguous[person.person_id] = sorted(entries.values())
                log.warning(
                    "%s=%r matches %d entries; left unresolved: %s",
                    s.match_attribute,
                    persons[0].key,
                    len(entries),
                    sorted(entries.values()),
                )
                continue
            for normal, dn in entries.items():
                self._spelling[normal] = dn
                for person in persons:
                    resolved[person.person_id] = normal
        resolved, shared = one_person_per_entry(people, resolved, fold)
        for group in sorted({tuple(ids) for ids in shared.values()}):
            log.warning(
                "people %s share one %s or one entry; left unresolved: no entry is decided for two people",
                ", ".join(group),
                s.match_attribute,
            )
        self.last_ambiguous = ambiguous
        self.last_shared = shared
        return resolved

    def _search_people(self, search_filter: str) -> list[dict]:
        s = self.settings

        def paged(conn: Connection) -> list[dict]:
            entries: list[dict] = []
            cookie = None
            while True:
                _, result, response, _ = conn.search(
                    s.people_base,
                    search_filter,
                    SUBTREE,
                    DEREF_NEVER,
                    attributes=[s.match_attribute],
                    paged_size=s.page_size,
                    paged_cookie=cookie,
                )
                entries.extend(r for r in response or () if r.get("type") == "searchResEntry")
                control = ((result or {}).get("controls") or {}).get(PAGED_RESULTS_OID) or {}
                cookie = (control.get("value") or {}).get("cookie")
                if not cookie:
                    return entries

        what = f"search people under {s.people_base}"
        with ldap_errors(what):
            return self._session.run(what, paged)

    # ------------------------------------------------------------------ writing

    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, MODIFY_ADD, current)

    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, MODIFY_DELETE, current)

    def _write(self, group: str, members: list[str], op: int, current: AbstractSet[str] | None) -> WriteResult:
        state = _Write(group, op, WriteResult())
        try:
            with ldap_errors(f"modify {group}", access=Access.WRITE, group=group):
                items = self._plan(state, members, current)
                size = self.settings.batch_size
                for start in range(0, len(items), size):
                    self._apply(state, items[start : start + size])
        except TargetError as exc:
            exc.partial = state.result
            raise
        return state.result

    def _plan(self, state: _Write, members: list[str], known: AbstractSet[str] | None) -> list[_Item]:
        """Settle what needs no request; return the values to send, in input order.

        ``known`` (the caller's complete view of the group) saves reading it again;
        values are then spelled as this target last read or resolved them. Without
        it, up to :data:`PROBE_LIMIT` members are probed one by one (see
        :meth:`has_members`), unless a removal might empty a group that lacks its
        placeholder; more are planned from one complete read.
        """
        outcomes = state.result.outcomes
        adding = state.op == MODIFY_ADD
        spelling = self._spelling
        whole = True  # whether ``current`` is the whole group
        spell_present: Callable[[str], str]
        if known is not None:
            current: AbstractSet[str] = known  # never holds the placeholder; looked up, not copied
            spell_present = lambda normal: spelling.get(normal, normal)  # noqa: E731
        elif len(members) <= PROBE_LIMIT and (adding or self._placeholder_present(state.group)):
            # A few members (a run about one person): probe them rather than read a
            # group of thousands. A removal then cannot empty the group (its
            # placeholder is in), and the server matches values by distinguishedNameMatch.
            current, whole = self.has_members(state.group, [m for m in members if _is_dn(m)]), False
            spell_present = lambda normal: spelling.get(normal, normal)  # noqa: E731
        else:
            stored = self._read_values(state.group)  # normal form → value as stored
            current = stored.keys()
            spell_present = stored.__getitem__
        pending: dict[str, list[str]] = {}
        for member in members:
            try:
                normal = normalise_dn(member)
            except ValueError:
                outcomes[member] = (Outcome.FAILED, "not a DN")
                continue
            if normal == self._placeholder:
                outcomes[member] = (Outcome.FAILED, "the placeholder member is kept by the target")
            elif (normal in current) == adding:
                outcomes[member] = (Outcome.DONE, "already a member" if adding else "not a member")
            else:
                pending.setdefault(normal, []).append(member)
        if whole and not adding and self._placeholder is not None and self._placeholder not in current:
            # groupOfNames needs one member (RFC 4519 §3.5): if this removal would empty
            # the group, the placeholder goes in with the first request.
            state.placeholder_pending = len(current) <= len(pending) and all(m in pending for m in current)
        if adding:
            return [_Item(spelling.get(normal, given[0]), tuple(given)) for normal, given in pending.items()]
        return [_Item(spell_present(normal), tuple(given)) for normal, given in pending.items()]

    def _apply(self, state: _Write, items: list[_Item]) -> None:
        """Send one modify for ``items``; on a per-value failure split and recurse."""
        s = self.settings
        changes = [(state.op, [item.value for item in items])]
        with_placeholder = state.placeholder_pending
        if with_placeholder and s.placeholder_member:
            changes.insert(0, (MODIFY_ADD, [s.placeholder_member]))
        controls = [(PERMISSIVE_MODIFY_OID, False, None)] if s.use_permissive_modify else None

        def modify(conn: Connection) -> None:
            state.result.requests += 1
            conn.modify(state.group, {s.member_attribute: changes}, controls=controls)

        try:
            self._session.run(f"modify {state.group}", modify)
        except LDAPOperationResult as exc:
            if with_placeholder and exc.result == 20:  # in a removal, only the placeholder add can exist
                state.placeholder_pending = False
                return self._apply(state, items)
            # Re-raised for _write's ldap_errors: GroupNotFound, TargetAuthError or WriteRefused.
            if exc.result == 32 and not self._group_exists(state.group):
                raise
            if (
                exc.result in REFUSED_RESULTS
                or exc.result in SESSION_RESULTS
                or (exc.result == 53 and s.flavour != "ad")
            ):
                raise
            if len(items) == 1:
                return self._settle(state, items[0], exc)
            log.info("modify of %s with %d values failed (%s); splitting", state.group, len(items), describe(exc))
            half = len(items) // 2
            self._apply(state, items[:half])
            self._apply(state, items[half:])
            return None
        if with_placeholder:
            state.placeholder_pending = False
        detail = "added" if state.op == MODIFY_ADD else "removed"
        for item in items:
            for member in item.members:
                state.result.outcomes[member] = (Outcome.DONE, detail)
        return None

    def _settle(self, state: _Write, item: _Item, exc: LDAPOperationResult) -> None:
        """The outcome of one value whose modify failed on its own."""
        adding = state.op == MODIFY_ADD
        done = exc.result == STALE_RESULT[state.op]
        if not done and self.settings.flavour == "ad" and exc.result == AD_STALE_RESULT[state.op]:
            done = self._is_member(state.group, item.value) == adding
        outcome = (
            (Outcome.DONE, "already a member" if adding else "not a member")
            if done
            else (Outcome.FAILED, describe(exc))
        )
        for member in item.members:
            state.result.outcomes[member] = outcome

    def _is_member(self, group: str, value: str) -> bool:
        search_filter = equality(self.settings.member_attribute, value)

        def check(conn: Connection) -> bool:
            _, _, response, _ = conn.search(group, search_filter, BASE, DEREF_NEVER, attributes=[NO_ATTRIBUTES])
            return any(r.get("type") == "searchResEntry" for r in response or ())

        what = f"check member of {group}"
        # A read, also inside a write: its failure is not a refused write.
        with ldap_errors(what, group=group):
            return self._session.run(what, check)

    def _placeholder_present(self, group: str) -> bool:
        """Whether the configured placeholder is a member (``True`` when none is configured)."""
        placeholder = self.settings.placeholder_member
        if not placeholder:  # as ``self._placeholder is None``
            return True
        return self._is_member(group, placeholder)

    def _group_exists(self, group: str) -> bool:
        what = f"find {group}"
        with ldap_errors(what):
            try:
                return self._session.run(what, lambda conn: self._base_entry(conn, group, [NO_ATTRIBUTES])) is not None
            except LDAPOperationResult as exc:
                if exc.result in MISSING_RESULTS:
                    return False
                raise
