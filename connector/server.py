"""Serving the app with gunicorn, configured in code so ``walkin serve`` and the
Docker image run the same server settings."""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.http.message import MAX_REQUEST_LINE
from gunicorn.util import write_nonblock
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from connector.api.http import SCIM_JSON
from connector.jsontext import dumps_utf8
from connector.scim.errors import error_body
from connector.settings import LogFormat, ScimSettings, Settings


class WorkerKind(StrEnum):
    """How ``walkin serve``'s gunicorn workers handle connections."""

    GEVENT = "gevent"
    """A greenlet per connection, each read with a deadline (connector/gevent_worker.py):
    slow clients cannot starve the service. The default."""
    GTHREAD = "gthread"
    """A thread per connection while its request is read (gunicorn's gthread): only
    behind a proxy that buffers whole requests (nginx, a cloud load balancer)."""


WORKER_CLASSES = {
    WorkerKind.GEVENT: "connector.gevent_worker.ScimGeventWorker",
    WorkerKind.GTHREAD: "connector.server.ScimThreadWorker",
}
WORKER_CONNECTIONS = 1000  # connections one gevent worker holds at most (gunicorn's default)


def gunicorn_options(
    host: str,
    port: int,
    workers: int,
    threads: int,
    scim: ScimSettings,
    kind: WorkerKind = WorkerKind.GEVENT,
    body_seconds: float | None = None,
    metrics_dir: Path | None = None,
    log_formatter: logging.Formatter | None = None,
) -> dict:
    """:param body_seconds: (gevent) seconds a client has to send a request body.
    :param metrics_dir: the workers' metric files (prometheus-client's multiprocess
        mode): a worker that exits has its live figures dropped from them.
    :param log_formatter: formats gunicorn's error and access logs (JSON logs);
        None: gunicorn's own text lines."""

    def post_fork(_server, worker) -> None:
        if body_seconds is not None:
            worker.body_seconds = body_seconds

    def child_exit(_server, worker) -> None:
        if metrics_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, str(metrics_dir))

    return {
        "post_fork": post_fork,
        "child_exit": child_exit,
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": WORKER_CLASSES[kind],
        "worker_connections": WORKER_CONNECTIONS,
        "limit_request_line": request_line_limit(scim.max_filter_length),
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": AccessLogger if log_formatter is None else json_logger(log_formatter),
    }


# Room in the request line beside the filter: the method, the path, the HTTP
# version and the other query parameters (attributes, excludedAttributes, sortBy,
# sortOrder, startIndex, count), URL-encoded.
REQUEST_LINE_ROOM = 2048


def request_line_limit(max_filter_length: int) -> int:
    """gunicorn's ``limit_request_line`` for GET requests with filters of up to
    *max_filter_length* characters.

    URL-encoded, a filter takes up to three bytes a character (every one
    percent-encoded), so ``3 * max_filter_length`` plus :data:`REQUEST_LINE_ROOM`
    holds any of them. But gunicorn lowers every limit above 8190 bytes to 8190
    (``gunicorn.http.message.MAX_REQUEST_LINE``; only 0, unlimited, goes beyond,
    and the line must stay bounded), so with the default 4096 characters the limit
    is 8190: a 4096-character filter fits with half its characters percent-encoded
    (a real one, with its spaces, quotes and ``@``, has far fewer), and 8190 is
    above the 8000 bytes every HTTP recipient should support (RFC 9112 §3). A
    longer line is answered 414 with a detail naming POST /.search, which carries
    any filter the app accepts (RFC 7644 §3.4.3).
    """
    return min(3 * max_filter_length + REQUEST_LINE_ROOM, MAX_REQUEST_LINE)


# The access log shows method, path and status only: never request headers, so a
# bearer token cannot end up in a log — and the request's id (our response header),
# the duration in seconds.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss %({x-request-id}o)s'


class AccessLogger(Logger):
    """gunicorn's logger, computing for each request only the fields of
    :data:`ACCESS_LOG_FORMAT` instead of every header and environment variable
    (gunicorn's own ``atoms`` costs a tenth of a small SCIM request)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self._own_format = cfg.access_log_format == ACCESS_LOG_FORMAT  # gunicorn's cfg lookups are slow

    def atoms(self, resp, req, environ, request_time) -> dict:
        if not self._own_format:
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "b": str(sent) if sent is not None else "-",
            "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            "{x-request-id}o": _request_id_of(resp),
        }


def _request_id_of(resp) -> str:
    for name, value in getattr(resp, "headers", ()):
        if name.lower() == "x-request-id":
            return value
    return "-"


class JsonAccessLogger(AccessLogger):
    """gunicorn's logger writing its error and access logs as JSON lines
    (``WALKIN_LOG_FORMAT=json``) with the formatter of connector/logs.py; an access
    line's fields: ``remote_addr``, ``method``, ``path``, ``status``, ``bytes``,
    ``duration_seconds`` and ``request_id``."""

    formatter: logging.Formatter

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(self.formatter)

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        sent = getattr(resp, "sent", None)
        request_id = _request_id_of(resp)
        fields = {
            "remote_addr": environ.get("REMOTE_ADDR", "-"),
            "method": environ["REQUEST_METHOD"],
            "path": environ["RAW_URI"],
            "status": int(status),
            "bytes": sent,
            "duration_seconds": request_time.total_seconds(),
            "request_id": None if request_id == "-" else request_id,
        }
        self.access_log.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)


def json_logger(formatter: logging.Formatter) -> type[JsonAccessLogger]:
    """A :class:`JsonAccessLogger` class writing with ``formatter`` (gunicorn builds
    its logger from the class itself)."""
    return type("WalkinJsonLogger", (JsonAccessLogger,), {"formatter": formatter})


class ScimErrors(Worker):
    """For a gunicorn worker: the requests gunicorn rejects before the app sees them
    (a request line or headers over the limits, bytes that are not HTTP/1.1) are
    answered with an RFC 7644 §3.12 error instead of gunicorn's HTML page."""

    def handle_error(self, req, client, addr, exc) -> None:
        # gunicorn chooses the status and logs the error and the access line;
        # it does all that here, writing its page to a stand-in socket, and the
        # client gets the same status with a SCIM body.
        page = _WrittenPage()
        super().handle_error(req, page, addr, exc)
        status, reason = page.status_line()
        try:
            write_nonblock(client, error_response(status, reason, self._detail(status, reason)))
        except OSError:
            self.log.debug("Failed to send error message.")  # as gunicorn: the client has gone

    def _detail(self, status: int, reason: str) -> str:
        # Our own words, never gunicorn's message: it quotes the request and, on a
        # 500, the internal error.
        if status == 414:
            return (
                f"the request line is longer than {self.cfg.limit_request_line} bytes; "
                "send a long filter with POST /.search (RFC 7644 §3.4.3)"
            )
        if status == 431:
            return "the request headers are too large or too many"
        if status == 400:
            return "the request is not valid HTTP/1.1 (RFC 9112)"
        return "internal error" if status == 500 else reason


class ScimThreadWorker(ScimErrors, ThreadWorker):
    """gunicorn's gthread worker with SCIM error bodies (:class:`ScimErrors`)."""


class _WrittenPage:
    """Stands in for the client socket in gunicorn's ``handle_error``, keeping the
    response it writes."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # non-blocking already: gunicorn's write_nonblock just writes

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status_line(self) -> tuple[int, str]:
        """Status and reason gunicorn chose (500 if it wrote nothing readable)."""
        line = self.data.split(b"\r\n", 1)[0].decode("latin-1")
        try:
            _version, status, reason = line.split(" ", 2)
            return int(status), reason
        except ValueError:
            return 500, HTTPStatus.INTERNAL_SERVER_ERROR.phrase


def error_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying a SCIM error; the connection closes after it."""
    body = dumps_utf8(error_body(status, detail))
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {SCIM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class _Server(BaseApplication):
    def __init__(self, settings: Settings, options: dict, metrics_dir: Path | None) -> None:
        self.settings = settings
        self.options = options
        self.metrics_dir = metrics_dir
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from connector import create_app

        app = create_app(self.settings)
        app.extensions["walkin.metrics_dir"] = self.metrics_dir  # /metrics sums every worker's files
        return app


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    kind: WorkerKind = WorkerKind.GEVENT,
    body_seconds: float | None = None,
    metrics_dir: Path | None = None,
) -> None:
    """:param metrics_dir: where the workers keep their metrics (connector/metrics_dir.py)."""
    from connector import logs
    from connector.store.database import Store
    from mappings.model import DEFAULT_MAPPING_PATH, load_mapping

    # The admin API decides with the mapping: a bad one stops start-up here, in one
    # line (connector/cli.py), not in every worker as it boots.
    load_mapping(settings.mapping_path or DEFAULT_MAPPING_PATH)
    formatter = logs.configure(settings)  # the app's records, in every worker (forked after this)
    if metrics_dir is not None:
        logging.getLogger("walkin.server").info("the workers' metrics are kept in %s", metrics_dir)
    # Migrate once (and fold the person keys again if sync.person_key changed), before
    # the workers start.
    Store(settings.database_url, person_key=settings.sync.person_key).dispose()
    json_logs = formatter if settings.log_format is LogFormat.JSON else None
    options = gunicorn_options(host, port, workers, threads, settings.scim, kind, body_seconds, metrics_dir, json_logs)
    _Server(settings, options, metrics_dir).run()
