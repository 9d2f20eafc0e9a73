"""A real ``walkin worker``: its /metrics (runs, directory writes) move as it works,
behind the metrics token; it logs one JSON summary line per run; its heartbeat keeps
the service ready, and the service is not ready once the heartbeat is stale."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from sync.targets.ldap_filters import normalise_dn
from tests.conftest import METRICS_TOKEN, POSTGRES_URL
from tests.integration.test_workers import _env, _no_full_run_due, _stop
from tests.scrape import scrape_url
from tests.sync import people as P
from tests.sync.slapd import free_port

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs WALKIN_TEST_POSTGRES_URL (CI sets it)")

RUN = {"entitlement": "walkin", "target": "ldap", "kind": "event", "status": "ok"}
ADD = {"target": "ldap", "operation": "add", "result": "done"}


@pytest.fixture
def database_url(request):
    """A worker in a process of its own shares the store with the test: PostgreSQL."""
    store = request.getfixturevalue("_postgres_store")
    from tests.conftest import _truncate

    _truncate(store)
    return store.engine.url.render_as_string(hide_password=False)


def _wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _scrapes(url: str) -> bool:
    try:
        scrape_url(url)
    except OSError:
        return False
    return True


def test_worker_metrics_summary_lines_and_heartbeat(client, store, slapd, sync_settings, clock, faketime_preload,
                                                     tmp_path):
    """A person made entitled over SCIM: the worker's run and its add show on its
    /metrics; its log has the run's JSON summary line; /readyz follows its heartbeat."""
    slapd.add_people(["kim"])
    _no_full_run_due(store, clock)
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    env = _env(sync_settings, clock, faketime_preload, WALKIN_METRICS__WORKER_PORT=str(port),
               WALKIN_METRICS__TOKEN=METRICS_TOKEN, WALKIN_LOG_FORMAT="json", WALKIN_HEALTH__HEARTBEAT_SECONDS="1")
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "connector.cli", "worker"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _scrapes(metrics), "the worker's /metrics")
        before = scrape_url(metrics)
        assert before.value("walkin_sync_runs_total", **RUN) is None
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(metrics, timeout=10)
        assert refused.value.code == 401
        refused.value.close()

        kim = P.create(client, P.person("kim"))
        P.approvers(client, "0123", [kim])
        member = normalise_dn(f"uid=kim,{slapd.people_dn}")
        _wait(lambda: member in {normalise_dn(v) for v in slapd.member_values()}, "kim in the group")
        _wait(lambda: scrape_url(metrics).value("walkin_sync_runs_total", **RUN), "the run counted")
        after = scrape_url(metrics)
        assert after.value("walkin_target_writes_total", **ADD) == 1
        assert after.total("walkin_sync_runs_total", status="failed") == 0
        assert after.value("walkin_sync_run_duration_seconds_count", entitlement="walkin", target="ldap",
                           kind="event") >= 1
        assert after.total("walkin_target_errors_total") == 0
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["checks"]["worker"].startswith("ok")
    finally:
        _stop(worker)

    clock.advance(timedelta(seconds=sync_settings.health.worker_stale_seconds + 120))
    stale = client.get("/readyz")
    assert stale.status_code == 503 and stale.get_json()["checks"]["worker"].startswith("stale")

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    runs = [r for r in lines if r.get("run_id") is not None and r.get("kind") == "event"]
    assert runs, "no run summary line"
    summary = runs[0]
    assert summary["status"] == "ok" and summary["entitlement"] == "walkin" and summary["added"] == 1
    assert isinstance(summary["duration_seconds"], float) and summary["logger"] == "walkin.worker"
    assert any("worker metrics on" in r["message"] for r in lines)
