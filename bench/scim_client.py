"""Load generator for bench_scim.py: keep-alive ``http.client`` connections on
loopback, Entra-shaped requests, every loop bounded by a deadline and a count.

The same request shapes go to both servers (scim2-server accepts all of them:
capitalised ops, ``"False"`` as a string, ``{"$ref": null, "value": …}`` members).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote_plus

from scim_dataset import PATCH_OP, SCHOOLS, WALKIN, user_payload

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# op name, weight (percent) — Entra's mix: mostly matching reads, then updates.
MIX = [
    ("filter_userName", 50),
    ("create_user", 10),
    ("patch_replace", 20),
    ("patch_disable", 10),
    ("group_add_member", 10),
]
OPS = [name for name, _ in MIX]


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    prefix: str  # "/scim/v2" (walkin) or "/v2" (scim2-server)
    token: str


class Conn:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, target: Target, timeout: float = 60.0) -> None:
        if target.host not in LOOPBACK:
            raise ValueError("loopback only")
        self.target = target
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {"Authorization": f"Bearer {target.token}", "Accept": "application/scim+json",
                        "Content-Type": "application/scim+json"}

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes, float]:
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self.conn.request(method, self.target.prefix + path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    return 599, b"", time.perf_counter() - started
                continue
            elapsed = time.perf_counter() - started
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, payload, elapsed
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def filter_path(user_name: str) -> str:
    # Entra sends the spaces of the filter as '+'.
    return "/Users?filter=" + quote_plus(f'userName eq "{user_name}"')


def patch(*ops: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def add_member_body(user_id: str) -> dict:
    return patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": user_id}]})


class Mix:
    """Builds the next request of the Entra-shaped mix."""

    def __init__(self, rng: random.Random, user_ids: list[str], user_names: list[str], group_ids: list[str],
                 tag: str) -> None:
        self.rng, self.user_ids, self.user_names, self.group_ids, self.tag = rng, user_ids, user_names, group_ids, tag
        self.created = 0
        self.ops = OPS
        self.weights = [w for _, w in MIX]

    def next(self) -> tuple[str, str, str, object]:
        rng = self.rng
        op = rng.choices(self.ops, weights=self.weights)[0]
        if op == "filter_userName":
            return op, "GET", filter_path(rng.choice(self.user_names)), None
        if op == "create_user":
            self.created += 1
            return op, "POST", "/Users", user_payload(rng, self.created, tag=self.tag)
        user = rng.choice(self.user_ids)
        if op == "patch_replace":
            n = rng.randrange(1_000_000)
            return op, "PATCH", f"/Users/{user}", patch(
                {"op": "Replace", "path": "displayName", "value": f"Renamed {n}"},
                {"op": "Replace", "path": "title", "value": rng.choice(["Teacher", "Principal", "Analyst"])},
                {"op": "Replace", "path": f"{WALKIN}:locationCode", "value": rng.choice(SCHOOLS)},
            )
        if op == "patch_disable":
            return op, "PATCH", f"/Users/{user}", patch({"op": "Replace", "path": "active", "value": "False"})
        return op, "PATCH", f"/Groups/{rng.choice(self.group_ids)}", add_member_body(user)


def _mix_thread(target: Target, mix: Mix, start_at: float, record_from: float, deadline: float, max_requests: int,
                out: dict) -> None:
    conn = Conn(target)
    lat: dict[str, list[float]] = {op: [] for op in OPS}
    statuses: dict[str, dict[int, int]] = {op: {} for op in OPS}
    samples: list[str] = []
    sent = 0
    while time.perf_counter() < start_at:
        time.sleep(0.001)
    try:
        while sent < max_requests:
            now = time.perf_counter()
            if now >= deadline:
                break
            op, method, path, body = mix.next()
            status, payload, elapsed = conn.request(method, path, body)
            sent += 1
            if now >= record_from:
                lat[op].append(elapsed)
                statuses[op][status] = statuses[op].get(status, 0) + 1
                if status >= 300 and len(samples) < 3:
                    samples.append(f"{op} {method} {path} -> {status} {payload[:300]!r}")
    finally:
        conn.close()
    out["lat"], out["statuses"], out["samples"], out["sent"] = lat, statuses, samples, sent


def _mix_process(target: Target, user_ids, user_names, group_ids, seed: int, tag: str, threads: int,
                 start_at: float, record_from: float, deadline: float, max_requests: int, queue) -> None:
    outs = [dict() for _ in range(threads)]
    workers = []
    for t in range(threads):
        mix = Mix(random.Random(seed * 100 + t), user_ids, user_names, group_ids, f"{tag}t{t}x")
        workers.append(threading.Thread(target=_mix_thread, daemon=True, args=(
            target, mix, start_at, record_from, deadline, max_requests, outs[t])))
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=max(1.0, deadline - time.perf_counter()) + 120)
    lat = {op: [] for op in OPS}
    statuses: dict[str, dict[int, int]] = {op: {} for op in OPS}
    samples = []
    sent = 0
    for o in outs:
        sent += o.get("sent", 0)
        for op in OPS:
            lat[op] += o.get("lat", {}).get(op, [])
            for s, c in o.get("statuses", {}).get(op, {}).items():
                statuses[op][s] = statuses[op].get(s, 0) + c
        samples += o.get("samples", [])
    queue.put({"lat": lat, "statuses": statuses, "samples": samples, "sent": sent})


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": None if not values else round(statistics.median(values) * 1000, 2),
        "p99_ms": None if not values else round(pct(values, 99) * 1000, 2),
        "mean_ms": None if not values else round(statistics.fmean(values) * 1000, 2),
    }


def run_mix(target: Target, user_ids: list[str], user_names: list[str], group_ids: list[str], *, seed: int,
            tag: str, processes: int, threads: int, warmup: float, duration: float,
            max_requests: int = 1_000_000) -> dict:
    """Closed-loop mix from ``processes`` × ``threads`` keep-alive connections for
    ``warmup`` + ``duration`` seconds; only the last ``duration`` is recorded."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.perf_counter() + 0.5
    record_from = start_at + warmup
    deadline = record_from + duration
    procs = [ctx.Process(target=_mix_process, daemon=True, args=(
        target, user_ids, user_names, group_ids, seed * 10 + p, f"{tag}p{p}", threads, start_at, record_from,
        deadline, max_requests, queue)) for p in range(processes)]
    for p in procs:
        p.start()
    parts = []
    try:
        for _ in procs:
            parts.append(queue.get(timeout=warmup + duration + 240))
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    lat = {op: [] for op in OPS}
    statuses: dict[str, dict[str, int]] = {op: {} for op in OPS}
    samples: list[str] = []
    for part in parts:
        for op in OPS:
            lat[op] += part["lat"][op]
            for s, c in part["statuses"][op].items():
                statuses[op][str(s)] = statuses[op].get(str(s), 0) + c
        samples += part["samples"]
    total = sum(len(v) for v in lat.values())
    errors = sum(c for op in OPS for s, c in statuses[op].items() if int(s) >= 300)
    every = [x for v in lat.values() for x in v]
    return {
        "requests": total,
        "sent": sum(part["sent"] for part in parts),
        "errors": errors,
        "duration_s": duration,
        "rps": round(total / duration, 1),
        "connections": processes * threads,
        "overall": summary_ms(every),
        "ops": {op: {**summary_ms(lat[op]), "statuses": statuses[op]} for op in OPS},
        "error_samples": samples[:5],
        "_lat": lat,
    }


def merge_ops(runs: list[dict]) -> dict:
    """Per-operation latency summary over several ``run_mix`` results."""
    return {op: summary_ms([x for run in runs for x in run["_lat"][op]]) for op in OPS}


def sequential(target: Target, requests: list[tuple[str, str, object]], *, time_budget: float,
               check=None, keep: bool = False) -> dict:
    """Send ``requests`` one after another on one connection (idle server), at most
    ``time_budget`` seconds; latency summary plus status counts."""
    conn = Conn(target)
    lat: list[float] = []
    statuses: dict[str, int] = {}
    samples: list[str] = []
    deadline = time.perf_counter() + time_budget
    try:
        for method, path, body in requests:
            if time.perf_counter() >= deadline:
                break
            status, payload, elapsed = conn.request(method, path, body)
            lat.append(elapsed)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            problem = None if status < 300 else f"{status} {payload[:200]!r}"
            if problem is None and check is not None:
                problem = check(payload)
            if problem and len(samples) < 3:
                samples.append(f"{method} {path} -> {problem}")
    finally:
        conn.close()
    out = {**summary_ms(lat), "requested": len(requests), "statuses": statuses, "problems": samples,
           "budget_s": time_budget}
    if keep:
        out["latencies"] = lat
    return out


def total_results_is_one(payload: bytes) -> str | None:
    try:
        found = json.loads(payload).get("totalResults")
    except ValueError:
        return "not JSON"
    return None if found == 1 else f"totalResults={found}"


def pid_tree_cpu_seconds(root: int) -> float:
    """utime+stime of ``root`` and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(cpu.get(pid, 0.0) for pid in tree)
