"""What every SCIM handler shares: authentication, body parsing, responses and
error translation. Registered once on the blueprint, not repeated per route."""

from __future__ import annotations

import hmac
import json
import logging
from functools import lru_cache
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_current_url

from connector.api import request_ids
from connector.jsontext import dumps_utf8
from connector.metrics import AuthFailure, Credential, auth_failed
from connector.scim.errors import (
    InvalidSyntax,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ScimError,
    Unauthorized,
    error_body,
)

log = logging.getLogger("walkin.api")
SCIM_JSON = "application/scim+json"


def scim_response(body: Any, status: int = 200, etag: str | None = None, location: str | None = None) -> Response:
    response = Response(dumps_utf8(body), status=status, mimetype=SCIM_JSON)
    if etag:
        response.headers["ETag"] = etag
    if location:
        response.headers["Location"] = location
    return response


def no_content(etag: str | None = None) -> Response:
    response = Response(status=204)
    if etag:
        response.headers["ETag"] = etag
    return response


def error_response(error: ScimError) -> Response:
    response = scim_response(error.to_body(), error.status)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="walkin"'
    return response


def _reject_constant(name: str) -> Any:
    raise InvalidSyntax(f"'{name}' is not JSON (RFC 8259 §6)")


def json_body() -> Any:
    """The request body as JSON. :raises InvalidSyntax: when it is not JSON."""
    raw = request.get_data(cache=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    # A chunked body is cut at the limit by Werkzeug, silently: anything left
    # in the raw input means the body was larger than allowed.
    if (
        request.content_length is None
        and limit is not None
        and len(raw) >= limit
        and request.environ["wsgi.input"].read(1)
    ):
        raise PayloadTooLarge("the request body is too large")
    if not raw.strip():
        raise InvalidSyntax("the request has no body")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidSyntax("the request body is not UTF-8") from None
    except RecursionError:
        raise InvalidSyntax("the request body is nested too deeply") from None
    except ValueError as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None


def base_url() -> str:
    """The SCIM root as clients reach it."""
    configured = current_app.config["WALKIN_SETTINGS"].base_url
    if configured:
        return f"{configured.rstrip('/')}/scim/v2"
    return _scim_root(request.scheme, request.host, request.root_path)


@lru_cache(maxsize=64)
def _scim_root(scheme: str, host: str, root_path: str) -> str:
    # Werkzeug's request.url_root, remembered: building it (IRI decoding) costs a
    # noticeable part of a small request, and a server is reached by few names.
    return get_current_url(scheme, host, root_path).rstrip("/") + "/scim/v2"


def _authenticate() -> None:
    tokens = current_app.config["WALKIN_SETTINGS"].scim_token
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        auth_failed(Credential.SCIM, AuthFailure.MISSING)
        raise Unauthorized("a bearer token is required")
    given = presented.strip().encode("utf-8")
    # Compare against every configured token, each in constant time, so timing
    # says nothing about which (or whether one) matched.
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token.get_secret_value().encode("utf-8"))
    if not ok:
        auth_failed(Credential.SCIM, AuthFailure.INVALID)
        raise Unauthorized("the bearer token is not valid")


def install(blueprint: Blueprint) -> None:
    """Register authentication and error translation on the SCIM blueprint."""

    blueprint.before_request(_authenticate)


def install_app_errors(app) -> None:
    """Every error leaves as an RFC 7644 §3.12 body; unexpected ones as a bare 500.

    Paths under a prefix in ``app.extensions["walkin.error_bodies"]`` (the admin API:
    RFC 9457 problems) get that prefix's body instead — for what is met before any
    blueprint's own handlers can act (no such route, method not allowed, a body too
    large) and for the unexpected."""

    def _body(status: int, detail: str) -> Response | None:
        for prefix, render in app.extensions.get("walkin.error_bodies", {}).items():
            if request.path.startswith(prefix):
                return render(status, detail)
        return None

    @app.errorhandler(ScimError)
    def _scim(error: ScimError) -> Response:
        return _body(error.status, error.detail) or error_response(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        code = error.code or 500
        if code == 413:
            return _scim(PayloadTooLarge("the request body is too large"))
        if code == 405:
            response = _scim(MethodNotAllowed(f"{request.method} is not supported on this endpoint"))
            allowed = getattr(error, "valid_methods", None)  # set on werkzeug's MethodNotAllowed
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
            return response
        if code == 404:
            return _scim(NotFound(f"no endpoint at {request.path}"))
        if 400 <= code < 500:
            detail = error.description or error.name
            return _body(code, detail) or scim_response(error_body(code, detail), code)
        return _unexpected(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        request_id = request_ids.current()  # also on this log line and in the X-Request-ID header
        # The id in the message too: a line read without its fields still names it.
        log.exception("unexpected error handling %s %s (request %s)", request.method, request.path, request_id)
        detail = f"internal error (request {request_id})"
        return _body(500, detail) or scim_response(error_body(500, detail), 500)
