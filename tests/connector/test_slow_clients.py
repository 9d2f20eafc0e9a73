"""Slow clients cannot starve the service (issue 12): a real ``walkin serve`` (the
shipped gevent workers) keeps answering other clients while 256 connections send
their headers or bodies a byte at a time, and closes those connections by their
deadlines — the headers within the keep-alive 5 s, the body within
``--body-timeout`` (408 with a SCIM error body). Loopback only, bounded in time."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.conftest import TOKEN, sqlite_copy
from tests.connector.test_server import HOST, _request, walkin_serve

SLOW = 256
BODY_SECONDS = 3


@pytest.fixture
def serving(tmp_path, _sqlite_template):
    with walkin_serve(tmp_path, sqlite_copy(_sqlite_template, tmp_path), "--workers", "1",
                      "--body-timeout", str(BODY_SECONDS)) as served:
        yield served


def _slow_headers(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=15)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and then a byte now and then
    return sock


def _slow_body(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=15)
    sock.sendall((f"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{").encode())
    return sock


def test_256_slow_connections_do_not_stop_the_service(serving):
    port, log_path = serving
    slow = [(_slow_headers if i % 2 else _slow_body)(port) for i in range(SLOW)]
    stop = threading.Event()

    def trickle() -> None:  # one byte a second on each: alive, never done
        while not stop.wait(1):
            for sock in slow:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        times = []
        for i in range(20):
            started = time.monotonic()
            status, _, body = (_request(port, "GET", "/healthz") if i % 2 else
                               _request(port, "GET", "/scim/v2/Users?count=1"))
            times.append(time.monotonic() - started)
            assert status == 200, body
        assert max(times) < 2, times  # answered at once (gthread: half of these timed out at 8 slow connections)

        # The deadlines: slow headers are dropped after the keep-alive 5 s, slow
        # bodies get 408 after BODY_SECONDS; both long before an hour of trickling.
        answers = {"closed": 0, "408": 0}
        deadline = time.monotonic() + 15
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except (TimeoutError, ConnectionResetError):
                pass
            if data.startswith(b"HTTP/1.1 408"):
                body = json.loads(data.split(b"\r\n\r\n", 1)[1])
                assert body["status"] == "408" and "did not arrive within 3 seconds" in body["detail"]
                answers["408"] += 1
            elif data == b"":
                answers["closed"] += 1
        assert answers == {"closed": SLOW // 2, "408": SLOW // 2}, answers
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    assert "Traceback" not in log_path.read_text(errors="replace")
