"""What every run is handed (:class:`SyncContext`), and building it from settings:
store, mapping, target, clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from connector.clock import Clock, SystemClock
from connector.settings import Settings
from connector.store.database import Store
from mappings.model import DEFAULT_MAPPING_PATH, Mapping, load_mapping

from .settings import TargetKind
from .targets.base import Target, TargetError

log = logging.getLogger("walkin.sync")


def group_for(mapping: Mapping, entitlement: str, kind: TargetKind) -> str | None:
    """The entitlement's directory group in a target of ``kind``: its Entra group id
    for ``entra``, its LDAP group DN otherwise; None when the mapping names none.
    The one rule for "which directory group" (runs and ``walkin check-target``)."""
    if kind == TargetKind.STORE:
        return entitlement  # the embedded target keeps one group per entitlement, by its name
    groups = mapping.entitlements[entitlement].directory_group
    if groups is None:
        return None
    return groups.entra_group_id if kind == TargetKind.ENTRA else groups.ldap_group_dn


@dataclass
class SyncContext:
    """Everything a run needs, built once by the CLI or the worker."""

    store: Store
    settings: Settings
    mapping: Mapping
    target: Target
    target_name: str
    clock: Clock = field(default_factory=SystemClock)
    progress: Callable[[str], None] | None = None

    def today(self) -> date:
        """The policy's evaluation date: today in the district."""
        return self.clock.today(self.mapping.policy.zone)

    def group_of(self, entitlement: str) -> str:
        group = group_for(self.mapping, entitlement, self.settings.sync.target)
        if group is None:
            raise TargetError(f"the mapping names no {self.settings.sync.target} group for '{entitlement}'")
        return group

    def say(self, message: str) -> None:
        log.info(message)
        if self.progress:
            self.progress(message)


def make_target(
    settings: Settings, clock: Clock | None = None, store: Store | None = None, mapping: Mapping | None = None
) -> tuple[Target, str]:
    """The configured target and its name (the name keys the audit and the entry cache).
    The embedded target needs the ``store`` and the ``mapping`` (its groups are the entitlements)."""
    kind = settings.sync.target
    if kind == TargetKind.STORE:
        if store is None or mapping is None:
            raise TargetError("the embedded target needs the store and the mapping")
        from .targets.embedded import EmbeddedTarget

        return EmbeddedTarget(store, set(mapping.entitlements), clock), TargetKind.STORE
    if kind == TargetKind.LDAP:
        if settings.ldap is None:
            raise TargetError("sync.target is 'ldap' but no LDAP settings are given (WALKIN_LDAP__URLS, …)")
        from .targets.ldap import LdapTarget

        return LdapTarget(settings.ldap), TargetKind.LDAP
    if kind == TargetKind.ENTRA:
        if settings.graph is None:
            raise TargetError(
                "sync.target is 'entra' but no Graph settings are given "
                "(WALKIN_GRAPH__TENANT_ID, WALKIN_GRAPH__CLIENT_ID, …)"
            )
        from .targets.graph import GraphTarget

        return GraphTarget(settings.graph, wall_clock=clock), TargetKind.ENTRA
    from .targets.memory import MemoryTarget

    return MemoryTarget(), TargetKind.MEMORY


def build_context(
    settings: Settings,
    *,
    store: Store | None = None,
    target: Target | None = None,
    target_name: str | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> SyncContext:
    """:param clock: what time it is for the runs (default: the machine's clock)."""
    mapping = load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    clock = clock or SystemClock()
    # No memory map: a full run scans whole tables once, and mapped pages of the
    # database file would only swell the worker's resident memory.
    store = store or Store(settings.database_url, memory_map=False, person_key=settings.sync.person_key)
    if target is None:
        target, target_name = make_target(settings, clock, store, mapping)
    return SyncContext(store, settings, mapping, target, target_name or target.name, clock=clock, progress=progress)
