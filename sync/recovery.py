"""Settling what an earlier run of a group left open: run rows still ``running``
whose process is gone, and changes recorded as pending whose outcome was never
recorded (the run was killed, or the connection broke mid-request).

Run by every run that writes, right after it takes the group's lock (so no other
run of the group is alive) and before it plans. The directory is asked, for each
pending change, whether it holds: a change found made is recorded as it would have
been — audit entry "found applied after an interrupted run", the holding, and for a
revoke the loss date (the day it was found: the day the connector learned of it) —
in the current run's name; a change not made is dropped (the plan that follows makes
it again if it is still wanted).
"""

from __future__ import annotations

import logging

from . import ledger
from .ledger import AuditAction, AuditEntry, AuditResult
from .planner import Action, Change
from .recorder import Recorder, Settled

log = logging.getLogger("walkin.sync")

FOUND = "found applied after an interrupted run"


def settle_leftovers(recorder: Recorder, group: str) -> int:
    """Close dead runs and settle pending changes of ``group``; :returns: how many
    pending changes were found made.

    :raises TargetError: when the directory cannot be asked (the caller refuses to
        plan: the pending changes stay pending)."""
    ctx = recorder.ctx
    run_id = recorder.start()
    with ctx.store.session_write() as session:
        dead = ledger.mark_interrupted(
            session, recorder.entitlement, ctx.target_name, other_than=run_id, now=ctx.clock.now()
        )
        rows = [
            (r.id, r.run_id, r.action, r.member, r.person_id, r.user_name, list(r.reasons), r.evidence, r.journal_seq)
            for r in ledger.pending_of(session, ctx.target_name, group, other_than=run_id)
        ]
    if dead:
        ctx.say(f"{recorder.entitlement}: run(s) {', '.join(map(str, dead))} were interrupted; settling what they left")
    if not rows:
        return 0
    present = {ctx.target.normalise(m) for m in ctx.target.has_members(group, sorted({r[3] for r in rows}))}
    settled, made = [], 0
    for _, old_run, action, member, person_id, user_name, reasons, evidence, seq in rows:
        kind = Action(action)
        applied = (ctx.target.normalise(member) in present) == (kind is Action.GRANT)
        if not applied:
            continue
        made += 1
        entry = AuditEntry(
            AuditAction(action),
            AuditResult.OK,
            person_id=person_id,
            user_name=user_name,
            member=member,
            reasons=reasons,
            evidence=evidence,
            detail=f"{FOUND} (run {old_run})",
            journal_seq=seq,
        )
        settled.append(Settled(Change(kind, member, person_id, None), entry, True))
    with ctx.store.session_write() as session:
        if settled:
            recorder.store(session, settled)
        ledger.drop_pending(session, [r[0] for r in rows])
    if made:
        log.warning("%s: %d change(s) of interrupted runs were found made and recorded", recorder.entitlement, made)
    return made
