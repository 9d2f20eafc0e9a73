"""Every request has an id: the client's ``X-Request-ID`` when it is a plausible
one, else a new one. It is on every log line written while the request is handled
(connector/logs.py), in the response's ``X-Request-ID`` header and in every 500 body,
so an operator can find a client's complaint in the logs."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, request

from connector.logs import request_id

HEADER = "X-Request-ID"

# Tokens only: a client's id goes into log lines, so no spaces, quotes or line breaks;
# long enough for a UUID, a W3C trace id or Entra's client-request-id.
_PLAUSIBLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def id_of(header: str | None) -> str:
    """The request's id: ``header`` if plausible, else a new random one."""
    if header and _PLAUSIBLE.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current() -> str:
    """The id of the request being handled (a new one outside a request)."""
    return request_id.get() or uuid.uuid4().hex


def install(app: Flask) -> None:
    """Give each request its id before anything else runs, and return it."""

    def _start() -> None:
        request.environ["walkin.request_id.token"] = request_id.set(id_of(request.headers.get(HEADER)))

    def _answer(response: Response) -> Response:
        response.headers[HEADER] = current()
        return response

    def _end(_exc: BaseException | None) -> None:
        token = request.environ.pop("walkin.request_id.token", None)
        if token is not None:
            request_id.reset(token)

    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_answer)
    app.teardown_request(_end)
