"""The worst PATCH a client can send within the limits, and what another client sees meanwhile.

Starts ``walkin serve`` (the shipped 2 gevent workers) on loopback over a
scratch SQLite store, then for each hostile PATCH below — and for the worst search
the filter limits allow (100 substring comparisons over 8,000 users' emails, stopped
by ``scim.read_budget_seconds``):

1. creates a fresh victim user (one email, one certification) and a bystander;
2. starts a second client sending small requests in a loop to the bystander —
   alternately ``GET /Users/{id}`` and a one-operation PATCH of its ``title``
   (a write: it waits for the write lock the hostile PATCH holds);
3. sends the hostile PATCH from a first client and times it;
4. reports the hostile PATCH's time and status, and the bystander's latency
   (p50/p99/max, split into reads and writes) while it ran.

The PATCHes all fit the shipped limits (``max_request_bytes`` 1 MiB,
``scim.max_operations`` 1000); the same bodies are sent before and after the
value limits (``scim.max_values_per_attribute``), so "before" shows what each
one cost when it was accepted and "after" what it costs now (accepted within
the limits, or refused with 400 tooMany).

The server is the ``walkin`` of the interpreter's environment, so another
checkout's code is measured with its own virtualenv:
``/path/to/checkout/.venv/bin/python bench/bench_hostile.py --label before``.

Results: a table on stdout and JSON in bench/results/ (git-ignored). The server
runs on 127.0.0.1 and is stopped, and its files removed, on exit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scim import HOST, Server, start_walkin  # noqa: E402
from scim_client import Conn, patch, pct  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
MAX_BODY = 1_048_576  # the shipped max_request_bytes
MAX_OPERATIONS = 1000  # the shipped scim.max_operations
MAX_VALUES = 500  # the shipped scim.max_values_per_attribute
MARGIN = 4096  # bytes left under MAX_BODY for the envelope


# ------------------------------------------------------------------ bodies


def near_duplicate(i: int, variant: int) -> dict:
    value = f"m{i:05d}@example.org"
    return [{"value": value, "type": "work"}, {"type": "work", "value": value.upper()},
            {"type": "Work", "value": value.title()}, {"type": "WORK", "value": value.swapcase()}][variant % 4]


def fill(make) -> list:
    """``make(i)`` for i = 0, 1, … while the values fit in MAX_BODY."""
    values, size = [], 0
    while True:
        item = make(len(values))
        size += len(json.dumps(item)) + 2
        if size > MAX_BODY - MARGIN:
            return values
        values.append(item)


def distinct_emails() -> dict:
    """Issue 12's PATCH: one add of ~44,000 distinct short emails (57 s when quadratic)."""
    return patch({"op": "add", "path": "emails", "value": fill(lambda i: {"value": f"{i}@d.io"})})


def near_duplicates() -> dict:
    """One add of ~21,000 values, near-duplicates (case, key order) of 499 emails:
    the largest add the value limit accepts."""
    return patch({"op": "add", "path": "emails", "value": fill(lambda i: near_duplicate(i % 499, i // 499))})


def thousand_operations() -> dict:
    """1,000 operations: one add to 500 emails, then near-duplicate adds, then 399
    case-insensitive filtered updates (the most the filter budget allows)."""
    ops = [{"op": "add", "path": "emails", "value": [near_duplicate(i, 0) for i in range(499)]}]
    ops += [{"op": "add", "path": "emails", "value": [near_duplicate(i % 499, 1 + i)]} for i in range(600)]
    ops += [{"op": "replace", "path": f'emails[value eq "M{i:05d}@EXAMPLE.ORG"].display', "value": f"D{i}"}
            for i in range(399)]
    return patch(*ops)


def filter_operations() -> dict:
    """As many operations with 100-comparison value filters as fit, after an add to
    500 emails (36 s before the filter budget)."""
    terms = " or ".join(f'value eq "z{j:03d}@x.org"' for j in range(99)) + ' or value eq "m00001@example.org"'
    one = {"op": "replace", "path": f"emails[{terms}].display", "value": "D"}
    first = {"op": "add", "path": "emails", "value": [near_duplicate(i, 0) for i in range(499)]}
    count = min(MAX_OPERATIONS - 1, (MAX_BODY - MARGIN - len(json.dumps(first))) // (len(json.dumps(one)) + 2))
    return patch(first, *[one] * count)


def unknown_members() -> dict:
    """A Group PATCH adding ~110,000 members by unknown bare-string ids (all looked up)."""
    return patch({"op": "add", "path": "members", "value": fill(lambda i: f"{i:06d}")})


def worst_filter() -> dict:
    """The costliest search the filter limits allow: 100 substring comparisons (the
    most a filter may hold) over every user's emails, none matching."""
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 100,
            "filter": " or ".join(f'emails[value co "{i:02d}zz"]' for i in range(100))}


CASES = [
    ("worst-filter", "Search", worst_filter),
    ("distinct-emails", "User", distinct_emails),
    ("near-duplicates", "User", near_duplicates),
    ("1000-operations", "User", thousand_operations),
    ("filter-operations", "User", filter_operations),
    ("unknown-members", "Group", unknown_members),
]


# ------------------------------------------------------------------ clients


class Bystander(threading.Thread):
    """The other client: small requests to its own user, one after another."""

    def __init__(self, server: Server, user_id: str) -> None:
        super().__init__(daemon=True)
        self.conn = Conn(server.target, timeout=300)
        self.user_id = user_id
        self.stop = threading.Event()
        self.samples: list[tuple[float, str, int, float]] = []  # (started, kind, status, seconds)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            if n % 2:
                body = patch({"op": "replace", "path": "title", "value": f"T{n}"})
                status, _, took = self.conn.request("PATCH", f"/Users/{self.user_id}", body)
                self.samples.append((started, "write", status, took))
            else:
                status, _, took = self.conn.request("GET", f"/Users/{self.user_id}")
                self.samples.append((started, "read", status, took))
            n += 1
        self.conn.close()


def new_user(conn: Conn, name: str) -> str:
    status, payload, _ = conn.request("POST", "/Users", {
        "schemas": [USER, WALKIN], "userName": name, "active": True,
        "emails": [{"value": name, "type": "work", "primary": True}],
        WALKIN: {"certifications": [{"course": "Walk-In Scheduling Certification", "kind": "full",
                                     "completedOn": "2024-02-01"}]},
    })
    if status != 201:
        raise RuntimeError(f"POST /Users: {status} {payload[:300]!r}")
    return json.loads(payload)["id"]


def stats(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(samples), "p50_ms": round(pct(samples, 50) * 1000, 1),
            "p99_ms": round(pct(samples, 99) * 1000, 1), "max_ms": round(max(samples) * 1000, 1)}


def run_case(server: Server, name: str, kind: str, build, n: int, idle_s: float) -> dict:
    conn = Conn(server.target, timeout=600)
    victim = new_user(conn, f"victim{n}@example.org")
    bystander_id = new_user(conn, f"bystander{n}@example.org")
    if kind == "Group":
        status, payload, _ = conn.request("POST", "/Groups", {"displayName": f"Hostile {n}"})
        victim = json.loads(payload)["id"]
    method, path = ("POST", "/Users/.search") if kind == "Search" else ("PATCH", f"/{kind}s/{victim}")
    body = build()
    size = len(json.dumps(body).encode())
    other = Bystander(server, bystander_id)
    other.start()
    time.sleep(idle_s)  # the bystander's idle latency, before the PATCH
    started = time.perf_counter()
    status, payload, took = conn.request(method, path, body)
    ended = time.perf_counter()
    time.sleep(0.2)
    other.stop.set()
    other.join(timeout=600)
    conn.close()
    during = [s for s in other.samples if s[0] < ended and s[0] + s[3] > started]
    idle = [s[3] for s in other.samples if s[0] + s[3] < started]
    detail = ""
    if status >= 400:
        try:
            detail = json.loads(payload).get("detail", "")[:90]
        except ValueError:
            detail = payload[:90].decode(errors="replace")
    return {
        "case": name, "resource": kind, "body_bytes": size, "operations": len(body.get("Operations", [body])),
        "status": status, "detail": detail, "patch_s": round(took, 3),
        "other_idle": stats(idle),
        "other_during": stats([s[3] for s in during]),
        "other_during_reads": stats([s[3] for s in during if s[1] == "read"]),
        "other_during_writes": stats([s[3] for s in during if s[1] == "write"]),
        "other_errors": sum(1 for s in during if s[2] >= 500),
    }


def print_table(rows: list[dict]) -> None:
    head = (f"{'case':<18} {'bytes':>9} {'ops':>5} {'status':>6} {'PATCH s':>8} | other client during: "
            f"{'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} | reads max ms | writes max ms")
    print(head)
    print("-" * len(head))
    for r in rows:
        d, rd, w = r["other_during"], r["other_during_reads"], r["other_during_writes"]
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"{r['case']:<18} {r['body_bytes']:>9,} {r['operations']:>5} {r['status']:>6} {r['patch_s']:>8.3f} | "
              f"{'':>21}{d['n']:>4} {fmt(d['p50_ms']):>8} {fmt(d['p99_ms']):>8} {fmt(d['max_ms']):>8} | "
              f"{fmt(rd['max_ms']):>12} | {fmt(w['max_ms'])}")
        if r["detail"]:
            print(f"{'':<18} {r['detail']}")


def served_code() -> dict:
    """Which checkout the server imports: the one installed in this interpreter's
    environment (run another checkout's ``.venv/bin/python`` to measure it)."""
    # From "/", so the current directory is not what ``import connector`` finds.
    out = subprocess.run([sys.executable, "-c", "import connector, os; print(os.path.dirname(connector.__file__))"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    commit = subprocess.run(["git", "-C", out, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return {"path": str(Path(out).parent), "commit": commit.strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="run", help="a name for this run, in the results file name")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES), help="comma-separated case names")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of bystander traffic before each PATCH")
    parser.add_argument("--filter-users", type=int, default=8000, help="users the worst filter searches")
    args = parser.parse_args()
    wanted = set(args.cases.split(","))

    tmp = Path(tempfile.mkdtemp(prefix="walkin-bench-hostile-"))
    servers: list[Server] = []

    def cleanup() -> None:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda signum, _f: sys.exit(128 + signum))

    code = served_code()
    token = secrets.token_urlsafe(24)
    server = start_walkin("walkin-2x4", f"sqlite:///{tmp / 'walkin.db'}", 2, 4, token, tmp)
    servers.append(server)
    server.wait_ready(60)
    print(f"walkin serve (2 workers, gevent) on {HOST}:{server.target.port}, SQLite; code {code}", flush=True)
    if "worst-filter" in wanted:  # a district to search: users with three emails each
        conn = Conn(server.target, timeout=60)
        for i in range(args.filter_users):
            status, payload, _ = conn.request("POST", "/Users", {
                "schemas": [USER], "userName": f"p{i:05d}@d.org",
                "emails": [{"value": f"p{i:05d}.{k}@d.org", "type": "work"} for k in range(3)]})
            if status != 201:
                raise RuntimeError(f"POST /Users: {status} {payload[:200]!r}")
        conn.close()
        print(f"  {args.filter_users:,} users to search", flush=True)
    rows = []
    for n, (name, kind, build) in enumerate(CASES):
        if name in wanted:
            rows.append(run_case(server, name, kind, build, n, args.idle))
            print(f"  {name}: {rows[-1]['status']} in {rows[-1]['patch_s']} s", flush=True)
    print()
    print_table(rows)
    results = {
        "label": args.label, "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()},
        "server": "walkin serve --workers 2 (gevent), SQLite", "code": code, "cases": rows,
    }
    out = HERE / "results" / f"hostile-{args.label}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
