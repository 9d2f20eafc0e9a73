"""What-if: everyone decided under another mapping and/or on another date, against
the stored decisions (what the last runs decided) — who would gain and who would
lose each entitlement, grouped by reason. Writes nothing.

``simulate(at=2027-07-01)`` answers "who loses access at the school-year end if
nothing changes": with the same facts, it decides exactly what a run on that day
would (the property test in tests/sync/test_simulate.py holds it to that).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.store.models import DecisionRow
from mappings.model import Mapping
from mappings.policy import decide_all

from .bulk import without_cycle_collection
from .people import load_people
from .reports import Report

_COLUMNS = ("change", "entitlement", "user_name", "location", "role", "reasons", "was", "person_id")


@without_cycle_collection  # a row, a Person and its facts for everyone: see sync/bulk.py
def simulate(
    session: Session,
    current: Mapping,
    proposed: Mapping | None,
    today: date,
    at: date | None,
    person_key: str,
) -> Report:
    """Decide everyone under ``proposed`` (default: ``current``) on ``at`` (default:
    ``today``) and compare with the stored decisions of each entitlement both
    mappings define. A person with no stored decision counts as not entitled."""
    mapping = proposed or current
    day = at or today
    synced = set(session.scalars(select(DecisionRow.entitlement).distinct()))
    # Only entitlements the sync decides (has stored decisions of) are compared; their
    # prerequisites are decided behind the scenes.
    names = tuple(name for name in mapping.evaluation_order if name in current.entitlements and name in synced)
    stored: dict[tuple[str, str], tuple[bool, str]] = {
        (entitlement, person): (entitled, reasons)
        for entitlement, person, entitled, reasons in session.connection().execute(
            select(DecisionRow.entitlement, DecisionRow.person_id, DecisionRow.entitled, DecisionRow.reasons).where(
                DecisionRow.entitlement.in_(names)
            )
        )
    }
    people_ids = None if proposed is not None else _undecided(session, current, names, day)
    rows = []
    decided = 0
    for person in load_people(session, mapping, person_key, people_ids):
        decided += 1
        decisions = decide_all(person.facts, day, mapping, names)
        for name, decision in decisions.items():
            was_entitled, was = stored.get((name, person.person_id), (False, "no decision stored"))
            if decision.entitled == was_entitled:
                continue
            rows.append(
                {
                    "change": "gain" if decision.entitled else "loss",
                    "entitlement": name,
                    "user_name": person.user_name,
                    "location": person.facts.location,
                    "role": person.facts.role,
                    "reasons": ",".join(decision.reasons) or ("by override" if decision.by_override else None),
                    "was": "entitled" if was_entitled else was or None,
                    "person_id": person.person_id,
                }
            )
    rows.sort(key=lambda r: (r["change"], r["entitlement"], r["reasons"] or "", r["user_name"] or ""))
    by_reason = Counter(
        f"{r['entitlement']} {r['change']}: {r['reasons'] if r['change'] == 'loss' else r['was']}" for r in rows
    )
    summary = {
        "on": day.isoformat(),
        "mapping": "proposed" if proposed is not None else "current",
        "decided": decided,
        "kept_as_stored": 0 if people_ids is None else len({p for _, p in stored} - set(people_ids)),
        "gains": sum(1 for r in rows if r["change"] == "gain"),
        "losses": sum(1 for r in rows if r["change"] == "loss"),
        "by_reason": dict(sorted(by_reason.items())),
    }
    return Report("simulate", _COLUMNS, rows, today, summary)


def _undecided(session: Session, mapping: Mapping, names: tuple[str, ...], day: date) -> list[str] | None:
    """Under the current mapping, the people whose stored decision of some entitlement
    may not hold on ``day`` (their basis changed, or their recheck day comes by then:
    sync/decisions.py) — everyone else is decided as stored. None: nearly everyone,
    read in one go."""
    from . import decisions
    from .people import approval_groups

    d = DecisionRow
    stored = session.scalar(select(func.count()).select_from(d).where(d.entitlement == names[0])) if names else 0
    due = session.scalar(
        select(func.count())
        .select_from(d)
        .where(d.entitlement.in_(names), d.recheck_on.is_not(None), d.recheck_on <= day.isoformat())
    )
    if not stored or (due or 0) > stored // 2:  # most are due anyway: the survey would only cost time
        return None
    fingerprint = decisions.fingerprint(mapping)
    approvals = approval_groups(session, mapping)
    pending: set[str] = set()
    total = 0
    for name in names:
        for batch in decisions.survey(
            session, name, "-", fingerprint, approvals, day, datetime.min.replace(tzinfo=UTC)
        ):
            total += len(batch) if name == names[0] else 0
            pending.update(p.person_id for p in batch if p.holds is None)
    return None if len(pending) > total // 2 else sorted(pending)
