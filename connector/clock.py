"""The one clock: what time it is, for everything that dates or schedules.

Every part of walkin that stamps a time (a resource's ``meta``, a group membership's
start — the date an approval counts from —, journal events, sync runs and jobs,
audit entries, imported certifications) or asks what day it is in the district (the
policy's evaluation date) is handed a :class:`Clock`; nothing else reads the wall
clock. Production runs on :class:`SystemClock`; tests, and a rehearsal on another
date, hand in a :class:`FrozenClock`, so the SCIM service and the sync worker of one
test see the same instant.

Monotonic timers (timeouts, retry back-off, rate budgets) are not dates and use
``time.monotonic`` where they are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, date, datetime, timedelta, tzinfo


class Clock(ABC):
    """What time it is. :meth:`now` is the only method a clock must provide."""

    @abstractmethod
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""

    def today(self, zone: tzinfo) -> date:
        """The calendar date at :meth:`now` in ``zone`` (the district's time zone:
        the policy's dates are district dates)."""
        return self.now().astimezone(zone).date()


class SystemClock(Clock):
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FrozenClock(Clock):
    """A clock that stands still until it is told to move (:meth:`set`,
    :meth:`advance`). Shared by reference: whoever holds it sees every move."""

    def __init__(self, at: datetime) -> None:
        self._at = _aware(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = _aware(at)

    def advance(self, delta: timedelta) -> datetime:
        self._at += delta
        return self._at

    def __repr__(self) -> str:
        return f"FrozenClock({self._at.isoformat()})"


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a clock's time must carry its time zone, not {at.isoformat()}")
    return at.astimezone(UTC)


def of_command() -> Clock:
    """The clock a ``walkin`` command runs on: the one its caller handed to click as
    the context object (``main(obj=clock)``; tests do this) or the machine's."""
    import click

    context = click.get_current_context(silent=True)
    # click types find_object for concrete classes; it only does an isinstance check.
    found = context.find_object(Clock) if context is not None else None  # type: ignore[type-abstract]
    return found if found is not None else SystemClock()
