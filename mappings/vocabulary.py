"""The policy's vocabulary: every closed set of words is a ``str`` enum."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a person is not entitled; members are in the order of policy §4's table.

    Reasons are always reported in this order, so the declaration order matters.
    """

    NOT_ACTIVE = "NOT_ACTIVE"
    ROLE_NOT_ELIGIBLE = "ROLE_NOT_ELIGIBLE"
    CERT_BEFORE_LOSS = "CERT_BEFORE_LOSS"
    NOT_CERTIFIED = "NOT_CERTIFIED"
    CERT_EXPIRED = "CERT_EXPIRED"
    NO_APPROVAL = "NO_APPROVAL"
    APPROVAL_STALE = "APPROVAL_STALE"
    PREREQUISITE_MISSING = "PREREQUISITE_MISSING"
    #: Not a requirement: appended when an unexpired deny override applies.
    DENIED_BY_OVERRIDE = "DENIED_BY_OVERRIDE"


#: The reason codes an entitlement may list as requirements.
REQUIREMENT_CODES = tuple(code for code in ReasonCode if code is not ReasonCode.DENIED_BY_OVERRIDE)

#: The three codes decided by the certification walk of policy §5.
CERTIFICATION_CODES = frozenset({ReasonCode.CERT_BEFORE_LOSS, ReasonCode.NOT_CERTIFIED, ReasonCode.CERT_EXPIRED})


@dataclass(frozen=True, slots=True)
class Checks:
    """Which requirements an entitlement checks, one flag per reason code.

    Plain flags rather than a set of enum members: enum hashing runs Python code,
    and the policy tests these for every person.
    """

    not_active: bool
    role_not_eligible: bool
    cert_before_loss: bool
    not_certified: bool
    cert_expired: bool
    no_approval: bool
    approval_stale: bool
    prerequisite_missing: bool

    @classmethod
    def of(cls, requirements: Iterable[ReasonCode]) -> Checks:
        """The flags for a list of requirement codes."""
        codes = set(requirements)
        return cls(**{code.name.lower(): code in codes for code in REQUIREMENT_CODES})

    @property
    def approval(self) -> bool:
        """Whether any approval requirement is checked."""
        return self.no_approval or self.approval_stale


class CertKind(StrEnum):
    """What a certification completion was (policy §2)."""

    FULL = "full"  # the whole eLearning
    RECERT = "recert"  # the recertification quiz


class Effect(StrEnum):
    """What an administrator's override does."""

    GRANT = "grant"
    DENY = "deny"


class LocationType(StrEnum):
    """Kind of location in the catalogue: school-based employees may be eligible by approval."""

    SCHOOL = "school"
    CENTRAL = "central"


class GroupAttribute(StrEnum):
    """SCIM Group attributes an approval-group pattern may be matched against."""

    DISPLAY_NAME = "displayName"
    EXTERNAL_ID = "externalId"


class Actor(StrEnum):
    """Who must act next for a person who is not entitled but could be (the
    ``waiting`` report; mappings/standing.py decides it)."""

    APPROVER = "approver"  # certified, but no approval (or a stale one) for the current location
    PERSON = "person"  # approved, but not certified, or the certification expired or predates a loss
    HR = "hr"  # the role or location facts are missing: only HR can send them
