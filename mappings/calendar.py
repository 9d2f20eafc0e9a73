"""School years and business days in the district's calendar (policy §3 and §7).

Pure date arithmetic: nothing here reads a clock. A school year is named by the
calendar year it starts in, so the school year 2025 runs 2025-07-01 .. 2026-06-30
(with the default July 1 start) and is displayed ``2025-26``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

#: The days a person may name in a command or request (a report's period, an evaluation
#: day, an override's end): the school years a district keeps records of, with room.
#: Beyond them, date arithmetic (the day after, a zone's midnight in UTC) would leave
#: Python's calendar.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)

ONE_DAY = timedelta(days=1)

#: Business days after ``entitled_since`` within which access must be granted
#: (the access page: "within two business days").
GRANT_BUSINESS_DAYS = 2


@dataclass(frozen=True, slots=True)
class SchoolCalendar:
    """The month-day on which every school year starts (policy §3, a setting)."""

    start_month: int = 7
    start_day: int = 1

    def __post_init__(self) -> None:
        # 2001 is not a leap year: a start of 02-29 would not exist in most years.
        date(2001, self.start_month, self.start_day)

    def school_year(self, day: date) -> int:
        """``SY(day)``: the first calendar year of the school year containing ``day``."""
        if (day.month, day.day) >= (self.start_month, self.start_day):
            return day.year
        return day.year - 1

    def first_day(self, school_year: int) -> date:
        """The first day of ``school_year``."""
        return date(school_year, self.start_month, self.start_day)

    def last_day(self, school_year: int) -> date:
        """The last day of ``school_year``: the day before the next one starts."""
        return self.first_day(school_year + 1) - ONE_DAY


def school_year_label(school_year: int) -> str:
    """Display a school year the district's way: 2025 → ``2025-26``."""
    return f"{school_year}-{(school_year + 1) % 100:02d}"


def parse_school_year(value: int | str) -> int:
    """Read a school year written as ``2026`` or ``"2026-27"``.

    :raises ValueError: when the text is not a school year.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid school year {value!r}")
    if isinstance(value, int):
        year = value
    elif isinstance(value, str) and len(value) == 7 and value[4] == "-" and value.replace("-", "").isdigit():
        year = int(value[:4])
        if school_year_label(year) != value:
            raise ValueError(f"invalid school year {value!r}: expected {school_year_label(year)!r}")
    else:
        raise ValueError(f"invalid school year {value!r}: write it as 2026 or '2026-27'")
    if not 1900 <= year <= 9998:
        raise ValueError(f"invalid school year {value!r}")
    return year


def is_business_day(day: date, holidays: Collection[date]) -> bool:
    """Whether ``day`` is a working day: not Saturday, not Sunday, not a holiday."""
    return day.weekday() < 5 and day not in holidays


def add_business_days(day: date, count: int, holidays: Collection[date]) -> date:
    """The ``count``-th business day strictly after ``day`` (``count`` >= 1)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    while count:
        day += ONE_DAY
        if is_business_day(day, holidays):
            count -= 1
    return day


def grant_deadline(entitled_since: date, holidays: Collection[date]) -> date:
    """The day by whose end access must be granted (policy §7).

    That is the second business day after ``entitled_since``: entitled on a Friday,
    the group must hold the person by the end of the following Tuesday.
    """
    return add_business_days(entitled_since, GRANT_BUSINESS_DAYS, holidays)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The district calendar date of ``instant``; a naive instant is taken as UTC.

    Stores commonly keep timestamps in naive UTC; policy dates are local (§2).
    """
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(zone).date()
