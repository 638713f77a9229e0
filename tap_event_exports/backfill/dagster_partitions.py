"""Dagster time partitions that are exactly a provider's export windows (see ``grid``)."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from tap_event_exports.backfill.grid import Grid


def instant(value: dt.datetime | str) -> dt.datetime:
    """An aware datetime from a datetime or ISO 8601 text (naive values refused)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        msg = f"backfill: {value} has no timezone"
        raise ValueError(msg)
    return value


def partitions_for(
    grid: Grid, start: dt.datetime, end: dt.datetime | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """Dagster time partitions that are exactly ``grid``'s windows from ``start`` (to ``end``).

    Day windows of one day: daily partitions in the provider's timezone. Sub-day windows that
    divide an hour or a day: a cron schedule in UTC (the tap's sub-day grid counts from the
    Unix epoch, which such a schedule matches). Other widths have no Dagster schedule and are
    refused.
    """
    first = grid.align(start)
    last = None if end is None else grid.align(end)
    if last is not None and last != end:
        last = grid.advance(last)  # the last window holding the end, whole
    seconds = int(grid.step.total_seconds())
    partitions: dg.TimeWindowPartitionsDefinition
    if seconds == 86400:  # local midnights, or UTC ones (the epoch grid of one day)
        local = ZoneInfo(grid.timezone)
        partitions = dg.DailyPartitionsDefinition(
            start_date=first.astimezone(local).replace(tzinfo=None),
            end_date=None if last is None else last.astimezone(local).replace(tzinfo=None),
            timezone=grid.timezone,
        )
    elif not grid.days and seconds % 60 == 0 and (86400 % seconds == 0):
        minutes = seconds // 60
        if minutes < 60 and 60 % minutes == 0:
            cron = f"*/{minutes} * * * *"
        elif minutes % 60 == 0 and 24 % (minutes // 60) == 0:
            cron = f"0 */{minutes // 60} * * *"
        else:
            cron = ""
        if not cron:
            msg = f"backfill: {grid.provider}'s window {grid.step} has no cron schedule"
            raise ValueError(msg)
        utc = dt.timezone.utc
        partitions = dg.TimeWindowPartitionsDefinition(
            start=first.astimezone(utc).replace(tzinfo=None),
            end=None if last is None else last.astimezone(utc).replace(tzinfo=None),
            cron_schedule=cron,
            fmt="%Y-%m-%dT%H:%M",
            timezone="UTC",
        )
    else:
        msg = (
            f"backfill: {grid.provider}'s window {grid.step} has no Dagster partition schedule;"
            " use one day (P1D) or a width that divides an hour or a day"
        )
        raise ValueError(msg)
    _check_on_grid(grid, partitions)
    return partitions


def _check_on_grid(grid: Grid, partitions: dg.TimeWindowPartitionsDefinition) -> None:
    window = partitions.get_first_partition_window()
    if window is None:
        return
    start, end = instant(window.start), instant(window.end)
    if grid.align(start) != start or grid.advance(start) != end:
        msg = f"backfill: Dagster's partition [{start}, {end}) is not a {grid.provider} window"
        raise ValueError(msg)
