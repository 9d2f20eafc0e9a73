"""The change journal: what changed that the access policy (or the directory
mapping) reads, appended in the writer's own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert

from connector.scim.schema import Urn

from .models import JournalRow, table_of


class Event(StrEnum):
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    MEMBER_ADDED = "group.member_added"
    MEMBER_REMOVED = "group.member_removed"
    GROUP_CREATED = "group.created"
    GROUP_RENAMED = "group.renamed"
    GROUP_DELETED = "group.deleted"
    # The administrator's levers (sync/levers.py): each re-decides its person.
    OVERRIDE_SET = "override.set"
    OVERRIDE_ENDED = "override.ended"
    APPROVAL_RECORDED = "approval.recorded"
    APPROVAL_WITHDRAWN = "approval.withdrawn"
    SYNC_REQUESTED = "sync.requested"


_ENT = Urn.ENTERPRISE.value
_WALKIN = Urn.WALKIN.value


def policy_view(data: dict | None) -> dict[str, Any]:
    """The parts of a stored User the policy and the directory mapping read:
    active, role sources (job code, title), location, assignment start,
    certifications, and the identifiers a directory entry is matched on."""
    if not data:
        return {}
    ent = data.get(_ENT) or {}
    ext = data.get(_WALKIN) or {}
    return {
        "userName": data.get("userName"),
        "externalId": data.get("externalId"),
        "active": data.get("active"),
        "title": data.get("title"),
        "employeeNumber": ent.get("employeeNumber"),
        "jobCode": ext.get("jobCode"),
        "locationCode": ext.get("locationCode"),
        "assignmentStartDate": ext.get("assignmentStartDate"),
        "certifications": ext.get("certifications") or [],
    }


def view_changes(old: dict, new: dict) -> dict[str, list]:
    """``{field: [old, new]}`` for every field of the policy view that differs."""
    return {k: [old.get(k), new.get(k)] for k in new.keys() | old.keys() if old.get(k) != new.get(k)}


def append(
    conn: Connection, now: datetime, rows: Iterable[tuple[Event, str | None, str | None, dict]], source: str = "scim"
) -> None:
    """Append journal rows ``(event, user_id, group_id, detail)`` in one statement."""
    values = [
        {"at": now, "event": e.value, "user_id": u, "group_id": g, "detail": d, "source": source} for e, u, g, d in rows
    ]
    if values:
        conn.execute(_APPEND, values)


_APPEND = insert(table_of(JournalRow))
