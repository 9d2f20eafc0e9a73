"""Building people and approval groups through the SCIM API for sync tests."""

from __future__ import annotations

from tests.conftest import AUTH

WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
COURSE = "Walk-In Scheduling Certification"


def person(user_name: str, *, job: str = "1001", location: str = "0123", start: str = "2024-08-01",
           certs: list[tuple[str, str]] | None = None, active: bool = True) -> dict:
    """A SCIM User: Office Professional (job 1001) at school 0123 with a full completion."""
    certs = [("full", "2025-09-15")] if certs is None else certs
    return {
        "userName": user_name,
        "active": active,
        WALKIN: {
            "jobCode": job,
            "locationCode": location,
            "assignmentStartDate": start,
            "certifications": [{"course": COURSE, "kind": k, "completedOn": d} for k, d in certs],
        },
    }


def create(client, body: dict) -> str:
    r = client.post("/scim/v2/Users", json=body, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def approvers(client, location: str, members: list[str]) -> str:
    r = client.post("/scim/v2/Groups", json={"displayName": f"WalkIn-Approvers-{location}",
                                             "members": [{"value": m} for m in members]}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def patch(client, user_id: str, *ops: dict) -> None:
    r = client.patch(f"/scim/v2/Users/{user_id}", json={"Operations": list(ops)}, headers=AUTH)
    assert r.status_code == 200, r.get_json()


def backdate(store, group_id: str, when) -> None:
    """Pretend the approval group's memberships were recorded at ``when``."""
    from sqlalchemy import update

    from connector.store.models import MemberRow

    with store.session_write() as s:
        s.execute(update(MemberRow).where(MemberRow.group_id == group_id).values(since=when))
