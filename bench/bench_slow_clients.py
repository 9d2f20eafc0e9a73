"""Slow clients against ``walkin serve``: how well the service keeps answering others
while N connections send their headers or bodies a byte a second (issue 12).

    python bench/bench_slow_clients.py                       # gevent (shipped) and gthread
    python bench/bench_slow_clients.py --slow 0 8 16 256 --seconds 5

For each worker class (``walkin serve --worker-class``, 2 workers as shipped) and each
N: N connections are opened (half stop inside their headers, half inside a 1,000-byte
POST body) and trickle a byte a second each; meanwhile a probe sends GET /healthz and
GET /scim/v2/Users?count=1 every 100 ms for ``--seconds`` seconds (2 s timeout each,
a new connection each time). Reported: probes answered, p50/p99/max latency. A
connection the server drops is opened again, so N stay open. Everything on 127.0.0.1;
the servers and the scratch store are removed on exit. JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
TOKEN = "bench-" + os.urandom(8).hex()
WALKIN = Path(sys.executable).with_name("walkin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(kind: str, url: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "WALKIN_DATABASE_URL": url, "WALKIN_SCIM_TOKEN": TOKEN}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(WALKIN), "serve", "--host", HOST, "--port", str(port), "--worker-class", kind],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"walkin serve ({kind}) did not start: {log.read_text(errors='replace')[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def open_slow(port: int, body: bool) -> socket.socket | None:
    try:
        sock = socket.create_connection((HOST, port), timeout=2)
        if body:
            sock.sendall((f"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                          "Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{").encode())
        else:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sock.setblocking(False)
        return sock
    except OSError:
        return None


def probe(port: int, path: str) -> float | None:
    started = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.settimeout(2)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                         "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return None
        return (time.perf_counter() - started) * 1000
    except OSError:
        return None


def measure(port: int, n: int, seconds: float) -> dict:
    slow: list[socket.socket | None] = [open_slow(port, i % 2 == 0) for i in range(n)]
    stop_event = threading.Event()
    reopened = [0]

    def trickle() -> None:
        while not stop_event.wait(1):
            for i, sock in enumerate(slow):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b"a")
                except OSError:  # dropped by the server (its deadline): keep N open
                    if sock is not None:
                        sock.close()
                    slow[i] = open_slow(port, i % 2 == 0)
                    reopened[0] += 1

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    times: list[float | None] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        times.append(probe(port, "/healthz" if i % 2 else "/scim/v2/Users?count=1"))
        i += 1
        time.sleep(0.1)
    stop_event.set()
    thread.join()
    for sock in slow:
        if sock is not None:
            sock.close()
    ok = sorted(t for t in times if t is not None)

    def q(p: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))], 1) if ok else None
    return {"slow": n, "probes": len(times), "answered": len(ok), "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": round(ok[-1], 1) if ok else None, "reopened": reopened[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, nargs="+", default=[0, 8, 16, 64, 256])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kinds", nargs="+", default=["gevent", "gthread"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="walkin-bench-slow-"))
    results: dict = {"machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
                     "started": datetime.now(UTC).isoformat(timespec="seconds"), "runs": {}}
    try:
        for kind in args.kinds:
            url = f"sqlite:///{tmp / f'{kind}.db'}"
            proc, port = start(kind, url, tmp / f"{kind}.log")
            try:
                results["runs"][kind] = []
                for n in args.slow:
                    row = measure(port, n, args.seconds)
                    results["runs"][kind].append(row)
                    print(f"{kind:8} {n:4} slow: {row['answered']}/{row['probes']} answered, p50 {row['p50_ms']} ms, "
                          f"p99 {row['p99_ms']} ms, max {row['max_ms']} ms ({row['reopened']} slow ones reopened)",
                          flush=True)
            finally:
                stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"slow-clients-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
