"""Serve scim2-server (PyPI ``scim2-server``) under gunicorn for bench_scim.py.

    python bench/scim2_serve.py --port P --users N [--workers 1] [--threads 4] --token T

The WSGI app is scim2-server's own ``BearerTokenApplication`` (what its
``scim2-server`` command serves) over an ``InMemoryStorage`` holding the benchmark
dataset, built through scim2-server's Python API. The gunicorn options are
walkin's own ``connector.server.gunicorn_options`` (gthread workers, same
timeouts, keep-alive and access log), plus ``preload_app``: the storage is built
once in the master before the fork, because building 100,000 users takes longer
than gunicorn's 60 s worker boot timeout. The storage lives in process memory, so
only one worker gives a consistent service.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gunicorn.app.base import BaseApplication

from connector.server import WorkerKind, gunicorn_options
from connector.settings import ScimSettings


class Scim2Server(BaseApplication):
    def __init__(self, options: dict, users: int, seed: int, token: str) -> None:
        self.options = options
        self.users, self.seed, self.token = users, seed, token
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        import scim_dataset
        import scim_load
        from scim2_server.service import ScimService
        from scim2_server.testserver.application import BearerTokenApplication

        started = time.perf_counter()
        provider = scim_load.scim2_provider()
        ds = scim_dataset.build(self.users, self.seed)
        storage = scim_load.scim2_storage(provider, ds, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"scim2-server: loaded {len(storage.resources):,} resources in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        return BearerTokenApplication(storage, provider, service=ScimService(provider, secret="bench-secret"),
                                      bearer_tokens=[self.token])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark serves on loopback only")
    options = gunicorn_options(args.host, args.port, args.workers, args.threads, ScimSettings(),
                               WorkerKind.GTHREAD)  # threads: scim2-server's storage is not greenlet-aware
    options["preload_app"] = True
    Scim2Server(options, args.users, args.seed, args.token).run()


if __name__ == "__main__":
    main()
