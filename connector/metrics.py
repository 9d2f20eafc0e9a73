"""The SCIM service's Prometheus metrics, and how any walkin process exposes its own.

Names follow Prometheus' conventions: the ``walkin_`` prefix, base units
(``_seconds``), ``_total`` for counters. Labels never carry personal data: a
request is labelled by its route *template* (Flask's url rule, e.g.
``/scim/v2/Users/<user_id>``), never its path.

Under gunicorn each worker process counts its own requests; ``walkin serve`` runs
prometheus-client's multiprocess mode (connector/server.py), so a scrape answered
by any worker sums them all. The store's figures (journal lag, pending grants…)
are computed when scraped (sync/gauges.py), so they are the same whoever answers.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from flask import Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import SecretStr

#: Methods labelled as themselves; anything else a client invents is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # a request no route took (404, a body gunicorn refused)

HTTP_REQUESTS = Counter(
    "walkin_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "walkin_http_request_duration_seconds",
    "Time the app took to answer a request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class Credential(StrEnum):
    """Which credential an authentication failure was about."""

    SCIM = "scim"
    ADMIN = "admin"
    METRICS = "metrics"


class AuthFailure(StrEnum):
    MISSING = "missing"  # no bearer token sent
    INVALID = "invalid"  # a token that is not (or no longer) accepted
    NOT_CONFIGURED = "not_configured"  # metrics: no token configured, every scrape refused


AUTH_FAILURES = Counter(
    "walkin_auth_failures_total",
    "Requests refused for want of a valid credential, by API and why.",
    ["api", "reason"],
)


def auth_failed(api: Credential, reason: AuthFailure) -> None:
    AUTH_FAILURES.labels(api.value, reason.value).inc()


def install(app: Flask) -> None:
    """Count and time every request the app answers."""

    def _start() -> None:
        request.environ["walkin.started"] = time.perf_counter()

    def _count(response: Response) -> Response:
        started = request.environ.get("walkin.started")
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        method = request.method if request.method in METHODS else "other"
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        if started is not None:
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_count)


# ------------------------------------------------------------------ exposition


def check_scraper(header: str, tokens: list[SecretStr]) -> AuthFailure | None:
    """Whether an ``Authorization`` header carries one of the metrics tokens.

    :returns: why not, or None when it does."""
    if not tokens:
        return AuthFailure.NOT_CONFIGURED
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return AuthFailure.MISSING
    given = presented.strip().encode("utf-8")
    ok = False
    for token in tokens:  # each compared in constant time, as the SCIM tokens are
        ok |= hmac.compare_digest(given, token.get_secret_value().encode("utf-8"))
    return None if ok else AuthFailure.INVALID


REFUSALS = {
    AuthFailure.NOT_CONFIGURED: "metrics are refused: no WALKIN_METRICS__TOKEN is configured\n",
    AuthFailure.MISSING: "a bearer token is required\n",
    AuthFailure.INVALID: "the bearer token is not valid\n",
}


def exposition(multiprocess_dir: Path | None, collectors: Iterable[Collector] = ()) -> bytes:
    """The metrics in Prometheus' text format: this process's (or, with
    ``multiprocess_dir``, every gunicorn worker's, summed), then ``collectors``'."""
    if multiprocess_dir is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry = REGISTRY
    extra = CollectorRegistry()  # no auto-describe: registering must not query the store
    for collector in collectors:
        extra.register(collector)
    return generate_latest(registry) + generate_latest(extra)


CONTENT_TYPE = CONTENT_TYPE_LATEST
