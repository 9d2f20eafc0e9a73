"""The audit chain as written: one order, linked hashes, the canonical form an auditor
can recompute without walkin; the database refusing the bypasses of the append-only
rule; migration 0007 chaining the entries already there; the worker's checkpoints."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import timedelta
from itertools import pairwise

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from connector.store.chain import GENESIS, canonical, entry_hash, head
from connector.store.database import Store
from connector.store.engine import MIGRATIONS, begin, make_engine
from connector.store.models import SyncRunRow
from sync.audit_export import from_store
from sync.verification import walk
from tests.conftest import NOON, POSTGRES_URL, sqlite_copy
from tests.sync import chain as C


def _chain(store) -> list[dict]:
    with store.connection_read() as conn:
        return list(from_store(conn))


def _intact(store) -> int:
    """Verify the chain in ``store``; :returns: its length."""
    with store.connection_read() as conn:
        seen, finding = walk(from_store(conn), from_genesis=True)
        assert finding is None, str(finding)
        assert head(conn) == (seen.last or 0, seen.head)
    return seen.count


def test_entries_are_chained_in_the_order_written(store):
    """A run's bulk write and a lever's act: seq 1, 2, 3…, each linked to the one before."""
    C.grants(store, 3, NOON)
    C.lever(store, NOON + timedelta(seconds=1))
    C.grants(store, 2, NOON + timedelta(seconds=2), first=3)
    entries = _chain(store)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["action"] for e in entries] == ["grant"] * 3 + ["override"] + ["grant"] * 2
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(entries))
    assert all(e["hash"] == entry_hash(e) for e in entries)
    assert entries[3]["actor"] == "alex (token 3)" and entries[3]["at"] == "2026-11-29T19:00:01.000000Z"
    assert _intact(store) == 6


def test_a_rolled_back_write_leaves_no_gap(store):
    """Numbers taken by a transaction that fails are handed back with it."""
    C.grants(store, 2, NOON)
    with pytest.raises(RuntimeError), store.session_write() as s:
        from sync.ledger import AuditAction, AuditEntry, AuditResult, write_audit

        write_audit(s, [AuditEntry(AuditAction.GRANT, AuditResult.OK)], run_id=None, entitlement="walkin",
                    target="ldap", now=NOON)
        raise RuntimeError("the run failed")
    C.grants(store, 1, NOON)
    assert [e["seq"] for e in _chain(store)] == [1, 2, 3] and _intact(store) == 3


TEXTS = ["plain", "", "ünïcødé Straße", "tab\tnew\nline", "quote \" backslash \\", "\x00\x1f control", "\u2028\u2029",
         "emoji 🗝", "</script>", "\\N"]


@pytest.mark.parametrize("value", TEXTS, ids=[repr(t)[:20] for t in TEXTS])
def test_the_canonical_form_is_the_standard_librarys(value):
    """What an auditor's ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes, byte for byte."""
    entry = {"seq": 7, "prev_hash": GENESIS, "at": NOON, "run_id": 3, "journal_seq": None, "person_id": value,
             "user_name": value, "entitlement": "walkin", "target": "ldap", "member": value, "action": "grant",
             "reasons": [value, "ENTITLED"], "evidence": None, "result": "ok", "detail": value, "actor": None}
    theirs = json.dumps({**entry, "at": "2026-11-29T19:00:00.000000Z"}, sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    assert canonical(entry) == theirs


# ------------------------------------------------------- the database refuses


def test_update_and_delete_are_refused(store):
    C.grants(store, 2, NOON)
    for statement in ("UPDATE audit_log SET action = 'revoke'", "DELETE FROM audit_log WHERE seq = 1",
                      "UPDATE audit_log SET seq = seq + 10"):
        with pytest.raises(DatabaseError, match="audit_log is append-only"), store.connection_write() as conn:
            conn.execute(text(statement))
    assert _intact(store) == 2


_COLUMNS = ("id, at, run_id, journal_seq, person_id, user_name, entitlement, target, member, action, reasons, "
            "evidence, result, detail, actor, seq, prev_hash, hash")
REPLACES = [
    "INSERT OR REPLACE INTO audit_log (id, at, entitlement, target, action, reasons, result, seq, prev_hash, hash) "
    "VALUES (1, '2026-11-29 19:00:00.000000', 'walkin', 'ldap', 'revoke', '[]', 'ok', 99, 'x', 'y')",
    "REPLACE INTO audit_log (id, at, entitlement, target, action, reasons, result, seq, prev_hash, hash) "
    "VALUES (2, '2026-11-29 19:00:00.000000', 'walkin', 'ldap', 'revoke', '[]', 'ok', 99, 'x', 'y')",
    # a new id over an existing place in the chain
    "INSERT OR REPLACE INTO audit_log (id, at, entitlement, target, action, reasons, result, seq, prev_hash, hash) "
    "VALUES (500, '2026-11-29 19:00:00.000000', 'walkin', 'ldap', 'revoke', '[]', 'ok', 1, 'x', 'y')",
    # the bulk form that turned 6,000 revokes into grants
    f"REPLACE INTO audit_log ({_COLUMNS}) SELECT id, at, run_id, journal_seq, person_id, user_name, entitlement, "
    "target, member, 'revoke', reasons, evidence, result, detail, actor, seq, prev_hash, hash FROM audit_log",
    f"INSERT OR REPLACE INTO audit_log SELECT {_COLUMNS} FROM audit_log",
    "INSERT INTO audit_log (id, at, entitlement, target, action, reasons, result, seq, prev_hash, hash) "
    "VALUES (3, '2026-11-29 19:00:00.000000', 'walkin', 'ldap', 'revoke', '[]', 'ok', 99, 'x', 'y') "
    "ON CONFLICT (id) DO UPDATE SET action = 'revoke'",
]


@pytest.fixture
def sqlite_store(_sqlite_template, tmp_path):
    store = Store(sqlite_copy(_sqlite_template, tmp_path), auto_migrate=False)
    yield store
    store.dispose()


@pytest.mark.parametrize("statement", REPLACES, ids=["insert-or-replace", "replace", "replace-by-seq",
                                                     "replace-select", "insert-or-replace-select", "upsert"])
def test_sqlite_refuses_a_replace_over_an_entry(sqlite_store, statement):
    """Without PRAGMA recursive_triggers (the sqlite3 shell's default), too."""
    C.grants(sqlite_store, 3, NOON)
    before = _chain(sqlite_store)
    with pytest.raises(DatabaseError, match="audit_log is append-only"), sqlite_store.connection_write() as conn:
        assert conn.exec_driver_sql("PRAGMA recursive_triggers").scalar() == 0
        conn.exec_driver_sql(statement)
    assert _chain(sqlite_store) == before and _intact(sqlite_store) == 3


@pytest.mark.skipif(not POSTGRES_URL, reason="needs WALKIN_TEST_POSTGRES_URL (CI sets it)")
def test_postgresql_refuses_truncate(request):
    """TRUNCATE, which fires no row trigger, is refused by a statement trigger."""
    from tests.conftest import _truncate

    store = request.getfixturevalue("_postgres_store")
    _truncate(store)
    C.grants(store, 3, NOON)
    for statement in ("TRUNCATE audit_log", "TRUNCATE audit_log RESTART IDENTITY CASCADE",
                      "TRUNCATE sync_run, audit_log"):
        with pytest.raises(DatabaseError, match="audit_log is append-only"), store.connection_write() as conn:
            conn.execute(text(statement))
    assert _intact(store) == 3


# ------------------------------------------------------------- migration 0007


@pytest.fixture(params=["sqlite"] + (["postgresql"] if POSTGRES_URL else []))
def blank_url(request, tmp_path):
    """An empty database: SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    admin_url = make_url(POSTGRES_URL)
    name = f"walkin_chain_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate(engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        begin(conn, write=True)
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


_LEGACY = sa.table("audit_log", *(sa.column(c) for c in ("at", "entitlement", "target", "action", "result",
                                                         "person_id", "detail")), sa.column("reasons", sa.JSON))


def test_migration_0007_chains_the_entries_already_there(blank_url):
    """Entries written before 0007 are chained in id order; the triggers stand after
    SQLite's table rebuild; new entries continue the chain; 0007 undoes and redoes."""
    engine = make_engine(blank_url)
    try:
        _migrate(engine, "0006")
        with engine.begin() as conn:
            begin(conn, write=True)
            conn.execute(sa.insert(_LEGACY), [
                {"at": NOON + timedelta(seconds=i), "entitlement": "walkin", "target": "ldap", "action": "grant",
                 "result": "ok", "person_id": f"p{i}", "detail": None, "reasons": ["ENTITLED"]} for i in range(4500)])
        _migrate(engine, "head")
    finally:
        engine.dispose()
    store = Store(blank_url)
    try:
        entries = _chain(store)
        assert [(e["id"], e["seq"]) for e in entries] == [(i, i) for i in range(1, 4501)]
        C.grants(store, 2, NOON + timedelta(hours=2))
        assert _intact(store) == 4502
        with pytest.raises(DatabaseError, match="audit_log is append-only"), store.connection_write() as conn:
            conn.execute(text("UPDATE audit_log SET action = 'revoke' WHERE seq = 1"))
        if store.engine.dialect.name == "sqlite":
            with pytest.raises(DatabaseError, match="audit_log is append-only"), store.connection_write() as conn:
                conn.exec_driver_sql(REPLACES[0])
        _migrate(store.engine, "0006", down=True)
        _migrate(store.engine, "head")
        assert _intact(store) == 4502
    finally:
        store.dispose()


# ------------------------------------------------------------------ checkpoints


def test_the_worker_writes_checkpoints_after_runs_and_hourly(client, store, settings, clock, tmp_path, monkeypatch):
    """At start; after a round whose runs added entries; not after one that added
    none; again once checkpoint_seconds have gone by. Each a new read-only file."""
    from sync.context import build_context
    from sync.worker import Worker
    from tests.sync import people as P

    key, folder = C.make_key(tmp_path), tmp_path / "checkpoints"
    folder.mkdir()
    settings.sync.target = "memory"
    settings.audit.signing_key_path, settings.audit.checkpoint_dir = key, folder
    ctx = build_context(settings, store=store, clock=clock)
    with store.session_write() as s:  # a full run just done: the rounds below run only what the test adds
        s.add(SyncRunRow(kind="full", entitlement="walkin", target="memory", dry_run=False, status="ok",
                         started_at=clock.now(), counts={}, held=[]))
    worker = Worker(ctx, name="w")
    assert worker.step() == 0
    assert len(C.checkpoint_files(folder)) == 1  # at start (the chain may be empty)
    P.create(client, P.person("ann"))
    C.lever(store, clock.now())  # an entry of the admin API's, checkpointed with the next round's
    clock.advance(timedelta(seconds=5))
    assert worker.step() == 1  # ann's event run
    assert len(C.checkpoint_files(folder)) == 2
    clock.advance(timedelta(seconds=60))
    assert worker.step() == 0
    assert len(C.checkpoint_files(folder)) == 2  # nothing added, not due
    clock.advance(timedelta(seconds=3600))
    worker.step()
    files = C.checkpoint_files(folder)
    assert len(files) == 3
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o444 for f in files)
    newest = json.loads(files[-1].read_text())
    with store.connection_read() as conn:
        assert (newest["seq"], newest["hash"]) == head(conn)
    assert newest["count"] == newest["seq"] and newest["at"].endswith("Z")
    result = C.walkin(monkeypatch, settings.database_url, "audit", "verify", "--checkpoints", str(folder),
                      "--public-key", str(key))
    assert result.exit_code == 0 and C.one_line(result).endswith("; 3 checkpoints verified"), result.output


def test_a_checkpoint_never_overwrites_one(store, tmp_path):
    """O_EXCL: a file of the same name is a failure, not a replacement."""
    from sync.checkpoints import CheckpointProblem, load_private_key, sign, write

    key = load_private_key(C.make_key(tmp_path))
    checkpoint = sign(key, seq=0, hash=GENESIS, at=NOON, count=0)
    path = write(tmp_path, checkpoint)
    with pytest.raises(CheckpointProblem, match="cannot write a checkpoint"):
        write(tmp_path, checkpoint)
    assert json.loads(path.read_text())["signature"] == checkpoint.signature


def test_keygen_makes_a_private_and_a_public_key(tmp_path, monkeypatch):
    from sync.checkpoints import load_private_key, load_public_key

    path = tmp_path / "walkin-audit.pem"
    result = C.walkin(monkeypatch, "sqlite:////nonexistent/none.db", "audit", "keygen", str(path))
    assert result.exit_code == 0 and C.one_line(result).startswith(f"wrote {path} (private) and {path}.pub (public)")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    private, public = load_private_key(path), load_public_key(tmp_path / "walkin-audit.pem.pub")
    assert private.public_key().public_bytes_raw() == public.public_bytes_raw()
    again = C.walkin(monkeypatch, "sqlite:////nonexistent/none.db", "audit", "keygen", str(path))
    assert again.exit_code == 1 and C.one_line(again) == f"Error: {path} exists: a key is never overwritten"
