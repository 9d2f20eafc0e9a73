"""Liveness and readiness probes (no authentication, no SCIM body)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from connector.readiness import check

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The store answers at this release's schema, and the worker's heartbeat is fresh
    (connector/readiness.py)."""
    settings = current_app.config["WALKIN_SETTINGS"]
    readiness = check(current_app.extensions["walkin.store"], current_app.extensions["walkin.clock"], settings.health)
    return jsonify(readiness.to_json_dict()), 200 if readiness.ready else 503
