"""``--test``: a real connection check of every enabled provider, in seconds.

Each configured object (service, project and collections, exports, campaigns and groups) is
probed with the smallest export the vendor allows: a vendor's own cheap probe where the stream
declares one, otherwise one export of a one-second window an hour ago (a day for date-only
APIs), whose job is canceled where the vendor can cancel. Nothing is polled or downloaded
beyond that. One line per provider; the exit code says whether all passed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import sys
import typing as t

from tap_event_exports.engine.contract import JobExports, WindowRequests
from tap_event_exports.engine.errors import TapError
from tap_event_exports.engine.planning import label_of
from tap_event_exports.engine.windows import Window
from tap_event_exports.redaction import redact

if t.TYPE_CHECKING:
    from tap_event_exports.engine.contract import ExportSpec, Partition
    from tap_event_exports.streams import ExportStream

PROBE_AGE = dt.timedelta(hours=1)
PROBE_RETRIES = 2
"""A connection check retries little: it is meant to answer within seconds."""


@dataclasses.dataclass
class ProviderCheck:
    """What the check of one provider found."""

    vendor: str
    checked: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        """``dfinery: ok: …`` or ``batch: FAILED: …``."""
        if self.error is not None:
            return f"{self.vendor}: FAILED: {self.error}"
        return f"{self.vendor}: ok: credentials accepted; checked {', '.join(self.checked)}"


def probe_window(spec: ExportSpec, now: dt.datetime) -> Window:
    """The smallest window the vendor can express, an hour before now."""
    windowing = spec.windowing
    if windowing is None:
        msg = f"{spec.name}: a snapshot has no window to probe"
        raise TypeError(msg)
    granularity = windowing.granularity
    start = granularity.floor(now - PROBE_AGE)
    return Window(start, granularity.advance(start, granularity.unit))


def probe(spec: ExportSpec, partition: Partition, now: dt.datetime) -> bool:
    """Probe one object; ``False`` when the stream cannot be probed on its own (a snapshot)."""
    if spec.probe is not None:
        spec.probe(partition)
        return True
    source = spec.source
    if isinstance(source, JobExports) and spec.windowing is not None:
        job = source.jobs.create(probe_window(spec, now), partition)
        with contextlib.suppress(TapError):  # the probe's export is tiny: a failed cancel is fine
            source.jobs.cancel(job)
        return True
    if isinstance(source, WindowRequests):
        for download in source.fetch(probe_window(spec, now), partition):
            download.discard()
        return True
    return False


def check_streams(streams: list[ExportStream], now: dt.datetime) -> list[ProviderCheck]:
    """Probe every configured object once, provider by provider, in stream order."""
    checks: dict[str, ProviderCheck] = {}
    probed: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for stream in streams:
        spec = stream.spec
        check = checks.setdefault(spec.vendor, ProviderCheck(spec.vendor))
        if check.error is not None:
            continue
        for partition in spec.partitions or [{}]:
            key = (spec.vendor, tuple(sorted(partition.items())) or (("stream", spec.name),))
            if key in probed:
                continue
            try:
                if probe(spec, partition, now):
                    probed.add(key)
                    check.checked.append(label_of(spec.name, partition))
            except TapError as exc:
                check.error = redact(str(exc))
                break
    for check in checks.values():
        if check.error is None and not check.checked:
            check.checked.append("its snapshot streams (not probed separately)")
    return list(checks.values())


def run_check(streams: list[ExportStream], now: dt.datetime) -> int:
    """Print one line per provider on stderr; 0 when every provider passed, else 1."""
    checks = check_streams(streams, now)
    for check in checks:
        print(f"tap-event-exports: {check.line()}", file=sys.stderr, flush=True)
    return 0 if checks and all(c.error is None for c in checks) else 1
