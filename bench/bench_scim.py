"""Benchmark walkin's SCIM service against scim2-server under the same WSGI server.

    python bench/bench_scim.py                      # 10,000 and 100,000 users
    python bench/bench_scim.py --users 10000 --users 100000 --duration 20 --rounds 3
    python bench/bench_scim.py --quick              # smoke run, about a minute
    python bench/bench_scim.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

For every dataset size it:

1. builds a deterministic dataset (scim_dataset.py): Entra-shaped users with the
   enterprise and walkin extensions, 200 approval groups "WalkIn-Approvers-0001"…
   and one "WalkIn-All-Staff" group of min(50,000, n/2) members;
2. loads it into walkin's store (scim_load.load_walkin: bulk INSERTs of rows
   computed by the project's own code, checked against the API path by
   scim_load.verify_walkin) and into scim2-server's InMemoryStorage (its Python API);
3. starts, on free loopback ports, side by side:
   - walkin-1x4:  ``walkin serve --workers 1 --threads 4`` (the head-to-head config),
   - walkin-2x4:  ``walkin serve`` with its shipped defaults (2 workers × 4 threads),
   - scim2-1x4:   scim2-server under gunicorn with walkin's own gunicorn options
                  (scim2_serve.py). Its storage is per-process memory, so it is only
                  correct with one worker: the head-to-head is therefore 1 worker ×
                  4 gthread threads for both;
   - with ``--postgres URL``: walkin-pg-1x4 and walkin-pg-2x4 on PostgreSQL (a
     database created per server from a template, dropped at the end);
4. measures: filter-by-userName latency on idle servers (sequential, one connection),
   interleaved in blocks with a server of the same kind holding ``--baseline-users``
   (1,000) users, so the 1k → n ratio is measured under the same machine noise; the
   Entra mix (50% filter, 10% POST, 20% PATCH replace, 10% PATCH active "False",
   10% group member add) from keep-alive connections, the servers taking turns for
   ``--rounds`` rounds; and, on the big group, the latency of adding one member.

Results: a table on stdout and JSON in bench/results/ (git-ignored). Every server
runs on 127.0.0.1; servers, temporary files and databases are removed on exit.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import pg_scratch  # noqa: E402
import scim_client  # noqa: E402
import scim_dataset  # noqa: E402
from scim_client import Target  # noqa: E402

VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------ processes

_servers: list[Server] = []
_tmpdirs: list[Path] = []


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, target: Target, ready_path: str, logfile: Path,
                 workers: int, threads: int, kind: str) -> None:
        self.name, self.target, self.ready_path = name, target, ready_path
        self.workers, self.threads, self.kind = workers, threads, kind
        self.logfile = logfile
        self._log = open(logfile, "wb")  # noqa: SIM115 - held for the server's lifetime, closed in stop()
        self.proc = subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _servers.append(self)

    def wait_ready(self, timeout: float) -> float:
        started = time.perf_counter()
        url = f"http://{HOST}:{self.target.port}{self.ready_path}"
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        return scim_client.pid_tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the process group of our own child
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()
        if self in _servers:
            _servers.remove(self)


def _cleanup() -> None:
    for server in list(_servers):
        try:
            server.stop()
        except Exception as exc:
            print(f"cleanup: {server.name}: {exc}", file=sys.stderr)
    pg_scratch.drop_all()
    for path in _tmpdirs:
        shutil.rmtree(path, ignore_errors=True)
    _tmpdirs.clear()


def _on_signal(signum, _frame) -> None:
    _cleanup()
    sys.exit(128 + signum)


_ports: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before: a server binds its port only once
    started, so the OS may offer the same one again meanwhile."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _ports:
            _ports.add(port)
            return port


def start_walkin(name: str, url: str, workers: int, threads: int, token: str, tmp: Path,
                 worker_class: str = "gevent") -> Server:
    """``walkin serve`` itself: connector.cli → connector.server.run (gunicorn_options)."""
    port = free_port()
    env = {**os.environ, "WALKIN_DATABASE_URL": url, "WALKIN_SCIM_TOKEN": token}
    argv = [str(VENV_BIN / "walkin"), "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--threads", str(threads), "--worker-class", worker_class]
    return Server(name, argv, env, Target(name, HOST, port, "/scim/v2", token), "/readyz",
                  tmp / f"{name}-{port}.log", workers, threads, "walkin")


def start_scim2(name: str, users: int, seed: int, workers: int, threads: int, token: str, tmp: Path) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "scim2_serve.py"), "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--threads", str(threads), "--users", str(users), "--seed", str(seed),
            f"--token={token}"]  # a token may begin with "-"
    return Server(name, argv, dict(os.environ), Target(name, HOST, port, "/v2", token),
                  "/v2/ServiceProviderConfig", tmp / f"{name}-{port}.log", workers, threads, "scim2-server")


# ------------------------------------------------------------------ measurements


def filter_requests(ds: scim_dataset.Dataset, count: int, seed: int) -> list[tuple[str, str, None]]:
    rng = random.Random(seed)
    return [("GET", scim_client.filter_path(rng.choice(ds.user_names)), None) for _ in range(count)]


def filter_latency(server: Server, ds: scim_dataset.Dataset, count: int, seed: int, budget: float) -> dict:
    scim_client.sequential(server.target, filter_requests(ds, 20, seed - 1), time_budget=60)  # warm-up
    return scim_client.sequential(server.target, filter_requests(ds, count, seed), time_budget=budget,
                                  check=scim_client.total_results_is_one)


def filter_latency_paired(small: Server, small_ds, large: Server, large_ds, count: int, seed: int,
                          budget: float, block: int = 25) -> tuple[dict, dict]:
    """Filter latency on two idle servers, alternating blocks of ``block`` requests,
    so both see the same machine noise; returns (small, large) summaries."""
    for server, ds in ((small, small_ds), (large, large_ds)):
        scim_client.sequential(server.target, filter_requests(ds, 20, seed - 1), time_budget=60)
    reqs = {id(small): filter_requests(small_ds, count, seed), id(large): filter_requests(large_ds, count, seed + 1)}
    parts: dict[int, list[dict]] = {id(small): [], id(large): []}
    deadline = time.perf_counter() + budget
    for start in range(0, count, block):
        for server in (small, large) if (start // block) % 2 == 0 else (large, small):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            parts[id(server)].append(scim_client.sequential(
                server.target, reqs[id(server)][start:start + block], time_budget=left,
                check=scim_client.total_results_is_one, keep=True))
    out = []
    for server in (small, large):
        lat = [x for p in parts[id(server)] for x in p["latencies"]]
        statuses: dict[str, int] = {}
        problems: list[str] = []
        for p in parts[id(server)]:
            for k, v in p["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            problems += p["problems"]
        out.append({**scim_client.summary_ms(lat), "requested": count, "statuses": statuses,
                    "problems": problems[:3], "budget_s": budget})
    return out[0], out[1]


def member_add_latency(server: Server, ds: scim_dataset.Dataset, count: int, budget: float) -> dict:
    group = ds.big_group
    assert group is not None
    candidates = ds.outside_big[:count + 5]
    warm = [("PATCH", f"/Groups/{group.id}", scim_client.add_member_body(u)) for u in candidates[:5]]
    scim_client.sequential(server.target, warm, time_budget=min(budget, 120))
    requests = [("PATCH", f"/Groups/{group.id}", scim_client.add_member_body(u)) for u in candidates[5:]]
    result = scim_client.sequential(server.target, requests, time_budget=budget)
    result["group_members_before"] = len(group.member_ids) + 5
    return result


# ------------------------------------------------------------------ report


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:,.2f}"
    return f"{value:,}"


def print_tables(results: dict) -> None:
    print()
    print("=" * 110)
    print("SCIM benchmark results  —  " + results["command"])
    print("=" * 110)
    for size, data in results["datasets"].items():
        print(f"\n## {int(size):,} users — walkin store bulk-loaded in {data.get('load_walkin_s', '-')} s"
              + (f"; scim2-server ready after {data['scim2_ready_s']} s" if data.get("scim2_ready_s") else ""))
        if data.get("mix"):
            cfg = results["config"]
            print(f"\nEntra mix {cfg['mix_weights']} — closed loop, {cfg['connections']} keep-alive connections, "
                  f"{cfg['rounds']} × {cfg['duration_s']:.0f} s per server, servers taking turns:")
            header = f"{'server':<15}{'req/s':>8}{'rounds':>22}{'err':>5}{'CPU ms/req':>11}"
            header += "".join(f"{op[:18]:>20}" for op in scim_client.OPS)
            print(header)
            print(" " * 61 + "".join(f"{'p50 / p99 ms':>20}" for _ in scim_client.OPS))
            for name, mix in data["mix"].items():
                line = (f"{name:<15}{_fmt(mix['rps_median']):>8}{' '.join(_fmt(r) for r in mix['rps_rounds']):>22}"
                        f"{mix['errors']:>5}{_fmt(mix.get('cpu_ms_per_request')):>11}")
                for op in scim_client.OPS:
                    o = mix["ops_all_rounds"][op]
                    line += f"{_fmt(o['p50_ms']) + ' / ' + _fmt(o['p99_ms']):>20}"
                print(line)
            for name, ratio in data.get("ratios", {}).items():
                print(f"  {name}: median of rounds {ratio['median_rps']:.2f}x "
                      f"(per round {', '.join(f'{r:.2f}' for r in ratio['per_round'])})"
                      + (f"; CPU ms/req scim2/walkin {ratio['cpu']:.2f}x" if ratio.get("cpu") else "")
                      + "  [goal ≥ 2x: " + ("met" if ratio["median_rps"] >= 2 else "MISSED") + "]")
        if data.get("filter"):
            print("\nfilter userName eq \"…\" on an idle server (sequential, one connection):")
            for name, f in data["filter"].items():
                print(f"  {name:<22} p50 {_fmt(f['p50_ms']):>7} ms   p99 {_fmt(f['p99_ms']):>7} ms   (n={f['n']}, "
                      f"statuses {f['statuses']}{', PROBLEMS ' + str(f['problems']) if f['problems'] else ''})")
        for name, s in data.get("filter_scaling", {}).items():
            verdict = ("  [≤ 1.5x: " + ("met" if max(s["ratio_p50"], s["ratio_p99"]) <= 1.5 else "MISSED") + "]"
                       if name.startswith("walkin") else "")
            print(f"  scaling {name}: {s['small']:,} → {s['large']:,} users: p50 ratio {s['ratio_p50']:.2f}x, "
                  f"p99 ratio {s['ratio_p99']:.2f}x (interleaved blocks){verdict}")
        if data.get("member_add"):
            print(f"\nadd one member to the {data['big_group_size']:,}-member group (sequential PATCH, 204):")
            for name, m in data["member_add"].items():
                verdict = ("  [median < 20 ms: " + ("met" if (m["p50_ms"] or 1e9) < 20 else "MISSED") + "]"
                           if name.startswith("walkin") else "")
                print(f"  {name:<15} median {_fmt(m['p50_ms']):>9} ms   p99 {_fmt(m['p99_ms']):>9} ms   "
                      f"(n={m['n']} of {m['requested']} within {m['budget_s']:.0f} s, statuses {m['statuses']})"
                      + verdict)
    print("\nNotes:")
    for note in results["notes"]:
        print(f"  - {note}")
    print()


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, action="append",
                        help="dataset size (repeatable); default 10000 and 100000")
    parser.add_argument("--baseline-users", type=int, default=1000,
                        help="small dataset the filter latency is compared with (default 1000)")
    parser.add_argument("--duration", type=float, default=20.0, help="recorded seconds per mix run (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds before each mix run")
    parser.add_argument("--rounds", type=int, default=3, help="mix runs per server, servers taking turns (default 3)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--connections", type=int, default=8,
                        help="keep-alive connections in all, split over the processes (default 8)")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker (default 4)")
    parser.add_argument("--shipped-workers", type=int, default=2, help="workers of the shipped config (default 2)")
    parser.add_argument("--filter-requests", type=int, default=500)
    parser.add_argument("--member-adds", type=int, default=200)
    parser.add_argument("--member-add-budget", type=float, default=60.0,
                        help="seconds at most for the member adds, per server (default 60)")
    parser.add_argument("--no-scim2", action="store_true", help="measure walkin only")
    parser.add_argument("--compare-gthread", action="store_true",
                        help="also run walkin's shipped config on gunicorn's gthread workers (before gevent)")
    parser.add_argument("--postgres", metavar="URL",
                        help="also serve walkin on PostgreSQL (loopback server; a database per server is created "
                             "from a template and dropped), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 users (baseline 500), 1 round of 4 s, 100 filters, 30 member adds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.users = args.users or [2000]
        args.baseline_users = min(args.baseline_users, 500)
        args.duration, args.warmup, args.rounds = min(args.duration, 4.0), 1.0, 1
        args.filter_requests, args.member_adds = min(args.filter_requests, 100), min(args.member_adds, 30)
        args.member_add_budget = min(args.member_add_budget, 30)
    sizes = sorted(set(args.users or [10000, 100000]))
    if any(n < 20 for n in sizes + [args.baseline_users]):
        parser.error("datasets need at least 20 users")
    if args.processes < 1 or args.connections < args.processes or args.rounds < 1 or args.duration <= 0:
        parser.error("need ≥ 1 round, a positive duration and at least one connection per client process")
    per_process = args.connections // args.processes
    if args.postgres:
        pg_scratch.engine(args.postgres).dispose()  # refuses a non-loopback server

    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="walkin-bench-scim-"))
    _tmpdirs.append(tmp)
    token = secrets.token_urlsafe(24)
    head = f"1x{args.threads}"
    shipped = f"{args.shipped_workers}x{args.threads}"

    import scim_load

    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {
            "sizes": sizes, "baseline_users": args.baseline_users, "duration_s": args.duration,
            "warmup_s": args.warmup, "rounds": args.rounds, "client_processes": args.processes,
            "connections": per_process * args.processes, "gthread_threads": args.threads,
            "shipped_workers": args.shipped_workers, "mix_weights": dict(scim_client.MIX),
            "database": "SQLite (walkin's default store), one file per server in a temporary directory"
                        + ("; PostgreSQL for walkin-pg-*" if args.postgres else ""),
            "seed": args.seed, "quick": args.quick,
        },
        "datasets": {},
        "notes": [
            f"Head-to-head: both servers under gunicorn with walkin's connector.server.gunicorn_options, 1 worker × "
            f"{args.threads} gthread threads. scim2-server keeps its resources in process memory, so with 2 workers "
            "each worker would hold its own copy and answers would disagree: it is only correct with 1 worker.",
            f"walkin-{shipped} is walkin's shipped default (`walkin serve`: {args.shipped_workers} workers × "
            f"{args.threads} threads) on its default SQLite store. The machine has {os.cpu_count()} cores, shared "
            "by the server and the load generator (and anything else running).",
            "scim2-server runs with preload_app=True (its dataset is built in the gunicorn master before the fork: "
            "building 100k users takes longer than the 60 s worker boot timeout); nothing changes at request time.",
            "scim2-server is served with walkin's extension schema (from walkin's /Schemas) bound to User, so both "
            "servers accept and store the same attributes. It accepted every Entra request shape used here "
            "(capitalised ops, active \"False\" as a string, members {\"$ref\": null, \"value\": …}), so both get "
            "identical requests.",
            "Responses differ: walkin answers user PATCH 200 with the resource (RFC 7644 allows 200 or 204), "
            "scim2-server 204 with no body; both answer group PATCH 204.",
            "walkin's store is bulk-loaded with rows computed by walkin's own code (normalise_resource, "
            "store.users.columns/_children, journal.policy_view); scim_load.verify_walkin checked on a sample that "
            "the rows equal those the API's service layer writes (Provisioning.create_user/create_group/patch_group).",
            "CPU ms/req = user+system CPU of the server's process tree during a mix run (warm-up included) / its "
            "requests: less sensitive to the noisy machine than req/s.",
            "Filter scaling: the large-dataset server and a server of the same kind holding the baseline dataset "
            "are measured in alternating blocks of 25 requests, so the ratio is not skewed by machine noise.",
        ],
    }

    if args.postgres:
        results["notes"].append(
            "walkin-pg-*: the same `walkin serve` on PostgreSQL; their CPU ms/req counts the gunicorn processes "
            "only, not the PostgreSQL backends serving them (which share the same cores).")
    try:
        # Baseline servers: the small dataset, up for the whole run.
        log(f"baseline dataset: {args.baseline_users:,} users")
        base_ds = scim_dataset.build(args.baseline_users, args.seed)
        scim_load.verify_walkin(base_ds)
        log("  bulk-load rows verified equal to the rows the API's service layer writes (sample)")
        base_db = tmp / f"baseline-{args.baseline_users}.db"
        scim_load.load_walkin(f"sqlite:///{base_db}", base_ds, log=log)
        baseline = {"walkin": start_walkin(f"walkin-{head}@{args.baseline_users}", f"sqlite:///{base_db}", 1,
                                           args.threads, token, tmp)}
        if not args.no_scim2:
            baseline["scim2-server"] = start_scim2(f"scim2-{head}@{args.baseline_users}", args.baseline_users,
                                                   args.seed, 1, args.threads, token, tmp)
        for server in baseline.values():
            server.wait_ready(timeout=300)
        results["baseline_users"] = args.baseline_users

        for size in sizes:
            log(f"dataset: {size:,} users")
            ds = scim_dataset.build(size, args.seed)
            base = tmp / f"base-{size}.db"
            load_s = scim_load.load_walkin(f"sqlite:///{base}", ds, log=log)
            log(f"  walkin store (SQLite) loaded in {load_s:.1f}s ({base.stat().st_size / 1e6:.0f} MB)")
            data: dict = {"users": size, "load_walkin_s": round(load_s, 1),
                          "big_group_size": len(ds.big_group.member_ids), "approval_groups": 200}
            results["datasets"][str(size)] = data

            servers: list[Server] = []
            walkins = [(f"walkin-{head}", 1, "gevent"), (f"walkin-{shipped}", args.shipped_workers, "gevent")]
            if args.compare_gthread:  # the worker class walkin shipped before gevent, same store and workers
                walkins.append((f"walkin-gthread-{shipped}", args.shipped_workers, "gthread"))
            for name, workers, worker_class in walkins:
                db = tmp / f"{name}-{size}.db"
                shutil.copyfile(base, db)
                servers.append(start_walkin(name, f"sqlite:///{db}", workers, args.threads, token, tmp, worker_class))
            if not args.no_scim2:
                servers.append(start_scim2(f"scim2-{head}", size, args.seed, 1, args.threads, token, tmp))
            pg_template = None
            if args.postgres:
                pg_template = f"walkin_bench_{os.getpid()}_{size}"
                url = pg_scratch.create(args.postgres, pg_template)
                pg_s = scim_load.load_walkin(url, ds, log=log)
                log(f"  walkin store (PostgreSQL) loaded in {pg_s:.1f}s")
                data["load_walkin_pg_s"] = round(pg_s, 1)
                for name, workers in ((f"walkin-pg-{head}", 1), (f"walkin-pg-{shipped}", args.shipped_workers)):
                    url = pg_scratch.create(args.postgres, f"{pg_template}_{workers}", template=pg_template)
                    servers.append(start_walkin(name, url, workers, args.threads, token, tmp))
            for server in servers:
                ready = server.wait_ready(timeout=900)
                log(f"  {server.name} ready on {HOST}:{server.target.port} after {ready:.1f}s")
                if server.kind == "scim2-server":
                    data["scim2_ready_s"] = round(ready, 1)

            # 1. filter latency on idle servers; 1-worker SQLite/in-memory ones paired with the baseline.
            data["filter"], data["filter_scaling"] = {}, {}
            for server in servers:
                pair = baseline.get(server.kind) if server.workers == 1 and "-pg-" not in server.name else None
                if pair is not None:
                    small, large = filter_latency_paired(pair, base_ds, server, ds, args.filter_requests,
                                                         args.seed + size, budget=240)
                    data["filter"][pair.name] = small
                    data["filter"][f"{server.name}@{size}"] = large
                    if small["p50_ms"] and large["p50_ms"]:
                        data["filter_scaling"][server.name] = {
                            "small": args.baseline_users, "large": size,
                            "small_p50_ms": small["p50_ms"], "small_p99_ms": small["p99_ms"],
                            "large_p50_ms": large["p50_ms"], "large_p99_ms": large["p99_ms"],
                            "ratio_p50": round(large["p50_ms"] / small["p50_ms"], 2),
                            "ratio_p99": round(large["p99_ms"] / small["p99_ms"], 2),
                        }
                else:
                    data["filter"][f"{server.name}@{size}"] = filter_latency(
                        server, ds, args.filter_requests, args.seed + size, budget=120)
            for name, f in data["filter"].items():
                log(f"  filter {name}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, n={f['n']}"
                    + (f", problems {f['problems']}" if f["problems"] else ""))

            # 2. the mix, servers taking turns; the same request sequence for each server.
            group_ids = [g.id for g in ds.groups if g is not ds.big_group]
            runs: dict[str, list[dict]] = {s.name: [] for s in servers}
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else list(reversed(servers))
                for server in order:
                    gc.collect()
                    before = server.cpu_seconds()
                    m = scim_client.run_mix(
                        server.target, ds.user_ids, ds.user_names, group_ids, seed=args.seed + r, tag=f"b{r}",
                        processes=args.processes, threads=per_process, warmup=args.warmup,
                        duration=args.duration)
                    m["cpu_ms_per_request"] = round((server.cpu_seconds() - before) * 1000 / max(1, m["sent"]), 2)
                    runs[server.name].append(m)
                    log(f"  mix round {r + 1} {server.name}: {m['rps']} req/s, errors {m['errors']}, "
                        f"p50 {m['overall']['p50_ms']} ms, p99 {m['overall']['p99_ms']} ms, "
                        f"{m['cpu_ms_per_request']} CPU ms/req")
                    for sample in m["error_samples"]:
                        log(f"    error: {sample}")
            data["mix"] = {}
            for name, rs in runs.items():
                data["mix"][name] = {
                    "rps_rounds": [x["rps"] for x in rs],
                    "rps_median": round(statistics.median(x["rps"] for x in rs), 1),
                    "errors": sum(x["errors"] for x in rs),
                    "cpu_ms_per_request": round(statistics.median(x["cpu_ms_per_request"] for x in rs), 2),
                    "ops_all_rounds": scim_client.merge_ops(rs),
                    "rounds": rs,
                }
                for x in rs:
                    x.pop("_lat", None)
            data["ratios"] = {}
            theirs = data["mix"].get(f"scim2-{head}")
            for name in [n for n in data["mix"] if n.startswith("walkin")] if theirs else []:
                ours = data["mix"][name]
                per_round = [round(a / b, 2) for a, b in zip(ours["rps_rounds"], theirs["rps_rounds"])]
                data["ratios"][f"{name} / scim2-{head} req/s"] = {
                    "median_rps": round(ours["rps_median"] / theirs["rps_median"], 2),
                    "per_round": per_round,
                    "cpu": round(theirs["cpu_ms_per_request"] / ours["cpu_ms_per_request"], 2),
                }

            # 3. adding one member to the big group
            data["member_add"] = {}
            for server in servers:
                if server.workers != 1:
                    continue
                m = member_add_latency(server, ds, args.member_adds, args.member_add_budget)
                data["member_add"][server.name] = m
                log(f"  member add {server.name} ({len(ds.big_group.member_ids):,} members): median "
                    f"{m['p50_ms']} ms, p99 {m['p99_ms']} ms, n={m['n']}")

            for server in servers:
                server.stop()
            for db in tmp.glob(f"*-{size}.db*"):
                db.unlink(missing_ok=True)
            base.unlink(missing_ok=True)
            if pg_template:
                for name in (f"{pg_template}_1", f"{pg_template}_{args.shipped_workers}", pg_template):
                    pg_scratch.drop(args.postgres, name)
            del ds
            gc.collect()
    finally:
        results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = args.out / f"bench_scim-{'quick-' if args.quick else ''}{stamp}.json"
        path.write_text(json.dumps(results, indent=2))
        log(f"results written to {path}")
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
