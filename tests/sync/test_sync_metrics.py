"""The worker's own metrics, scraped from its metrics server (sync/metrics.py) as
Prometheus would: directory writes by result and errors by kind as the writer meets
them, Graph's 429s and the seconds waited on Graph (Retry-After, the write budget)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from pydantic import SecretStr

from sync import metrics
from sync.planner import Action
from tests.conftest import METRICS_TOKEN
from tests.scrape import Samples, scrape_url
from tests.sync.graph_fake import serve_graph, throttled
from tests.sync.test_writer import GROUP, RecordingTarget, change, grants, writer_for


@pytest.fixture(scope="module")
def worker_metrics():
    """The worker's metrics server on a free loopback port; yields its URL."""
    server = metrics.serve("127.0.0.1", 0, [SecretStr(METRICS_TOKEN)])
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (after.value(name, **labels) or 0) - (before.value(name, **labels) or 0)


def test_the_worker_metrics_need_the_token(worker_metrics):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(worker_metrics, headers=headers), timeout=10)
        assert refused.value.code == 401
        refused.value.close()


def test_writes_are_counted_by_result_and_errors_by_kind(worker_metrics):
    """The directory goes away on the first call: its four adds are unconfirmed, the
    rest not attempted, one 'unavailable' error; a healthy write counts as done."""
    before = scrape_url(worker_metrics)
    target = RecordingTarget(groups={GROUP: {"x"}}, write_batch=2, fail_call=1)
    writer = writer_for(target, {"x"})
    writer.add(grants("a", "b", "c", "d", "e"))
    writer.remove([change(Action.REVOKE, "x")])
    writer.finish()
    healthy = RecordingTarget(groups={GROUP: {"x"}})
    writer = writer_for(healthy, {"x"})
    writer.add(grants("f"))
    writer.remove([change(Action.REVOKE, "x")])
    writer.finish()
    after = scrape_url(worker_metrics)

    def writes(operation: str, result: str) -> float:
        return _moved(before, after, "walkin_target_writes_total", target="memory", operation=operation, result=result)

    assert (writes("add", "unconfirmed"), writes("add", "not_attempted"), writes("remove", "not_attempted")) == (4, 1, 1)
    assert (writes("add", "done"), writes("remove", "done")) == (1, 1)
    assert _moved(before, after, "walkin_target_errors_total", target="memory", kind="unavailable") == 1


def test_graph_throttling_and_waits_are_counted(worker_metrics):
    """Four 429s with Retry-After 3 on a PATCH; a write budget spent; 429s inside a $batch."""
    before = scrape_url(worker_metrics)
    with serve_graph() as env:
        members = [env.fake.add_user(f"user{i:05d}@district.org") for i in range(20)]
        gid = env.fake.add_group()
        env.fake.fail("PATCH", "/groups/", throttled(3), times=4)
        env.target().add_members(gid, members)
    storm = scrape_url(worker_metrics)
    assert _moved(before, storm, "walkin_graph_throttled_total", target="entra") == 4
    assert _moved(before, storm, "walkin_graph_wait_seconds_total", target="entra", reason="throttled") == 12.0

    with serve_graph() as env:
        env.fake.write_limit = 70
        members = [env.fake.add_user(f"user{i:05d}@district.org") for i in range(100)]
        gid = env.fake.add_group(set(members))
        env.target(write_budget=60).remove_members(gid, members)
    budget = scrape_url(worker_metrics)
    assert _moved(storm, budget, "walkin_graph_wait_seconds_total", target="entra", reason="budget") == 150.0
    assert _moved(storm, budget, "walkin_graph_throttled_total", target="entra") == 0

    with serve_graph() as env:
        env.fake.write_limit = 30
        members = [env.fake.add_user(f"user{i:05d}@district.org") for i in range(40)]
        gid = env.fake.add_group(set(members))
        env.target(write_budget=1000).remove_members(gid, members)
    batch = scrape_url(worker_metrics)
    assert _moved(budget, batch, "walkin_graph_throttled_total", target="entra") == 10
    assert _moved(budget, batch, "walkin_graph_wait_seconds_total", target="entra", reason="throttled") == 151.0
