"""What-if: everyone decided under another mapping and/or on another date, against
the stored decisions (what the last runs decided) — who would gain and who would
lose each entitlement, grouped by reason. Writes nothing.

``simulate(at=2027-07-01)`` answers "who loses access at the school-year end if
nothing changes": with the same facts, it decides exactly what a run on that day
would (the property test in tests/sync/test_simulate.py holds it to that).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import DecisionRow
from mappings.model import Mapping
from mappings.policy import decide_all

from .people import load_people
from .reports import Report

_COLUMNS = ("change", "entitlement", "user_name", "location", "role", "reasons", "was", "person_id")


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
    names = tuple(name for name in mapping.evaluation_order if name in current.entitlements)
    stored: dict[tuple[str, str], tuple[bool, str]] = {
        (entitlement, person): (entitled, reasons)
        for entitlement, person, entitled, reasons in session.execute(
            select(DecisionRow.entitlement, DecisionRow.person_id, DecisionRow.entitled, DecisionRow.reasons).where(
                DecisionRow.entitlement.in_(names)
            )
        )
    }
    rows = []
    decided = 0
    for person in load_people(session, mapping, person_key):
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
        "people": decided,
        "gains": sum(1 for r in rows if r["change"] == "gain"),
        "losses": sum(1 for r in rows if r["change"] == "loss"),
        "by_reason": dict(sorted(by_reason.items())),
    }
    return Report("simulate", _COLUMNS, rows, today, summary)
