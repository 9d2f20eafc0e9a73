"""The cost of a /metrics scrape's store figures (sync/gauges.py) over a district of
``--people`` (default 100,000), beside the reports whose people they count.

The store is bench_reports' district (bench/reconcile_data.py via bench_reports.vary:
every 50th person without a directory entry — pending —, every 97th without a job
code, every 31st expired; one cold reconcile on the memory target). Then the
collector's queries (``StoreGauges.collect``) are timed ``--repeat`` times, and the
``pending``, ``waiting``, ``expiring`` and ``held`` reports once each for comparison.

Goal: a scrape's store figures well under the 1 s a report may take — a scraper asks
every 15–60 s.

    .venv/bin/python bench/bench_scrape.py [--people N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from bench_reports import GROUP, NOW, people_dn, vary
from reconcile_data import load_store, uid, user_ids

from connector.clock import FrozenClock
from connector.settings import Settings
from connector.store.database import Store
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping
from sync.gauges import StoreGauges
from sync.reconcile import SyncContext, reconcile
from sync.reports import REPORTS, Filters, Options, ReportContext
from sync.targets.memory import MemoryTarget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    n = args.people
    tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    url = f"sqlite:///{tmp / 'walkin.db'}"
    Store(url).dispose()
    ids = user_ids(n)
    print(f"loading {n:,} people into {url.split('://')[0]} …", flush=True)
    load_store(url, n, ids, log=lambda m: print(m, flush=True))
    store = Store(url)
    vary(store, n, ids)
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = GROUP
    mapping = parse_mapping(data)
    settings = Settings(database_url=url)
    settings.sync.target = "ldap"
    directory = {uid(i): people_dn(i) for i in range(n) if i % 50 != 7}
    clock = FrozenClock(NOW)
    ctx = SyncContext(store, settings, mapping, MemoryTarget(groups={GROUP: set()}, directory=directory), "ldap",
                      clock=clock)
    start = time.perf_counter()
    first = reconcile(ctx, "walkin")
    print(f"cold reconcile: {first.status.value} {first.counts} in {time.perf_counter() - start:.1f} s", flush=True)

    gauges = StoreGauges(store, mapping, "ldap", clock, 300)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        families = list(gauges.collect())
        times.append(time.perf_counter() - start)
    figures = {f.name: [(s.labels.get("actor") or s.labels.get("kind") or "", s.value) for s in f.samples
                        if s.labels.get("entitlement", "walkin") == "walkin"] for f in families}
    for name in ("walkin_grants_pending", "walkin_grants_overdue", "walkin_people_waiting",
                 "walkin_certifications_expiring", "walkin_group_members"):
        print(f"  {name:34} {figures.get(name)}")
    print(f"store figures of a scrape: best {min(times) * 1000:.1f} ms, median {statistics.median(times) * 1000:.1f} ms "
          f"(n={args.repeat}, {n:,} people)")
    rctx = ReportContext(mapping, "ldap", ctx.today())
    with store.session_read() as s:
        for name in ("pending", "waiting", "expiring", "held"):
            start = time.perf_counter()
            report = REPORTS[name](s, rctx, Filters(), Options())
            print(f"  report {name:9} {len(report.rows):>7,} rows in {(time.perf_counter() - start) * 1000:8.1f} ms")
    store.dispose()


if __name__ == "__main__":
    main()
