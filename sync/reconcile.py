"""One reconcile: decide, plan, guard, apply, audit.

A run covers one entitlement and one target, for everyone (a full run, which
also removes drift) or for a few people (a run caused by journal events).
Nothing is recorded as done that the directory did not confirm; a run that
cannot read the group or finds no people in the store refuses to act.

A full run writes while it decides (see :mod:`sync.writer`): each chunk of people
it decides hands its adds to the writer thread at once, and the removals follow
when everyone is decided and the deletion guard has seen them all.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import NamedTuple

from sqlalchemy import select

from connector.store.models import DecisionRow, DirectoryEntryRow, HoldingRow, SyncRunRow, UserRow
from mappings.policy import Decision, decide_all, explain, next_change
from mappings.standing import standing_of
from mappings.vocabulary import ReasonCode

from . import decisions as stored_decisions
from . import ledger, recovery
from .bulk import no_cycle_collection
from .context import SyncContext
from .ledger import AuditAction, AuditEntry, AuditResult, RunKind, RunStatus
from .lock import GroupBusy, GroupLock
from .people import Person, approval_groups, load_people
from .planner import Change, Plan, deletion_guard, plan
from .recorder import Recorder
from .targets.base import GroupNotFound, PersonKey, TargetAuthError, TargetError
from .writer import Writer

log = logging.getLogger("walkin.sync")

GUARD_WINDOW = timedelta(hours=1)
PEOPLE_CHUNK = 1000  # people read and decided at a time in a full run (their adds then go to the writer)
PROGRESS_EVERY = 10_000  # people decided between progress messages
BULK_ROWS = 1_000  # rows a run writes to a table past which its planner statistics are checked (refreshed if stale)


@dataclass
class RunResult:
    entitlement: str
    status: RunStatus
    plan: Plan
    run_id: int | None = None
    counts: dict = field(default_factory=dict)
    held: list = field(default_factory=list)
    detail: str | None = None

    @property
    def exit_code(self) -> int:
        """0 done, 3 removals held for an administrator, 1 anything else."""
        return {RunStatus.OK: 0, RunStatus.HELD: 3}.get(self.status, 1)


def _departed(person_id: str, entitlement: str, today: date) -> Decision:
    """The decision for a person deleted from the store: they have left."""
    return Decision(person_id, entitlement, today, False, False, (ReasonCode.NOT_ACTIVE,), None, None)


def reconcile(
    ctx: SyncContext,
    entitlement: str,
    *,
    kind: RunKind = RunKind.MANUAL,
    person_ids: list[str] | None = None,
    dry_run: bool = False,
    journal_seqs: dict[str, int] | None = None,
    release: int | None = None,
) -> RunResult:
    """Make the entitlement's group match today's decisions (see module doc).

    :param person_ids: only these people (a run caused by journal events); ``None``
        for everyone.
    :param journal_seqs: person id → the journal event that caused this run, for the audit.
    :param release: the id of a held run whose removals an administrator allowed.
    """
    # A full run builds a few hundred thousand small objects that hold no reference
    # cycles (rows, tuples, strings): the cyclic collector would walk them again and
    # again for nothing. It is switched back on (and catches up) when the run ends.
    with no_cycle_collection():
        return _reconcile(
            ctx,
            entitlement,
            kind=kind,
            person_ids=person_ids,
            dry_run=dry_run,
            journal_seqs=journal_seqs,
            release=release,
        )


def _reconcile(
    ctx: SyncContext,
    entitlement: str,
    *,
    kind: RunKind,
    person_ids: list[str] | None,
    dry_run: bool,
    journal_seqs: dict[str, int] | None,
    release: int | None,
) -> RunResult:
    if entitlement not in ctx.mapping.entitlements:
        raise ValueError(f"unknown entitlement '{entitlement}'")
    today = ctx.today()
    try:
        group = ctx.group_of(entitlement)
    except TargetError as exc:
        run = _Run(ctx, entitlement, kind, "", dry_run, journal_seqs or {}, {}, today)
        return run.refuse(Plan(), f"the directory could not be read ({exc})", status=RunStatus.FAILED)
    if dry_run:  # reads only: no lock, nothing recorded
        return _run(ctx, entitlement, group, kind, person_ids, True, journal_seqs, release, today)
    lock = GroupLock(ctx.store, ctx.clock, ctx.target_name, group, lease_seconds=ctx.settings.sync.lock_lease_seconds)
    try:
        lock.acquire(ctx.settings.sync.lock_wait_seconds)
    except GroupBusy as exc:
        ctx.say(f"{entitlement}: {exc}")
        return RunResult(entitlement, RunStatus.BUSY, Plan(), detail=str(exc))
    try:
        return _run(ctx, entitlement, group, kind, person_ids, False, journal_seqs, release, today, lock)
    finally:
        lock.release()


def _run(
    ctx: SyncContext,
    entitlement: str,
    group: str,
    kind: RunKind,
    person_ids: list[str] | None,
    dry_run: bool,
    journal_seqs: dict[str, int] | None,
    release: int | None,
    today: date,
    lock: GroupLock | None = None,
) -> RunResult:
    """One run of a group whose lock is held (or a dry run)."""
    target = ctx.target
    full = person_ids is None
    empty = Plan()

    run = _Run(ctx, entitlement, kind, group, dry_run, journal_seqs or {}, {}, today)
    if lock is not None:
        # First settle what an interrupted run left (its changes may be holdings the
        # reads below must see).
        try:
            lock.attach(run.recorder.start())
            recovery.settle_leftovers(run.recorder, group)
        except TargetError as exc:
            return run.refuse(empty, f"the directory could not be read ({exc})", status=RunStatus.FAILED)
        except BaseException:
            run.abandon()
            raise

    fingerprint = stored_decisions.fingerprint(ctx.mapping)
    with ctx.store.session_read() as session:
        held_before = _held_members(session, release) if release else set()
        approvals = approval_groups(session, ctx.mapping)
        if full:
            nobody = session.scalar(select(UserRow.id).limit(1)) is None
            holdings = {}  # read once the run knows whose it needs (_decide_holders)
        else:
            # Bases first, then the people: a change racing with this run can only
            # make a stored basis stale (decided again next time), never fresh.
            ids = sorted(set(person_ids or ()))
            bases = stored_decisions.bases(session, fingerprint, approvals, ids)
            fresh_after = _fresh_after(ctx)
            cache = {
                p: Cached(e.key, e.member, _aware(e.resolved_at) >= fresh_after)
                for p, e in ledger.cached_entries(session, ctx.target_name, ids).items()
            }
            holdings = ledger.holdings(session, ctx.target_name, entitlement, ids)
    run.approvals = approvals
    holders = run.note_holdings(holdings)
    if full and nobody:
        return run.refuse(empty, "the store holds no people: refusing to act (a reconcile would empty the group)")

    known: dict[str, str] = {}
    settled: set[str] = set()
    try:
        if full:
            actual, settled = _decide_everyone(ctx, run, group, fingerprint, known)
            holders = _decide_holders(ctx, run, actual, settled)
        else:
            run.decide(ids, bases, cache, None)
            for departed in set(ids) - set(run.decisions):
                run.decisions[departed] = _departed(departed, entitlement, today)
                run.departed.append(departed)
            gone = set(run.departed)
            claimed = set(run.members.values())  # entries found for people now
            for p in run.decisions:
                # A deleted person's entry is the one cached; a person whose key
                # changed and no longer finds it keeps none (their holdings say what
                # to take back). An entry found now for another person is theirs (a
                # user deleted and created again under the same key): their
                # decision rules it, not the cached one's.
                same_key = run.who.get(p, (None, None))[1] == cache[p].key if p in cache else False
                if p not in run.members and p in cache and (p in gone or same_key):
                    member = target.normalise(cache[p].member)
                    if member not in claimed:
                        run.members[p] = member
                    elif p in gone and not dry_run:
                        run.cache_forget.append(p)
            scope = sorted({run.members[p] for p in run.decisions if p in run.members} | set(holders))
            actual = {target.normalise(m) for m in target.has_members(group, scope)} if scope else set()
    except TargetAuthError as exc:
        return run.refuse(empty, f"the directory refused our credentials: {exc}", status=RunStatus.FAILED)
    except GroupNotFound as exc:
        return run.refuse(empty, f"the group cannot be read ({exc})", status=RunStatus.FAILED)
    except TargetError as exc:
        return run.refuse(empty, f"the directory could not be read ({exc})", status=RunStatus.FAILED)
    except BaseException:
        run.abandon()
        raise
    if not full:
        ctx.say(f"{entitlement}: {len(run.decisions)} people decided")

    allowlist = {target.normalise(m) for m in ctx.settings.sync.allowlist}
    streamed = run.writer is not None  # a full run's adds are planned already, chunk by chunk
    the_plan = plan(
        run.decisions.values(),
        run.members,
        actual,
        known,
        allowlist=allowlist,
        full=full,
        settled=settled,
        holders=holders,
        with_adds=not streamed,
    )
    if streamed:
        the_plan.adds = run.streamed
    ctx.say(
        f"{entitlement}: plan {len(the_plan.adds)} adds, {len(the_plan.removes)} removes, "
        f"{len(the_plan.unresolved)} unresolved, {the_plan.kept} kept"
    )
    if dry_run:
        return RunResult(entitlement, RunStatus.OK, the_plan, detail="dry run: nothing written")

    try:
        removes, held = _guard(ctx, entitlement, the_plan, held_before, full)
        return run.apply(the_plan, group, removes, held, release, actual, holders)
    except BaseException:
        run.abandon()
        raise


def _decide_holders(ctx: SyncContext, run: _Run, actual: set[str], settled: set[str]) -> dict[str, str]:
    """A full run: members of the group granted to someone the run did not decide
    (a person renamed or deleted since) are theirs to keep or lose — never
    anonymous drift. Decide those people now (the deleted: as departed).

    Only the holdings that can matter are read: those of the people decided, and
    those of members nobody decided here or settled (usually none).

    :returns: member → holder, for the plan."""
    name, entitlement = ctx.target_name, run.entitlement
    covered = set(run.members.values()) | settled
    with ctx.store.session_read() as session:
        holdings = ledger.holdings(session, name, entitlement, sorted(run.decisions))
        holdings.update(ledger.holdings_of_members(session, name, entitlement, sorted(actual - covered)))
    holders = run.note_holdings(holdings)
    owners = sorted({holders[m] for m in actual - covered if m in holders} - set(run.decisions))
    if owners:
        run.decide(owners, {}, {}, actual)
        for gone in set(owners) - set(run.decisions):
            run.decisions[gone] = _departed(gone, entitlement, run.today)
            run.departed.append(gone)
        with ctx.store.session_read() as session:
            holders.update(run.note_holdings(ledger.holdings(session, name, entitlement, owners)))
    return holders


def _decide_everyone(
    ctx: SyncContext, run: _Run, group: str, fingerprint: str, known: dict[str, str]
) -> tuple[set[str], set[str]]:
    """A full run's reading and deciding. The group is read (in a thread of its own)
    while the store is: one look at everyone's stored decision and entry
    (:func:`_survey`); then the people whose decision may have changed are read and
    decided a chunk at a time as the survey finds them, each chunk's adds going to
    the writer at once. Fills ``known`` (member → person, departed people included).

    :returns: the group's members (normalised), and the members of people whose
        stored decision holds and keeps them in the group.
    """
    name = ctx.target_name
    found = _Survey(set(), known)
    fresh_after = _fresh_after(ctx)
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="walkin-read") as pool,
        ctx.store.session_read() as session,
        closing(
            stored_decisions.survey(session, run.entitlement, name, fingerprint, run.approvals, run.today, fresh_after)
        ) as rows,
    ):  # one snapshot: the survey's bases and the people
        reading = pool.submit(ctx.target.read_members, group)
        first = next(rows, [])  # the memberships, the query and the first rows, while the group is read
        actual = set(reading.result())  # read_members answers normalised
        if not run.dry_run:
            run.start_writing(group, actual)
        for chunk in _survey(ctx, chain([first], rows), actual, found):
            run.decide(chunk, found.bases, found.cache, actual, session=session)
            found.bases.clear()
            found.cache.clear()
            # The collector is off for the run (see reconcile), but a chunk leaves cyclic
            # garbage — the directory client's parsed search filters and responses —
            # that would otherwise pile up over a first run that resolves everyone
            # (tens of MB at 100,000 people). The youngest generation holds just what
            # this chunk allocated, so collecting it costs in proportion to the chunk.
            gc.collect(0)
            if len(run.decisions) % PROGRESS_EVERY < len(chunk):
                ctx.say(f"{run.entitlement}: {len(run.decisions)} people decided afresh so far")
        run.orphans = stored_decisions.count(session, run.entitlement) > found.seen
        known.update({ctx.target.normalise(e.member): p for p, e in ledger.entries_of_departed(session, name).items()})
    ctx.say(
        f"{run.entitlement}: {len(run.decisions)} people decided afresh; the stored decisions of "
        f"{found.surveyed - len(run.decisions)} others hold"
    )
    return actual, found.settled


@dataclass
class _Survey:
    """What a full run's survey finds besides the people to decide."""

    settled: set[str]
    """Members of people whose stored decision holds and keeps them in the group."""
    known: dict[str, str]
    """Member → person, from the entry cache."""
    bases: dict[str, str] = field(default_factory=dict)
    """The bases of the people in the chunk last yielded."""
    cache: dict[str, Cached] = field(default_factory=dict)
    """The cached directory entries of the people in the chunk last yielded."""
    seen: int = 0
    """How many stored decisions exist for people in the store."""
    surveyed: int = 0
    """How many people the store holds (everyone the survey went through)."""


def _survey(
    ctx: SyncContext, rows: Iterable[list[stored_decisions.Surveyed]], actual: set[str], found: _Survey
) -> Iterator[list[str]]:
    """Sort everyone (``rows``: :func:`sync.decisions.survey`) into people whose
    stored decision holds and those to read and decide, yielded
    :data:`PEOPLE_CHUNK` at a time as they are found (their bases in
    ``found.bases``); fill the rest of ``found`` on the way.

    A stored decision is only taken for a person whose directory entry is cached and
    fresh and whose membership already agrees with it: anyone whose membership is
    about to change is decided afresh, so every change rests on facts read now.
    """
    normalise = ctx.target.normalise
    settled, known, bases, cache = found.settled, found.known, found.bases, found.cache
    todo: list[str] = []
    for batch in rows:
        found.surveyed += len(batch)
        for person, basis, holds, stored, member, key, fresh in batch:
            found.seen += stored
            if member is not None:
                member = normalise(member)
                known[member] = person
                if holds is not None and fresh and (member in actual) == holds:
                    if holds:
                        settled.add(member)
                    continue
                # Entitled by the stored decision yet not in the group: removed behind our
                # back, or the entry was renamed (AD moves its member values) — look it up.
                cache[person] = Cached(key, member, fresh and not holds)
            todo.append(person)
            bases[person] = basis
            if len(todo) == PEOPLE_CHUNK:
                yield todo
                todo = []
    if todo:
        yield todo


def _held_members(session, run_id: int) -> set[str]:
    row = session.get(SyncRunRow, run_id)
    if row is None or row.status != RunStatus.HELD.value:
        raise ValueError(f"run {run_id} is not a held run")
    return {h["member"] for h in row.held}


class Cached(NamedTuple):
    """A person's cached directory entry as a run uses it."""

    key: str | None
    """The matching key it was found by (None when the entry records none)."""
    member: str
    fresh: bool
    """Whether it was resolved within ``resolve_ttl_hours``."""


def _fresh_after(ctx: SyncContext) -> datetime:
    """Cached entries resolved before this are looked up again."""
    return ctx.clock.now() - timedelta(hours=ctx.settings.sync.resolve_ttl_hours)


class Resolved(NamedTuple):
    """What resolving some people found, and what the entry cache should learn."""

    members: dict[str, str]
    """person id → member (normalised)."""
    from_cache: set[str]
    """The people whose member came from the cache, unchecked."""
    update: dict[str, tuple[str, str]]
    """person id → (key, member) to cache."""
    forget: list[str]
    """People whose cached entry their key no longer finds."""


def _resolve(ctx: SyncContext, people: list[Person], cache: dict[str, Cached]) -> Resolved:
    """person id → member, from the cache where it is fresh, else from the directory."""
    members: dict[str, str] = {}
    from_cache: set[str] = set()
    lookup: list[PersonKey] = []
    for person in people:
        entry = cache.get(person.person_id)
        if person.key is None:
            continue
        if entry is not None and entry.key == person.key and entry.fresh:
            members[person.person_id] = ctx.target.normalise(entry.member)
            from_cache.add(person.person_id)
        else:
            lookup.append(PersonKey(person.person_id, person.key))
    if not lookup:
        return Resolved(members, from_cache, {}, [])
    ctx.say(f"resolving {len(lookup)} people in the directory")
    found = ctx.target.resolve(lookup)
    keys = {k.person_id: k.key for k in lookup}
    members.update({p: ctx.target.normalise(m) for p, m in found.items()})
    return Resolved(
        members,
        from_cache,
        {p: (keys[p], m) for p, m in found.items()},
        [k.person_id for k in lookup if k.person_id not in found and k.person_id in cache],
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _guard(
    ctx: SyncContext, entitlement: str, the_plan: Plan, released: set[str], full: bool
) -> tuple[list[Change], list[Change]]:
    """Split removals into those to apply and those the deletion guard holds."""
    s = ctx.settings.sync
    allowed = [c for c in the_plan.removes if c.member in released]
    rest = [c for c in the_plan.removes if c.member not in released]
    with ctx.store.session_read() as session:
        recent = ledger.recent_removals(session, entitlement, ctx.target_name, ctx.clock.now() - GUARD_WINDOW)
        size = the_plan.actual_size if full else _last_group_size(session, entitlement, ctx.target_name)
    verdict = deletion_guard(
        len(rest) + recent, size, max_removals=s.max_removals, max_percent=s.max_removals_percent, floor=s.guard_floor
    )
    if verdict.hold and rest:
        ctx.say(f"deletion guard: holding {len(rest)} removals ({verdict.why})")
        the_plan.guard_reason = verdict.why
        return allowed, rest
    return allowed + rest, []


def _last_group_size(session, entitlement: str, target: str) -> int:
    counts = session.scalar(
        select(SyncRunRow.counts)
        .where(
            SyncRunRow.entitlement == entitlement,
            SyncRunRow.target == target,
            SyncRunRow.kind.in_([k.value for k in ledger.EVERYONE]),
            SyncRunRow.status.in_([RunStatus.OK.value, RunStatus.HELD.value, RunStatus.PARTIAL.value]),
        )
        .order_by(SyncRunRow.id.desc())
        .limit(1)
    )
    return int((counts or {}).get("actual", 0))


class _Run:
    """One run: its decisions and its writer; what it records goes through its
    :class:`~sync.recorder.Recorder` (the run row, audit entries, holdings, loss
    dates) and, at the end, the caches (stored decisions, the entry cache)."""

    def __init__(
        self,
        ctx: SyncContext,
        entitlement: str,
        kind: RunKind,
        group: str,
        dry_run: bool,
        journal_seqs: dict[str, int],
        approvals: dict[str, dict],
        today: date,
    ) -> None:
        self.ctx, self.entitlement, self.kind, self.dry_run = ctx, entitlement, kind, dry_run
        self.journal_seqs, self.approvals, self.today = journal_seqs, approvals, today
        self.names = ctx.mapping.closure((entitlement,))  # the entitlement and its prerequisites
        self.decisions: dict[str, Decision] = {}  # person → today's decision (people decided in this run)
        self.members: dict[str, str] = {}  # person → member (resolved people decided in this run)
        self.who: dict[str, tuple[str | None, str | None]] = {}  # person → (userName, directory key)
        self.digests: dict[str, str | None] = {}  # evidence digests of people whose membership may change
        self.cache_update: dict[str, tuple[str, str]] = {}
        self.cache_forget: list[str] = []
        self.decided: dict[str, stored_decisions.Decided] = {}  # person → (basis, decision, recheck day, standing)
        self.departed: list[str] = []  # people no longer in the store
        self.orphans = False  # whether stored decisions of people no longer in the store remain
        self.writer: Writer | None = None
        self.streamed: list[Change] = []  # adds planned and handed to the writer while deciding
        self.recorder = Recorder(ctx, entitlement, kind, group, today, self._entry)

    @property
    def run_id(self) -> int | None:
        return self.recorder.run_id

    # ------------------------------------------------------------ deciding

    def note_holdings(self, holdings: dict[str, ledger.Holding]) -> dict[str, str]:
        """Remember the holders' names (a deleted person keeps the name they were
        granted under in the audit); :returns: member (normalised) → holder."""
        for h in holdings.values():
            self.who.setdefault(h.person_id, (h.user_name, None))
        return {self.ctx.target.normalise(m): h.person_id for m, h in holdings.items()}

    def decide(
        self, ids: list[str], bases: dict[str, str], cache: dict[str, Cached], actual: set[str] | None, *, session=None
    ) -> None:
        """Read, resolve and decide these people. ``actual``: the complete group (a
        full run), whose adds for these people then go to the writer at once."""
        ctx = self.ctx
        with nullcontext(session) if session is not None else ctx.store.session_read() as reading:
            people = load_people(reading, ctx.mapping, ctx.settings.sync.person_key, ids, approvals=self.approvals)
        resolved = _resolve(ctx, people, cache)
        members = resolved.members
        decisions = []
        for person in people:
            decided = decide_all(person.facts, self.today, ctx.mapping, self.names)
            decision = decided[self.entitlement]
            decisions.append(decision)
            self.decisions[person.person_id] = decision
            basis = bases.get(person.person_id)
            if basis is not None:
                # The evidence of a grant by the rules (its approval and chain, for the
                # members report) costs a second look, for the entitled only.
                evidence = (
                    explain(person.facts, self.entitlement, self.today, ctx.mapping)[1]
                    if decision.entitled and not decision.by_override
                    else None
                )
                self.decided[person.person_id] = (
                    basis,
                    decision,
                    next_change(person.facts, self.today, decided.values()),
                    standing_of(person.facts, decision, evidence),
                )
        # An event run's grant rests on an entry read now: a cached one may have been
        # renamed or deleted since (AD moves a renamed entry's member values itself).
        # A full run distrusts the cache where it matters, in the survey (above).
        again = (
            [
                person
                for person in people
                if person.person_id in resolved.from_cache and self.decisions[person.person_id].entitled
            ]
            if actual is None
            else []
        )
        if again:
            checked = _resolve(ctx, again, {})
            for person in again:
                members.pop(person.person_id, None)
            members.update(checked.members)
            resolved.update.update(checked.update)
            resolved.forget.extend(p for p in (x.person_id for x in again) if p not in checked.members)
        if not self.dry_run:
            self.cache_update.update(resolved.update)
            self.cache_forget.extend(resolved.forget)
        self.members.update(members)
        for person in people:
            self.note(person, self.decisions[person.person_id], members.get(person.person_id), actual)
        if self.writer is not None and actual is not None:
            # An add rests on this person's decision alone: plan and write it now.
            adds = plan(decisions, members, actual, {}, full=False).adds
            self.streamed.extend(adds)
            self.writer.add(adds)

    def note(self, person: Person, decision: Decision, member: str | None, actual: set[str] | None) -> None:
        """Remember who a person is and, when their membership may change (or
        ``actual`` is not known yet), the digest of the evidence for the audit."""
        self.who[person.person_id] = (person.user_name, person.key)
        if actual is None or member is None or decision.entitled != (member in actual):
            self.digests[person.person_id] = ledger.evidence_digest(person, decision)

    def _entry(self, change: Change, action: AuditAction, result: AuditResult, detail: str | None = None) -> AuditEntry:
        pid = change.person_id or ""
        return AuditEntry(
            action=action,
            result=result,
            person_id=change.person_id,
            user_name=self.who.get(pid, (None, None))[0],
            member=change.member,
            reasons=list(change.reasons),
            evidence=self.digests.get(pid) if change.decision else None,
            detail=detail,
            journal_seq=self.journal_seqs.get(pid),
        )

    # ------------------------------------------------------------ writing

    def start_writing(self, group: str, current: set[str] | None) -> Writer:
        """Start the run's writer. ``current``: the complete group as this run read
        it (a full run), else ``None``."""
        self.recorder.start()
        self.writer = Writer(self.ctx.target, group, current, self.recorder, self.ctx.say)
        return self.writer

    def refuse(self, the_plan: Plan, why: str, status: RunStatus = RunStatus.REFUSED) -> RunResult:
        """Stop the run before (any more) writes; what its writer already did is recorded."""
        writer = self.writer
        if writer is not None:
            writer.finish()
        if status is not RunStatus.REFUSED:
            why += f": stopped after {writer.added} adds" if writer and writer.added else ": no changes made"
        self.ctx.say(why)
        if self.dry_run:
            return RunResult(self.entitlement, status, the_plan, detail=why)
        counts = self._stopped_counts()
        self.recorder.finish(
            [AuditEntry(AuditAction.REFUSED, AuditResult.SKIPPED, detail=why)], status, counts, [], why
        )
        return RunResult(self.entitlement, status, the_plan, run_id=self.run_id, counts=counts, detail=why)

    def abandon(self) -> None:
        """The run is failing on an unexpected error: wait for its writer and record
        what it did (best effort: the error itself is what the caller sees)."""
        if self.recorder.finished or self.dry_run:
            return
        if self.writer is not None:
            self.writer.finish()
        if self.recorder.run_id is None:
            return
        try:
            self.recorder.finish(
                [], RunStatus.FAILED, self._stopped_counts(), [], "the run stopped on an unexpected error"
            )
        except Exception:
            log.exception("could not record run %s", self.run_id)

    def _stopped_counts(self) -> dict:
        """The counts of a run that stopped before its plan: what its writer did."""
        return {"added": self.writer.added, "failed": len(self.writer.failures)} if self.writer else {}

    def apply(
        self,
        the_plan: Plan,
        group: str,
        removes: list[Change],
        held: list[Change],
        release: int | None,
        actual: set[str],
        holders: dict[str, str],
    ) -> RunResult:
        """Hand the rest of the plan to the writer (a full run's has most of its adds
        already), store what was decided while it writes, and record the outcome.
        Each change's audit entry, holding and loss date are stored by the recorder
        as the directory confirms it; what is left for the end is the run's summary."""
        ctx = self.ctx
        writer = self.writer or self.start_writing(group, None)  # a run about a few people read no complete group
        if not self.streamed:
            writer.add(the_plan.adds)
        writer.remove(removes)
        writer.close()
        with ctx.store.session_write() as session:  # caches only: right whatever the writes' outcome
            ledger.store_entries(session, ctx.target_name, self.cache_update, ctx.clock.now())
            ledger.forget_entries(session, ctx.target_name, self.cache_forget)
            stored_decisions.save(
                session, self.entitlement, self.decided, ctx.clock.now(), self.run_id, ctx.settings.notify.enabled
            )
            stored_decisions.forget(session, self.entitlement, self.departed)
            if self.orphans:  # decisions of people who left the store while no run saw them go
                stored_decisions.forget(session, self.entitlement)
        writer.finish()

        entries = []
        for change in held:
            entries.append(self._entry(change, AuditAction.HOLD, AuditResult.HELD, the_plan.guard_reason))
        for decision in the_plan.unresolved:
            user_name, key = self.who.get(decision.person_id, (None, None))
            entries.append(
                AuditEntry(
                    AuditAction.UNRESOLVED,
                    AuditResult.SKIPPED,
                    person_id=decision.person_id,
                    user_name=user_name,
                    reasons=[],
                    evidence=self.digests.get(decision.person_id),
                    detail=f"no directory entry matches {ctx.settings.sync.person_key} = {key!r}",
                    journal_seq=self.journal_seqs.get(decision.person_id),
                )
            )
        if held:
            status = RunStatus.HELD
        elif writer.failures:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.OK
        counts = {
            "actual": the_plan.actual_size,
            "planned_adds": len(the_plan.adds),
            "planned_removes": len(the_plan.removes),
            "added": writer.added,
            "removed": writer.removed,
            "held": len(held),
            "unresolved": len(the_plan.unresolved),
            "failed": len(writer.failures),
            "kept": the_plan.kept,
        }
        held_list = [{"member": c.member, "person_id": c.person_id, "reasons": list(c.reasons)} for c in held]
        departed = set(self.departed)
        gone = sorted({c.person_id for c in removes if c.person_id in departed})
        # Entitled members granted before holdings were kept (or granted for whoever
        # held the entry before): theirs now.
        adopt = [
            (m, p, self.who.get(p, (None, None))[0])
            for p, m in self.members.items()
            if m in actual and holders.get(m) != p and self.decisions.get(p) is not None and self.decisions[p].entitled
        ]
        detail = "; ".join(writer.failures[:5]) or the_plan.guard_reason

        def record(session) -> None:
            ledger.hold(session, ctx.target_name, self.entitlement, adopt, ctx.clock.now(), self.run_id)
            # A deleted person's cached entry goes once no entitlement holds it for them.
            ledger.forget_entries(
                session, ctx.target_name, sorted(set(gone) - ledger.people_holding(session, ctx.target_name, gone))
            )
            if release is not None:
                self.recorder.release_of(session, release)

        self.recorder.finish(entries, status, counts, held_list, detail, record)
        written = {  # table → rows it holds at least, now
            HoldingRow.__tablename__: len(adopt) + writer.added,
            DecisionRow.__tablename__: len(self.decided),
            DirectoryEntryRow.__tablename__: len(self.cache_update),
            UserRow.__tablename__: len(self.decided),  # SCIM's pushes grew it; autovacuum may not have looked yet
        }
        if max(written.values()) >= BULK_ROWS:  # a first run, or the back-fill's first
            ctx.store.refresh_statistics(written)
        ctx.say(
            f"{self.entitlement}: run {self.run_id} {status.value}: +{writer.added} -{writer.removed}"
            + (f", {len(held)} removals held" if held else "")
            + (f", {len(writer.failures)} failed" if writer.failures else "")
        )
        return RunResult(self.entitlement, status, the_plan, self.run_id, counts, held_list, detail)
