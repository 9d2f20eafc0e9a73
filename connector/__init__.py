"""walkin's SCIM 2.0 service provider.

``create_app`` only wires things together: settings → store → provisioning
service → blueprints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the package must stay cheap: mappings/ reads connector.scim.schema
    from flask import Flask

    from connector.clock import Clock
    from connector.settings import Settings


def create_app(settings: Settings | None = None, store=None, clock: Clock | None = None, demo: bool = False) -> Flask:
    """:param clock: what time it is for the service (default: the machine's); tests
    share one :class:`~connector.clock.FrozenClock` with the sync they drive.
    :param demo: the console's demo sign-in (``walkin demo`` only: connector/demo.py)."""
    from flask import Blueprint, Flask

    from connector import admin, console
    from connector import metrics as service_metrics
    from connector.admin.errors import problem
    from connector.api import discovery, health, http, request_ids, resources
    from connector.api import metrics as metrics_route
    from connector.clock import SystemClock
    from connector.provisioning import Provisioning
    from connector.settings import Settings
    from connector.store.database import Store
    from sync.gauges import StoreGauges

    settings = settings or Settings()
    store = store or Store(settings.database_url, person_key=settings.sync.person_key)
    app = Flask(__name__)
    app.config["WALKIN_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["walkin.store"] = store
    clock = clock or SystemClock()
    app.extensions["walkin.clock"] = clock
    app.extensions["walkin.provisioning"] = Provisioning(store, settings, clock)
    service_metrics.install(app)  # counts and times every request…
    request_ids.install(app)  # …each with its id, given before anything else runs
    scim = Blueprint("scim", __name__, url_prefix="/scim/v2")
    http.install(scim)  # bearer-token check on everything under /scim/v2
    scim.register_blueprint(resources.bp)
    scim.register_blueprint(discovery.bp)
    app.register_blueprint(scim)
    app.register_blueprint(health.bp)
    admin.install(app, settings, store, clock)  # /admin/api/v1, behind admin API tokens
    app.register_blueprint(metrics_route.bp)  # /metrics, behind the metrics token
    app.extensions["walkin.gauges"] = StoreGauges(
        store,
        app.extensions["walkin.admin"].mapping,
        str(settings.sync.target),
        clock,
        settings.health.worker_stale_seconds,
    )
    app.extensions["walkin.error_bodies"] = {admin.PREFIX: problem}
    console.install(app, settings, demo=demo)  # /console, signed in with the district's OpenID Connect provider
    http.install_app_errors(app)
    return app
