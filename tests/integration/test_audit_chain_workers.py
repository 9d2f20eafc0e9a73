"""Two processes appending to the audit chain at once on PostgreSQL keep one valid
chain: every entry once, in one order, each linked to the one before."""

from __future__ import annotations

import subprocess
import sys
import time
from itertools import groupby

import pytest

from sync.audit_export import from_store
from sync.verification import walk
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs WALKIN_TEST_POSTGRES_URL (CI sets it)")

ROUNDS = 300


@pytest.fixture
def database_url(request):
    """This test is about PostgreSQL: only its backend."""
    from tests.conftest import _truncate

    store = request.getfixturevalue("_postgres_store")
    _truncate(store)
    return store.engine.url.render_as_string(hide_password=False)


def test_two_processes_appending_at_once_keep_one_chain(store, database_url, tmp_path):
    """2 × 300 transactions of 3 entries, started together: 1,800 entries, seq 1–1800,
    the chain intact, the processes' transactions interleaved (they did run at once),
    each transaction's three entries side by side."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.integration.chain_appender", database_url, name,
                               str(ROUNDS), str(go)]) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"go.{n}").exists() for n in ("a", "b")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "an appender did not start"
            time.sleep(0.02)
        go.touch()
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with store.connection_read() as conn:
        entries = list(from_store(conn))
        seen, finding = walk(iter(entries), from_genesis=True)
    assert finding is None, str(finding)
    assert seen.count == 2 * ROUNDS * 3 and [e["seq"] for e in entries] == list(range(1, 2 * ROUNDS * 3 + 1))
    turns = [actor for actor, _ in groupby(e["actor"] for e in entries)]
    assert len(turns) > 2  # a, b, a…: both appended while the other did
    rounds = [e["person_id"] for e in entries]
    assert all(rounds[i] == rounds[i + 1] == rounds[i + 2] for i in range(0, len(rounds), 3))
