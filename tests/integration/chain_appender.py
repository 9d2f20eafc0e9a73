"""A process appending to the audit chain as fast as it can, for
test_audit_chain_workers.py: ``python -m tests.integration.chain_appender URL NAME
ROUNDS GO``. It says it is ready (the file GO.NAME), waits for GO, then appends
ROUNDS transactions of three entries each.

Through a bare engine, not the Store: no writers' advisory lock
(connector/store/engine.py ``begin``), so only the chain head's row lock
(connector/store/chain.py ``append``) keeps the two processes' appends in one order.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from connector.store import chain

AT = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)  # the test's NOON: no wall clock in a test's data


def main(url: str, name: str, rounds: int, go: Path) -> None:
    engine = create_engine(url)
    Path(f"{go}.{name}").touch()
    while not go.exists():
        time.sleep(0.01)
    for i in range(rounds):
        with engine.begin() as conn:
            chain.append(conn, [
                {"at": AT, "run_id": None, "journal_seq": None, "person_id": f"{name}-{i}", "user_name": None,
                 "entitlement": "walkin", "target": "test", "member": None, "action": "grant", "reasons": [],
                 "evidence": None, "result": "ok", "detail": f"{name} round {i} entry {k}", "actor": name}
                for k in range(3)])
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
