"""``GET /metrics``: the Prometheus metrics, for a scraper presenting the metrics
token (``WALKIN_METRICS__TOKEN``); with none configured every scrape is refused."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from connector.metrics import CONTENT_TYPE, REFUSALS, Credential, auth_failed, check_scraper, exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    settings = current_app.config["WALKIN_SETTINGS"]
    refused = check_scraper(request.headers.get("Authorization", ""), settings.metrics.token)
    if refused is not None:
        auth_failed(Credential.METRICS, refused)
        response = Response(REFUSALS[refused], 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="walkin-metrics"'
        return response
    body = exposition(current_app.extensions.get("walkin.metrics_dir"), [current_app.extensions["walkin.gauges"]])
    return Response(body, mimetype=CONTENT_TYPE)
