"""The Entra ID target (Microsoft Graph).

Groups and members are object ids, compared in lower case. Graph facts honoured here
(``shared/docs/directories.md``, "Microsoft Graph group membership"):

- Members are read with ``GET /groups/{id}/members/microsoft.graph.user?$select=id&$top=999``,
  following every ``@odata.nextLink`` (the whole URL) until there is none. Only user
  members are read, so nested groups, devices and service principals are neither
  reported nor ever removed.
- Adds are ``PATCH /groups/{id}`` with up to 20 ``members@odata.bind`` references. The
  request is all-or-nothing: one member already present fails it with 400 "One or
  more added object references already exist …", so it is split in halves until the
  present members stand alone (a present member counts as done). A member Graph says
  does not exist (404 ``Request_ResourceNotFound`` or 400 "… do not exist") is split
  out the same way and, as a just-created user can be missing on some replicas for a
  few seconds, tried again for ``consistency_window`` seconds before it is FAILED.
- Removals are ``DELETE /groups/{id}/members/{memberId}/$ref``, 20 to a ``POST /$batch``;
  each answer has its own status: 204 done, 404 not a member (done, once the group is
  known to exist), 429/503/504 sent again (by
  :class:`~sync.targets.graph_http.GraphClient`), anything else FAILED. Every answer
  of a batch is settled before anything is raised: Graph applied the others.
- Graph answers a member reference the group does not hold with the same 404 as a
  group that does not exist, naming the group ("Resource '<group id>' does not exist
  or one of its queried reference-property objects are not present."), so no message
  says the group is gone: a 404 to a write is followed by ``GET /groups/{id}?$select=id``
  (404 there: :class:`GroupNotFound`).
- Lookups (``match`` other than ``object_id``) are ``GET /users?$filter=<property> in (…)``
  queries of up to 15 keys, 20 queries to a ``$batch``; values are OData string
  literals (single quotes doubled) and percent-encoded.

Throttling, the write budget, token refresh and the circuit breaker live in
:mod:`sync.targets.graph_http`; token acquisition in :mod:`sync.targets.graph_auth`.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any
from urllib.parse import quote

import requests

from connector.clock import Clock
from connector.store.keys import fold_key

from ..settings import TargetKind
from .base import (
    GroupNotFound,
    Outcome,
    PersonKey,
    Target,
    TargetAuthError,
    TargetError,
    TargetUnavailable,
    WriteResult,
    one_person_per_entry,
)
from .graph_auth import MsalTokens, TokenProvider
from .graph_http import BatchItem, GraphClient, GraphReply
from .graph_settings import GRAPH_BATCH_LIMIT, GraphSettings

log = logging.getLogger(__name__)

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: Most values in one OData ``in (…)`` expression on directory objects.
IN_LIMIT = 15

#: has_members checks up to this many members with filtered reads (15 per request);
#: more, by reading the whole group.
PROBE_LIMIT = 3 * IN_LIMIT

#: Graph's message when a PATCH adds a member the group already has.
ALREADY_MEMBER = "added object references already exist"


def is_object_id(value: str) -> bool:
    """Whether ``value`` (lower case) has the shape of an Entra object id (a GUID)."""
    return _GUID.fullmatch(value) is not None


def odata_string(value: str) -> str:
    """An OData string literal: in single quotes, each single quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def filter_param(expression: str) -> str:
    """``expression`` percent-encoded for a ``$filter=`` query parameter."""
    return quote(expression, safe="'(),")


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_already_member(reply: GraphReply) -> bool:
    return reply.status == 400 and ALREADY_MEMBER in reply.message.lower()


def is_missing_object(reply: GraphReply) -> bool:
    """404 ``Request_ResourceNotFound``, or 400 "… do(es) not exist" (eventual consistency)."""
    text = reply.message.lower()
    return reply.status == 404 or (reply.status == 400 and ("does not exist" in text or "do not exist" in text))


def refused(reply: GraphReply, what: str) -> TargetError:
    """The error for an answer that ends an operation."""
    if reply.status in (401, 403):
        return TargetAuthError(f"{what}: {reply.describe()}")
    return TargetUnavailable(f"{what}: {reply.describe()}")


class GraphTarget(Target):
    """A group in Microsoft Entra ID, written through Microsoft Graph (see module doc).

    ``WriteResult.requests`` counts the HTTP requests sent to Graph, retries included.
    Every call signs in first, so refused credentials raise :class:`TargetAuthError`
    before anything is written.
    """

    name = TargetKind.ENTRA
    write_batch = GRAPH_BATCH_LIMIT

    def __init__(
        self,
        settings: GraphSettings,
        *,
        tokens: TokenProvider | None = None,
        msal_app: Any | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        wall_clock: Clock | None = None,
    ) -> None:
        """:param tokens: where bearer tokens come from (default: msal, see graph_auth).
        :param msal_app: an msal ``ConfidentialClientApplication`` for the default provider.
        :param session: the requests session to send with (closed by :meth:`close` only
            when created here).
        :param sleep, clock, jitter: how to wait, what time it is (monotonic seconds) and
            the random factor of backoff (tests make them deterministic).
        :param wall_clock: the date and time, for a ``Retry-After`` given as an HTTP date."""
        self.settings = settings
        self.client = GraphClient(
            settings,
            tokens or MsalTokens(settings, app=msal_app),
            session=session,
            sleep=sleep,
            clock=clock,
            jitter=jitter,
            wall_clock=wall_clock,
        )
        self._sleep, self._clock = sleep, clock
        self._found: dict[str, tuple[str, float]] = {}  # folded key → (object id, when looked up)
        self.last_ambiguous: dict[str, list[str]] = {}
        self.last_shared: dict[str, list[str]] = {}  # as LdapTarget.last_shared
        """After :meth:`resolve`: person_id → the object ids of the several users whose
        matching property holds that person's key (left unresolved)."""

    def normalise(self, member: str) -> str:
        return member.strip().lower()

    def close(self) -> None:
        self.client.close()

    def _group_id(self, group: str) -> str:
        gid = self.normalise(group)
        if not is_object_id(gid):
            raise GroupNotFound(f"{group!r} is not a group object id")
        self.client.tokens.token()  # sign in first: refused credentials stop before any decision
        return gid

    # ------------------------------------------------------------------ reading

    def read_members(self, group: str) -> set[str]:
        gid = self._group_id(group)
        return self._member_ids(group, f"/groups/{gid}/members/microsoft.graph.user?$select=id&$top=999")

    def _member_ids(self, group: str, url: str, headers: dict[str, str] | None = None) -> set[str]:
        """The ids on every page of a member list, following each ``@odata.nextLink`` whole."""
        members: set[str] = set()
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            reply = self.client.send("GET", next_url, headers=headers)
            if reply.status == 404:
                raise GroupNotFound(f"{group}: {reply.describe()}")
            if not reply.ok:
                raise refused(reply, f"cannot read the members of {group}")
            page = reply.body or {}
            if not isinstance(page.get("value"), list):
                raise TargetUnavailable(f"the members of {group} came back without a value list")
            members.update(self.normalise(m["id"]) for m in page["value"] if isinstance(m, dict) and m.get("id"))
            next_url = page.get("@odata.nextLink")
            if next_url in seen:
                raise TargetUnavailable(f"paging the members of {group} loops at {next_url}")
            if next_url:
                seen.add(next_url)
        return members

    def has_members(self, group: str, members: list[str]) -> set[str]:
        """Which of ``members`` are in ``group``: up to :data:`PROBE_LIMIT` are checked with
        ``$filter=id in (…)`` reads of 15 ids (an advanced query: ``ConsistencyLevel:
        eventual`` and ``$count=true``); more, from one complete read.

        The advanced-query index may lag a write by seconds, so an answer can be
        stale. A stale answer never causes a wrong write — removing a member already
        gone is answered 404 (done), adding one already present "already exist"
        (done) — but it can leave a change undone (someone seen present who is not),
        which the next full reconcile, reading the group itself, makes.
        """
        wanted = {self.normalise(m) for m in members}
        ids = sorted(m for m in wanted if is_object_id(m))
        if len(ids) > PROBE_LIMIT:
            return self.read_members(group) & wanted
        gid = self._group_id(group)
        present: set[str] = set()
        for chunk in chunks(ids, IN_LIMIT):
            expression = f"id in ({','.join(odata_string(i) for i in chunk)})"
            present |= self._member_ids(
                group,
                f"/groups/{gid}/members/microsoft.graph.user?$filter={filter_param(expression)}&$select=id&$count=true",
                headers={"ConsistencyLevel": "eventual"},
            )
        return present & set(ids)

    # ------------------------------------------------------------------ resolving

    def resolve(self, people: list[PersonKey]) -> dict[str, str]:
        prop = self.settings.match
        if prop == "object_id":  # the key is the object id: nothing to look up
            self.last_ambiguous = {}
            return {p.person_id: self.normalise(p.key) for p in people if is_object_id(self.normalise(p.key))}
        wanted: dict[str, list[PersonKey]] = {}
        for person in people:
            if person.key.strip():
                wanted.setdefault(person.key.strip().casefold(), []).append(person)
        now = self._clock()
        fresh = {
            folded: object_id
            for folded, (object_id, when) in self._found.items()
            if folded in wanted and now - when < self.settings.lookup_cache_seconds
        }
        missing = [persons[0].key.strip() for folded, persons in wanted.items() if folded not in fresh]
        found = self._look_up(prop, missing) if missing else {}
        resolved: dict[str, str] = {}
        ambiguous: dict[str, list[str]] = {}
        for folded, persons in wanted.items():
            ids = {fresh[folded]} if folded in fresh else found.get(folded, set())
            if len(ids) > 1:
                log.warning("%s=%r matches %d users; left unresolved: %s", prop, persons[0].key, len(ids), sorted(ids))
                ambiguous.update({p.person_id: sorted(ids) for p in persons})
                self._found.pop(folded, None)
            elif ids:
                object_id = next(iter(ids))
                if folded not in fresh:
                    self._found[folded] = (object_id, now)
                resolved.update({p.person_id: object_id for p in persons})
            else:
                self._found.pop(folded, None)
        self.last_ambiguous = ambiguous
        # Defence in depth (the store keeps person keys unique): an object found for
        # two people is resolved for neither.
        resolved, self.last_shared = one_person_per_entry(people, resolved, fold_key)
        if self.last_shared:
            log.warning("left unresolved, sharing a key or an Entra user: %s", sorted(self.last_shared))
        return resolved

    def _look_up(self, prop: str, keys: list[str]) -> dict[str, set[str]]:
        """Folded value of ``prop`` → object ids of the users holding it, for ``keys``."""
        self.client.tokens.token()
        queries = list(chunks(keys, self.settings.lookup_values_per_query))
        found: dict[str, set[str]] = {}
        for group in chunks(queries, GRAPH_BATCH_LIMIT):
            items = [BatchItem(str(n), "GET", self._lookup_url(prop, query)) for n, query in enumerate(group)]
            answers = self.client.batch(items)
            if answers.stopped is not None:
                raise answers.stopped
            if answers.unsettled:
                raise TargetUnavailable(
                    f"cannot look users up by {prop}: {next(iter(answers.unsettled.values())).describe()}"
                )
            for reply in answers.settled.values():
                if not reply.ok:
                    raise refused(reply, f"cannot look users up by {prop}")
                for user in (reply.body or {}).get("value", []):
                    value, object_id = user.get(prop), user.get("id")
                    if isinstance(value, str) and isinstance(object_id, str):
                        found.setdefault(value.strip().casefold(), set()).add(self.normalise(object_id))
        return found

    @staticmethod
    def _lookup_url(prop: str, keys: list[str]) -> str:
        if len(keys) == 1:
            expression = f"{prop} eq {odata_string(keys[0])}"
        else:
            expression = f"{prop} in ({','.join(odata_string(k) for k in keys)})"
        return f"/users?$filter={filter_param(expression)}&$select=id,{prop}&$top=999"

    # ------------------------------------------------------------------ writing

    # ``current`` is not needed: Graph answers "already exist" / 404 per member.
    def add_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, self._add_all)

    def remove_members(self, group: str, members: list[str], *, current: AbstractSet[str] | None = None) -> WriteResult:
        return self._write(group, members, self._remove_all)

    def _write(self, group: str, members: list[str], apply: Callable) -> WriteResult:
        """Run ``apply(gid, pending, result)`` on the valid members; attach the partial
        result to any TargetError; give outcomes in input order."""
        result = WriteResult()
        start = self.client.sent
        try:
            gid = self._group_id(group)
            pending: dict[str, list[str]] = {}  # normal form → the caller's spellings
            for member in members:
                normal = self.normalise(member)
                if is_object_id(normal):
                    pending.setdefault(normal, []).append(member)
                else:
                    result.outcomes[member] = (Outcome.FAILED, "not an object id")
            if pending:
                apply(gid, pending, result)
        except TargetError as exc:
            exc.partial = result
            raise
        finally:
            result.requests = self.client.sent - start
            result.outcomes = {m: result.outcomes[m] for m in dict.fromkeys(members) if m in result.outcomes}
        return result

    @staticmethod
    def _settle(
        pending: dict[str, list[str]], result: WriteResult, members: list[str], outcome: Outcome, detail: str
    ) -> None:
        for member in members:
            for given in pending[member]:
                result.outcomes[given] = (outcome, detail)

    def _add_all(self, gid: str, pending: dict[str, list[str]], result: WriteResult) -> None:
        late: dict[str, GraphReply] = {}
        # Looked up once per call at most: unlike a removal's, an add's 404 is never taken as done.
        group_exists = functools.cache(lambda: self._group_exists(gid))
        for chunk in chunks(list(pending), GRAPH_BATCH_LIMIT):
            self._add_chunk(gid, group_exists, chunk, pending, result, late)
        if late:
            self._add_late(gid, late, pending, result)

    def _patch(self, gid: str, members: list[str]) -> GraphReply:
        refs = [f"{self.settings.graph_url}/directoryObjects/{m}" for m in members]
        return self.client.send("PATCH", f"/groups/{gid}", body={"members@odata.bind": refs}, writes=1)

    def _add_chunk(
        self,
        gid: str,
        group_exists: Callable[[], bool],
        chunk: list[str],
        pending: dict[str, list[str]],
        result: WriteResult,
        late: dict[str, GraphReply],
    ) -> None:
        """PATCH ``chunk``; split it on a member-level refusal; collect missing members in ``late``."""
        reply = self._patch(gid, chunk)
        if reply.ok:
            return self._settle(pending, result, chunk, Outcome.DONE, "added")
        if is_already_member(reply) and len(chunk) == 1:
            return self._settle(pending, result, chunk, Outcome.DONE, "already a member")
        if is_missing_object(reply):
            if reply.status == 404 and not group_exists():
                raise GroupNotFound(f"{gid}: {reply.describe()}")
            if len(chunk) == 1:
                late[chunk[0]] = reply
                return None
        elif not is_already_member(reply):
            if reply.status in (401, 403):
                raise TargetAuthError(f"Graph refused to change {gid}: {reply.describe()}")
            return self._settle(pending, result, chunk, Outcome.FAILED, reply.describe())
        log.info("PATCH of %d members to %s refused (%s): splitting", len(chunk), gid, reply.describe())
        half = len(chunk) // 2
        self._add_chunk(gid, group_exists, chunk[:half], pending, result, late)
        self._add_chunk(gid, group_exists, chunk[half:], pending, result, late)
        return None

    def _add_late(
        self, gid: str, late: dict[str, GraphReply], pending: dict[str, list[str]], result: WriteResult
    ) -> None:
        """Try members Graph said do not exist again, with backoff, for ``consistency_window`` seconds."""
        window = self.settings.consistency_window
        deadline = self._clock() + window
        attempt = 0
        while late:
            attempt += 1
            pause = self.client.backoff(attempt)
            if self._clock() + pause > deadline:
                break
            self._sleep(pause)
            for member in list(late):
                reply = self._patch(gid, [member])
                if reply.ok or is_already_member(reply):
                    detail = "added" if reply.ok else "already a member"
                    self._settle(pending, result, [member], Outcome.DONE, f"{detail} (attempt {attempt + 1})")
                elif is_missing_object(reply):
                    late[member] = reply
                    continue
                else:
                    self._settle(pending, result, [member], Outcome.FAILED, reply.describe())
                del late[member]
        for member, reply in late.items():
            self._settle(pending, result, [member], Outcome.FAILED, f"{reply.describe()} (retried for {window:g}s)")

    def _remove_all(self, gid: str, pending: dict[str, list[str]], result: WriteResult) -> None:
        for chunk in chunks(list(pending), GRAPH_BATCH_LIMIT):
            by_id = {str(n): member for n, member in enumerate(chunk)}
            items = [BatchItem(n, "DELETE", f"/groups/{gid}/members/{m}/$ref", writes=1) for n, m in by_id.items()]
            answers = self.client.batch(items)
            # Every answer is settled before anything is raised: Graph has applied the
            # others, and a member left without an outcome is audited as not written.
            absent: dict[str, GraphReply] = {}
            for item_id, reply in sorted(answers.settled.items(), key=lambda kv: int(kv[0])):
                member = by_id[item_id]
                if reply.ok:
                    self._settle(pending, result, [member], Outcome.DONE, "removed")
                elif reply.status == 404:
                    absent[member] = reply
                else:
                    self._settle(pending, result, [member], Outcome.FAILED, reply.describe())
            if answers.stopped is not None:
                raise answers.stopped  # Graph unreachable or refusing: no group check to trust
            if absent:
                # "Not a member" is the state wanted, but only while the group exists;
                # asked after the batch, which may have met the group's deletion part-way.
                if not self._group_exists(gid):
                    raise GroupNotFound(f"{gid}: {next(iter(absent.values())).describe()}")
                self._settle(pending, result, list(absent), Outcome.DONE, "not a member")
            if answers.unsettled:
                raise TargetUnavailable(
                    f"{len(answers.unsettled)} removals from {gid} still unanswered: "
                    f"{next(iter(answers.unsettled.values())).describe()}"
                )

    def _group_exists(self, gid: str) -> bool:
        """``GET /groups/{id}?$select=id``: a 404 to a write cannot say (see the module doc).

        :raises TargetAuthError, TargetUnavailable: the group could not be read.
        """
        reply = self.client.send("GET", f"/groups/{gid}?$select=id")
        if not reply.ok and reply.status != 404:
            raise refused(reply, f"cannot read the group {gid}")
        return reply.ok
