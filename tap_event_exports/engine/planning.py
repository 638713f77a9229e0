"""What one partition of a stream will export in this run, planned from its state.

Planning reads the bookmark, cuts the windows (exactly from ``bookmark - lookback`` for rows
that carry their event time, on the fixed grid otherwise), opens the ledger of pending job ids
and cancels jobs no planned window will resume. It runs on the main thread, before any export
is fetched, so every partition's state exists before workers write job ids into it.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import dataclass

from tap_event_exports.engine.contract import JobExports
from tap_event_exports.engine.jobs import JobLedger
from tap_event_exports.engine.state import read_bookmark
from tap_event_exports.engine.windows import Window, plan_windows, rfc3339

if t.TYPE_CHECKING:
    from tap_event_exports.engine.contract import ExportSpec, Partition
    from tap_event_exports.engine.runtime import Runtime

logger = logging.getLogger("tap_event_exports.planning")


@dataclass
class PartitionPlan:
    """The exports of one partition of one stream, in the order they are emitted."""

    stream: str
    label: str
    """``stream`` or ``stream[key=value]``, for logs."""
    partition: Partition
    state: dict[str, t.Any]
    """The partition's state (bookmark, pending jobs), shared with the SDK."""
    windows: list[Window | None]
    """Windows in order; ``[None]`` for a snapshot."""
    ledger: JobLedger | None

    def key(self, window: Window | None) -> tuple[str, str, str]:
        """The run-wide key of one of its exports."""
        return (self.stream, self.label, JobLedger.key(window))


def label_of(stream: str, partition: Partition) -> str:
    """``stream[k=v, …]`` for a partition, the stream name alone without one."""
    if not partition:
        return stream
    return f"{stream}[{', '.join(f'{k}={v}' for k, v in partition.items())}]"


def plan_partition(
    spec: ExportSpec, partition: Partition, state: dict[str, t.Any], runtime: Runtime
) -> PartitionPlan:
    """Plan one partition (logging what it will extract, and what the vendor lost)."""
    label = label_of(spec.name, partition)
    ledger = JobLedger(state) if isinstance(spec.source, JobExports) else None
    windowing = spec.windowing
    if windowing is None:
        return PartitionPlan(spec.name, label, partition, state, [None], ledger)
    now = runtime.now
    plan = plan_windows(
        start_date=runtime.settings.start_date,
        end_date=runtime.settings.end_date,
        now=now,
        bookmark=read_bookmark(state, stream=label),
        lookback=windowing.lookback,
        step=windowing.step,
        granularity=windowing.granularity,
        earliest=windowing.earliest(now),
        exact=spec.exact_lookback,
    )
    if plan.lost is not None:
        logger.warning(
            "%s: %s can no longer be exported: %s serves data back to %s only; "
            "events in that range are lost to this tap",
            label,
            plan.lost,
            spec.vendor,
            rfc3339(plan.lost.end),
        )
    if plan.windows:
        logger.info(
            "%s: %d window(s) from %s to %s",
            label,
            len(plan.windows),
            rfc3339(plan.windows[0].start),
            rfc3339(plan.windows[-1].end),
        )
    else:
        logger.info("%s: nothing to extract (bookmark is at the end)", label)
    windows = list(plan.windows)
    if ledger is not None and isinstance(spec.source, JobExports):
        windows = resume_points(windows, ledger)
        canceled = cancel_stale(spec.source, ledger, windows, label)
        runtime.stats.count(spec.name, "jobs_canceled", canceled)
    return PartitionPlan(spec.name, label, partition, state, list[Window | None](windows), ledger)


def resume_points(windows: list[Window], ledger: JobLedger) -> list[Window]:
    """Windows cut where a pending job of an earlier run ends, so that job is resumed.

    The window that held "now" in the earlier run ended at that run's start; the same window
    now reaches further. Its job covers the first part, a new export the rest.
    """
    ends: dict[str, list[str]] = {}
    for key in ledger.keys():  # noqa: SIM118 - a ledger, not a dict
        start, _, end = key.partition("/")
        ends.setdefault(start, []).append(end)
    out: list[Window] = []
    for window in windows:
        cut = [
            dt.datetime.fromisoformat(end)
            for end in ends.get(rfc3339(window.start), [])
            if rfc3339(window.start) < end < rfc3339(window.end)
        ]
        if cut:
            middle = min(cut)
            out.extend((Window(window.start, middle), Window(middle, window.end)))
        else:
            out.append(window)
    return out


def cancel_stale(source: JobExports, ledger: JobLedger, planned: list[Window], label: str) -> int:
    """Cancel (where the vendor can) and forget jobs that no planned window will resume.

    Returns how many were canceled.
    """
    stale = ledger.stale(planned)
    canceled = 0
    for key, entry in stale.items():
        job = entry.get("job")
        if not job:
            continue
        try:
            if source.jobs.cancel(str(job)):
                logger.info("%s: canceled job %s of window %s", label, job, key)
                canceled += 1
        except Exception as exc:
            logger.info("%s: could not cancel job %s: %s", label, job, exc)
    ledger.forget(stale)
    return canceled
