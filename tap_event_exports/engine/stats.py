"""The run's totals: what an operator reads at a glance at the end, and alerts on.

Every part of the engine counts into one :class:`RunStats` per run (thread-safe): rows,
windows and bytes per stream; retries and time spent waiting per vendor; jobs created, resumed
and canceled per stream; and each stream's bookmarks before and after. :meth:`RunStats.summary`
turns them into a table for the log and a JSON object of the same numbers.
"""

from __future__ import annotations

import collections
import json
import threading
import typing as t
from dataclasses import dataclass, field

STREAM_COUNTERS = ("rows", "windows", "bytes", "jobs_created", "jobs_resumed", "jobs_canceled")
VENDOR_COUNTERS = ("requests_retried", "waits", "wait_seconds")


@dataclass
class RunStats:
    """Counters of one run, keyed by stream or vendor."""

    streams: dict[str, dict[str, float]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    """Each stream's counters by name (one never counted is zero); ``vendors`` likewise."""
    vendors: dict[str, dict[str, float]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    vendor_of: dict[str, str] = field(default_factory=dict)
    bookmarks: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """``stream[partition]`` → (bookmark when the run began, bookmark at its end)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, stream: str, name: str, amount: float = 1) -> None:
        """Add to a stream's counter."""
        with self._lock:
            counters = self.streams[stream]
            counters[name] = counters.get(name, 0) + amount

    def count_vendor(self, vendor: str, name: str, amount: float = 1) -> None:
        """Add to a vendor's counter."""
        with self._lock:
            counters = self.vendors[vendor]
            counters[name] = counters.get(name, 0) + amount

    def stream_of(self, stream: str, vendor: str) -> None:
        """Say which vendor a stream belongs to (for the table's order)."""
        self.vendor_of[stream] = vendor

    def bookmark(self, label: str, before: str | None, after: str | None) -> None:
        """Record where a partition's bookmark began (first call) and where it is now."""
        with self._lock:
            first = self.bookmarks.get(label, (before, None))[0]
            self.bookmarks[label] = (first, after)

    def summary(self) -> dict[str, t.Any]:
        """The totals as one JSON-ready object."""
        with self._lock:
            streams: dict[str, dict[str, t.Any]] = {
                name: {key: round(counter.get(key, 0), 3) for key in STREAM_COUNTERS}
                | {"vendor": self.vendor_of.get(name, "")}
                for name, counter in sorted(self.streams.items())
            }
            vendors = {
                name: {key: round(counter.get(key, 0), 3) for key in VENDOR_COUNTERS}
                for name, counter in sorted(self.vendors.items())
            }
            moved = {
                label: {"from": before, "to": after}
                for label, (before, after) in sorted(self.bookmarks.items())
                if before != after
            }
        totals = {key: sum(s[key] for s in streams.values()) for key in STREAM_COUNTERS}
        return {"totals": totals, "streams": streams, "vendors": vendors, "bookmarks": moved}

    def table(self, summary: dict[str, t.Any] | None = None) -> str:
        """The totals as a text table, one line per stream and per vendor."""
        data = summary or self.summary()
        jobs_head = "jobs new/resumed/canceled"
        head = f"{'stream':40} {'rows':>10} {'windows':>8} {'bytes':>12} {jobs_head:>26}"
        lines = [head, "-" * len(head)]
        for name, s in data["streams"].items():
            jobs = f"{s['jobs_created']:.0f}/{s['jobs_resumed']:.0f}/{s['jobs_canceled']:.0f}"
            lines.append(
                f"{name[:40]:40} {s['rows']:>10.0f} {s['windows']:>8.0f} {s['bytes']:>12.0f} "
                f"{jobs:>26}"
            )
        for name, v in data["vendors"].items():
            lines.append(
                f"{name}: {v['requests_retried']:.0f} retried request(s), {v['waits']:.0f} "
                f"wait(s) of {v['wait_seconds']:.1f}s in all"
            )
        for label, moved in data["bookmarks"].items():
            lines.append(f"bookmark {label}: {moved['from'] or 'none'} -> {moved['to']}")
        return "\n".join(lines)

    def json_line(self, summary: dict[str, t.Any] | None = None) -> str:
        """The totals as one compact JSON line."""
        return json.dumps(summary or self.summary(), separators=(",", ":"), sort_keys=True)
