"""``walkin import certifications``: idempotent, bad rows reported, journalled."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from connector.certifications import import_certifications
from connector.cli import main
from connector.store.models import JournalRow, UserRow
from tests.conftest import AUTH

WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

CSV = """userName,course,kind,completed_on
Alice@d.org,Walk-In Scheduling Certification,full,2025-09-15
bob@d.org,Walk-In Scheduling Certification,recert,2026-05-01
nobody@d.org,Walk-In Scheduling Certification,full,2025-09-15
alice@d.org,Walk-In Scheduling Certification,quiz,2025-09-15
alice@d.org,Walk-In Scheduling Certification,full,15/09/2025
alice@d.org,,full,2025-09-15
"""


def _certs(store, user_name):
    with store.session_read() as s:
        row = s.scalar(select(UserRow).where(UserRow.user_name == user_name))
        return (row.data.get(WALKIN) or {}).get("certifications", [])


def _setup(client):
    client.post("/scim/v2/Users", json={"userName": "alice@d.org"}, headers=AUTH)
    client.post("/scim/v2/Users", json={"userName": "bob@d.org", ENT: {"employeeNumber": "E-2"},
                                        WALKIN: {"jobCode": "1001"}}, headers=AUTH)


def test_import_adds_good_rows_and_reports_bad_ones_by_line(client, store, clock):
    """Good rows land; each bad row is named with its line number."""
    _setup(client)
    report = import_certifications(store, CSV, clock)
    assert report.added == 2 and report.users_changed == 2
    assert report.errors == [
        "line 4: no user with userName 'nobody@d.org'",
        "line 5: kind must be 'full' or 'recert', not 'quiz'",
        "line 6: completion date '15/09/2025' is not YYYY-MM-DD",
        "line 7: no course name",
    ]
    assert _certs(store, "alice@d.org") == [
        {"course": "Walk-In Scheduling Certification", "kind": "full", "completedOn": "2025-09-15"}]
    assert _certs(store, "bob@d.org")[0]["kind"] == "recert"


def test_reimporting_changes_nothing(client, store, clock):
    """The same file twice: no new completions, no new version, no journal entry."""
    _setup(client)
    import_certifications(store, CSV, clock)
    with store.session_read() as s:
        journal = len(s.scalars(select(JournalRow)).all())
        versions = dict(s.execute(select(UserRow.user_name, UserRow.version)).all())
    again = import_certifications(store, CSV, clock)
    assert again.added == 0 and again.unchanged == 2
    with store.session_read() as s:
        assert len(s.scalars(select(JournalRow)).all()) == journal
        assert dict(s.execute(select(UserRow.user_name, UserRow.version)).all()) == versions


def test_import_journals_like_a_scim_write(client, store, clock):
    """Imported completions reach the change journal (source 'import')."""
    _setup(client)
    import_certifications(store, "employeeNumber,course,kind,completion_date\nE-2,X,full,2026-01-10\n", clock)
    with store.session_read() as s:
        last = s.scalars(select(JournalRow).order_by(JournalRow.seq.desc())).first()
    assert last.event == "user.updated" and last.source == "import"
    assert last.detail["certifications"][1] == [{"course": "X", "kind": "full", "completedOn": "2026-01-10"}]


def test_cli_exit_status_and_header_errors(client, settings, store, clock, tmp_path, monkeypatch):
    """The command reports rows and exits 1 when any row was bad; a bad header is an error."""
    _setup(client)
    monkeypatch.setenv("WALKIN_DATABASE_URL", settings.database_url)
    good = tmp_path / "good.csv"
    good.write_text("userName,course,kind,completed_on\nalice@d.org,C,full,2025-01-01\n")
    result = CliRunner().invoke(main, ["import", "certifications", str(good)], obj=clock)
    assert result.exit_code == 0, result.output
    assert "1 completions added to 1 users" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV)
    assert CliRunner().invoke(main, ["import", "certifications", str(bad)], obj=clock).exit_code == 1
    header = tmp_path / "header.csv"
    header.write_text("who,what\n")
    result = CliRunner().invoke(main, ["import", "certifications", str(header)], obj=clock)
    assert result.exit_code == 1 and "header lacks" in result.output
