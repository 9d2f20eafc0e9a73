"""``walkin audit verify`` names what was done to the trail — an entry changed, one
removed from the middle, one inserted, two swapped, the newest removed, the chain
rebuilt, a checkpoint forged — by the database's owner, who can get past the
triggers; and an export verifies offline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from sync.checkpoints import sign
from tests.conftest import NOON
from tests.sync import chain as C

DAY2 = NOON + timedelta(days=1)


@pytest.fixture
def trail(store):
    """Six entries: five grants of a run, then an administrator's act."""
    C.grants(store, 5, NOON)
    C.lever(store, NOON + timedelta(minutes=1))
    return store


@pytest.fixture
def signed(trail, tmp_path):
    """The trail, a signing key and one checkpoint of its head (seq 6)."""
    key = C.make_key(tmp_path)
    C.checkpointer(trail, key, tmp_path / "checkpoints").write_now(NOON + timedelta(minutes=2))
    return key, tmp_path / "checkpoints"


def verify(monkeypatch, settings, *args: str):
    return C.walkin(monkeypatch, settings.database_url, "audit", "verify", *args)


def test_an_untouched_chain_verifies(trail, settings, monkeypatch):
    """Six entries, seq 1–6, exit 0."""
    result = verify(monkeypatch, settings)
    assert result.exit_code == 0 and C.one_line(result).startswith("audit chain intact: 6 entries, seq 1–6, head ")


def test_an_empty_chain_verifies(store, settings, monkeypatch):
    result = verify(monkeypatch, settings)
    assert result.exit_code == 0 and C.one_line(result) == "audit chain intact: no entries"


def _swap(conn, a: int, b: int) -> None:
    for old, new in ((a, -1), (b, a), (-1, b)):
        conn.execute(text("UPDATE audit_log SET seq = :new WHERE seq = :old"), {"old": old, "new": new})


def _insert_at(conn, seq: int) -> None:
    """Move the entries from ``seq`` on one place up and put a forged one there, linked
    and hashed as walkin would."""
    from connector.store.chain import entry_hash

    top = conn.scalar(text("SELECT max(seq) FROM audit_log"))
    for s in range(top, seq - 1, -1):
        conn.execute(text("UPDATE audit_log SET seq = seq + 1 WHERE seq = :s"), {"s": s})
    prev = conn.scalar(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq - 1})
    forged = {"seq": seq, "prev_hash": prev, "at": NOON, "run_id": None, "journal_seq": None, "person_id": "px",
              "user_name": "mallory", "entitlement": "walkin", "target": "ldap", "member": "uid=mallory",
              "action": "grant", "reasons": [], "evidence": None, "result": "ok", "detail": None, "actor": None}
    forged["hash"] = entry_hash(forged)
    conn.execute(text("INSERT INTO audit_log (seq, prev_hash, hash, at, entitlement, target, action, reasons, result, "
                      "person_id, user_name, member) VALUES (:seq, :prev_hash, :hash, :at, :entitlement, :target, "
                      ":action, '[]', :result, :person_id, :user_name, :member)"), forged)


def _rehashed(conn, seq: int) -> None:
    """Change the entry at ``seq`` and recompute its own hash (not the next one's link)."""
    from connector.store.chain import entry_hash
    from sync.audit_export import from_store

    [entry] = [e for e in from_store(conn) if e["seq"] == seq]
    entry["action"] = "revoke"
    conn.execute(text("UPDATE audit_log SET action = 'revoke', hash = :h WHERE seq = :s"),
                 {"h": entry_hash(entry), "s": seq})


TAMPERING = [
    (lambda c: c.execute(text("UPDATE audit_log SET action = 'revoke' WHERE seq = 3")),
     "audit chain broken: changed at seq 3 (id 3): its content does not match its hash"),
    (lambda c: c.execute(text("UPDATE audit_log SET at = at + interval '1 second' WHERE seq = 2"))
     if c.dialect.name == "postgresql" else
     c.execute(text("UPDATE audit_log SET at = replace(at, '19:00:00', '19:00:01') WHERE seq = 2")),
     "audit chain broken: changed at seq 2 (id 2): its content does not match its hash"),
    (lambda c: c.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 6")),
     "audit chain broken: changed at seq 6 (id 6): its content does not match its hash"),
    (lambda c: _rehashed(c, 3),
     "audit chain broken: changed at seq 3 (id 3): its hash is not the one seq 4 links to: it was changed and its "
     "hash recomputed, or replaced"),
    (lambda c: c.execute(text("DELETE FROM audit_log WHERE seq = 3")),
     "audit chain broken: removed at seq 3: seq 3 missing before seq 4"),
    (lambda c: c.execute(text("DELETE FROM audit_log WHERE seq IN (2, 3)")),
     "audit chain broken: removed at seq 2: seq 2–3 missing before seq 4"),
    (lambda c: c.execute(text("DELETE FROM audit_log WHERE seq = 1")),
     "audit chain broken: removed at seq 1: seq 1 missing before seq 2"),
    (lambda c: _swap(c, 3, 4),
     "audit chain broken: reordered at seq 3 (id 4): it links to seq 4 (id 3), which comes after it: entries moved"),
    (lambda c: _insert_at(c, 4),
     "audit chain broken: inserted at seq 4: seq 5 links to seq 3: the entries from seq 4 were put in between"),
    (lambda c: c.execute(text("DELETE FROM audit_log WHERE seq >= 5")),
     "audit chain broken: truncated at seq 5: the chain head records seq 6, the newest entry is seq 4"),
]


@pytest.mark.parametrize(("tamper", "expected"), TAMPERING, ids=[
    "changed-action", "changed-time", "changed-actor", "changed-and-rehashed", "removed-middle", "removed-two", "removed-first", "swapped",
    "inserted", "newest-removed-head-left"])
def test_tampering_is_named_by_verify(trail, settings, monkeypatch, tamper, expected):
    """Each change the owner makes past the triggers: exit 1, one line naming the entry."""
    with C.as_owner(trail) as conn:
        tamper(conn)
    result = verify(monkeypatch, settings)
    assert result.exit_code == 1
    assert C.one_line(result) == f"Error: {expected}"


def test_the_newest_entries_removed_are_caught_by_a_checkpoint(trail, signed, settings, monkeypatch):
    """The owner removes seq 5–6 and moves the chain head back: the chain is consistent,
    the head agrees; the checkpoint of seq 6 does not."""
    key, folder = signed
    with C.as_owner(trail) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 5"))
        conn.execute(text("UPDATE audit_chain_head SET seq = 4, hash = (SELECT hash FROM audit_log WHERE seq = 4)"))
    assert verify(monkeypatch, settings).exit_code == 0  # the chain alone cannot tell
    result = verify(monkeypatch, settings, "--checkpoints", str(folder), "--public-key", f"{key}.pub")
    assert result.exit_code == 1
    [name] = [p.name for p in C.checkpoint_files(folder)]
    assert C.one_line(result) == (
        f"Error: audit chain broken: truncated at seq 5: checkpoint {name} of 2026-11-29T19:02:00.000000Z saw the "
        "chain up to seq 6; it ends at seq 4 now: its newest entries were removed")


def test_a_rebuilt_chain_is_caught_by_a_checkpoint(trail, signed, settings, monkeypatch):
    """Entry 2 changed and every hash after it recomputed (head too): consistent, but
    seq 6's hash is not the one signed."""
    key, folder = signed
    C.rebuild(trail, 2, {"action": "revoke"})
    assert verify(monkeypatch, settings).exit_code == 0
    result = verify(monkeypatch, settings, "--checkpoints", str(folder), "--public-key", str(key))
    assert result.exit_code == 1
    assert C.one_line(result).startswith(
        "Error: audit chain broken: rebuilt at seq 6: its hash is not the one checkpoint ")
    assert C.one_line(result).endswith("signed: the chain was rebuilt up to here")


def test_a_rebuilt_chain_signed_with_another_key_is_caught(trail, signed, settings, monkeypatch, tmp_path):
    """The owner rebuilds the chain, removes the checkpoint and signs their own with
    their key: its signature does not verify with walkin's public key."""
    from sync.checkpoints import load_private_key, write

    key, folder = signed
    C.rebuild(trail, 2, {"action": "revoke"})
    [real] = C.checkpoint_files(folder)
    real.unlink()
    theirs = load_private_key(C.make_key(tmp_path, "mallory.pem"))
    with trail.connection_read() as conn:
        seq, hash_ = conn.execute(text("SELECT seq, hash FROM audit_chain_head")).one()
    write(folder, sign(theirs, seq=seq, hash=hash_, at=NOON + timedelta(minutes=3), count=seq))
    result = verify(monkeypatch, settings, "--checkpoints", str(folder), "--public-key", f"{key}.pub")
    assert result.exit_code == 1
    line = C.one_line(result)
    assert line.startswith("Error: audit chain broken: forged at seq 6: checkpoint ")
    assert "is not signed by key " in line and "forged, or altered" in line


def test_checkpoints_verify_with_the_configured_key(trail, signed, settings, monkeypatch):
    """Without --public-key, the public half of WALKIN_AUDIT__SIGNING_KEY_PATH."""
    key, folder = signed
    C.grants(trail, 2, DAY2, first=10)
    result = C.walkin(monkeypatch, settings.database_url, "audit", "verify", "--checkpoints", str(folder),
                      WALKIN_AUDIT__SIGNING_KEY_PATH=str(key), WALKIN_AUDIT__CHECKPOINT_DIR=str(folder))
    assert result.exit_code == 0
    assert C.one_line(result).endswith("; 1 checkpoint verified")


def test_an_empty_checkpoint_folder_is_a_failure(trail, settings, monkeypatch, tmp_path):
    """Asked to check against checkpoints and none are there (removed?): not intact."""
    key = C.make_key(tmp_path)
    (tmp_path / "none").mkdir()
    result = verify(monkeypatch, settings, "--checkpoints", str(tmp_path / "none"), "--public-key", str(key))
    assert result.exit_code == 1 and C.one_line(result) == f"Error: no checkpoints in {tmp_path / 'none'}"


# ------------------------------------------------------------------ exports


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_verifies_offline(trail, settings, monkeypatch, tmp_path, fmt):
    """Export the whole trail; verify the file with no database (a URL that does not exist)."""
    out = tmp_path / f"audit.{fmt}"
    result = C.walkin(monkeypatch, settings.database_url, "audit", "export", "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.output
    offline = C.walkin(monkeypatch, "sqlite:////nonexistent/none.db", "audit", "verify", "--file", str(out))
    assert offline.exit_code == 0, offline.output
    assert C.one_line(offline).startswith("audit chain intact: 6 entries, seq 1–6, head ")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_from_mid_chain_verifies_against_checkpoints(trail, signed, settings, monkeypatch, tmp_path, fmt):
    """--since the second day: the export starts at seq 7 and verifies from its first
    entry's prev_hash; the later checkpoint is held against it, the earlier one is
    outside it."""
    key, folder = signed
    C.grants(trail, 3, DAY2, first=20)
    C.checkpointer(trail, key, folder).write_now(DAY2 + timedelta(minutes=1))
    out = tmp_path / f"since.{fmt}"
    C.walkin(monkeypatch, settings.database_url, "audit", "export", "--since", "2026-11-30", "--format", fmt,
             "--output", str(out))
    result = C.walkin(monkeypatch, "sqlite:////nonexistent/none.db", "audit", "verify", "--file", str(out),
                      "--checkpoints", str(folder), "--public-key", f"{key}.pub")
    assert result.exit_code == 0, result.output
    line = C.one_line(result)
    assert line.startswith("audit chain intact: 3 entries, seq 7–9, head ")
    assert line.endswith("; 1 checkpoint verified (1 before the export not covered)")


def test_a_changed_export_is_named(trail, settings, monkeypatch, tmp_path):
    """An export edited after the fact (a revoke turned into a grant, a line dropped)."""
    out = tmp_path / "audit.jsonl"
    C.walkin(monkeypatch, settings.database_url, "audit", "export", "--output", str(out))
    lines = out.read_text().splitlines()
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([*lines[:3], lines[3].replace('"grant"', '"revoke"'), *lines[4:]]) + "\n")
    result = C.walkin(monkeypatch, settings.database_url, "audit", "verify", "--file", str(edited))
    assert result.exit_code == 1
    assert C.one_line(result) == "Error: audit chain broken: changed at seq 4 (id 4): its content does not match its hash"
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    result = C.walkin(monkeypatch, settings.database_url, "audit", "verify", "--file", str(dropped))
    assert C.one_line(result) == "Error: audit chain broken: removed at seq 3: seq 3 missing before seq 4"


def test_export_never_overwrites_a_file(trail, settings, monkeypatch, tmp_path):
    out = tmp_path / "audit.jsonl"
    out.write_text("keep")
    result = C.walkin(monkeypatch, settings.database_url, "audit", "export", "--output", str(out))
    assert result.exit_code == 1 and out.read_text() == "keep"
    assert C.one_line(result) == f"Error: {out} exists: an export never overwrites a file"


def test_a_file_that_is_not_an_export_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = C.walkin(monkeypatch, "sqlite:////nonexistent/none.db", "audit", "verify", "--file", str(path))
    assert result.exit_code == 1
    assert C.one_line(result) == (f"Error: {path} is not an export of the audit chain (JSON Lines, or CSV with its "
                                  "header)")
