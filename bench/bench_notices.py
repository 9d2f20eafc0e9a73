"""The notification pass over a district of ``--people`` (default 100,000): what it
costs on a quiet day and on a reminder day, to show it is proportional to the
notices, not to the district.

The store is bench_reconcile's dataset (bench/reconcile_data.py: 90 % entitled, all
certified on 2025-09-15, so valid through 2027-06-30; the rest waiting for their
approver at 0123). One cold reconcile on the memory target stores everyone's
decision. Then ``plan_today`` (sync/notices/delivery.py: the day's reminders and
digests from the reports, inserted into the outbox once each) is timed on
2026-12-15 (a quiet day: only the approvers' digest) and on 2027-05-01 (60 days
before 2027-06-30: everyone entitled is reminded), each in a fresh copy of the
store, and a second pass the same day (nothing new: the outbox's uniqueness).

    .venv/bin/python bench/bench_notices.py [--people N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from reconcile_data import load_store, uid, user_ids

from connector.clock import FrozenClock
from connector.settings import Settings
from connector.store.database import Store
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping
from sync.notices.delivery import plan_today
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget

GROUP = "cn=walkin,ou=groups,dc=example,dc=org"
NOW = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)
DAYS = {"quiet day 2026-12-15": datetime(2026, 12, 15, 16, tzinfo=UTC),
        "reminder day 2027-05-01": datetime(2027, 5, 1, 15, tzinfo=UTC)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    args = parser.parse_args()
    n = args.people
    tmp = Path(tempfile.mkdtemp(prefix="bench-notices-"))
    url = f"sqlite:///{tmp / 'walkin.db'}"
    Store(url).dispose()
    ids = user_ids(n)
    print(f"loading {n:,} people …", flush=True)
    load_store(url, n, ids, log=lambda m: print(m, flush=True))
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = GROUP
    mapping = parse_mapping(data)
    settings = Settings(database_url=url)
    settings.sync.target = "ldap"
    settings.notify.enabled = True
    directory = {uid(i): f"uid={uid(i)},ou=people,dc=example,dc=org" for i in range(n)}
    store = Store(url)
    ctx = SyncContext(store, settings, mapping, MemoryTarget({GROUP: set()}, directory), "ldap", clock=FrozenClock(NOW))
    start = time.perf_counter()
    print(f"cold reconcile {reconcile(ctx, 'walkin').counts} in {time.perf_counter() - start:.1f} s", flush=True)
    store.dispose()
    results = {}
    for label, at in DAYS.items():
        copy = tmp / f"{label.split()[0]}.db"
        shutil.copy(tmp / "walkin.db", copy)
        day_store = Store(f"sqlite:///{copy}")
        day = SyncContext(day_store, settings, mapping, ctx.target, "ldap", clock=FrozenClock(at))
        start = time.perf_counter()
        new = plan_today(day, ["walkin"])
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = plan_today(day, ["walkin"])
        second = time.perf_counter() - start
        day_store.dispose()
        per = first / new * 1e6 if new else None
        results[label] = {"notices": new, "seconds": round(first, 3), "again_notices": again,
                          "again_seconds": round(second, 3), "us_per_notice": None if per is None else round(per, 1)}
        print(f"{label:24} {new:>7,} notices in {first:6.3f} s" + (f" ({per:.1f} µs each)" if per else "")
              + f"; again the same day: {again} new in {second:.3f} s", flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"notices-{n}.json").write_text(json.dumps(results, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
