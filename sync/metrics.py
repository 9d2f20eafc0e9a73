"""The sync worker's Prometheus metrics — what happens in its process: runs and
their outcomes, writes to the directory and its errors, Graph's throttling — and the
small HTTP server that exposes them (``WALKIN_METRICS__WORKER_PORT``), behind the
same bearer token as the service's ``/metrics``.

What the store knows (journal lag, pending grants, group size, the last successful
run…) is not here: the service computes it when scraped (sync/gauges.py), the same
whichever worker is running and across restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Histogram

from .targets.base import (
    GroupNotFound,
    TargetAuthError,
    TargetError,
    TargetMisconfigured,
    TargetUnavailable,
    WriteRefused,
)

log = logging.getLogger("walkin.worker")

RUNS = Counter(
    "walkin_sync_runs_total",
    "Reconcile runs the worker made, by entitlement, target, kind and outcome.",
    ["entitlement", "target", "kind", "status"],
)
RUN_DURATION = Histogram(
    "walkin_sync_run_duration_seconds",
    "How long a reconcile run took, by entitlement, target and kind.",
    ["entitlement", "target", "kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)


class WriteResultKind(StrEnum):
    """What became of one member handed to the directory."""

    DONE = "done"  # confirmed (also when it already was so)
    REFUSED = "refused"  # the directory refused this member
    UNCONFIRMED = "unconfirmed"  # the request broke off: unknown, settled by the next run
    NOT_ATTEMPTED = "not_attempted"  # the directory was unavailable earlier in the run


TARGET_WRITES = Counter(
    "walkin_target_writes_total",
    "Members written to a directory group, by target, operation (add, remove) and result.",
    ["target", "operation", "result"],
)


class ErrorKind(StrEnum):
    """A target error, by what the operator has to do about it."""

    UNAVAILABLE = "unavailable"
    AUTH = "auth"
    MISCONFIGURED = "misconfigured"
    GROUP_NOT_FOUND = "group_not_found"
    REFUSED = "refused"
    OTHER = "other"  # any other target error, or a defect


TARGET_ERRORS = Counter(
    "walkin_target_errors_total",
    "Errors a directory write met, by target and kind.",
    ["target", "kind"],
)

GRAPH_THROTTLED = Counter(
    "walkin_graph_throttled_total",
    "Microsoft Graph answers 429 Too Many Requests (inside a $batch too).",
    ["target"],
)


class WaitReason(StrEnum):
    THROTTLED = "throttled"  # Graph answered 429: its Retry-After, or backoff
    TRANSIENT = "transient"  # 502/503/504 or no answer: backoff
    BUDGET = "budget"  # our own write budget (3,000 writes per 150 s per app and tenant)


GRAPH_WAIT = Counter(
    "walkin_graph_wait_seconds_total",
    "Seconds spent waiting before sending to Microsoft Graph (again), by why.",
    ["target", "reason"],
)

_KINDS: tuple[tuple[type[TargetError], ErrorKind], ...] = (
    (TargetUnavailable, ErrorKind.UNAVAILABLE),
    (TargetAuthError, ErrorKind.AUTH),
    (TargetMisconfigured, ErrorKind.MISCONFIGURED),
    (GroupNotFound, ErrorKind.GROUP_NOT_FOUND),
    (WriteRefused, ErrorKind.REFUSED),
)


def error_kind(error: BaseException) -> ErrorKind:
    for cls, kind in _KINDS:
        if isinstance(error, cls):
            return kind
    return ErrorKind.OTHER


def count_writes(target: str, adding: bool, result: WriteResultKind, members: int) -> None:
    if members:
        TARGET_WRITES.labels(target, "add" if adding else "remove", result.value).inc(members)


def count_error(target: str, error: BaseException) -> None:
    TARGET_ERRORS.labels(target, error_kind(error).value).inc()


def graph_waited(reason: WaitReason, seconds: float) -> None:
    GRAPH_WAIT.labels("entra", reason.value).inc(max(0.0, seconds))


def graph_throttled(answers: int = 1) -> None:
    if answers:
        GRAPH_THROTTLED.labels("entra").inc(answers)


# ------------------------------------------------------------------ the server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics: " + format, *args)


def metrics_app(tokens: list, collectors: Callable[[], Iterable] = tuple) -> Callable:
    """A WSGI app answering ``GET /metrics`` with this process's metrics, for a
    scraper presenting one of ``tokens``."""
    from connector.metrics import CONTENT_TYPE, REFUSALS, Credential, auth_failed, check_scraper, exposition

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics here\n"]
        refused = check_scraper(environ.get("HTTP_AUTHORIZATION", ""), tokens)
        if refused is not None:
            auth_failed(Credential.METRICS, refused)
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="walkin-metrics"')],
            )
            return [REFUSALS[refused].encode()]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return [exposition(None, collectors())]

    return app


def serve(host: str, port: int, tokens: list) -> WSGIServer:
    """Serve :func:`metrics_app` on ``host:port`` from a daemon thread.
    :returns: the server (``server_port`` is the port, ``shutdown()`` stops it)."""
    server = make_server(host, port, metrics_app(tokens), server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="walkin-metrics", daemon=True).start()
    if not tokens:
        log.warning("the worker's /metrics refuses every scrape: no WALKIN_METRICS__TOKEN is configured")
    log.info("worker metrics on http://%s:%d/metrics", host, server.server_port)
    return server
