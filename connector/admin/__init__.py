"""The admin JSON API under ``/admin/api/v1``: the reports, a person's explain and
history, overrides, approval records, what-if, "sync this person now" and releasing
held removals — the service layer in sync/ behind admin API tokens with roles
(connector/admin/roles.py), described by the OpenAPI document it serves at
``/admin/api/v1/openapi.json``.

``install`` only wires things together; the handlers are in routes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from flask import Flask

    from connector.clock import Clock
    from connector.settings import Settings
    from connector.store.database import Store
    from mappings.model import Mapping
    from sync.reports import ReportContext

    from .roles import Caller

PREFIX = "/admin/api/v1"


@dataclass(frozen=True)
class AdminService:
    """What the admin handlers are handed: the settings, store, clock and mapping."""

    settings: Settings
    store: Store
    clock: Clock
    mapping: Mapping

    def context(self) -> ReportContext:
        from sync.reports import ReportContext

        target = str(self.settings.sync.target)  # a StrEnum (or, set by hand, its value)
        return ReportContext(self.mapping, target, self.clock.today(self.mapping.policy.zone))

    def scoped(self, session: Session, caller: Caller) -> Caller:
        """An approver's caller with the locations the approver rule gives its person
        today (none when the person is gone or inactive: they see and approve nothing)."""
        from sync.approvals import approver_locations

        from .roles import AdminRole

        if caller.role is not AdminRole.APPROVER or caller.approver_id is None:
            return caller
        places = approver_locations(session, self.mapping, self.settings.sync.person_key, caller.approver_id)
        return replace(caller, locations=places)


def install(app: Flask, settings: Settings, store: Store, clock: Clock) -> None:
    """Register the admin API on ``app``; reads the mapping now, so a bad one stops start-up."""
    from flask import Blueprint

    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping

    from . import errors, routes
    from .operations import IdConverter

    mapping = load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    app.extensions["walkin.admin"] = AdminService(settings, store, clock, mapping)
    app.url_map.converters["id"] = IdConverter
    blueprint = Blueprint("admin", __name__, url_prefix=PREFIX)
    api = routes.declare(blueprint)
    blueprint.before_request(api.authorize)
    errors.install(blueprint)
    app.extensions["walkin.admin_api"] = api
    app.register_blueprint(blueprint)
