"""The worked examples of the access policy (§8) as stored SCIM people, so the
store-backed commands (``walkin explain``, ``walkin sync``) can be run on them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import update

from connector.store.models import AccessLossRow, MemberRow
from tests.conftest import AUTH

WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
COURSE = "Walk-In Scheduling Certification"
A_CERTS = [("full", "2025-09-15")]
B_CERTS = [("full", "2024-09-10")]

# name: (job code, location, assignment start, completions, approvals (location, date), lost, active)
PEOPLE = {
    "A": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "B": ("1001", "0123", "2024-08-01", B_CERTS, [("0123", "2025-09-20")], None, True),
    "C": ("1001", "0123", "2024-08-01", B_CERTS + [("recert", "2026-05-01")], [("0123", "2025-09-20")], None, True),
    "D": ("1001", "0123", "2024-08-01", B_CERTS + [("recert", "2026-08-01")], [("0123", "2025-09-20")], None, True),
    "E": ("2001", "0456", "2023-08-01", [("full", "2026-01-10")], [("0456", "2026-01-12")], None, True),
    "F": ("4001", "C100", "2023-08-01", [("full", "2026-01-10")], [("C100", "2026-01-12")], None, True),
    "G": ("1001", "0789", "2026-10-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "H": ("1002", "0123", "2026-10-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "I": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], "2026-10-01", True),
    "J": ("1001", "0123", "2024-08-01", A_CERTS + [("recert", "2026-10-05")], [("0123", "2025-09-20")],
          "2026-10-01", True),
    "K": ("1001", "0123", "2024-08-01", A_CERTS + [("full", "2026-10-05")], [("0123", "2025-09-20")],
          "2026-10-01", True),
    "L": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], None, False),
    "M": ("2001", "0123", None, [], [], None, True),
}

EXPECTED = {  # policy §8: entitled, reasons, valid_through
    "A": (True, [], "2027-06-30"), "B": (False, ["CERT_EXPIRED"], "2026-06-30"),
    "C": (True, [], "2027-06-30"), "D": (False, ["CERT_EXPIRED"], "2026-06-30"),
    "E": (True, [], "2027-06-30"), "F": (False, ["ROLE_NOT_ELIGIBLE"], "2027-06-30"),
    "G": (False, ["NO_APPROVAL"], "2027-06-30"), "H": (False, ["APPROVAL_STALE"], "2027-06-30"),
    "I": (False, ["CERT_BEFORE_LOSS"], None), "J": (False, ["CERT_BEFORE_LOSS"], None),
    "K": (True, [], "2028-06-30"), "L": (False, ["NOT_ACTIVE"], "2027-06-30"),
    "M": (False, ["NOT_CERTIFIED", "NO_APPROVAL"], None),
}


def user_name(name: str) -> str:
    return f"person.{name.lower()}@district.org"


def load(client, store) -> dict[str, str]:
    """Create the §8 people, their approval-group memberships (dated) and losses."""
    ids: dict[str, str] = {}
    approvals: dict[str, list[tuple[str, str]]] = {}
    for name, (job, location, start, certs, approved, _, active) in PEOPLE.items():
        ext = {"jobCode": job, "locationCode": location,
               "certifications": [{"course": COURSE, "kind": k, "completedOn": d} for k, d in certs]}
        if start:
            ext["assignmentStartDate"] = start
        r = client.post("/scim/v2/Users", json={"userName": user_name(name), "active": active, WALKIN: ext},
                        headers=AUTH)
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
        for loc, day in approved:
            approvals.setdefault(loc, []).append((ids[name], day))
    for loc, members in approvals.items():
        r = client.post("/scim/v2/Groups", json={"displayName": f"WalkIn-Approvers-{loc}",
                                                 "members": [{"value": m} for m, _ in members]}, headers=AUTH)
        group = r.get_json()["id"]
        with store.session_write() as s:
            for member, day in members:
                noon = datetime.combine(date.fromisoformat(day), datetime.min.time()).replace(hour=18, tzinfo=UTC)
                s.execute(update(MemberRow).where(MemberRow.group_id == group, MemberRow.member_id == member)
                          .values(since=noon))
    with store.session_write() as s:
        for name, (*_, lost, _active) in PEOPLE.items():
            if lost:
                s.add(AccessLossRow(person_id=ids[name], entitlement="walkin", lost_on=lost))
    return ids
