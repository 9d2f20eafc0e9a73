"""The gunicorn configuration ``walkin serve`` runs with, and what it answers to
requests gunicorn rejects before the app sees them (through a real ``walkin
serve`` on a loopback port)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from connector.server import (
    WORKER_CLASSES,
    AccessLogger,
    ScimThreadWorker,
    WorkerKind,
    gunicorn_options,
    request_line_limit,
)
from connector.settings import ScimSettings
from tests.conftest import AUTH, TOKEN, sqlite_copy

HOST = "127.0.0.1"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_JSON = "application/scim+json"
LIMIT = request_line_limit(ScimSettings().max_filter_length)


class _Response:
    status = "404 NOT FOUND"
    headers = [("Content-Type", "application/scim+json")]

    def __init__(self, sent):
        self.sent = sent


@pytest.mark.parametrize("sent", [0, 512, None], ids=["empty", "body", "unknown"])
def test_access_log_line_is_gunicorns_own(sent):
    """The trimmed access logger writes exactly the line gunicorn's logger would."""
    cfg = Config()
    for key, value in gunicorn_options("127.0.0.1", 8000, 1, 4, ScimSettings()).items():
        cfg.set(key, value)
    logger = AccessLogger(cfg)
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "GET", "RAW_URI": '/scim/v2/Users?filter=a+eq+"b"',
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": "Bearer secret"}
    request = [("Authorization", "Bearer secret")]
    took = timedelta(seconds=1, microseconds=23456)

    def line(atoms):
        return cfg.access_log_format % logger.atoms_wrapper_class(atoms)

    ours = line(logger.atoms(_Response(sent), request, environ, took))
    assert ours == line(Logger.atoms(logger, _Response(sent), request, environ, took))
    assert "secret" not in ours


@pytest.mark.parametrize(("max_filter_length", "limit"), [
    (64, 3 * 64 + 2048),
    (1000, 3 * 1000 + 2048),
    (2047, 8189),
    (4096, 8190),
    (100_000, 8190),
], ids=["smallest", "small", "just-under-cap", "default", "huge"])
def test_request_line_limit_follows_the_filter_limit(max_filter_length, limit):
    """Three bytes a filter character plus room for the rest, within gunicorn's 8190."""
    assert request_line_limit(max_filter_length) == limit


@pytest.mark.parametrize("kind", list(WorkerKind))
def test_options_load_the_scim_worker(kind):
    """gunicorn resolves the worker class from its dotted path and keeps the derived
    limit; gevent is the default."""
    from connector.gevent_worker import ScimGeventWorker

    cfg = Config()
    for key, value in gunicorn_options(HOST, 8000, 1, 4, ScimSettings(max_filter_length=1000), kind).items():
        cfg.set(key, value)
    assert cfg.worker_class is {WorkerKind.GEVENT: ScimGeventWorker, WorkerKind.GTHREAD: ScimThreadWorker}[kind]
    assert cfg.limit_request_line == 5048
    assert gunicorn_options(HOST, 8000, 1, 4, ScimSettings())["worker_class"] == WORKER_CLASSES[WorkerKind.GEVENT]


def test_an_error_outside_the_app_is_a_bare_500():
    """An error gunicorn blames on the server is a 500 SCIM body without its message."""
    cfg = Config()
    for key, value in gunicorn_options(HOST, 8000, 1, 4, ScimSettings()).items():
        cfg.set(key, value)
    cfg.set("accesslog", None)
    worker = ScimThreadWorker(0, os.getpid(), [], None, 30, cfg, AccessLogger(cfg))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        try:
            raise RuntimeError("secret internals")
        except RuntimeError as exc:
            worker.handle_error(None, ours, ("10.0.0.7", 4711), exc)
        finally:
            worker.tmp.close()
        ours.close()
        status, content_type, body = _parse(theirs)
    assert (status, content_type) == (500, SCIM_JSON)
    assert body == {"schemas": [ERROR], "status": "500", "detail": "internal error"}


# ------------------------------------------------------- a real walkin serve


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def walkin_serve(tmp: Path, store_url: str, *options: str, env: dict[str, str] | None = None
                 ) -> Iterator[tuple[int, Path]]:
    """A real ``walkin serve`` on a free loopback port over ``store_url``, with
    ``options`` (and ``env`` added to its environment); yields (port, log path) once
    it answers /healthz, stops it after."""
    port = _free_port()
    env = {**os.environ, "WALKIN_DATABASE_URL": store_url, "WALKIN_SCIM_TOKEN": TOKEN, **(env or {})}
    log_path = tmp / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--host", HOST, "--port", str(port),
                                 *options], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"walkin serve did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield port, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory, _sqlite_template) -> Iterator[int]:
    """``walkin serve`` on a free loopback port (1 worker) over a fresh SQLite store;
    yields the port."""
    tmp = tmp_path_factory.mktemp("serve")
    with walkin_serve(tmp, sqlite_copy(_sqlite_template, tmp), "--workers", "1", "--threads", "2") as (port, _):
        yield port


def _healthy(port: int) -> bool:
    try:
        status, _, _ = _request(port, "GET", "/healthz")
    except OSError:
        return False
    return status == 200


def _parse(sock: socket.socket) -> tuple[int, str | None, dict | bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    raw = response.read()
    content_type = response.getheader("Content-Type")
    return response.status, content_type, json.loads(raw) if content_type == SCIM_JSON else raw


def _raw(port: int, data: bytes) -> tuple[int, str | None, dict | bytes]:
    """Send *data* as it is and read the answer."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        return _parse(sock)


def _get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {HOST}", f"Authorization: Bearer {TOKEN}", "Connection: close"]
    return "\r\n".join([*lines, *headers, "", ""]).encode("latin-1")


def _request(port: int, method: str, target: str, body: dict | None = None) -> tuple[int, str | None, dict | bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {**AUTH, "Content-Type": SCIM_JSON} if body is not None else AUTH
        connection.request(method, target, body=json.dumps(body) if body is not None else None, headers=headers)
        return _parse(connection.sock)
    finally:
        connection.close()


def _assert_scim_error(answer, status: int) -> str:
    """*answer* is an RFC 7644 §3.12 error with *status*; returns its detail."""
    got_status, content_type, body = answer
    assert (got_status, content_type) == (status, SCIM_JSON), body
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert set(body) == {"schemas", "status", "detail"}  # no scimType fits (RFC 7644 §3.12)
    assert body["detail"] and "Traceback" not in body["detail"]
    return body["detail"]


def _filter_of(length: int) -> str:
    """A valid filter of exactly *length* characters: 100 ``userName eq`` comparisons
    joined by ``or`` (the most a filter may hold), the last value padded."""
    head = " or ".join(f'userName eq "user{i:03d}@example.org"' for i in range(99))
    pad = length - len(head) - len(' or userName eq ""')
    return f'{head} or userName eq "{"x" * pad}"'


def _every_byte_encoded(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode("utf-8"))


def test_a_request_line_at_the_limit_reaches_the_app(served):
    """A request line of exactly the limit is served by the app."""
    target = "/healthz?pad="
    target += "x" * (LIMIT - len(f"GET {target} HTTP/1.1"))
    assert len(f"GET {target} HTTP/1.1") == LIMIT
    status, content_type, _ = _raw(served, _get(target))
    assert (status, content_type) == (200, "application/json")


def test_a_request_line_over_the_limit_is_a_scim_414(served):
    """One byte over the limit: 414 with a SCIM body pointing at POST /.search."""
    target = "/healthz?pad="
    target += "x" * (LIMIT + 1 - len(f"GET {target} HTTP/1.1"))
    detail = _assert_scim_error(_raw(served, _get(target)), 414)
    assert str(LIMIT) in detail and "POST /.search" in detail


def test_a_max_length_filter_reaches_the_app_with_get(served):
    """A 4096-character filter, URL-encoded, is evaluated by the app on GET."""
    text = _filter_of(ScimSettings().max_filter_length)
    assert len(text) == 4096 and text.count(" eq ") == 100
    created, _, _ = _request(served, "POST", "/scim/v2/Users", {"userName": "user042@example.org"})
    assert created in (201, 409)  # 409: created by another test of this server
    status, content_type, body = _raw(served, _get(f"/scim/v2/Users?filter={quote(text, safe='')}"))
    assert (status, content_type) == (200, SCIM_JSON), body
    assert body["schemas"] == [LIST]
    assert [user["userName"] for user in body["Resources"]] == ["user042@example.org"]


def test_a_filter_encoded_beyond_the_limit_is_a_scim_414_and_fits_search(served):
    """Every byte of a 4096-character filter percent-encoded overflows the line (414,
    SCIM); the same filter with POST /.search is answered by the app."""
    text = _filter_of(ScimSettings().max_filter_length)
    _assert_scim_error(_raw(served, _get(f"/scim/v2/Users?filter={_every_byte_encoded(text)}")), 414)
    status, content_type, body = _request(served, "POST", "/scim/v2/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": text})
    assert (status, content_type) == (200, SCIM_JSON), body
    assert body["schemas"] == [LIST]


@pytest.mark.parametrize("headers", [
    ["X-Pad: " + "x" * 9000],
    [f"X-Pad-{i}: x" for i in range(101)],
], ids=["header-too-large", "too-many-headers"])
def test_headers_over_the_limits_are_a_scim_431(served, headers):
    """A header over 8190 bytes or more than 100 headers: 431 with a SCIM body."""
    _assert_scim_error(_raw(served, _get("/scim/v2/Users", *headers)), 431)


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /scim/v2/Users HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /scim/v2/Users HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
], ids=["garbage", "http-version", "header-name", "obsolete-folding"])
def test_malformed_requests_are_a_scim_400(served, data):
    """Bytes that are not an HTTP/1.1 request: 400 with a SCIM body that does not quote them."""
    detail = _assert_scim_error(_raw(served, data), 400)
    assert "GARBAGE" not in detail and "9.9" not in detail and "Bad" not in detail
