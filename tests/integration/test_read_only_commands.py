"""Commands that only read (``walkin audit``, ``explain``, ``sync --dry-run``) open
the store read-only: they never migrate, never wait for a writer, create no file,
and a store that is missing or behind this release's schema is one clear line
(issue 12)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from connector.cli import main
from connector.store.database import Store
from connector.store.engine import SchemaBehind
from tests.integration.test_cli import _env
from tests.sync import people as P


def test_a_read_only_store_refuses_writes_and_reads(store, database_url):
    """On SQLite and PostgreSQL the database itself refuses a write through a
    read-only store; reads work."""
    P_ = Store(database_url, read_only=True)
    try:
        with P_.session_read() as s:
            assert s.scalar(text("SELECT count(*) FROM scim_user")) == 0
        with pytest.raises(DBAPIError):
            with P_.session_write() as s:
                s.execute(text("INSERT INTO store_setting (name, value) VALUES ('x', 'y')"))
    finally:
        P_.dispose()
    with store.session_read() as s:
        assert s.scalar(text("SELECT count(*) FROM store_setting WHERE name = 'x'")) == 0


def test_a_missing_sqlite_store_is_one_line_and_no_file_is_made(tmp_path, monkeypatch, clock):
    path = tmp_path / "nowhere.db"
    monkeypatch.setenv("WALKIN_DATABASE_URL", f"sqlite:///{path}")
    result = CliRunner().invoke(main, ["audit"], obj=clock)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no store at {path}: run `walkin migrate` (or start `walkin serve`) to create it"]
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_a_store_behind_the_schema_says_run_walkin_migrate(tmp_path, monkeypatch, clock):
    """An old (here: empty) schema is not migrated by a read-only command: it says so."""
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    with pytest.raises(SchemaBehind, match=r"schema revision none \(empty\), this release needs 0\d+\w*: "
                                           r"run `walkin migrate`"):
        Store(f"sqlite:///{path}", read_only=True)
    monkeypatch.setenv("WALKIN_DATABASE_URL", f"sqlite:///{path}")
    for command in (["audit"], ["explain", "someone"]):
        result = CliRunner().invoke(main, command, obj=clock)
        assert result.exit_code == 1, result.output
        assert "run `walkin migrate`" in result.output and "Traceback" not in result.output
    with sqlite3.connect(path) as conn:  # nothing was created in it
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_audit_and_a_dry_run_answer_while_a_writer_holds_the_sqlite_store(client, slapd, sync_settings, clock,
                                                                          monkeypatch, database_url):
    """Another process holding the write lock for a long transaction (a 1 MB PATCH,
    a bulk import) no longer makes `walkin audit` fail with "database is locked"
    after the 30 s busy timeout: readers do not queue behind a writer."""
    if not database_url.startswith("sqlite"):
        return  # PostgreSQL readers never waited for writers; the refusal test above covers it there
    _env(monkeypatch, sync_settings)
    slapd.add_people(["r1"])
    uid = P.create(client, P.person("r1"))
    P.approvers(client, "0123", [uid])
    runner = CliRunner()
    assert runner.invoke(main, ["sync"], obj=clock).exit_code == 0

    path = database_url.removeprefix("sqlite:///")
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE scim_user SET version = version")
        holding.set()
        release.wait(30)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        audit = runner.invoke(main, ["audit", "--user", "r1", "--format", "json"], obj=clock)
        dry = runner.invoke(main, ["sync", "--dry-run"], obj=clock)
        explained = runner.invoke(main, ["explain", "r1"], obj=clock)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        thread.join()
    assert audit.exit_code == 0, audit.output
    assert '"action": "grant"' in audit.output
    assert dry.exit_code == 0, dry.output
    assert explained.exit_code == 0, explained.output
    assert elapsed < 10  # not the 30 s busy timeout


def test_evaluate_and_check_target_open_no_store(tmp_path, monkeypatch, clock):
    """`walkin evaluate` decides from a facts file and `walkin check-target` asks the
    directory: neither opens the store, so neither can write it (nor create it)."""
    from tests.mappings.test_cli import facts_file, person_json

    path = tmp_path / "never.db"
    monkeypatch.setenv("WALKIN_DATABASE_URL", f"sqlite:///{path}")
    facts = facts_file(tmp_path, person_json())
    result = CliRunner().invoke(main, ["evaluate", str(facts), "--at", "2026-11-29", "--entitlement", "walkin"],
                                obj=clock)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("WALKIN_SYNC__TARGET", "memory")
    checked = CliRunner().invoke(main, ["check-target"], obj=clock)
    assert checked.exit_code == 1 and "the mapping names no memory group" in checked.output, checked.output
    assert not path.exists() and not list(tmp_path.glob("never.db*"))
