"""Liveness and readiness probes (no authentication, no SCIM body)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    if current_app.extensions["walkin.store"].ping():
        return jsonify(status="ready")
    return jsonify(status="store unreachable"), 503
