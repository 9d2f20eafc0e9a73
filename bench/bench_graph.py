"""Benchmark the Entra target: a 10,000-change reconcile (5,000 adds + 5,000 removes)
against a simulated Microsoft Graph, next to the one-request-per-change approach.

    python bench/bench_graph.py                          # 10,000 changes, 50 ms per request
    python bench/bench_graph.py --changes 2000 --latency-ms 20 --window 30   # quicker run

What it does (everything on 127.0.0.1; the temporary store is removed on exit):

1. serves tests/sync/graph_fake.py's ``FakeGraph`` over HTTP on a free loopback port,
   each request answered after ``--latency-ms`` (plus ``--item-ms`` per ``$batch``
   item); like Graph, it answers 429 + ``Retry-After`` to directory writes beyond
   ``--write-limit`` (3,000) per ``--window`` (150 s), counting each write in a $batch;
2. bulk-loads a store (reconcile_data.py) with people of whom N/2 are entitled, and
   Entra users whose userPrincipalName is their userName; the group starts with N/2
   other users, so a full reconcile adds N/2 and removes N/2 as drift (the deletion
   guard is opened for the run);
3. **batched**: ``reconcile(ctx, "walkin")`` with ``GraphTarget`` (match
   userPrincipalName, write budget ``--budget`` = 2,800 per window): lookups in
   ``$batch``, 20-member PATCHes, 20-DELETE ``$batch`` requests; checks the group;
4. **one per change**: the group reset, then the same adds as ``POST
   /groups/{id}/members/$ref`` and removes as ``DELETE …/$ref``, one at a time,
   waiting out any 429's ``Retry-After``; checks the group.

Results: a table on stdout, JSON in bench/results/graph-<changes>-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import reconcile_data as data  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from connector.settings import Settings  # noqa: E402
from connector.store.database import Store  # noqa: E402
from mappings.model import DEFAULT_MAPPING_PATH, parse_mapping  # noqa: E402
from sync.ledger import RunStatus  # noqa: E402
from sync.reconcile import SyncContext, reconcile  # noqa: E402
from sync.settings import SyncSettings  # noqa: E402
from sync.targets.graph import GraphTarget  # noqa: E402
from sync.targets.graph_settings import GraphSettings  # noqa: E402
from tests.sync.graph_fake import TENANT, FakeGraph  # noqa: E402

RESULTS = HERE / "results"


def serve(fake: FakeGraph, latency: float, item_latency: float) -> ThreadingHTTPServer:
    """``fake`` over HTTP/1.1 on 127.0.0.1 (keep-alive), each answer delayed by ``latency``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            url = f"{fake.root.split('/v1.0')[0]}{self.path}"
            reply = fake.handle(self.command, url, dict(self.headers), body)
            items = len(json.loads(body).get("requests", [])) if body and self.path.endswith("/$batch") else 0
            time.sleep(latency + items * item_latency)  # outside the fake's lock, as a network would be
            payload = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Tokens:
    """Tokens the fake accepts (sign-in is not what is measured)."""

    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self.current = fake.issue_token()

    def token(self, *, refresh: bool = False) -> str:
        if refresh:
            self.current = self.fake.issue_token()
        return self.current


def one_per_change(root: str, token: str, group: str, adds: list[str], removes: list[str]) -> dict:
    """The naive writer: one POST …/members/$ref per add, one DELETE per remove, in turn."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    sent = throttled = 0
    waited = 0.0

    def send(method: str, url: str, body: dict | None = None) -> None:
        nonlocal sent, throttled, waited
        while True:
            sent += 1
            response = session.request(method, url, json=body, timeout=30)
            if response.status_code != 429:
                if response.status_code not in (204, 404):
                    raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:200]}")
                return
            throttled += 1
            pause = float(response.headers.get("Retry-After", "1"))
            waited += pause
            time.sleep(pause)

    for member in adds:
        send("POST", f"{root}/groups/{group}/members/$ref", {"@odata.id": f"{root}/directoryObjects/{member}"})
    for member in removes:
        send("DELETE", f"{root}/groups/{group}/members/{member}/$ref")
    session.close()
    return {"requests": sent, "throttled": throttled, "retry_after_waited_s": round(waited, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=10_000, help="adds + removes (half each)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="delay of every HTTP answer")
    parser.add_argument("--item-ms", type=float, default=0.0, help="extra delay per $batch item")
    parser.add_argument("--write-limit", type=int, default=3000, help="writes Graph allows per window")
    parser.add_argument("--window", type=float, default=150.0, help="Graph's throttling window, seconds")
    parser.add_argument("--budget", type=int, default=2800, help="the target's write budget per window")
    parser.add_argument("--skip-naive", action="store_true", help="only run the batched reconcile")
    args = parser.parse_args()
    half = args.changes // 2
    n = half * 10 // 9 + (1 if half * 10 % 9 else 0)  # people of whom half are entitled (i % 10 != 9)
    while sum(1 for i in range(n) if data.entitled_before(i)) > half:
        n -= 1

    fake = FakeGraph(root="http://placeholder/v1.0", page_size=100, write_limit=args.write_limit,
                     window=args.window, clock=time.monotonic)
    server = serve(fake, args.latency_ms / 1000, args.item_ms / 1000)
    fake.root = f"http://127.0.0.1:{server.server_address[1]}/v1.0"
    workdir = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    try:
        url = f"sqlite:///{workdir / 'walkin.db'}"
        Store(url).dispose()
        print(f"loading {n:,} people ({half:,} entitled) into {url} …", file=sys.stderr)
        data.load_store(url, n, data.user_ids(n), log=lambda m: print(m, file=sys.stderr))
        entitled_ids = [fake.add_user(data.uid(i)) for i in range(n) if data.entitled_before(i)]
        for i in range(n):
            if not data.entitled_before(i):
                fake.add_user(data.uid(i))
        strays = [fake.add_user(f"stray{i:06d}@district.org") for i in range(half)]
        group = fake.add_group(set(strays))

        mapping_data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
        mapping_data["entitlements"]["walkin"]["directory_group"]["entra_group_id"] = group
        graph = GraphSettings(tenant_id=TENANT, client_id="bench", client_secret="unused", graph_url=fake.root,
                              match="userPrincipalName", write_budget=args.budget, write_window_seconds=args.window)
        settings = Settings(database_url=url, graph=graph,
                            sync=SyncSettings(target="entra", max_removals=10 ** 9, max_removals_percent=100))
        tokens = Tokens(fake)
        target = GraphTarget(graph, tokens=tokens)
        store = Store(url)
        ctx = SyncContext(store, settings, parse_mapping(mapping_data), target, "entra")
        print(f"batched reconcile of {args.changes:,} changes …", file=sys.stderr)
        start = time.perf_counter()
        result = reconcile(ctx, "walkin")
        batched_s = time.perf_counter() - start
        assert result.status is RunStatus.OK, (result.status, result.detail)
        assert fake.groups[group] == set(entitled_ids), "the group does not hold exactly the entitled people"
        batched = {
            "wall_s": round(batched_s, 2), "requests": target.client.sent, "throttled_429": target.client.throttled,
            "budget_waited_s": round(target.client.budget.waited, 1), "added": result.counts["added"],
            "removed": result.counts["removed"], "patch": fake.calls("PATCH"), "batch": fake.calls("POST", "/$batch"),
            "get": fake.calls("GET", "/members/"),
        }
        target.close()
        store.dispose()

        naive = None
        if not args.skip_naive:
            fake.groups[group] = set(strays)
            fake._writes.clear()  # a fresh throttling window, as for the batched run
            print(f"one request per change ({args.changes:,}) …", file=sys.stderr)
            start = time.perf_counter()
            naive = one_per_change(fake.root, tokens.current, group, entitled_ids, strays)
            naive["wall_s"] = round(time.perf_counter() - start, 2)
            assert fake.groups[group] == set(entitled_ids)
    finally:
        server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "changes": args.changes,
        "adds": half, "removes": half, "people": n, "latency_ms": args.latency_ms, "item_ms": args.item_ms,
        "graph_write_limit": args.write_limit, "window_s": args.window, "budget": args.budget,
        "batched_reconcile": batched, "one_per_change": naive,
    }
    print(f"\n{args.changes:,} changes ({half:,} adds + {half:,} removes), {args.latency_ms:g} ms per request, "
          f"Graph limit {args.write_limit:,} writes / {args.window:g} s, target budget {args.budget:,}")
    print(f"{'approach':<34}{'wall s':>9}{'requests':>10}{'429s':>7}{'waited s':>10}")
    print(f"{'reconcile, batched (GraphTarget)':<34}{batched['wall_s']:>9.1f}{batched['requests']:>10,}"
          f"{batched['throttled_429']:>7}{batched['budget_waited_s']:>10.1f}")
    if naive:
        print(f"{'one request per change (writes)':<34}{naive['wall_s']:>9.1f}{naive['requests']:>10,}"
              f"{naive['throttled']:>7}{naive['retry_after_waited_s']:>10.1f}")
        print(f"speed-up: {naive['wall_s'] / batched['wall_s']:.1f}x")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"graph-{args.changes}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
