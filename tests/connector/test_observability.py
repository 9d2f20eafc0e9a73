"""The service's request ids, /metrics (its token, the request and authentication
metrics), /readyz (schema, worker heartbeat) and its JSON log lines, in process."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import text

from connector import create_app
from connector.logs import JsonFormatter, Redactor, TextFormatter, secrets_of
from connector.settings import LogFormat, Settings
from sync import heartbeat
from tests.conftest import AUTH, METRICS_AUTH, METRICS_TOKEN, TOKEN
from tests.scrape import parse, scrape_client

USER = {"userName": "obs@district.org"}


# ------------------------------------------------------------------ request ids


@pytest.mark.parametrize(("sent", "kept"), [
    ("req-42", True),
    ("6f1c2b9e-0d3a-4c55-9a7e-2b8f01d4c3aa", True),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
    ("two words", False),
    ("quote\"d", False),
    ("x" * 129, False),
    (None, False),
], ids=["short", "uuid", "traceparent", "space", "quote", "too-long", "none"])
def test_a_request_id_is_taken_or_made(client, sent, kept):
    """A plausible X-Request-ID comes back as sent; anything else is replaced by a new id."""
    headers = {**AUTH, **({"X-Request-ID": sent} if sent is not None else {})}
    answered = client.get("/scim/v2/Users", headers=headers).headers["X-Request-ID"]
    if kept:
        assert answered == sent
    else:
        assert answered != sent and len(answered) == 32 and int(answered, 16) >= 0


def test_a_500_names_the_request_id_it_answered_with(app, client, monkeypatch):
    """Without an X-Request-ID the id made for the request is in the header and the body."""

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.extensions["walkin.provisioning"], "search", boom)
    r = client.get("/scim/v2/Users", headers=AUTH)
    assert r.status_code == 500
    assert r.headers["X-Request-ID"] in r.get_json()["detail"]


# ------------------------------------------------------------------ /metrics


def test_metrics_are_refused_without_a_configured_token(settings, store, clock):
    """With no metrics token configured no scrape is let in — not even with a SCIM token."""
    settings.metrics.token = []
    client = create_app(settings, store=store, clock=clock).test_client()
    for headers in ({}, AUTH, METRICS_AUTH):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401 and "no WALKIN_METRICS__TOKEN" in r.get_data(as_text=True)


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing"),
    (AUTH, "invalid"),  # a SCIM token is not a metrics token
    ({"Authorization": "Bearer nope"}, "invalid"),
], ids=["none", "scim-token", "wrong"])
def test_metrics_need_the_metrics_token(client, headers, reason):
    """Anything but the metrics token is 401, and counted as an authentication failure."""
    before = scrape_client(client).value("walkin_auth_failures_total", api="metrics", reason=reason) or 0
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert scrape_client(client).value("walkin_auth_failures_total", api="metrics", reason=reason) == before + 1


def test_requests_are_counted_by_route_template_not_path(client):
    """A request to /Users/<id> is counted under the route's template: the id (and
    so who was asked about) never becomes a label."""
    user_id = client.post("/scim/v2/Users", json=USER, headers=AUTH).get_json()["id"]
    route = "/scim/v2/Users/<user_id>"
    before = scrape_client(client)
    for _ in range(3):
        assert client.get(f"/scim/v2/Users/{user_id}", headers=AUTH).status_code == 200
    assert client.get("/scim/v2/Users/no-such-user", headers=AUTH).status_code == 404
    assert client.get("/nowhere/at/all").status_code == 404
    body = client.get("/metrics", headers=METRICS_AUTH).get_data(as_text=True)
    after = parse(body)

    def moved(name, **labels):
        return after.value(name, **labels) - (before.value(name, **labels) or 0)

    assert moved("walkin_http_requests_total", route=route, method="GET", status="200") == 3
    assert moved("walkin_http_requests_total", route=route, method="GET", status="404") == 1
    assert moved("walkin_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert moved("walkin_http_request_duration_seconds_count", route=route, method="GET") == 4
    assert after.value("walkin_http_request_duration_seconds_bucket", route=route, method="GET", le="+Inf") == (
        after.value("walkin_http_request_duration_seconds_count", route=route, method="GET")
    )
    assert user_id not in body and "no-such-user" not in body and "obs@district.org" not in body


def test_authentication_failures_are_counted(client):
    """SCIM and admin API requests without a valid token are counted, by API and why."""
    before = scrape_client(client)
    client.get("/scim/v2/Users")
    client.get("/scim/v2/Users", headers={"Authorization": "Bearer wrong"})
    client.get("/scim/v2/Users", headers={"Authorization": "Bearer wrong"})
    client.get("/admin/api/v1/me", headers={"Authorization": "Bearer wka_notatoken"})
    after = scrape_client(client)

    def moved(api, reason):
        labels = {"api": api, "reason": reason}
        return after.value("walkin_auth_failures_total", **labels) - (before.value("walkin_auth_failures_total",
                                                                                    **labels) or 0)

    assert (moved("scim", "missing"), moved("scim", "invalid"), moved("admin", "invalid")) == (1, 2, 1)


# ------------------------------------------------------------------ /readyz


def test_readiness_follows_the_worker_heartbeat(client, store, clock, settings):
    """No heartbeat yet: ready. A fresh one: ready. Older than the limit: 503, saying why."""
    assert client.get("/readyz").get_json()["checks"]["worker"] == "no heartbeat recorded yet"
    heartbeat.beat(store, "host:1:1", clock.now(), clock.now())
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["checks"]["worker"].startswith("ok")
    clock.advance(timedelta(seconds=settings.health.worker_stale_seconds + 1))
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["checks"]["worker"].startswith("stale")
    heartbeat.beat(store, "host:2:1", clock.now(), clock.now())  # another worker took over
    assert client.get("/readyz").status_code == 200


def test_readiness_can_leave_the_worker_out(settings, store, clock):
    """worker_stale_seconds = 0: a deployment without a worker is not held to one."""
    settings.health.worker_stale_seconds = 0
    client = create_app(settings, store=store, clock=clock).test_client()
    heartbeat.beat(store, "host:1:1", clock.now(), clock.now())
    clock.advance(timedelta(days=30))
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["checks"]["worker"] == "not checked"


def test_readiness_needs_the_schema_at_head(client, store):
    """A store at another schema revision is not ready: `walkin migrate` is named."""
    with store.engine.begin() as conn:
        head = conn.scalar(text("SELECT version_num FROM alembic_version"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and "walkin migrate" in r.get_json()["checks"]["schema"]
    finally:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert client.get("/readyz").status_code == 200


# ------------------------------------------------------------------ log lines


def _logged(formatter: logging.Formatter, app, headers: dict) -> list[str]:
    """The lines logger walkin.api writes, with ``formatter``, while a request is answered."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log = logging.getLogger("walkin.api")
    log.addHandler(handler)
    log.propagate = False  # the line holds a secret on purpose: only this formatter may see it

    @app.get("/_log_test")
    def _log_test():
        log.warning("handling with %s", "a secret: " + TOKEN, extra={"duration_seconds": 0.25})
        return "ok"

    try:
        assert app.test_client().get("/_log_test", headers=headers).status_code == 200
    finally:
        log.removeHandler(handler)
        log.propagate = True
    return out.getvalue().splitlines()


def test_json_lines_carry_the_request_id_and_hide_secrets(app):
    """One JSON object per line: the request's id, the extra fields, and no secret."""
    (line,) = _logged(JsonFormatter(Redactor([TOKEN])), app, {"X-Request-ID": "trace-1"})
    record = json.loads(line)
    assert record["request_id"] == "trace-1" and record["level"] == "WARNING" and record["logger"] == "walkin.api"
    assert record["duration_seconds"] == 0.25 and record["message"] == "handling with a secret: ***"
    assert TOKEN not in line


def test_text_lines_carry_the_request_id(app):
    (line,) = _logged(TextFormatter(Redactor([TOKEN])), app, {"X-Request-ID": "trace-2"})
    assert "[trace-2]" in line and TOKEN not in line and line.endswith("handling with a secret: ***")


def test_every_configured_secret_is_redacted():
    """The SCIM and metrics tokens, directory passwords and the database password."""
    settings = Settings(
        database_url="postgresql+psycopg://walkin:db-pass-1234@127.0.0.1/walkin",
        scim_token=[TOKEN, "second-token"],
        metrics={"token": [METRICS_TOKEN]},
        ldap={"urls": ["ldaps://dc1"], "bind_dn": "cn=x", "bind_password": "ldap-pass-99", "people_base": "ou=p"},
        log_format=LogFormat.JSON,
    )
    assert set(secrets_of(settings)) >= {TOKEN, "second-token", METRICS_TOKEN, "db-pass-1234", "ldap-pass-99"}
