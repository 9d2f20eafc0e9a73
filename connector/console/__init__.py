"""The admin console: server-rendered pages for the help desk, administrators and
principals under ``/console``, signed in with the district's OpenID Connect provider
(signin.py), over the same service layer and permission table as the admin API.
Assets are served by the app; nothing comes from a CDN.

Off until ``WALKIN_CONSOLE__ISSUER``, ``__CLIENT_ID`` and ``__SESSION_SECRET`` are set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from connector.settings import Settings

PREFIX = "/console"


def install(app: Flask, settings: Settings, demo: bool = False) -> None:
    """:param demo: the demo sign-in instead of an identity provider — only ``walkin
    demo`` passes it (never a setting: it signs anyone in as anyone)."""
    import secrets

    from authlib.integrations.flask_client import OAuth
    from flask import Blueprint

    from . import pages, signin

    console = settings.console
    if not console.enabled and not demo:
        return
    secret = console.session_secret.get_secret_value() if console.session_secret else secrets.token_urlsafe(32)
    app.secret_key = secret
    app.config.update(
        SESSION_COOKIE_NAME="walkin_console",
        SESSION_COOKIE_SECURE=console.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH=PREFIX,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=console.absolute_hours),
    )
    blueprint = Blueprint("console", __name__, url_prefix=PREFIX, template_folder="templates", static_folder="static")
    if demo:
        signin.install_demo(blueprint)
    else:
        assert console.issuer is not None  # enabled says so
        oauth = OAuth(app)
        oauth.register(
            "walkin",
            client_id=console.client_id,
            client_secret=console.client_secret.get_secret_value() if console.client_secret else None,
            server_metadata_url=console.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
        )
        signin.install(blueprint, oauth)
    pages.install(blueprint)
    app.register_blueprint(blueprint)
    app.extensions.setdefault("walkin.error_bodies", {})[PREFIX] = error_page


def error_page(status: int, detail: str):
    """An error under /console as a page of the console (the app's error boundary,
    connector/api/http.py, asks for it instead of a SCIM body)."""
    from http import HTTPStatus

    from flask import Response, render_template

    page = render_template("console/error.html", status=status, title=HTTPStatus(status).phrase, detail=detail)
    return Response(page, status=status, mimetype="text/html")
