"""A real ``walkin serve`` with 2 gunicorn workers: /metrics sums every worker's
counters (a worker that was replaced included), its logs are one JSON object a line
carrying the request id, its metrics directory is removed when it stops, and
/readyz follows the store going away and coming back."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import AUTH, METRICS_TOKEN, POSTGRES_URL, sqlite_copy
from tests.connector.test_server import HOST, walkin_serve
from tests.scrape import scrape_url

JSON_ENV = {"WALKIN_LOG_FORMAT": "json", "WALKIN_METRICS__TOKEN": METRICS_TOKEN}
ROUTE = {"route": "/scim/v2/Users", "method": "GET", "status": "200"}


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request on a connection of its own (so gunicorn may hand it to either worker)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _post(port: int, path: str, body: dict) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        connection.request("POST", path, body=json.dumps(body),
                           headers={**AUTH, "Content-Type": "application/scim+json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _lines(log: Path) -> list[dict]:
    """Every line of the log, each parsed as JSON (a line that is not JSON fails)."""
    out = []
    for line in log.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line!r}")
    return out


def _access(log: Path) -> list[dict]:
    return [r for r in _lines(log) if r["logger"] == "gunicorn.access"]


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_two_workers_metrics_logs_and_request_ids(tmp_path, _sqlite_template):
    """Requests served by workers that were then replaced still count; every log line
    is JSON; the access line carries the request id the client sent and the
    duration in seconds; the metrics directory goes when the server stops."""
    url = sqlite_copy(_sqlite_template, tmp_path)
    with walkin_serve(tmp_path, url, "--workers", "2", env=JSON_ENV) as (port, log):
        metrics = f"http://{HOST}:{port}/metrics"
        for _ in range(10):
            assert _get(port, "/scim/v2/Users", AUTH)[0] == 200
        _wait(lambda: len([r for r in _access(log) if r["path"] == "/scim/v2/Users"]) == 10, "access lines")
        victim = next(r["process"] for r in _access(log) if r["path"] == "/scim/v2/Users")
        os.kill(victim, signal.SIGTERM)  # gunicorn starts a new worker; the old one's counts must stay
        _wait(lambda: _booted(log) - _first_two(log), "a new worker booting")

        def new_worker_answers() -> bool:
            _get(port, "/healthz")
            return bool({r["process"] for r in _access(log)} & (_booted(log) - _first_two(log)))

        _wait(new_worker_answers, "the new worker answering")
        for _ in range(10):
            assert _get(port, "/scim/v2/Users", AUTH)[0] == 200
        for _ in range(3):  # whichever worker answers the scrape, the sum is the same
            assert scrape_url(metrics).value("walkin_http_requests_total", **ROUTE) == 20
        # The store's figures, read at scrape time: a user created is a journal event behind.
        assert scrape_url(metrics).value("walkin_journal_lag_events") == 0
        assert _post(port, "/scim/v2/Users", {"userName": "lag@district.org"}) == 201
        assert scrape_url(metrics).value("walkin_journal_lag_events") >= 1

        status, headers, _ = _get(port, "/scim/v2/Users", {**AUTH, "X-Request-ID": "obs-trace-1"})
        assert status == 200 and headers["X-Request-ID"] == "obs-trace-1"
        _wait(lambda: any(r.get("request_id") == "obs-trace-1" for r in _access(log)), "the traced access line")
        assert _get(port, "/metrics")[0] == 401
        (line,) = [r for r in _access(log) if r.get("request_id") == "obs-trace-1"]
        assert (line["method"], line["path"], line["status"]) == ("GET", "/scim/v2/Users", 200)
        assert isinstance(line["duration_seconds"], float) and 0 < line["duration_seconds"] < 10
        folder = next(re.search(r"kept in (\S+)", r["message"]).group(1) for r in _lines(log)
                      if "metrics are kept in" in r["message"])
        assert Path(folder).is_dir()
    assert not Path(folder).exists()
    records = _lines(log)  # the whole run, gunicorn's start and stop included
    assert {r["logger"] for r in records} >= {"gunicorn.error", "gunicorn.access", "walkin.server"}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def _booted(log: Path) -> set[int]:
    """The pids of every worker gunicorn has booted so far."""
    return {int(m.group(1)) for r in _lines(log) if (m := re.search(r"Booting worker with pid: (\d+)", r["message"]))}


def _first_two(log: Path) -> set[int]:
    found = [int(m.group(1)) for r in _lines(log) if (m := re.search(r"Booting worker with pid: (\d+)", r["message"]))]
    return set(found[:2])


@pytest.fixture
def own_postgres():
    """A PostgreSQL database of its own (this test takes it away and brings it back)."""
    if not POSTGRES_URL:
        pytest.fail("needs WALKIN_TEST_POSTGRES_URL")
    admin_url = make_url(POSTGRES_URL)
    name = f"walkin_obs_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin, name, admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            _drop_sessions(conn, name)
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _drop_sessions(conn, name: str) -> None:
    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})


@pytest.mark.postgres
def test_readiness_follows_the_store_and_a_500_names_its_request(tmp_path, own_postgres):
    """The database refuses connections: /readyz is 503 (/healthz stays 200) and a SCIM
    request is a 500 whose body and log line name its request id; back: ready again."""
    admin, name, url = own_postgres
    with walkin_serve(tmp_path, url, "--workers", "2", env=JSON_ENV) as (port, log):
        assert _get(port, "/readyz")[0] == 200
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            _drop_sessions(conn, name)
        status, _, body = _get(port, "/readyz")
        assert status == 503 and json.loads(body)["checks"]["store"].startswith("unreachable")
        assert _get(port, "/healthz")[0] == 200
        status, headers, body = _get(port, "/scim/v2/Users", {**AUTH, "X-Request-ID": "outage-7"})
        assert status == 500 and "outage-7" in json.loads(body)["detail"] and headers["X-Request-ID"] == "outage-7"
        _wait(lambda: any(r["level"] == "ERROR" and r.get("request_id") == "outage-7" for r in _lines(log)),
              "the error's log line")
        (error,) = [r for r in _lines(log) if r["level"] == "ERROR" and r.get("request_id") == "outage-7"]
        assert "exception" in error and error["logger"] == "walkin.api"
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        _wait(lambda: _get(port, "/readyz")[0] == 200, "ready again")
