"""The audit chain's cost per entry: a run's audit entries written through the chain
(connector/store/chain.py ``append``: canonical JSON + SHA-256 per entry, three more
columns, the chain head locked and moved) against the same rows inserted as before
the chain (one executemany into a table without the chain columns), and the cost of
``walkin audit verify`` reading and recomputing them.

    python bench/bench_audit_chain.py                     # 100,000 entries (a cold run's), SQLite
    python bench/bench_audit_chain.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/bench_audit_chain.py --entries 20000 --repeat 5

Each measurement is one transaction of ``--entries`` grant entries shaped like a
run's (sync/ledger.py ``write_audit``'s dicts), into a fresh store (an SQLite file in
a temporary folder, or a PostgreSQL database created for the run and dropped
after); medians of ``--repeat``, plain insert and chained append alternating.
The reconcile benchmark with the chain against the floor is bench_reconcile.py
(its ratio is the goal: ≤ 1.3×).

Results: a table on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import atexit
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import pg_scratch  # noqa: E402
from sqlalchemy import MetaData, Table, insert  # noqa: E402

from connector.store import chain  # noqa: E402
from connector.store.database import Store  # noqa: E402
from connector.store.models import AuditRow, table_of  # noqa: E402
from sync.audit_export import from_store  # noqa: E402
from sync.verification import walk  # noqa: E402

RESULTS = HERE / "results"
AT = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def rows(n: int, start: int = 0) -> list[dict]:
    """Grant entries as a run writes them (one instant, evidence digests, a member DN)."""
    return [
        {"at": AT, "run_id": 7, "journal_seq": None, "person_id": f"{i:08x}-0000-4000-8000-{i:012x}",
         "user_name": f"user{i:06d}@district.example.org", "entitlement": "walkin", "target": "ldap",
         "member": f"uid=user{i:06d},ou=people,dc=district,dc=example,dc=org", "action": "grant",
         "reasons": ["ENTITLED"], "evidence": f"{i:032x}", "result": "ok", "detail": None, "actor": None}
        for i in range(start, start + n)
    ]


def plain_table(store: Store) -> Table:
    """audit_log as it was before the chain (same columns and indexes, no seq/prev_hash/hash)."""
    metadata = MetaData()
    audit = table_of(AuditRow)
    columns = [c._copy() for c in audit.columns if c.name not in ("seq", "prev_hash", "hash")]
    table = Table("audit_plain", metadata, *columns)  # the copied columns bring their indexes (at, run_id, person_id)
    metadata.create_all(store.engine)
    return table


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(url: str, n: int, repeat: int) -> dict:
    store = Store(url)
    plain = plain_table(store)
    hash_s, plain_s, chained_s, verify_s = [], [], [], []
    written = 0
    try:
        for r in range(repeat):
            batch = rows(n, written)
            hash_s.append(timed(lambda b=batch: [chain.entry_hash({**e, "seq": 1, "prev_hash": chain.GENESIS})
                                                 for e in b]))
            plain_rows, chained_rows = rows(n, written), rows(n, written)

            def insert_plain(b=plain_rows):
                with store.connection_write() as conn:
                    conn.execute(insert(plain), b)

            def append_chained(b=chained_rows):
                with store.connection_write() as conn:
                    chain.append(conn, b)

            first, second = (insert_plain, append_chained) if r % 2 == 0 else (append_chained, insert_plain)
            t1, t2 = timed(first), timed(second)
            plain_s.append(t1 if first is insert_plain else t2)
            chained_s.append(t2 if first is insert_plain else t1)
            written += n

            def verify(total=written):
                with store.connection_read() as conn:
                    seen, finding = walk(from_store(conn), from_genesis=True)
                assert finding is None and seen.count == total, finding

            verify_s.append(timed(verify) * n / written)  # per-entry cost over a chain of `written`
    finally:
        store.dispose()
    med = {k: statistics.median(v) for k, v in
           (("hash", hash_s), ("plain", plain_s), ("chained", chained_s), ("verify", verify_s))}
    return {
        "entries": n, "repeat": repeat,
        "hash_s": med["hash"], "plain_insert_s": med["plain"], "chained_append_s": med["chained"],
        "verify_s": med["verify"],
        "hash_us_per_entry": med["hash"] / n * 1e6,
        "plain_us_per_entry": med["plain"] / n * 1e6,
        "chained_us_per_entry": med["chained"] / n * 1e6,
        "chain_cost_us_per_entry": (med["chained"] - med["plain"]) / n * 1e6,
        "verify_us_per_entry": med["verify"] / n * 1e6,
        "append_ratio": med["chained"] / med["plain"],
        "raw": {"hash": hash_s, "plain": plain_s, "chained": chained_s, "verify": verify_s},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="admin URL of a loopback PostgreSQL server")
    args = parser.parse_args()
    atexit.register(pg_scratch.drop_all)
    report: dict = {"command": " ".join(["python", *sys.argv]), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="walkin-chain-") as folder:
        report["sqlite"] = measure(f"sqlite:///{folder}/walkin.db", args.entries, args.repeat)
    if args.postgres:
        url = pg_scratch.create(args.postgres, "walkin_bench_chain")
        report["postgresql"] = measure(url, args.entries, args.repeat)
    print(f"{args.entries:,} entries per transaction, medians of {args.repeat}")
    print(f"{'store':<11} {'hash only':>10} {'insert before':>14} {'append with chain':>18} {'chain cost':>11} "
          f"{'ratio':>6} {'verify':>8}   (µs per entry)")
    for name in ("sqlite", "postgresql"):
        if name in report:
            m = report[name]
            print(f"{name:<11} {m['hash_us_per_entry']:>10.2f} {m['plain_us_per_entry']:>14.2f} "
                  f"{m['chained_us_per_entry']:>18.2f} {m['chain_cost_us_per_entry']:>11.2f} "
                  f"{m['append_ratio']:>5.2f}x {m['verify_us_per_entry']:>8.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"audit_chain-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
