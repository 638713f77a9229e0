"""The window grid of each provider, for orchestrators' time partitions to match it.

A partition that is one grid window (or a run of them) is a shard whose bounds the tap
exports exactly, so partitions never overlap and add up to one run over the same range.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from tap_event_exports.engine.windows import DayGranularity, Granularity
from tap_event_exports.shards import export_streams


@dataclass(frozen=True)
class Grid:
    """Where one provider's windows start and how wide they are."""

    provider: str
    step: dt.timedelta
    timezone: str
    """The timezone of the provider's days for day windows, ``UTC`` otherwise."""
    days: bool
    """Windows start at local midnights (counted in days from 1970-01-01), not on a UTC grid."""
    granularity: Granularity

    def align(self, instant: dt.datetime) -> dt.datetime:
        """The start of the window holding ``instant``."""
        return self.granularity.align(instant, self.step)

    def advance(self, start: dt.datetime, windows: int = 1) -> dt.datetime:
        """The boundary ``windows`` windows after ``start``."""
        for _ in range(windows):
            start = self.granularity.advance(start, self.step)
        return start


def provider_grids(config: dict[str, t.Any]) -> dict[str, Grid]:
    """The grid of every provider of ``config`` with windowed streams."""
    grids: dict[str, Grid] = {}
    for stream in export_streams(config):
        windowing = stream.spec.windowing
        if windowing is None or stream.spec.vendor in grids:
            continue
        granularity = windowing.granularity
        days = isinstance(granularity, DayGranularity)
        timezone = str(granularity.tz) if isinstance(granularity, DayGranularity) else "UTC"
        grids[stream.spec.vendor] = Grid(
            stream.spec.vendor, windowing.step, timezone, days, granularity
        )
    return grids
