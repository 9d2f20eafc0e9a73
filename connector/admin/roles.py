"""Who may do what through the admin API: three roles, four permissions, and the one
check every request passes (:func:`authorize`, the blueprint's ``before_request``).

=============  =====================================================================
``viewer``     the help desk: reads everything — reports, a person's explain and
               history, overrides, approval records, runs, what-if.
``approver``   a principal or manager: reads the access reports, people and
               approval records of the locations the mapping's approver rule gives
               the token's person (computed at each request, so a principal who
               moves school takes their scope along), and approves and withdraws
               there. Never the district-wide trail, overrides or what-if.
``admin``      an identity administrator: everything a viewer reads, plus
               overrides, releasing held removals and "sync this person now".
=============  =====================================================================

An approval is the approver's own act, so only an ``approver`` token records one (an
administrator records one for a principal with ``walkin approve --by``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sync.levers import Acting


class AdminRole(StrEnum):
    VIEWER = "viewer"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(StrEnum):
    SELF = "self"
    """Who am I, and the API's own description."""
    READ = "read"
    """The access reports, a person, the approval records — an approver's limited to their locations."""
    READ_DISTRICT = "read_district"
    """The whole district's trail (losses, drift, failures, holds, runs), overrides and what-if."""
    APPROVE = "approve"
    """Record and withdraw approvals for the approver's locations."""
    ADMINISTER = "administer"
    """Overrides, releasing held removals, syncing one person now."""


GRANTS: dict[AdminRole, frozenset[Permission]] = {
    AdminRole.VIEWER: frozenset({Permission.SELF, Permission.READ, Permission.READ_DISTRICT}),
    AdminRole.APPROVER: frozenset({Permission.SELF, Permission.READ, Permission.APPROVE}),
    AdminRole.ADMIN: frozenset({Permission.SELF, Permission.READ, Permission.READ_DISTRICT, Permission.ADMINISTER}),
}

#: What a route needs: a permission, or one chosen from its path's arguments (the
#: reports route: the access reports are READ, the trail ones READ_DISTRICT).
Needs = Permission | Callable[[dict], Permission]


@dataclass(frozen=True)
class Caller:
    """The token a request came with, and what it may see."""

    token_id: int
    name: str
    role: AdminRole
    expires_at: datetime
    approver_id: str | None = None
    locations: frozenset[str] | None = None
    """The locations an approver's reads and approvals are limited to; None: the whole district."""

    @property
    def acting(self) -> Acting:
        return Acting(self.name, self.token_id)

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def sees(self, location: str | None) -> bool:
        """Whether a person at ``location`` is within this caller's scope."""
        return self.locations is None or (location is not None and location in self.locations)
