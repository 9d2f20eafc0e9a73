"""Benchmark the sync: a full reconcile of many people against a real slapd, next to
the physical floor of the same directory changes, and the latency from a SCIM PATCH
to the group change through ``walkin serve`` + ``walkin worker``.

    python bench/bench_reconcile.py                    # 100,000 people, 200 events
    python bench/bench_reconcile.py --quick            # 5,000 people, 50 events (smoke run)
    python bench/bench_reconcile.py --people 20000 --events 100 --repeat 3
    python bench/bench_reconcile.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

What it does (everything on 127.0.0.1; slapd, gunicorn, the worker, temporary files
and databases are removed on exit, also on Ctrl-C / SIGTERM):

1. starts a throw-away slapd (tests/sync/slapd.py's ``Slapd``) and slapadds N
   inetOrgPerson entries; bulk-loads N users and the approval group
   "WalkIn-Approvers-0123" into a store (SQLite file, or a PostgreSQL database created
   for the run) — see reconcile_data.py for who is entitled;
2. sets the directory group to the steady state (the 90 % entitled) and runs
   ``reconcile(ctx, "walkin", kind="full")`` in a child process (reconcile_child.py):
   the *cold* run (empty directory-entry cache: everyone is resolved), then a *warm
   no-change* run;
3. applies the 10 % change to the store (5 % approved, 5 % moved to another location,
   through the store functions a SCIM PATCH uses) and snapshots the store;
4. ``--repeat`` times, in alternating order: the *floor* — the group reset to the
   steady state, then exactly the planned adds and removes as ldap3 MODIFY_ADD /
   MODIFY_DELETE requests of ``--batch`` (500) values with the permissive-modify
   control, on one bound connection — and the *timed reconcile* (store restored from
   the snapshot, group reset, a fresh child process); the result is checked against
   the expected membership;
5. if the reconcile misses a goal (≤ 1.3× the floor, ≤ 300 MB peak RSS, the cold run's too) or with
   ``--profile``, one more reconcile under cProfile (stats in bench/results/);
6. serves the store with ``walkin serve`` (gunicorn) and runs one ``walkin worker``,
   sends ``--events`` PATCHes one at a time — alternately a location PATCH revoking an
   entitled person and a Group PATCH approving a person — and polls slapd (a base
   search ``(member=<dn>)`` every ``--poll-ms``) for the change; latency is from the
   PATCH response to the first poll that sees it.

The deletion guard is opened (``WALKIN_SYNC__MAX_REMOVALS``) for the benchmark: with
the shipped limit of 100 removals a run that revokes 5 % of 100,000 people holds its
removals for an administrator, which is the guard doing its job, not a cost.

Results: a table on stdout, JSON (and the profile, if any) in bench/results/.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import platform
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import ldap3  # noqa: E402
import pg_scratch  # noqa: E402
import reconcile_data as data  # noqa: E402
import yaml  # noqa: E402
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, NO_ATTRIBUTES, SAFE_SYNC  # noqa: E402

from mappings.model import DEFAULT_MAPPING_PATH  # noqa: E402
from sync.targets import ldap3_import  # noqa: E402,F401  (before ldap3)
from tests.sync.slapd import SLAPADD, Slapd, missing_tools  # noqa: E402

RESULTS = HERE / "results"
HOST = "127.0.0.1"
PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"
LDAPMODIFY = "/usr/bin/ldapmodify"
TOKEN = "bench-token-" + os.urandom(8).hex()
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GOAL_RATIO = 1.3
GOAL_RSS_MB = 300


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------ clean-up

_procs: list[tuple[str, subprocess.Popen]] = []
_slapds: list[Slapd] = []
_tmpdirs: list[Path] = []


def _stop_proc(name: str, proc: subprocess.Popen, timeout: float = 35) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the session we started it in
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    if (name, proc) in _procs:
        _procs.remove((name, proc))


def _cleanup() -> None:
    for name, proc in list(_procs):
        try:
            _stop_proc(name, proc)
        except Exception as exc:
            print(f"cleanup: {name}: {exc}", file=sys.stderr)
    for server in list(_slapds):
        try:
            server.remove()
        except Exception as exc:
            print(f"cleanup: slapd: {exc}", file=sys.stderr)
        _slapds.remove(server)
    pg_scratch.drop_all()
    for path in list(_tmpdirs):
        shutil.rmtree(path, ignore_errors=True)
        _tmpdirs.remove(path)


def _on_signal(signum, _frame) -> None:
    _cleanup()
    sys.exit(128 + signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ slapd


class BenchSlapd(Slapd):
    """tests/sync/slapd.py's server with a larger MDB map (100,000 people and a group
    entry rewritten at every modify do not fit the tests' 512 MiB comfortably)."""

    sortvals = False

    def _config_ldif(self) -> str:
        text = super()._config_ldif().replace("olcDbMaxSize: 536870912", "olcDbMaxSize: 8589934592")
        if self.sortvals:  # keep member values sorted: a modify no longer scans the whole group
            text = text.replace("olcSizeLimit: 500\n", "olcSizeLimit: 500\nolcSortVals: member\n")
        return text


def start_slapd(tmp: Path, n: int, sortvals: bool = False) -> BenchSlapd:
    why = missing_tools()
    if why:
        raise SystemExit(why)
    server = BenchSlapd(tmp / "slapd")
    server.sortvals = sortvals
    _slapds.append(server)
    server.setup()
    ldif = tmp / "people.ldif"
    with open(ldif, "w") as handle:
        handle.writelines(data.people_ldif(n, server.people_dn))
    done = subprocess.run([SLAPADD, "-q", "-F", str(server.config_dir), "-b", server.suffix, "-l", str(ldif)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"slapadd failed: {done.stderr}")
    ldif.unlink()
    server.start()
    return server


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slapd_cpu(server: Slapd) -> float:
    return proc_cpu_s(server._process.pid)


def set_group(server: Slapd, members: list[str], tmp: Path) -> None:
    """Replace the group's members (ldapmodify: C, fast for 100,000 values)."""
    path = tmp / "group.ldif"
    with open(path, "w") as handle:
        handle.write(f"dn: {server.group_dn}\nchangetype: modify\nreplace: member\n")
        handle.writelines(f"member: {m}\n" for m in members)
        handle.write("\n")
    done = subprocess.run([LDAPMODIFY, "-x", "-H", server.url, "-D", server.root_dn, "-w", server.root_password,
                           "-f", str(path)], capture_output=True, text=True, check=False)
    path.unlink()
    if done.returncode:
        raise RuntimeError(f"ldapmodify failed: {done.stderr}")


def connect(server: Slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), user=server.root_dn,
                            password=server.root_password, client_strategy=SAFE_SYNC, auto_bind=True,
                            raise_exceptions=True, receive_timeout=120)


def group_values(conn: ldap3.Connection, group: str) -> list[str]:
    _, _, response, _ = conn.search(group, "(objectClass=*)", BASE, attributes=["member"])
    return [v.decode() for v in response[0]["raw_attributes"].get("member", [])]


def measure_floor(server: Slapd, adds: list[str], removes: list[str], batch: int) -> dict:
    """The same member changes as raw batched modifies, on one bound connection."""
    conn = connect(server)
    controls = [(PERMISSIVE_MODIFY_OID, False, None)]
    try:
        s0, c0 = slapd_cpu(server), time.process_time()
        t0 = time.perf_counter()
        for op, values in ((MODIFY_ADD, adds), (MODIFY_DELETE, removes)):
            for start in range(0, len(values), batch):
                conn.modify(server.group_dn, {"member": [(op, values[start:start + batch])]}, controls=controls)
        writes = time.perf_counter() - t0
        client_cpu, server_cpu = time.process_time() - c0, slapd_cpu(server) - s0
        t1 = time.perf_counter()
        size = len(group_values(conn, server.group_dn))
        read = time.perf_counter() - t1
    finally:
        conn.unbind()
    requests = -(-len(adds) // batch) + -(-len(removes) // batch)
    return {"writes_s": round(writes, 4), "requests": requests, "group_read_s": round(read, 4),
            "group_size_after": size, "client_cpu_s": round(client_cpu, 3), "slapd_cpu_s": round(server_cpu, 3),
            "cpu_s": round(client_cpu + server_cpu, 3)}


# ------------------------------------------------------------------ store snapshots


class StoreFiles:
    """The store's database and a snapshot of it (SQLite: file copies; PostgreSQL:
    a template database). Only used while no process has the store open."""

    def __init__(self, tmp: Path, postgres: str | None) -> None:
        self.postgres = postgres
        if postgres:
            tag = os.urandom(4).hex()
            self.name, self.snap = f"walkin_bench_{tag}", f"walkin_bench_{tag}_snap"
            self.url = pg_scratch.create(postgres, self.name)
        else:
            self.path = tmp / "walkin.db"
            self.snapdir = tmp / "snapshot"
            self.url = f"sqlite:///{self.path}"

    def snapshot(self) -> None:
        if self.postgres:
            pg_scratch.create(self.postgres, self.snap, template=self.name)
            return
        shutil.rmtree(self.snapdir, ignore_errors=True)
        self.snapdir.mkdir()
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                shutil.copyfile(src, self.snapdir / src.name)

    def restore(self) -> None:
        if self.postgres:
            pg_scratch.create(self.postgres, self.name, template=self.snap)
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for src in self.snapdir.iterdir():
            shutil.copyfile(src, self.path.parent / src.name)

    def size_mb(self) -> float | None:
        if self.postgres:
            return None
        return round(self.path.stat().st_size / 2**20, 1)


# ------------------------------------------------------------------ reconcile child


def sync_env(server: Slapd, url: str, mapping: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALKIN_")}
    env.update({
        "WALKIN_DATABASE_URL": url,
        "WALKIN_MAPPING_PATH": str(mapping),
        "WALKIN_SYNC__TARGET": "ldap",
        "WALKIN_SYNC__MAX_REMOVALS": "100000000",
        "WALKIN_SYNC__MAX_REMOVALS_PERCENT": "100",
        "WALKIN_LDAP__URLS": json.dumps([server.url]),
        "WALKIN_LDAP__BIND_DN": server.root_dn,
        "WALKIN_LDAP__BIND_PASSWORD": server.root_password,
        "WALKIN_LDAP__PEOPLE_BASE": server.people_dn,
        "WALKIN_LDAP__PLACEHOLDER_MEMBER": server.placeholder_dn,
        "WALKIN_LDAP__RETRY_BACKOFF_BASE": "0.2",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def run_child(env: dict, *extra: str, server: Slapd | None = None, timeout: float = 3600) -> dict:
    started = time.perf_counter()
    s0 = slapd_cpu(server) if server is not None else None
    done = subprocess.run([sys.executable, str(HERE / "reconcile_child.py"), *extra], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"reconcile child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_s"] = round(time.perf_counter() - started, 3)
    if s0 is not None:
        out["slapd_cpu_s"] = round(slapd_cpu(server) - s0, 3)
        out["total_cpu_s"] = round(out["cpu_s"] + out["slapd_cpu_s"], 3)
    if out.get("phases_s"):
        log("  phases: " + ", ".join(f"{k} {v:.2f}" for k, v in out["phases_s"].items())
            + f"; cpu {out['cpu_s']:.1f} s (+ slapd {out.get('slapd_cpu_s', 0):.1f} s); "
            + (f"gc {out['gc']['seconds']:.1f} s; " if out.get("gc") else "")
            + f"peak RSS {out['peak_rss_mb']:.0f} MB; code {out.get('code_sha256', '?')[:8]}"
            + (f"; not wrapped (renamed in sync/?): {out['missing']}" if out.get("missing") else ""))
    return out


def check_group(server: Slapd, expected: set[str]) -> None:
    from sync.targets.ldap_filters import normalise_dn

    conn = connect(server)
    try:
        got = {normalise_dn(v) for v in group_values(conn, server.group_dn)} - {normalise_dn(server.placeholder_dn)}
    finally:
        conn.unbind()
    want = {normalise_dn(m) for m in expected}
    if got != want:
        raise AssertionError(f"group differs from the expected members: {len(got - want)} extra, "
                             f"{len(want - got)} missing")


# ------------------------------------------------------------------ latency


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json",
                   "Accept": "application/scim+json"}
        payload = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            try:
                self.conn.request(method, "/scim/v2" + path, body=payload, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def start_proc(name: str, argv: list[str], env: dict, logfile: Path) -> subprocess.Popen:
    handle = open(logfile, "wb")  # noqa: SIM115 - the child holds it; closed with the process
    proc = subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    handle.close()
    _procs.append((name, proc))
    return proc


def wait_ready(proc: subprocess.Popen, port: int, logfile: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"walkin serve exited: {logfile.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"walkin serve not ready after {timeout:.0f}s")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(_pct(ms, 0.5), 1), "p90": round(_pct(ms, 0.9), 1),
            "p99": round(_pct(ms, 0.99), 1), "max": round(max(ms), 1), "mean": round(statistics.fmean(ms), 1)}


def measure_latency(server: Slapd, store: StoreFiles, mapping: Path, tmp: Path, n: int, ids: list[str], gid: str,
                    events: int, poll_ms: float, worker_poll: float, event_timeout: float, keep_logs: str,
                    keep_all_logs: bool = False) -> dict:
    from connector.store.database import Store
    from connector.store.models import SyncRunRow

    data.consume_journal(store.url)
    s = Store(store.url)
    with s.session_write() as session:  # a full run just happened: the worker is not to start another
        session.add(SyncRunRow(kind="full", entitlement="walkin", target="ldap", dry_run=False, status="ok",
                               started_at=datetime.now(UTC), counts={}, held=[]))
    s.dispose()

    port = free_port()
    serve_log, worker_log = tmp / "serve.log", tmp / "worker.log"
    serve = start_proc("walkin serve", [str(Path(sys.executable).parent / "walkin"), "serve", "--host", HOST,
                                        "--port", str(port)],
                       {**os.environ, "WALKIN_DATABASE_URL": store.url, "WALKIN_SCIM_TOKEN": TOKEN}, serve_log)
    env = sync_env(server, store.url, mapping, WALKIN_SYNC__POLL_SECONDS=str(worker_poll),
                   WALKIN_SYNC__JOB_BATCH="25", WALKIN_SYNC__FULL_INTERVAL_SECONDS="86400")
    worker = start_proc("walkin worker", [sys.executable, "-m", "connector.cli", "worker"], env, worker_log)
    wait_ready(serve, port, serve_log)
    deadline = time.monotonic() + 60
    while "started for" not in worker_log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {worker_log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    time.sleep(1.0)

    client = Http(port)
    conn = connect(server)
    revokes, grants = data.latency_revokes(n), data.latency_grants(n)
    if events // 2 + 1 > min(len(revokes), len(grants)):
        raise SystemExit(f"--events {events} needs more people (have {min(len(revokes), len(grants))} per kind)")

    def present(dn: str) -> bool:
        _, _, response, _ = conn.search(server.group_dn, f"(member={dn})", BASE, attributes=[NO_ATTRIBUTES])
        return any(r.get("type") == "searchResEntry" for r in response or ())

    results: dict[str, list[float]] = {"revoke": [], "grant": []}
    responses: dict[str, list[float]] = {"revoke": [], "grant": []}
    totals: list[float] = []
    polls: list[int] = []
    timeouts: list[str] = []
    errors: list[dict] = []
    t_all = time.monotonic()
    try:
        for k in range(events):
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited: {worker_log.read_text(errors='replace')[-2000:]}")
            kind = "revoke" if k % 2 == 0 else "grant"
            i = revokes[k // 2] if kind == "revoke" else grants[k // 2]
            dn = data.dn(i, server.people_dn)
            want = kind == "grant"
            if present(dn) == want:
                raise AssertionError(f"{dn} already {'in' if want else 'out of'} the group before the event")
            t0 = time.perf_counter()
            if kind == "revoke":
                status, body = client.request("PATCH", f"/Users/{ids[i]}", {"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": f"{data.WALKIN}:locationCode", "value": "0789"}]})
                ok = status == 200
            else:
                status, body = client.request("PATCH", f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": ids[i]}]}]})
                ok = status == 204
            t1 = time.perf_counter()
            if not ok:
                errors.append({"event": k, "kind": kind, "status": status, "body": body[:300].decode(errors="replace"),
                               "after_s": round(t1 - t0, 3)})
                log(f"  event {k} ({kind}): PATCH answered {status} after {t1 - t0:.2f} s")
                if len(errors) > 10:
                    raise AssertionError(f"more than 10 PATCH errors: {errors[:3]}")
                continue
            count = 0
            seen = None
            limit = t1 + event_timeout
            while time.perf_counter() < limit:
                count += 1
                if present(dn) == want:
                    seen = time.perf_counter()
                    break
                time.sleep(poll_ms / 1000)
            if seen is None:
                timeouts.append(f"{kind} {dn}")
                continue
            results[kind].append(seen - t1)
            responses[kind].append(t1 - t0)
            totals.append(seen - t0)
            polls.append(count)
            if (k + 1) % 25 == 0:
                both = results["revoke"] + results["grant"]
                log(f"  {k + 1}/{events} events; after-response p50 so far {_pct(both, 0.5) * 1000:.0f} ms")
    finally:
        elapsed = time.monotonic() - t_all
        client.close()
        conn.unbind()
        _stop_proc("walkin worker", worker)
        _stop_proc("walkin serve", serve)
        if keep_all_logs or errors or timeouts or sys.exc_info()[0] is not None:
            for src in (serve_log, worker_log):  # keep the evidence
                shutil.copyfile(src, RESULTS / f"reconcile-{keep_logs}-{src.name}")
    both = results["revoke"] + results["grant"]
    return {
        "events": events, "completed": len(both), "timeouts": timeouts, "errors": errors,
        "elapsed_s": round(elapsed, 1),
        "after_response_ms": summary_ms(both),
        "after_response_revoke_ms": summary_ms(results["revoke"]),
        "after_response_grant_ms": summary_ms(results["grant"]),
        "patch_response_ms": summary_ms(responses["revoke"] + responses["grant"]),
        "patch_sent_to_seen_ms": summary_ms(totals),
        "polls_per_event_median": statistics.median(polls) if polls else None,
        "poll_ms": poll_ms, "worker_poll_seconds": worker_poll,
        "server": "walkin serve (gunicorn, 2 workers x 4 gthreads)", "worker": "1 x walkin worker",
    }


# ------------------------------------------------------------------ profile


def summarise_profile(path: Path, out_txt: Path, limit: int = 45) -> list[dict]:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)
    out_txt.write_text(buf.getvalue())
    top = []
    for (filename, line, name), (_cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:25]:
        top.append({"function": f"{Path(filename).name}:{line}({name})", "calls": nc, "tottime_s": round(tt, 3),
                    "cumtime_s": round(ct, 3)})
    return top


# ------------------------------------------------------------------ report


def fmt_s(value) -> str:
    return "-" if value is None else f"{value:,.2f} s"


def print_memory(mem: dict, what: str) -> None:
    print(f"\nPython heap (tracemalloc) of {what}: peak {mem['heap_peak_mb']} MB "
          f"(peak RSS of that process {mem['peak_rss_mb']} MB)")
    for phase, h in (mem["heap_by_phase"] or {}).items():
        print(f"  {phase:14} heap before {h['before_mb']:7.1f} MB  peak {h['peak_mb']:7.1f} MB  "
              f"after {h['after_mb']:7.1f} MB")
    for label, rows in (mem["heap_sites"] or {}).items():
        print(f"  top allocation sites, {label}:")
        for row in rows[:8]:
            print(f"    {row['mb']:8.1f} MB {row['blocks']:>10,} blocks  {row['site']}")


def print_report(r: dict) -> None:
    line = "=" * 100
    print("\n" + line)
    print(f"Reconcile benchmark — {r['people']:,} people, {r['store']} store, slapd "
          f"{'with' if r['slapd_sortvals'] else 'without'} olcSortVals: member, {r['machine']}")
    print(line)
    rows = [("cold first run (resolve everyone, no changes)", r["cold"]),
            ("warm run, no changes", r["warm_noop"])]
    rows += [(f"warm run, 10 % changed (#{k + 1})", run) for k, run in enumerate(r["timed"])]
    print(f"{'run':52} {'wall':>10} {'cpu+slapd':>10} {'process':>10} {'peak RSS':>10}  result")
    for name, run in rows:
        c = run["counts"]
        print(f"{name:52} {fmt_s(run['wall_s']):>10} {fmt_s(run.get('total_cpu_s')):>10} {fmt_s(run['process_s']):>10} "
              f"{run['peak_rss_mb']:>7.0f} MB  {run['status']} +{c.get('added', 0)} -{c.get('removed', 0)} "
              f"kept {c.get('kept', 0)}  code {run.get('code_sha256', '?')[:8]}")
    for k, fl in enumerate(r["floor"]):
        label = f"floor: {fl['requests']} raw batched modifies (#{k + 1})"
        print(f"{label:52} {fmt_s(fl['writes_s']):>10} {fmt_s(fl['cpu_s']):>10}"
              f"   (+ one group read {fl['group_read_s']:.2f} s)")
    s = r["summary"]
    print("-" * 100)
    print(f"timed reconcile (median) {fmt_s(s['reconcile_s'])}  vs floor (median) {fmt_s(s['floor_s'])}  ->  "
          f"ratio {s['ratio']:.1f}x (goal <= {GOAL_RATIO}x: {'MET' if s['ratio_ok'] else 'MISSED'}); "
          f"vs floor + 1 group read: {s['ratio_with_read']:.1f}x")
    print(f"best/best ratio {s['best_ratio']:.1f}x; CPU seconds (client + slapd, robust to other load): reconcile "
          f"{s['reconcile_cpu_s']:.1f} s vs floor {s['floor_cpu_s']:.1f} s -> {s['cpu_ratio']:.1f}x")
    print(f"peak RSS of the reconcile process {s['peak_rss_mb']:.0f} MB, of the cold first run "
          f"{s['cold_rss_mb']:.0f} MB (goal <= {GOAL_RSS_MB} MB: {'MET' if s['rss_ok'] else 'MISSED'}); "
          f"RSS after imports + context {s['rss_before_mb']:.0f} MB")
    print("\nphase breakdown (seconds)          cold      warm-noop   timed(median run)")
    timed = r["timed"][s["median_index"]]
    keys = list(dict.fromkeys([*timed["phases_s"], *r["cold"]["phases_s"]]))
    for key in keys:
        print(f"  {key:30} {r['cold']['phases_s'].get(key, 0):9.2f} {r['warm_noop']['phases_s'].get(key, 0):12.2f} "
              f"{timed['phases_s'].get(key, 0):14.2f}   RSS after {timed['rss_after_phase_mb'].get(key, '-')}")
    if timed.get("writes_s"):
        first, last = timed["writes_s"]
        print(f"  (the directory was written from {first:.2f} s to {last:.2f} s of the timed run's "
              f"{timed['wall_s']:.2f} s: head {first:.2f} s, tail {timed['wall_s'] - last:.2f} s)")
    if timed.get("gc"):
        g = timed["gc"]
        print(f"  (garbage collector during the timed run: {g['collections']} collections, {g['seconds']:.2f} s; "
              f"{g['full_collections']} full ones, {g['full_seconds']:.2f} s — spread over the phases)")
    print("  inside the phases:")
    for key in sorted(set(timed["sub_s"]) | set(r["cold"]["sub_s"])):
        print(f"    {key:28} {r['cold']['sub_s'].get(key, 0):9.2f} {r['warm_noop']['sub_s'].get(key, 0):12.2f} "
              f"{timed['sub_s'].get(key, 0):14.2f}   calls {timed['calls'].get(key, '-')}")
    if r.get("profile"):
        print("\ncProfile of one timed reconcile (top by own time):")
        for row in r["profile"]["top_tottime"][:15]:
            print(f"  {row['tottime_s']:8.2f} s own {row['cumtime_s']:8.2f} s cum {row['calls']:>9,}  "
                  f"{row['function']}")
        print(f"  full listing: {r['profile']['text']}")
    for which, what in (("memory", "one timed reconcile"), ("memory_cold", "the cold first run")):
        if r.get(which):
            print_memory(r[which], what)
    lat = r.get("latency")
    if lat:
        a = lat["after_response_ms"]
        print(f"\nSCIM PATCH -> group change ({lat['completed']}/{lat['events']} events, poll every "
              f"{lat['poll_ms']} ms, worker poll {lat['worker_poll_seconds']} s):")
        print(f"  after the PATCH response: p50 {a.get('p50')} ms, p90 {a.get('p90')} ms, p99 {a.get('p99')} ms, "
              f"max {a.get('max')} ms")
        for kind in ("revoke", "grant"):
            k = lat[f"after_response_{kind}_ms"]
            print(f"    {kind:7} p50 {k.get('p50')} ms  p99 {k.get('p99')} ms  (n={k.get('n')})")
        p = lat["patch_response_ms"]
        print(f"  PATCH response itself: p50 {p.get('p50')} ms, p99 {p.get('p99')} ms; sent -> seen p50 "
              f"{lat['patch_sent_to_seen_ms'].get('p50')} ms, p99 {lat['patch_sent_to_seen_ms'].get('p99')} ms")
        if lat["timeouts"]:
            print(f"  TIMEOUTS: {lat['timeouts'][:5]}")
        if lat["errors"]:
            print(f"  PATCH ERRORS ({len(lat['errors'])}): {lat['errors'][:3]} — logs kept in bench/results/")
    print(line)
    print(f"JSON: {r['json']}")


# ------------------------------------------------------------------ main


def git_state() -> dict:
    """The commit and the files changed in the work tree (the code measured)."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=str(ROOT), capture_output=True, text=True, check=False)
        return done.stdout.strip()
    import hashlib

    diff = git("diff", "HEAD", "--", "sync", "connector", "mappings")
    return {"head": git("rev-parse", "HEAD"),
            "dirty": git("status", "--short", "--", "sync", "connector", "mappings").splitlines(),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16], "diff_lines": len(diff.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="timed reconcile / floor pairs")
    parser.add_argument("--batch", type=int, default=500, help="values per modify in the floor")
    parser.add_argument("--quick", action="store_true", help="5,000 people, 50 events, 1 repeat")
    parser.add_argument("--postgres", metavar="URL", help="admin URL of a loopback PostgreSQL server")
    parser.add_argument("--profile", action="store_true", help="always run the cProfile pass")
    parser.add_argument("--no-profile", action="store_true", help="never run the cProfile pass")
    parser.add_argument("--memory", action="store_true", help="always run the tracemalloc pass")
    parser.add_argument("--memory-cold", action="store_true",
                        help="also run the cold first run again under tracemalloc")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="copy the serve and worker logs to bench/results/")
    parser.add_argument("--skip-reconcile", action="store_true",
                        help="only the cold run, then the latency test (no change, floor or timed runs)")
    parser.add_argument("--sortvals", action="store_true",
                        help="slapd keeps member values sorted (olcSortVals: member): modifies of a large "
                             "group stop costing O(group size) on the server, so the floor drops")
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--worker-poll", type=float, default=0.1, help="WALKIN_SYNC__POLL_SECONDS of the worker")
    parser.add_argument("--event-timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.quick:
        args.people, args.events, args.repeat = 5_000, 50, 1
    n = args.people
    if n < 100:
        raise SystemExit("--people must be at least 100")

    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="walkin-bench-reconcile-"))
    _tmpdirs.append(tmp)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    report: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "people": n, "store": "postgresql" if args.postgres else "sqlite",
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": "walls are seconds; ratio = timed reconcile / floor, both measured in this run",
        "git": git_state(),
    }

    data.verify()  # the bulk rows are the rows the SCIM API writes (see reconcile_data.verify)
    log("bulk-load row builders checked against the SCIM service layer: identical rows")
    log(f"slapd: {n:,} people (slapadd)")
    t = time.perf_counter()
    server = start_slapd(tmp, n, sortvals=args.sortvals)
    report["slapd_sortvals"] = args.sortvals
    report["slapd_load_s"] = round(time.perf_counter() - t, 1)

    mapping = tmp / "mapping.yaml"
    doc = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    doc["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = server.group_dn
    mapping.write_text(yaml.safe_dump(doc))

    store = StoreFiles(tmp, args.postgres)
    ids = data.user_ids(n)
    log(f"store ({report['store']}): {n:,} users + approval group (bulk inserts)")
    t = time.perf_counter()
    gid = data.load_store(store.url, n, ids, log=log)
    report["store_load_s"] = round(time.perf_counter() - t, 1)

    dns = [data.dn(i, server.people_dn) for i in range(n)]
    before = [dns[i] for i in range(n) if data.entitled_before(i)]
    after = {dns[i] for i in range(n) if data.entitled_after(i)}
    adds = [dns[i] for i in range(n) if data.in_grant_change(i)]
    removes = [dns[i] for i in range(n) if data.in_revoke_change(i)]
    steady = [server.placeholder_dn, *before]
    set_group(server, steady, tmp)
    env = sync_env(server, store.url, mapping)

    log("cold first run (empty directory-entry cache, no changes)")
    if args.memory_cold:
        store.snapshot()
    report["cold"] = run_child(env, server=server)
    check_group(server, set(before))
    if args.memory_cold:
        log("memory pass: the cold first run again under tracemalloc")
        store.restore()
        run = run_child(env, "--memory")
        check_group(server, set(before))
        report["memory_cold"] = {k: run[k] for k in ("wall_s", "peak_rss_mb", "heap_peak_mb", "heap_by_phase",
                                                      "heap_sites", "rss_after_phase_mb", "rss_before_mb")}
    log(f"  {report['cold']['wall_s']:.2f} s, {report['cold']['status']} {report['cold']['counts']}")
    log("warm run, no changes")
    report["warm_noop"] = run_child(env, server=server)
    check_group(server, set(before))
    log(f"  {report['warm_noop']['wall_s']:.2f} s")

    path = RESULTS / f"reconcile-{n}-{report['store']}-{stamp}.json"
    report["json"] = str(path)

    def save() -> None:
        path.write_text(json.dumps(report, indent=2))
    save()
    if args.skip_reconcile:
        if not args.no_latency:
            log(f"latency: {args.events} PATCH events through walkin serve + walkin worker")
            report["latency"] = measure_latency(server, store, mapping, tmp, n, ids, gid, args.events, args.poll_ms,
                                                args.worker_poll, args.event_timeout, stamp, args.keep_logs)
            save()
            print(json.dumps(report["latency"], indent=2))
        return 0

    log(f"changing 10 %: {len(adds):,} approved, {len(removes):,} moved to location 0789")
    report["change"] = dict(zip(("granted", "revoked"), data.apply_change(store.url, n, ids, gid)))
    store.snapshot()
    report["store_size_mb"] = store.size_mb()

    report["floor"], report["timed"] = [], []
    for r in range(args.repeat):
        order = ("floor", "reconcile") if r % 2 == 0 else ("reconcile", "floor")
        for what in order:
            set_group(server, steady, tmp)
            if what == "floor":
                fl = measure_floor(server, adds, removes, args.batch)
                check_group(server, after)
                report["floor"].append(fl)
                save()
                log(f"floor #{r + 1}: {fl['writes_s']:.2f} s for {fl['requests']} modifies "
                    f"(cpu: client {fl['client_cpu_s']:.2f} s + slapd {fl['slapd_cpu_s']:.2f} s; "
                    f"+ group read {fl['group_read_s']:.2f} s)")
            else:
                store.restore()
                run = run_child(env, server=server)
                check_group(server, after)
                report["timed"].append(run)
                save()
                log(f"reconcile #{r + 1}: {run['wall_s']:.2f} s, peak RSS {run['peak_rss_mb']:.0f} MB, "
                    f"{run['status']} {run['counts']}")
                if run["status"] != "ok" or run["counts"].get("added") != len(adds) or \
                        run["counts"].get("removed") != len(removes):
                    raise AssertionError(f"unexpected reconcile result: {run['status']} {run['counts']}")

    walls = [x["wall_s"] for x in report["timed"]]
    floors = [x["writes_s"] for x in report["floor"]]
    med_wall, med_floor = statistics.median(walls), statistics.median(floors)
    med_read = statistics.median(x["group_read_s"] for x in report["floor"])
    median_index = min(range(len(walls)), key=lambda k: abs(walls[k] - med_wall))
    peak = max(x["peak_rss_mb"] for x in report["timed"])
    cpu_rec = statistics.median(x["total_cpu_s"] for x in report["timed"])
    cpu_floor = statistics.median(x["cpu_s"] for x in report["floor"])
    report["summary"] = {
        "reconcile_s": med_wall, "floor_s": med_floor, "ratio": round(med_wall / med_floor, 2),
        "reconcile_cpu_s": cpu_rec, "floor_cpu_s": cpu_floor, "cpu_ratio": round(cpu_rec / cpu_floor, 2),
        "best_ratio": round(min(walls) / min(floors), 2),
        "ratio_with_read": round(med_wall / (med_floor + med_read), 2),
        "ratio_ok": med_wall / med_floor <= GOAL_RATIO, "peak_rss_mb": peak,
        "cold_rss_mb": report["cold"]["peak_rss_mb"],
        "rss_ok": max(peak, report["cold"]["peak_rss_mb"]) <= GOAL_RSS_MB,
        "rss_before_mb": report["timed"][median_index]["rss_before_mb"], "median_index": median_index,
        "cold_s": report["cold"]["wall_s"], "warm_noop_s": report["warm_noop"]["wall_s"],
    }

    if args.profile or (not args.no_profile and not (report["summary"]["ratio_ok"] and report["summary"]["rss_ok"])):
        log("profiling one timed reconcile (cProfile)")
        set_group(server, steady, tmp)
        store.restore()
        prof = tmp / "reconcile.pstats"
        run = run_child(env, "--profile", str(prof), "--no-phases")
        check_group(server, after)
        text = RESULTS / f"reconcile-profile-{stamp}.txt"
        report["profile"] = {"wall_s_under_profiler": run["wall_s"], "text": str(text),
                             "top_tottime": summarise_profile(prof, text)}
        save()

    if args.memory or (not args.no_profile and not report["summary"]["rss_ok"]):
        log("memory pass: one timed reconcile under tracemalloc (per-phase heap peaks, allocation sites)")
        set_group(server, steady, tmp)
        store.restore()
        run = run_child(env, "--memory")
        check_group(server, after)
        report["memory"] = {k: run[k] for k in ("wall_s", "peak_rss_mb", "heap_peak_mb", "heap_by_phase",
                                                 "heap_sites", "rss_after_phase_mb", "rss_before_mb")}
        save()

    if not args.no_latency:
        log(f"latency: {args.events} PATCH events through walkin serve + walkin worker")
        report["latency"] = measure_latency(server, store, mapping, tmp, n, ids, gid, args.events, args.poll_ms,
                                            args.worker_poll, args.event_timeout, stamp, args.keep_logs)

    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(report, indent=2))
    print_report(report)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        _cleanup()
