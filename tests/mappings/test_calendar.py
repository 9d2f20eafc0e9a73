"""School years, business days and the grant deadline (policy §3 and §7)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mappings.calendar import (
    SchoolCalendar,
    add_business_days,
    grant_deadline,
    is_business_day,
    local_date,
    parse_school_year,
    school_year_label,
)
from mappings.model import Mapping

JULY = SchoolCalendar()
DENVER = ZoneInfo("America/Denver")


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant ``day`` ends in ``zone``: the following local midnight.

    A deadline "by the end of ``day``" is breached at or after this instant.
    """
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)


def is_last_day(calendar: SchoolCalendar, day: date) -> bool:
    """Whether ``day`` is the last day of its school year."""
    following = day + timedelta(days=1)
    return (following.month, following.day) == (calendar.start_month, calendar.start_day)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 6, 30), 2024),
        (date(2025, 7, 1), 2025),
        (date(2025, 12, 31), 2025),
        (date(2026, 1, 1), 2025),
        (date(2026, 6, 30), 2025),
        (date(2026, 7, 1), 2026),
    ],
    ids=["june-30", "july-1", "new-years-eve", "new-years-day", "last-day", "next-first-day"],
)
def test_school_year_of_a_date(day: date, expected: int) -> None:
    """SY(d) is named by the calendar year it starts in."""
    assert JULY.school_year(day) == expected


@pytest.mark.parametrize(
    ("calendar", "school_year", "first", "last"),
    [
        (JULY, 2025, date(2025, 7, 1), date(2026, 6, 30)),
        (JULY, 2027, date(2027, 7, 1), date(2028, 6, 30)),
        (SchoolCalendar(8, 15), 2025, date(2025, 8, 15), date(2026, 8, 14)),
        (SchoolCalendar(3, 1), 2027, date(2027, 3, 1), date(2028, 2, 29)),
        (SchoolCalendar(1, 1), 2026, date(2026, 1, 1), date(2026, 12, 31)),
    ],
    ids=["july-2025", "july-2027", "august-15", "march-1-leap", "calendar-year"],
)
def test_first_and_last_day(calendar: SchoolCalendar, school_year: int, first: date, last: date) -> None:
    """A school year runs from its start month-day to the day before the next one."""
    assert calendar.first_day(school_year) == first
    assert calendar.last_day(school_year) == last
    assert is_last_day(calendar, last)
    assert not is_last_day(calendar, first)
    assert calendar.school_year(first) == calendar.school_year(last) == school_year


def test_a_start_that_is_not_in_every_year_is_refused() -> None:
    """February 29 cannot start a school year."""
    with pytest.raises(ValueError, match="day is out of range"):
        SchoolCalendar(2, 29)


@pytest.mark.parametrize(
    ("school_year", "label"),
    [(2025, "2025-26"), (2026, "2026-27"), (1999, "1999-00"), (2009, "2009-10")],
    ids=["2025", "2026", "century", "decade"],
)
def test_school_year_label(school_year: int, label: str) -> None:
    """School years are displayed as 2025-26."""
    assert school_year_label(school_year) == label
    assert parse_school_year(label) == school_year
    assert parse_school_year(school_year) == school_year


@pytest.mark.parametrize(
    "text", ["2026-28", "2026/27", "26-27", "2026", True, 2026.0], ids=["gap", "slash", "short", "str", "bool", "float"]
)
def test_parse_school_year_refuses(text: object) -> None:
    """Only 2026 or '2026-27' name a school year."""
    with pytest.raises(ValueError, match="invalid school year"):
        parse_school_year(text)  # type: ignore[arg-type]


HOLIDAYS = frozenset({date(2026, 11, 26), date(2026, 11, 27), date(2026, 12, 25)})


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 23), True),  # Monday
        (date(2026, 11, 26), False),  # Thanksgiving
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 11, 29), False),  # Sunday
    ],
    ids=["monday", "holiday", "saturday", "sunday"],
)
def test_is_business_day(day: date, expected: bool) -> None:
    """Saturdays, Sundays and holidays are not business days."""
    assert is_business_day(day, HOLIDAYS) is expected


@pytest.mark.parametrize(
    ("entitled_since", "deadline"),
    [
        (date(2026, 11, 16), date(2026, 11, 18)),  # Monday → Wednesday
        (date(2026, 11, 19), date(2026, 11, 23)),  # Thursday → Friday, weekend → Monday
        (date(2026, 11, 20), date(2026, 11, 24)),  # Friday → Tuesday
        (date(2026, 11, 21), date(2026, 11, 24)),  # Saturday → Tuesday
        (date(2026, 11, 22), date(2026, 11, 24)),  # Sunday → Tuesday
        (date(2026, 11, 24), date(2026, 11, 30)),  # Tuesday → Wednesday, holidays, weekend → Monday
        (date(2026, 11, 25), date(2026, 12, 1)),  # Wednesday before Thanksgiving → Tuesday
        (date(2026, 12, 23), date(2026, 12, 28)),  # over Christmas Day
    ],
    ids=["monday", "thursday", "friday", "saturday", "sunday", "tuesday-thanksgiving", "wednesday-thanksgiving", "christmas"],
)
def test_grant_deadline(entitled_since: date, deadline: date) -> None:
    """Access is due by the end of the second business day after entitled_since."""
    assert grant_deadline(entitled_since, HOLIDAYS) == deadline


def test_grant_deadline_with_the_shipped_holidays(mapping: Mapping) -> None:
    """The shipped holiday list moves the deadline past Thanksgiving."""
    assert grant_deadline(date(2026, 11, 25), mapping.policy.holiday_set) == date(2026, 12, 1)


def test_add_business_days_needs_a_positive_count() -> None:
    """Zero business days after a date is not a day."""
    with pytest.raises(ValueError, match="at least 1"):
        add_business_days(date(2026, 11, 23), 0, HOLIDAYS)


def test_end_of_day_is_local_midnight() -> None:
    """The end of a district day is the next local midnight (MST is UTC-7)."""
    end = end_of_day(date(2026, 12, 1), DENVER)
    assert end.astimezone(UTC) == datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 1, 13, 3, 0, tzinfo=UTC), date(2026, 1, 12)),
        (datetime(2026, 1, 13, 3, 0), date(2026, 1, 12)),
        (datetime(2026, 7, 1, 6, 30, tzinfo=UTC), date(2026, 7, 1)),
    ],
    ids=["evening-in-denver", "naive-is-utc", "summer-time"],
)
def test_local_date(instant: datetime, expected: date) -> None:
    """Instants become district calendar dates."""
    assert local_date(instant, DENVER) == expected
