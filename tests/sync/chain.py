"""Helpers of the audit chain tests: entries appended the ways walkin appends them,
a key and checkpoints, the store's owner tampering with the trail, and
``walkin audit`` run as the operator would."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from connector.cli import main
from connector.store.chain import entry_hash
from sync.audit_export import from_store
from sync.audit_settings import AuditSettings
from sync.checkpoints import Checkpointer, keygen
from sync.ledger import AuditAction, AuditEntry, AuditResult, write_audit
from sync.levers import Acting, record

_SQLITE_REFUSALS = {
    "audit_log_no_update": "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                           "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "audit_log_no_delete": "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
                           "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
}


def grants(store, n: int, at: datetime, *, first: int = 0, run_id: int | None = None) -> None:
    """``n`` grant entries in one run's bulk write (sync/ledger.py)."""
    entries = [AuditEntry(action=AuditAction.GRANT, result=AuditResult.OK, person_id=f"p{i}", user_name=f"user{i}",
                          member=f"uid=user{i},ou=people,dc=example,dc=org", reasons=["ENTITLED"],
                          evidence=f"{i:032x}", journal_seq=i)
               for i in range(first, first + n)]
    with store.session_write() as s:
        write_audit(s, entries, run_id=run_id, entitlement="walkin", target="ldap", now=at)


def lever(store, at: datetime, detail: str = "override grant until 2026-12-15: substitute") -> None:
    """One administrator's act (sync/levers.py)."""
    with store.connection_write() as conn:
        record(conn, at, Acting("alex", token_id=3), action="override", entitlement="walkin", person_id="p1",
               user_name="user1", detail=detail)


def make_key(folder: Path, name: str = "signing.pem") -> Path:
    path = folder / name
    keygen(path)
    return path


def checkpointer(store, key: Path, folder: Path) -> Checkpointer:
    folder.mkdir(exist_ok=True)
    return Checkpointer(AuditSettings(signing_key_path=key, checkpoint_dir=folder), store)


def checkpoint_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.checkpoint.json"))


@contextmanager
def as_owner(store):
    """A transaction of the database's owner with the append-only triggers out of the
    way (dropped on SQLite, disabled on PostgreSQL) — what the chain must survive —
    put back before it commits."""
    with store.connection_write() as conn:
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        else:
            for name in _SQLITE_REFUSALS:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        if postgresql:
            conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        else:
            for statement in _SQLITE_REFUSALS.values():
                conn.exec_driver_sql(statement)


def rebuild(store, from_seq: int, change: dict) -> None:
    """Rewrite the entry at ``from_seq`` with ``change`` and recompute every hash after
    it, head included — a chain consistent in itself that is not the one written."""
    with store.connection_read() as conn:
        entries = list(from_store(conn))
    prev = None
    with as_owner(store) as conn:
        for entry in entries:
            if entry["seq"] < from_seq:
                prev = entry["hash"]
                continue
            if entry["seq"] == from_seq:
                entry.update(change)
            entry["prev_hash"] = prev
            entry["hash"] = prev = entry_hash(entry)
            conn.execute(text("UPDATE audit_log SET action = :action, detail = :detail, prev_hash = :prev_hash, "
                              "hash = :hash WHERE id = :id"), entry)
        conn.execute(text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})


def walkin(monkeypatch, database_url: str, *args: str, clock=None, **env: str):
    """``walkin ARGS`` on the test's store; :returns: the click result."""
    monkeypatch.setenv("WALKIN_DATABASE_URL", database_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(main, list(args), obj=clock)


def one_line(result) -> str:
    """The command's only line of output (stderr and stdout together)."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]

