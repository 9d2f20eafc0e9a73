"""The gunicorn worker ``walkin serve`` runs: gevent, so that slow clients cannot
starve the service.

gunicorn's thread worker gives each connection a thread while it reads the request:
eight connections sending a byte a second made half of the health probes time out,
sixteen stopped the service. Here each connection is a greenlet, which costs
kilobytes, and every read has a deadline:

- the request line and headers must arrive within ``keepalive`` seconds (gunicorn's
  async workers read them under that timeout);
- the body is read whole, up to ``max_request_bytes`` (+1, to tell a larger one),
  within ``body_seconds`` (:data:`BODY_SECONDS` unless ``walkin serve --body-timeout``)
  before the app is called — as a buffering proxy would — so the app never waits on a
  client; a client that does not send it in time gets 408 with a SCIM error body and the connection is closed;
- ``worker_connections`` (gunicorn's setting) caps the connections a worker holds.

Errors gunicorn answers itself (a request line or headers over the limits) get RFC
7644 §3.12 bodies as in :class:`connector.server.ScimThreadWorker`. psycopg 3
cooperates with gevent by itself (3.1.14 and newer); SQLite calls are short and run
on the worker's one OS thread.
"""

from __future__ import annotations

import io

import gevent
from gunicorn.workers.ggevent import GeventWorker

from connector.server import ScimErrors, error_response

#: Seconds a client has to send a request's body once its headers are in (``walkin
#: serve --body-timeout``).
BODY_SECONDS = 30.0


class ScimGeventWorker(ScimErrors, GeventWorker):
    body_seconds = BODY_SECONDS  # set per worker by gunicorn_options' post_fork hook

    def handle_request(self, listener_name, req, sock, addr):
        limit, seconds = self.body_limit, self.body_seconds
        if getattr(req, "_expected_100_continue", False):
            sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before the body
            req._expected_100_continue = False
        try:
            with gevent.Timeout(seconds):
                body = req.body.read(limit + 1)
        except gevent.Timeout:
            self.log.info("%s: request body not sent within %g s; closing", addr[0] if addr else "-", seconds)
            sock.sendall(
                error_response(408, "Request Timeout", f"the request body did not arrive within {seconds:g} seconds")
            )
            raise StopIteration() from None
        if len(body) > limit:
            req.must_close = True  # the rest is unread: this connection ends after the app's 413
        req.body = io.BytesIO(body)
        return super().handle_request(listener_name, req, sock, addr)

    @property
    def body_limit(self) -> int:
        """The app's body limit (``max_request_bytes``), read from its config once."""
        limit = getattr(self, "_body_limit", None)
        if limit is None:
            config = getattr(self.wsgi, "config", {})  # the Flask app's (create_app sets it from max_request_bytes)
            limit = self._body_limit = int(config.get("MAX_CONTENT_LENGTH") or 1_048_576)
        return limit
