"""One reconcile: decide, plan, guard, apply, audit.

A run covers one entitlement and one target, for everyone (a full run, which
also removes drift) or for a few people (a run caused by journal events).
Nothing is recorded as done that the directory did not confirm; a run that
cannot read the group or finds no people in the store refuses to act.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from connector.settings import Settings
from sqlalchemy import select

from connector.store.database import Store
from connector.store.models import SyncRunRow, UserRow
from mappings.calendar import local_date
from mappings.model import Mapping
from mappings.policy import Decision, decide_all, next_change
from mappings.vocabulary import ReasonCode

from . import ledger
from .ledger import AuditAction, AuditEntry, AuditResult, RunStatus
from . import decisions as stored_decisions
from .people import Person, approval_groups, load_people
from .planner import Action, Change, Plan, deletion_guard, plan
from .targets.base import (
    GroupNotFound, Outcome, PersonKey, Target, TargetAuthError, TargetError, partial_result,
)

log = logging.getLogger("walkin.sync")

GUARD_WINDOW = timedelta(hours=1)
PEOPLE_CHUNK = 2000  # people read and decided at a time in a full run
WRITE_CHUNK = 5000  # members handed to the target per call (it batches further; an LDAP call reads the group once)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SyncContext:
    """Everything a run needs, built once by the CLI or the worker."""

    store: Store
    settings: Settings
    mapping: Mapping
    target: Target
    target_name: str
    clock: Callable[[], datetime] = utcnow
    progress: Callable[[str], None] | None = None

    def today(self) -> date:
        return local_date(self.clock(), self.mapping.policy.zone)

    def group_of(self, entitlement: str) -> str:
        groups = self.mapping.entitlements[entitlement].directory_group
        group = None
        if groups is not None:
            group = groups.entra_group_id if self.settings.sync.target == "entra" else groups.ldap_group_dn
        if group is None:
            raise TargetError(f"the mapping names no {self.settings.sync.target} group for '{entitlement}'")
        return group

    def say(self, message: str) -> None:
        log.info(message)
        if self.progress:
            self.progress(message)


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


def reconcile(ctx: SyncContext, entitlement: str, *, kind: str = "manual", person_ids: list[str] | None = None,
              dry_run: bool = False, journal_seqs: dict[str, int] | None = None,
              release: int | None = None) -> RunResult:
    """Make the entitlement's group match today's decisions (see module doc).

    :param person_ids: only these people (a run caused by journal events); ``None``
        for everyone.
    :param journal_seqs: person id → the journal event that caused this run, for the audit.
    :param release: the id of a held run whose removals an administrator allowed.
    """
    # A full run builds a few hundred thousand small objects that hold no reference
    # cycles (rows, tuples, strings): the cyclic collector would walk them again and
    # again for nothing. It is switched back on (and catches up) when the run ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _reconcile(ctx, entitlement, kind=kind, person_ids=person_ids, dry_run=dry_run,
                          journal_seqs=journal_seqs, release=release)
    finally:
        if collecting:
            gc.enable()


def _reconcile(ctx: SyncContext, entitlement: str, *, kind: str, person_ids: list[str] | None, dry_run: bool,
               journal_seqs: dict[str, int] | None, release: int | None) -> RunResult:
    if entitlement not in ctx.mapping.entitlements:
        raise ValueError(f"unknown entitlement '{entitlement}'")
    settings, target, name = ctx.settings.sync, ctx.target, ctx.target_name
    today, full = ctx.today(), person_ids is None
    empty = Plan()

    names = ctx.mapping.closure((entitlement,))  # the entitlement and its prerequisites
    fingerprint = stored_decisions.fingerprint(ctx.mapping)
    with ctx.store.read() as session:
        held_before = _held_members(session, release) if release else set()
        approvals = approval_groups(session, ctx.mapping)
        if full:
            nobody = session.scalar(select(UserRow.id).limit(1)) is None
        else:
            # Bases first, then the people: a change racing with this run can only
            # make a stored basis stale (decided again next time), never fresh.
            ids = sorted(set(person_ids))
            bases = stored_decisions.bases(session, fingerprint, approvals, ids)
            cache = ledger.cached_entries(session, name, ids)

    run = _Run(ctx, entitlement, kind, dry_run, journal_seqs or {}, full)
    if full and nobody:
        return run.refuse(empty, "the store holds no people: refusing to act (a reconcile would empty the group)")

    decisions: dict[str, Decision] = {}
    members: dict[str, str] = {}
    settled: set[str] = set()
    try:
        group = ctx.group_of(entitlement)
        todo = ids if not full else []
        if full:
            # The group first; then one look at everyone's stored decision and entry:
            # people are read, decided and dropped a chunk at a time, and only those
            # whose decision may have changed (see sync/decisions.py).
            actual = set(target.read_members(group))  # read_members answers normalised
            known: dict[str, str] = {}
            with ctx.store.read() as session:
                bases, settled, seen = _survey(ctx, session, entitlement, fingerprint, approvals, today, actual,
                                               todo, known)
                run.orphans = stored_decisions.count(session, entitlement) > seen
                todo.sort()
                cache = ledger.cached_entries(session, name, todo)
                known.update({target.normalise(e.member): p for p, e in
                              ledger.entries_of_departed(session, name).items()})
            ctx.say(f"{entitlement}: {len(todo)} people to decide; the stored decisions of the others hold")
        for start in range(0, len(todo), PEOPLE_CHUNK):
            chunk = todo[start:start + PEOPLE_CHUNK]
            with ctx.store.read() as session:
                people = load_people(session, ctx.mapping, settings.person_key, chunk, approvals=approvals)
            members.update(_resolve(ctx, people, cache, dry_run, run))
            for person in people:
                decided = decide_all(person.facts, today, ctx.mapping, names)
                decision = decided[entitlement]
                decisions[person.person_id] = decision
                basis = bases.get(person.person_id)
                if basis is not None:
                    run.decided[person.person_id] = (basis, decision, next_change(person.facts, today, decided.values()))
                run.note(person, decision, members.get(person.person_id), actual if full else None)
            if full and len(todo) > PEOPLE_CHUNK:
                ctx.say(f"{entitlement}: {min(start + PEOPLE_CHUNK, len(todo))}/{len(todo)} people decided")
        if not full:
            known = {}
            for gone in set(ids) - set(decisions):
                decisions[gone] = _departed(gone, entitlement, today)
                run.departed.append(gone)
            for p in decisions:
                if p not in members and p in cache:
                    members[p] = target.normalise(cache[p].member)
            scope = [members[p] for p in decisions if p in members]
            actual = {target.normalise(m) for m in target.has_members(group, scope)} if scope else set()
    except TargetAuthError as exc:
        return run.refuse(empty, f"the directory refused our credentials: {exc}", status=RunStatus.FAILED)
    except GroupNotFound as exc:
        return run.refuse(empty, f"the group cannot be read ({exc}): no changes made", status=RunStatus.FAILED)
    except TargetError as exc:
        return run.refuse(empty, f"the directory could not be read ({exc}): no changes made", status=RunStatus.FAILED)
    ctx.say(f"{entitlement}: {len(decisions)} people decided")

    allowlist = {target.normalise(m) for m in settings.allowlist}
    the_plan = plan(decisions.values(), members, actual, known, allowlist=allowlist, full=full,
                    settled=settled)
    ctx.say(f"{entitlement}: plan {len(the_plan.adds)} adds, {len(the_plan.removes)} removes, "
            f"{len(the_plan.unresolved)} unresolved, {the_plan.kept} kept")
    if dry_run:
        return RunResult(entitlement, RunStatus.OK, the_plan, detail="dry run: nothing written")

    removes, held = _guard(ctx, entitlement, the_plan, held_before, full)
    return run.apply(the_plan, group, removes, held, release, actual if full else None)


def _survey(ctx: SyncContext, session, entitlement: str, fingerprint: str, approvals: dict, today: date,
            actual: set[str], todo: list[str], known: dict[str, str]) -> tuple[dict[str, str], set[str], int]:
    """Sort everyone into people whose stored decision holds and those to read and
    decide (appended to ``todo``); fill ``known`` (member → person) from the entry cache.

    A stored decision is only taken for a person whose directory entry is cached and
    fresh and whose membership already agrees with it: anyone whose membership is
    about to change is decided afresh, so every change rests on facts read now.

    :returns: the bases of the people to decide, the members of people whose stored
        decision holds and keeps them in the group, and how many stored decisions were seen.
    """
    fresh_after = ctx.clock() - timedelta(hours=ctx.settings.sync.resolve_ttl_hours)
    normalise = ctx.target.normalise
    bases: dict[str, str] = {}
    settled: set[str] = set()
    seen = 0
    for person, basis, holds, stored, member, fresh in stored_decisions.survey(
            session, entitlement, ctx.target_name, fingerprint, approvals, today, fresh_after):
        seen += stored
        if member is not None:
            member = normalise(member)
            known[member] = person
            if holds is not None and fresh and (member in actual) == holds:
                if holds:
                    settled.add(member)
                continue
        todo.append(person)
        bases[person] = basis
    return bases, settled, seen


def _held_members(session, run_id: int) -> set[str]:
    row = session.get(SyncRunRow, run_id)
    if row is None or row.status != RunStatus.HELD.value:
        raise ValueError(f"run {run_id} is not a held run")
    return {h["member"] for h in row.held}


def _resolve(ctx: SyncContext, people: list[Person], cache: dict, dry_run: bool, run: _Run) -> dict[str, str]:
    """person id → member, from the cache where it is fresh, else from the directory."""
    fresh_after = ctx.clock() - timedelta(hours=ctx.settings.sync.resolve_ttl_hours)
    members: dict[str, str] = {}
    lookup: list[PersonKey] = []
    for person in people:
        entry = cache.get(person.person_id)
        if person.key is None:
            continue
        if entry is not None and entry.key == person.key and _aware(entry.resolved_at) >= fresh_after:
            members[person.person_id] = ctx.target.normalise(entry.member)
        else:
            lookup.append(PersonKey(person.person_id, person.key))
    if lookup:
        ctx.say(f"resolving {len(lookup)} people in the directory")
        found = ctx.target.resolve(lookup)
        keys = {k.person_id: k.key for k in lookup}
        members.update({p: ctx.target.normalise(m) for p, m in found.items()})
        if not dry_run:
            run.cache_update.update({p: (keys[p], m) for p, m in found.items()})
            run.cache_forget.extend(k.person_id for k in lookup if k.person_id not in found and k.person_id in cache)
    return members


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _guard(ctx: SyncContext, entitlement: str, the_plan: Plan, released: set[str], full: bool
           ) -> tuple[list[Change], list[Change]]:
    """Split removals into those to apply and those the deletion guard holds."""
    s = ctx.settings.sync
    allowed = [c for c in the_plan.removes if c.member in released]
    rest = [c for c in the_plan.removes if c.member not in released]
    with ctx.store.read() as session:
        recent = ledger.recent_removals(session, entitlement, ctx.target_name, ctx.clock() - GUARD_WINDOW)
        size = the_plan.actual_size if full else _last_group_size(session, entitlement, ctx.target_name)
    verdict = deletion_guard(len(rest) + recent, size, max_removals=s.max_removals,
                             max_percent=s.max_removals_percent, floor=s.guard_floor)
    if verdict.hold and rest:
        ctx.say(f"deletion guard: holding {len(rest)} removals ({verdict.why})")
        the_plan.guard_reason = verdict.why
        return allowed, rest
    return allowed + rest, []


def _last_group_size(session, entitlement: str, target: str) -> int:
    counts = session.scalar(
        select(SyncRunRow.counts).where(
            SyncRunRow.entitlement == entitlement, SyncRunRow.target == target,
            SyncRunRow.kind.in_(["full", "daily", "manual"]), SyncRunRow.status.in_(["ok", "held", "partial"]))
        .order_by(SyncRunRow.id.desc()).limit(1)
    )
    return int((counts or {}).get("actual", 0))


class _Run:
    """Records one run: the run row, audit entries, loss dates, the entry cache."""

    def __init__(self, ctx: SyncContext, entitlement: str, kind: str, dry_run: bool,
                 journal_seqs: dict[str, int], full: bool) -> None:
        self.ctx, self.entitlement, self.kind, self.dry_run, self.full = ctx, entitlement, kind, dry_run, full
        self.journal_seqs = journal_seqs
        self.who: dict[str, tuple[str | None, str | None]] = {}  # person → (userName, directory key)
        self.digests: dict[str, str | None] = {}  # evidence digests of people whose membership may change
        self.cache_update: dict[str, tuple[str, str]] = {}
        self.cache_forget: list[str] = []
        self.decided: dict[str, tuple[str, Decision, date | None]] = {}  # person → (basis, decision, recheck day)
        self.departed: list[str] = []  # people no longer in the store
        self.orphans = False  # whether stored decisions of people no longer in the store remain

    def note(self, person: Person, decision: Decision, member: str | None, actual: set[str] | None) -> None:
        """Remember who a person is and, when their membership may change (or
        ``actual`` is not known yet), the digest of the evidence for the audit."""
        self.who[person.person_id] = (person.user_name, person.key)
        if actual is None or member is None or decision.entitled != (member in actual):
            self.digests[person.person_id] = ledger.evidence_digest(person, decision)

    def _entry(self, change: Change, action: AuditAction, result: AuditResult, detail: str | None = None) -> AuditEntry:
        pid = change.person_id or ""
        return AuditEntry(
            action=action, result=result, person_id=change.person_id,
            user_name=self.who.get(pid, (None, None))[0], member=change.member,
            reasons=list(change.reasons), evidence=self.digests.get(pid) if change.decision else None,
            detail=detail, journal_seq=self.journal_seqs.get(pid),
        )

    def refuse(self, the_plan: Plan, why: str, status: RunStatus = RunStatus.REFUSED) -> RunResult:
        self.ctx.say(why)
        if self.dry_run:
            return RunResult(self.entitlement, status, the_plan, detail=why)
        now = self.ctx.clock()
        with self.ctx.store.write() as session:
            run_id = ledger.start_run(session, kind=self.kind, entitlement=self.entitlement,
                                      target=self.ctx.target_name, dry_run=False, now=now)
            ledger.write_audit(session, [AuditEntry(AuditAction.REFUSED, AuditResult.SKIPPED, detail=why)],
                               run_id=run_id, entitlement=self.entitlement, target=self.ctx.target_name, now=now)
            ledger.finish_run(session, run_id, status=status, counts={}, held=[], detail=why, now=now)
        return RunResult(self.entitlement, status, the_plan, run_id=run_id, detail=why)

    def apply(self, the_plan: Plan, group: str, removes: list[Change], held: list[Change],
              release: int | None, current: set[str] | None) -> RunResult:
        """Write the plan and record it. ``current``: the group as a full run read it
        (kept up to date here as writes are confirmed, and handed to the target)."""
        ctx = self.ctx
        now = ctx.clock()
        with ctx.store.write() as session:
            run_id = ledger.start_run(session, kind=self.kind, entitlement=self.entitlement,
                                      target=ctx.target_name, dry_run=False, now=now)
        entries: list[AuditEntry] = []
        failures: list[str] = []
        current = set(current) if current is not None else None
        done_adds, stopped = self._write(group, the_plan.adds, True, entries, failures, current)
        done_removes = 0
        if stopped:  # the directory went away: removals are not attempted, the next run converges
            self._not_attempted(removes, entries, failures)
        else:
            done_removes, _ = self._write(group, removes, False, entries, failures, current)
        for change in held:
            entries.append(self._entry(change, AuditAction.HOLD, AuditResult.HELD,
                                       the_plan.guard_reason))
        for decision in the_plan.unresolved:
            user_name, key = self.who.get(decision.person_id, (None, None))
            entries.append(AuditEntry(
                AuditAction.UNRESOLVED, AuditResult.SKIPPED, person_id=decision.person_id,
                user_name=user_name, reasons=[], evidence=self.digests.get(decision.person_id),
                detail=f"no directory entry matches {ctx.settings.sync.person_key} = {key!r}",
                journal_seq=self.journal_seqs.get(decision.person_id)))
        if held:
            status = RunStatus.HELD
        elif failures:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.OK
        counts = {
            "actual": the_plan.actual_size, "planned_adds": len(the_plan.adds), "planned_removes": len(the_plan.removes),
            "added": done_adds, "removed": done_removes, "held": len(held), "unresolved": len(the_plan.unresolved),
            "failed": len(failures), "kept": the_plan.kept,
        }
        confirmed = {e.member for e in entries if e.result is AuditResult.OK}
        held_list = [{"member": c.member, "person_id": c.person_id, "reasons": list(c.reasons)} for c in held]
        revoked = [c.person_id for c in removes if c.action is Action.REVOKE and c.person_id
                   and c.member in confirmed]
        detail = "; ".join(failures[:5]) or the_plan.guard_reason
        end = ctx.clock()
        with ctx.store.write() as session:
            ledger.write_audit(session, entries, run_id=run_id, entitlement=self.entitlement,
                               target=ctx.target_name, now=end)
            ledger.record_losses(session, revoked, self.entitlement, ctx.today(), run_id)
            ledger.store_entries(session, ctx.target_name, self.cache_update, end)
            ledger.forget_entries(session, ctx.target_name, self.cache_forget)
            gone = [c.person_id for c in removes if c.person_id and c.person_id not in self.who
                    and c.member in confirmed]
            ledger.forget_entries(session, ctx.target_name, gone)
            stored_decisions.save(session, self.entitlement, self.decided)
            stored_decisions.forget(session, self.entitlement, self.departed)
            if self.orphans:  # decisions of people who left the store while no run saw them go
                stored_decisions.forget(session, self.entitlement)
            if release is not None:
                session.get(SyncRunRow, release).released_by = run_id
            ledger.finish_run(session, run_id, status=status, counts=counts, held=held_list, detail=detail, now=end)
        ctx.say(f"{self.entitlement}: run {run_id} {status.value}: +{done_adds} -{done_removes}"
                + (f", {len(held)} removals held" if held else "") + (f", {len(failures)} failed" if failures else ""))
        return RunResult(self.entitlement, status, the_plan, run_id, counts, held_list, detail)

    def _write(self, group: str, changes: list[Change], adding: bool, entries: list[AuditEntry],
               failures: list[str], current: set[str] | None) -> tuple[int, bool]:
        """Apply one kind of change in chunks; record exactly what the target confirmed.

        :returns: how many were done, and whether the target became unavailable.
        """
        target = self.ctx.target
        write = target.add_members if adding else target.remove_members
        done = 0
        for start in range(0, len(changes), WRITE_CHUNK):
            chunk = changes[start:start + WRITE_CHUNK]
            by_member = {c.member: c for c in chunk}
            error: TargetError | None = None
            try:
                result = write(group, list(by_member), current=current)
            except TargetError as exc:
                result, error = partial_result(exc), exc
            outcomes = result.outcomes if result else {}
            for member, change in by_member.items():
                outcome = outcomes.get(member)
                action = AuditAction(change.action.value)
                if outcome is not None and outcome[0] is Outcome.DONE:
                    entries.append(self._entry(change, action, AuditResult.OK))
                    done += 1
                    if current is not None:
                        (current.add if adding else current.discard)(member)
                    continue
                if outcome is not None:
                    why = outcome[1] or "refused by the directory"
                elif error is not None:
                    why = f"not written: {error}"
                else:
                    why = "not confirmed by the directory"
                entries.append(self._entry(change, AuditAction.FAILED, AuditResult.FAILED, f"{action.value}: {why}"))
                failures.append(f"{change.member}: {why}")
            if len(changes) > WRITE_CHUNK:
                self.ctx.say(f"{min(start + WRITE_CHUNK, len(changes))}/{len(changes)} changes written")
            if error is not None:
                self._not_attempted(changes[start + WRITE_CHUNK:], entries, failures)
                return done, True
        return done, False

    def _not_attempted(self, changes: list[Change], entries: list[AuditEntry], failures: list[str]) -> None:
        for change in changes:
            entries.append(self._entry(change, AuditAction.FAILED, AuditResult.FAILED,
                                       f"{change.action.value}: not attempted, the directory is unavailable"))
            failures.append(f"{change.member}: not attempted")
