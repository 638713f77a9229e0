"""Date windows: planning the half-open ``[start, end)`` ranges one export request covers.

Pure functions over aware UTC datetimes. A vendor states its granularity (whole days in a
timezone, or seconds) and how far back it can serve; the planner does the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


def utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def rfc3339(value: dt.datetime) -> str:
    """Format an instant as RFC 3339 in UTC, the form bookmarks and logs use."""
    return utc(value).isoformat()


@dataclass(frozen=True)
class Window:
    """A half-open range ``[start, end)`` of event time, in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __str__(self) -> str:
        """Render as ``[start, end)`` for logs and error messages."""
        return f"[{rfc3339(self.start)}, {rfc3339(self.end)})"

    def halves(self, granularity: Granularity) -> tuple[Window, Window] | None:
        """Split in two at a granularity boundary, or ``None`` when it is one unit wide."""
        middle = granularity.floor(self.start + (self.end - self.start) / 2)
        if middle <= self.start or middle >= self.end:
            return None
        return Window(self.start, middle), Window(middle, self.end)


class Granularity:
    """How finely a vendor's from/to parameters can express time."""

    unit: dt.timedelta

    def floor(self, value: dt.datetime) -> dt.datetime:
        """Round down to a boundary the vendor can express."""
        raise NotImplementedError

    def ceil(self, value: dt.datetime) -> dt.datetime:
        """Round up to a boundary the vendor can express."""
        floored = self.floor(value)
        return floored if floored == value else self.advance(floored, self.unit)

    def advance(self, value: dt.datetime, step: dt.timedelta) -> dt.datetime:
        """Move a boundary forward by ``step``."""
        return value + step

    def align(self, value: dt.datetime, step: dt.timedelta) -> dt.datetime:
        """Round down to the grid of ``step``-wide windows counted from the unix epoch.

        Windows on a fixed grid are the same in every run, so a window extracted again (after a
        lookback, or a resume) covers exactly what it covered before.
        """
        floored = utc(self.floor(value))
        epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
        return epoch + (floored - epoch) // step * step

    def check_step(self, step: dt.timedelta) -> str | None:
        """Explain why ``step`` cannot be a window size here, or return ``None`` if it can."""
        if step <= dt.timedelta(0):
            return "must be longer than zero"
        if step % self.unit:
            return f"must be a whole number of {self.describe()}"
        return None

    def describe(self) -> str:
        """Name the unit for messages."""
        raise NotImplementedError


class SecondGranularity(Granularity):
    """Timestamps with one-second resolution (unix seconds, ``YYYY-MM-DDTHH:MM:SS``)."""

    unit = dt.timedelta(seconds=1)

    def floor(self, value: dt.datetime) -> dt.datetime:  # noqa: D102
        return utc(value).replace(microsecond=0)

    def describe(self) -> str:  # noqa: D102
        return "seconds"


class DayGranularity(Granularity):
    """Whole calendar days in a timezone (``yyyy-MM-dd`` parameters, inclusive on both ends)."""

    unit = dt.timedelta(days=1)

    def __init__(self, timezone: str) -> None:
        """Days begin at midnight in ``timezone``."""
        self.tz = ZoneInfo(timezone)

    def local_date(self, value: dt.datetime) -> dt.date:
        """The calendar date of an instant in this timezone."""
        return utc(value).astimezone(self.tz).date()

    def midnight(self, day: dt.date) -> dt.datetime:
        """The UTC instant at which ``day`` begins in this timezone."""
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz).astimezone(UTC)

    def floor(self, value: dt.datetime) -> dt.datetime:  # noqa: D102
        return self.midnight(self.local_date(value))

    def align(self, value: dt.datetime, step: dt.timedelta) -> dt.datetime:
        """Round down to the grid of ``step``-day windows counted in local days from 1970-01-01."""
        day = self.local_date(value)
        offset = (day - dt.date(1970, 1, 1)).days % max(1, step.days)
        return self.midnight(day - dt.timedelta(days=offset))

    def advance(self, value: dt.datetime, step: dt.timedelta) -> dt.datetime:
        """Move forward by whole local days, so DST changes keep windows on midnights."""
        return self.midnight(self.local_date(value) + dt.timedelta(days=step.days))

    def inclusive_dates(self, window: Window) -> tuple[dt.date, dt.date]:
        """The first and last day a window covers, for APIs whose dates are inclusive."""
        return self.local_date(window.start), self.local_date(window.end - self.unit / 2)

    def describe(self) -> str:  # noqa: D102
        return f"days (P1D) in {self.tz.key}"


@dataclass(frozen=True)
class Plan:
    """What one run of a stream will extract."""

    windows: list[Window]
    lost: Window | None = None
    """The range that should have been extracted but the vendor can no longer serve."""


def plan_windows(
    *,
    start_date: dt.datetime,
    end_date: dt.datetime | None,
    now: dt.datetime,
    bookmark: dt.datetime | None,
    lookback: dt.timedelta,
    step: dt.timedelta,
    granularity: Granularity,
    earliest: dt.datetime | None = None,
    exact: bool = False,
) -> Plan:
    """Plan the windows of one run.

    Starts at ``bookmark - lookback`` (never before ``start_date``) or at ``start_date``. With
    ``exact`` that instant is only rounded down to the granularity, and the first window runs to
    the next boundary of the fixed grid of ``step``-wide windows counted from the epoch; without
    it, the start is rounded down to that grid, so every window is the same in every run (for
    rows without an event time, whose keys depend on their window). Ends at ``end_date`` or
    ``now``, rounded up to the granularity, so a record on a boundary belongs to exactly one
    window. ``earliest`` is the oldest instant the vendor can still serve: the plan never
    starts before it, and what is older and not yet extracted is returned as ``lost``.
    """
    start_date, now = utc(start_date), utc(now)
    resume_from = start_date if bookmark is None else max(start_date, utc(bookmark))
    start = start_date if bookmark is None else max(start_date, utc(bookmark) - lookback)
    end = now if end_date is None else min(utc(end_date), now)

    lost = None
    start = utc(granularity.floor(start)) if exact else granularity.align(start, step)
    if earliest is not None and start < earliest:
        if resume_from < earliest:
            lost = Window(resume_from, min(earliest, max(end, resume_from)))
        start = granularity.ceil(earliest)

    stop = granularity.ceil(end)
    windows: list[Window] = []
    grid = granularity.align(start, step)
    if grid < start:  # off the grid: the first window runs to the next grid boundary
        first_end = min(granularity.advance(grid, step), stop)
        if start < first_end:
            windows.append(Window(start, first_end))
            start = first_end
    while start < stop:
        next_start = min(granularity.advance(start, step), stop)
        windows.append(Window(start, next_start))
        start = next_start
    return Plan(windows=windows, lost=lost if lost and lost.start < lost.end else None)
