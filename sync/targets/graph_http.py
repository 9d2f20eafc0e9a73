"""Requests to Microsoft Graph: authentication, throttling, retries and a circuit breaker.

:class:`GraphClient` sends one request (or one ``$batch`` of up to 20) and returns
Graph's answer as a :class:`GraphReply`, having dealt with everything that is not
about the request itself (``shared/docs/directories.md``, "Microsoft Graph group
membership"):

- **Throttling.** 429, 502, 503 and 504 are retried. ``Retry-After`` (seconds) is
  honoured, since retrying early still counts against the quota; without it the wait
  is exponential backoff with full jitter (a random time up to base × 2ⁿ, capped).
  One request waits at most ``retry_max_wait`` seconds in all.
- **Write budget.** Graph allows 3,000 directory writes per app and tenant in 150 s.
  Writes are counted in a sliding window and the client sleeps before it would
  exceed ``write_budget`` (2,800 by default), so throttling is the exception.
- **Tokens.** A token is asked of the :class:`~sync.targets.graph_auth.TokenProvider`
  before each request (msal answers from its cache). A 401 makes it fetch a new token
  once and send again; a second 401 is :class:`TargetAuthError`.
- **Circuit breaker.** After ``circuit_breaker_failures`` consecutive failed requests
  (no answer, 502, 503, 504 — throttling answers are not failures) the circuit opens:
  the call raises :class:`TargetUnavailable` and later calls fail at once until
  ``circuit_breaker_reset_seconds`` have passed; then one trial request is let through.

requests' exceptions stop here: they become retries and, in the end,
:class:`TargetUnavailable`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from connector.clock import Clock, SystemClock

from .. import metrics
from .base import TargetAuthError, TargetError, TargetUnavailable
from .graph_auth import TokenProvider
from .graph_settings import GRAPH_BATCH_LIMIT, GraphSettings

log = logging.getLogger(__name__)

#: Answers worth sending again later (Graph's throttling and transient faults).
TRANSIENT = frozenset({429, 502, 503, 504})


@dataclass
class GraphReply:
    """One answer of Graph: a response, or one response inside a ``$batch``."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: dict | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict:
        """The ``error`` object of an error body (``{"error": {"code", "message", "innerError"}}``)."""
        error = (self.body or {}).get("error")
        return error if isinstance(error, dict) else {}

    @property
    def code(self) -> str:
        return str(self.error.get("code") or "")

    @property
    def message(self) -> str:
        return str(self.error.get("message") or "")

    def describe(self) -> str:
        """``404 Request_ResourceNotFound: Resource '…' does not exist …`` for details and logs."""
        text = ": ".join(part for part in (self.code, self.message) if part)
        return f"{self.status} {text}".strip()

    def retry_after(self, now: datetime) -> float | None:
        """Seconds the ``Retry-After`` header asks for (delta-seconds, or an HTTP date
        compared with ``now``, the wall clock)."""
        value = next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - now).total_seconds())

    @classmethod
    def from_response(cls, response: requests.Response) -> GraphReply:
        body = None
        if response.content:
            try:
                body = response.json()
            except ValueError:  # not JSON (a proxy's HTML page): keep the text as the message
                body = {"error": {"code": "", "message": response.text[:300]}}
        return cls(response.status_code, dict(response.headers), body if isinstance(body, dict) else None)


#: A request of a ``$batch`` that its answer left out (sent again, like a 503).
_NO_ANSWER = GraphReply(503, {}, {"error": {"message": "no answer in the $batch response"}})


@dataclass(frozen=True)
class BatchItem:
    """One request of a ``$batch``: ``url`` is relative to the version root."""

    id: str
    method: str
    url: str
    body: dict | None = None
    headers: Mapping[str, str] | None = None
    writes: int = 0

    def as_json(self) -> dict:
        item: dict = {"id": self.id, "method": self.method, "url": self.url}
        if self.body is not None:
            item["body"] = self.body
            item["headers"] = {"Content-Type": "application/json", **(self.headers or {})}
        elif self.headers:
            item["headers"] = dict(self.headers)
        return item


@dataclass
class BatchAnswers:
    """What a ``$batch`` came back with. An answer once given stands: Graph has acted
    on it, whatever happens to the requests sent again."""

    settled: dict[str, GraphReply]
    """Each request's final answer, by id."""
    unsettled: dict[str, GraphReply]
    """The last (transient) answer of each request still without a final one."""
    stopped: TargetError | None = None
    """Why sending again stopped early (a resend unanswered or refused), if it did."""


class WriteBudget:
    """At most ``limit`` writes in any ``window`` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.limit, self.window, self._clock, self._sleep = limit, window, clock, sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = threading.Lock()
        self.waited = 0.0

    def spend(self, writes: int) -> None:
        """Record ``writes`` about to be sent, first sleeping until the window has room."""
        if writes <= 0:
            return
        with self._lock:
            while True:
                now = self._clock()
                while self._spent and self._spent[0][0] <= now - self.window:
                    self._used -= self._spent.popleft()[1]
                if self._used + writes <= self.limit or not self._spent:
                    self._spent.append((now, writes))
                    self._used += writes
                    return
                pause = self._spent[0][0] + self.window - now
                log.info("write budget of %d per %gs spent: waiting %.1fs", self.limit, self.window, pause)
                self.waited += pause
                metrics.graph_waited(metrics.WaitReason.BUDGET, pause)
                self._sleep(pause)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one trial through after ``reset`` s."""

    def __init__(self, threshold: int, reset: float, clock: Callable[[], float]) -> None:
        self.threshold, self.reset, self._clock = threshold, reset, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_failure = ""
        self._lock = threading.Lock()

    def check(self) -> None:
        """:raises TargetUnavailable: the circuit is open."""
        with self._lock:
            if self.opened_at is not None and self._clock() - self.opened_at < self.reset:
                raise TargetUnavailable(
                    f"Graph circuit open after {self.failures} consecutive failures (last: {self.last_failure})"
                )

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at = 0, None

    def failure(self, why: str) -> None:
        """Count a failure. :raises TargetUnavailable: this failure opened the circuit."""
        with self._lock:
            self.failures += 1
            self.last_failure = why
            if self.failures >= self.threshold:
                self.opened_at = self._clock()
                raise TargetUnavailable(
                    f"Graph circuit opened after {self.failures} consecutive failures (last: {why})"
                )


class GraphClient:
    """Sends requests to Graph for :class:`~sync.targets.graph.GraphTarget` (see module doc).

    ``sent`` counts the HTTP requests sent to Graph (token requests not included).
    """

    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        wall_clock: Clock | None = None,
    ) -> None:
        """:param clock: monotonic seconds (budgets, breaker); ``wall_clock`` dates a
        ``Retry-After`` given as an HTTP date."""
        self.settings, self.tokens = settings, tokens
        self.wall_clock = wall_clock or SystemClock()
        self.session = session or requests.Session()
        self._own_session = session is None
        self._sleep, self._jitter = sleep, jitter
        self.budget = WriteBudget(settings.write_budget, settings.write_window_seconds, clock, sleep)
        self.breaker = CircuitBreaker(settings.circuit_breaker_failures, settings.circuit_breaker_reset_seconds, clock)
        self.sent = 0
        self.throttled = 0

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def url(self, path: str) -> str:
        """An absolute URL: ``path`` relative to the version root, or already absolute (a
        nextLink), which must stay on Graph's host: the bearer token goes with it.

        :raises TargetUnavailable: an absolute URL elsewhere.
        """
        if not path.startswith(("https://", "http://")):
            return f"{self.settings.graph_url}{path}"
        if urlsplit(path)[:2] != urlsplit(self.settings.graph_url)[:2]:
            raise TargetUnavailable(f"refusing to follow {path}: not on {self.settings.graph_url}")
        return path

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, base × 2^(attempt-1))]."""
        s = self.settings
        return self._jitter() * min(s.retry_backoff_cap, s.retry_backoff_base * 2 ** (attempt - 1))

    def send(
        self,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        headers: Mapping[str, str] | None = None,
        writes: int = 0,
    ) -> GraphReply:
        """Send one request until Graph gives an answer that is not transient.

        :param writes: directory writes the request makes (for the write budget).
        :returns: Graph's answer (any status but 401 and the transient ones).
        :raises TargetAuthError: 401 even with a fresh token, or the token was refused.
        :raises TargetUnavailable: no usable answer within the retry limits, or the
            circuit is open.
        """
        s = self.settings
        url = self.url(path)
        refreshed = False
        attempt = 0
        waited = 0.0
        while True:
            self.breaker.check()
            self.budget.spend(writes)
            attempt += 1
            reply, failure = self._once(method, url, body, headers)
            if reply is not None and reply.status == 401:
                if refreshed:
                    raise TargetAuthError(f"Graph refused a fresh token: {reply.describe()}")
                log.info("Graph answered 401 (%s): fetching a new token", reply.code)
                refreshed = True
                self.tokens.token(refresh=True)
                attempt -= 1
                continue
            if reply is not None and reply.status not in TRANSIENT:
                self.breaker.success()
                return reply
            delay = None
            if reply is not None:
                failure = reply.describe()
                delay = reply.retry_after(self.wall_clock.now())
                if reply.status == 429:
                    self.throttled += 1
                    metrics.graph_throttled()
            if reply is None or reply.status != 429:
                self.breaker.failure(f"{method} {path}: {failure}")
            pause = delay if delay is not None else self.backoff(attempt)
            if attempt >= s.retry_attempts or waited + pause > s.retry_max_wait:
                raise TargetUnavailable(
                    f"{method} {path}: {failure} (gave up after {attempt} attempts, {waited:.0f}s of waiting)"
                )
            log.info("%s %s: %s; retrying in %.1fs", method, path, failure, pause)
            waited += pause
            throttled = reply is not None and reply.status == 429
            metrics.graph_waited(metrics.WaitReason.THROTTLED if throttled else metrics.WaitReason.TRANSIENT, pause)
            self._sleep(pause)

    def _once(
        self, method: str, url: str, body: dict | None, headers: Mapping[str, str] | None
    ) -> tuple[GraphReply | None, str]:
        """One HTTP exchange: the reply, or ``None`` and why there was none."""
        token = self.tokens.token()
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}
        self.sent += 1
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                headers=all_headers,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return GraphReply.from_response(response), ""

    def batch(self, items: list[BatchItem]) -> BatchAnswers:
        """Send up to 20 requests in one ``POST /$batch``; resend those answered 429/502/503/504.

        A resend that fails does not raise: the answers already settled come back with
        the error in ``stopped``, so the caller accounts for them first.

        :raises TargetAuthError, TargetUnavailable: as :meth:`send`, for the first
            ``$batch`` request (nothing is settled then).
        """
        if len(items) > GRAPH_BATCH_LIMIT:
            raise ValueError(f"a $batch holds at most {GRAPH_BATCH_LIMIT} requests, not {len(items)}")
        s = self.settings
        pending = {item.id: item for item in items}
        settled: dict[str, GraphReply] = {}
        last: dict[str, GraphReply] = {}
        attempt = 0
        waited = 0.0
        while pending:
            attempt += 1
            try:
                reply = self._send_batch(list(pending.values()))
            except TargetError as exc:
                if attempt == 1:
                    raise
                return BatchAnswers(settled, {i: last.get(i, _NO_ANSWER) for i in pending}, exc)
            answers = {str(r.get("id")): r for r in (reply.body or {}).get("responses", []) if isinstance(r, dict)}
            last = {}
            settled_now = 0
            for item_id in list(pending):
                raw = answers.get(item_id)
                answer = (
                    GraphReply(
                        int(raw.get("status", 0)),
                        raw.get("headers") or {},
                        raw.get("body") if isinstance(raw.get("body"), dict) else None,
                    )
                    if raw
                    else _NO_ANSWER
                )
                if answer.status in TRANSIENT:
                    last[item_id] = answer
                else:
                    settled[item_id] = answer
                    settled_now += 1
                    del pending[item_id]
            if not pending:
                break
            throttled = sum(1 for a in last.values() if a.status == 429)
            self.throttled += throttled
            metrics.graph_throttled(throttled)
            if not settled_now and all(a.status != 429 for a in last.values()):
                self.breaker.failure(f"$batch: {next(iter(last.values())).describe()}")
            now = self.wall_clock.now()
            delays = [a.retry_after(now) for a in last.values()]
            known = [d for d in delays if d is not None]
            pause = max(known) if known else self.backoff(attempt)
            if attempt >= s.retry_attempts or waited + pause > s.retry_max_wait:
                break
            log.info(
                "$batch: %d of its requests answered %s; resending them in %.1fs",
                len(pending),
                sorted({a.status for a in last.values()}),
                pause,
            )
            waited += pause
            metrics.graph_waited(metrics.WaitReason.THROTTLED if throttled else metrics.WaitReason.TRANSIENT, pause)
            self._sleep(pause)
        return BatchAnswers(settled, {item_id: last[item_id] for item_id in pending})

    def _send_batch(self, items: list[BatchItem]) -> GraphReply:
        """One ``POST /$batch``. :raises TargetAuthError, TargetUnavailable: not answered 2xx."""
        reply = self.send(
            "POST", "/$batch", body={"requests": [i.as_json() for i in items]}, writes=sum(i.writes for i in items)
        )
        if reply.status in (401, 403):
            raise TargetAuthError(f"$batch refused: {reply.describe()}")
        if not reply.ok:
            raise TargetUnavailable(f"$batch answered {reply.describe()}")
        return reply
