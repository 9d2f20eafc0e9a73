"""The one clock: everything that dates reads it, and nothing else reads the machine's."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connector.certifications import import_certifications
from connector.clock import FrozenClock, SystemClock
from connector.store.models import JournalRow, MemberRow, UserRow
from sync.targets.graph_http import GraphReply
from tests.conftest import AUTH
from tests.faketime import offset_to, pinned_env
from tests.sync import people as P

DENVER = ZoneInfo("America/Denver")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("instant", "day"), [
    (datetime(2027, 7, 1, 5, 30, tzinfo=UTC), date(2027, 6, 30)),  # 23:30 in Denver
    (datetime(2027, 7, 1, 6, 30, tzinfo=UTC), date(2027, 7, 1)),  # 00:30 in Denver
    (datetime(2028, 3, 1, 6, 59, tzinfo=UTC), date(2028, 2, 29)),  # 23:59 MST, leap day
    (datetime(2026, 11, 1, 7, 30, tzinfo=UTC), date(2026, 11, 1)),  # 01:30 MDT→MST night
], ids=["last-half-hour", "first-half-hour", "leap-day", "dst-end"])
def test_the_district_date_is_the_date_in_its_zone(instant, day):
    """today(zone) is the calendar date where the district is, not in UTC."""
    assert FrozenClock(instant).today(DENVER) == day


def test_a_frozen_clock_moves_only_when_told_and_needs_a_zone():
    """set/advance move it; a time without a zone is refused; now() is UTC."""
    clock = FrozenClock(datetime(2026, 11, 29, 12, 0, tzinfo=DENVER))
    assert clock.now() == datetime(2026, 11, 29, 19, 0, tzinfo=UTC) and clock.now().tzinfo is UTC
    assert clock.now() == clock.now()
    assert clock.advance(timedelta(hours=1)) == datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        clock.set(datetime(2026, 11, 29, 12, 0))


def test_the_system_clock_is_the_machines():
    """About the real clock itself: SystemClock reads the machine's time, in UTC."""
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert before <= now <= datetime.now(UTC) and now.tzinfo is UTC


def test_the_service_stamps_with_its_clock(client, store, clock):
    """meta.created/lastModified, a membership's start and journal times are the clock's."""
    clock.set(datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC))
    user = client.post("/scim/v2/Users", json={"userName": "t@d.org"}, headers=AUTH).get_json()
    assert user["meta"]["created"] == user["meta"]["lastModified"] == "2031-01-02T03:04:05.000Z"
    clock.advance(timedelta(days=1))
    group = P.approvers(client, "0123", [user["id"]])
    clock.advance(timedelta(days=1))
    P.patch(client, user["id"], {"op": "replace", "path": "externalId", "value": "T-1"})
    after = client.get(f"/scim/v2/Users/{user['id']}", headers=AUTH).get_json()
    assert after["meta"]["created"] == "2031-01-02T03:04:05.000Z"
    assert after["meta"]["lastModified"] == "2031-01-04T03:04:05.000Z"
    with store.session_read() as s:
        since = s.get(MemberRow, (group, user["id"])).since
        times = sorted(s.scalars(select(JournalRow.at)).all())
    assert _utc(since) == datetime(2031, 1, 3, 3, 4, 5, tzinfo=UTC)
    assert [_utc(t).date() for t in times] == [date(2031, 1, 2), date(2031, 1, 3), date(2031, 1, 3),
                                               date(2031, 1, 4)]


def test_an_import_stamps_with_its_clock(client, store, clock):
    """walkin import certifications dates its change by the clock it is handed."""
    client.post("/scim/v2/Users", json={"userName": "imp@d.org"}, headers=AUTH)
    clock.set(datetime(2030, 5, 6, 7, 8, tzinfo=UTC))
    import_certifications(store, "userName,course,kind,completed_on\nimp@d.org,C,full,2030-05-01\n", clock)
    with store.session_read() as s:
        user = s.scalars(select(UserRow).where(UserRow.user_name == "imp@d.org")).one()
        last = s.scalars(select(JournalRow).order_by(JournalRow.seq.desc())).first()
    assert _utc(user.last_modified) == _utc(last.at) == clock.now()


def test_a_retry_after_date_is_measured_from_the_given_time():
    """Graph's Retry-After as an HTTP date is read against the wall clock handed in."""
    reply = GraphReply(429, {"Retry-After": "Wed, 02 Dec 2026 00:00:10 GMT"}, None)
    assert reply.retry_after(datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC)) == 10.0
    assert reply.retry_after(datetime(2026, 12, 3, tzinfo=UTC)) == 0.0


def test_a_child_process_runs_on_the_tests_clock(clock, faketime_preload):
    """A walkin command started by a test sees the test's instant, and can still sleep."""
    code = ("import time; from connector.clock import SystemClock; t = time.monotonic(); time.sleep(0.2); "
            "print(SystemClock().now().isoformat(), time.monotonic() - t >= 0.2)")
    out = subprocess.run([sys.executable, "-c", code], env=pinned_env({"PATH": "/usr/bin:/bin"}, clock.now(),
                                                                       faketime_preload),
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=30).stdout.split()
    seen = datetime.fromisoformat(out[0])
    assert clock.now() <= seen < clock.now() + timedelta(seconds=10) and out[1] == "True"


def test_a_faketime_offset_reaches_the_wall_time_asked():
    """.ci/run's offsets: seconds from now to the Denver wall time asked, signed."""
    now = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    ahead = datetime(2027, 7, 1, 5, 30, tzinfo=UTC) - now  # 23:30 MDT on June 30
    assert offset_to("2027-06-30T23:30:00", "America/Denver", now.timestamp()) == f"+{int(ahead.total_seconds())}"
    assert offset_to("2026-12-01T14:00:00", "America/Denver", now.timestamp()) == "-3600"  # 21:00 UTC


_READS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
          ("time", "time"), ("time", "time_ns"), ("time", "localtime"), ("time", "gmtime")}


def test_no_module_reads_the_wall_clock_but_the_clock():
    """connector/, mappings/ and sync/ read dates from a Clock only (monotonic timers aside)."""
    found = []
    for package in ("connector", "mappings", "sync"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "connector" / "clock.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
                    owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
                    if (owner, node.attr) in _READS:  # datetime.now, datetime.datetime.now, …
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{node.attr}")
                elif isinstance(node, ast.ImportFrom) and node.module == "time":
                    found += [f"{path.relative_to(ROOT)}:{node.lineno} from time import {a.name}"
                              for a in node.names if ("time", a.name) in _READS]
    assert found == []


def _utc(value: datetime) -> datetime:
    """SQLite gives naive UTC back."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
