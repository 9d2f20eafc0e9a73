"""Settings of the sync worker (the ``sync`` section of :class:`connector.settings.Settings`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_validator


class TargetKind(StrEnum):
    """Which kind of directory a sync writes to; also the target's name in the audit
    and the entry cache."""

    LDAP = "ldap"
    ENTRA = "entra"  # Microsoft Graph
    MEMORY = "memory"  # in-process, for tests and dry runs of the wiring
    STORE = "store"  # the groups kept in the store itself: evaluation and `walkin demo` (sync/targets/embedded.py)


class SyncSettings(BaseModel):
    """How decisions reach the directory, and the safety rails around it."""

    target: TargetKind = TargetKind.LDAP
    """Which directory holds the groups (their names are in the mapping file)."""

    person_key: str = "userName"
    """The SCIM attribute matched against the directory's matching attribute,
    e.g. ``userName`` (→ ``uid``) or
    ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber``
    (→ AD ``employeeID``): a single-valued string attribute. The store keeps it
    folded as the directory compares it and unique among users
    (connector/store/person_keys.py); every process must be given the same one."""

    allowlist: list[str] = Field(default_factory=list)
    """Members the connector never removes although no person of the store maps
    to them (service accounts, break-glass accounts). Compared like members are
    (DNs case-insensitively)."""

    max_removals: int = Field(default=100, ge=0)
    """Deletion guard, absolute: a run that would remove more members than this
    holds its removals (like Entra's accidental-deletion threshold)."""

    max_removals_percent: float = Field(default=10.0, ge=0, le=100)
    """Deletion guard, relative: hold when removals exceed this share of the
    group's current members…"""

    guard_floor: int = Field(default=5, ge=0)
    """…but never hold a run that removes this many members or fewer."""

    full_interval_seconds: int = Field(default=3600, ge=60)
    """A full reconcile runs this often, plus once at the start of each day in the
    district's time zone (so expiries take effect on the first day after
    ``valid_through``)."""

    day_start: str = Field(default="00:05", pattern=r"^\d{2}:\d{2}$")
    """Local time (district time zone) of the daily reconcile."""

    poll_seconds: float = Field(default=0.5, gt=0)
    """How often an idle worker looks at the journal."""

    lease_seconds: int = Field(default=120, ge=5)
    """A claimed job whose worker has not finished within this time is taken over."""

    job_batch: int = Field(default=200, ge=1)
    """Person jobs claimed at once by a worker."""

    lock_lease_seconds: float = Field(default=60.0, ge=1)
    """The lease of a group's writer lock (renewed every third of it while the run
    lives): a run on another host that died is taken over after this long; a dead
    process on this host at once."""

    lock_wait_seconds: float = Field(default=30.0, ge=0)
    """How long a run waits for another run of the same group to finish before it
    gives up saying who holds the group (the worker then retries the job)."""

    resolve_ttl_hours: int = Field(default=24, ge=0)
    """How long a person's resolved directory entry is trusted before the full
    reconcile looks it up again (0: always)."""

    @field_validator("person_key")
    @classmethod
    def _check_person_key(cls, value: str) -> str:
        from mappings.scim import Type, check_path  # the User schemas: imported only when checked

        return check_path(value, Type.STRING)
