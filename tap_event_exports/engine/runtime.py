"""What every stream of a run shares: settings, the stop signal, "now" and the scheduler."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tap_event_exports.engine.contract import (
    JobExports,
    Partition,
    SnapshotRequest,
    WindowRequests,
)
from tap_event_exports.engine.http import HttpPolicy
from tap_event_exports.engine.jobs import JobLedger, JobRunner
from tap_event_exports.engine.scheduler import ExportScheduler, group_limits
from tap_event_exports.engine.stats import RunStats

if t.TYPE_CHECKING:
    import datetime as dt
    import threading
    from collections.abc import Callable, Iterable

    from tap_event_exports.engine.contract import ExportSpec, Limits, VendorDialect
    from tap_event_exports.engine.download import Download
    from tap_event_exports.engine.windows import Window
    from tap_event_exports.settings import GlobalSettings

Fetch = t.Callable[["Window | None", Partition, "JobLedger | None"], "list[Download]"]
"""Fetch one window (``None``: the snapshot) of one partition, with its ledger if it has jobs."""


@dataclass
class Runtime:
    """The run's settings, stop signal, fixed notion of now, and export scheduler."""

    settings: GlobalSettings
    stop: threading.Event
    now: dt.datetime
    scheduler: ExportScheduler | None = field(default=None)
    stats: RunStats = field(default_factory=RunStats)

    def http(
        self,
        dialect: VendorDialect,
        base_url: str,
        *,
        pacing: tuple[tuple[int, float], ...] = (),
        policy: type[HttpPolicy] = HttpPolicy,
    ) -> HttpPolicy:
        """A provider's HTTP policy under the run's timeout, retries and stop signal.

        ``policy``: a vendor's own kind of policy (one that reads some failures its own way).
        """
        return policy(
            dialect,
            timeout=self.settings.request_timeout,
            max_retries=self.settings.max_retries,
            stop=self.stop,
            base_url=base_url,
            pacing=pacing,
            stats=self.stats,
        )

    def own_scheduler(self, limits: Iterable[Limits]) -> ExportScheduler:
        """A scheduler under the run's bounds for streams of these credentials."""
        return ExportScheduler(
            max_in_flight=self.settings.max_concurrent_jobs,
            group_limits=group_limits((limit.group, limit.max_jobs) for limit in limits),
            max_buffered_bytes=int(self.settings.max_prefetch_mb * 1_000_000),
            stop=self.stop,
        )

    def fetcher(self, spec: ExportSpec) -> Fetch:
        """How one export of the stream is fetched, whatever its source's shape."""
        source = spec.source
        if isinstance(source, WindowRequests):
            by_window = source.fetch

            def requests(
                window: Window | None, partition: Partition, _l: JobLedger | None
            ) -> list[Download]:
                if window is None:
                    msg = f"{spec.name}: a windowed stream asked for a snapshot"
                    raise TypeError(msg)
                return by_window(window, partition)

            return requests
        if isinstance(source, SnapshotRequest):
            whole = source.fetch
            return lambda _window, partition, _ledger: whole(partition)
        return self._job_fetcher(spec, source)

    def _job_fetcher(self, spec: ExportSpec, source: JobExports) -> Fetch:
        describe: Callable[[Window], str] = spec.windowing.describe if spec.windowing else str
        runner = JobRunner(
            source.jobs,
            source.policy,
            stream=spec.name,
            poll_interval=self.settings.poll_interval,
            max_poll_time=self.settings.max_poll_time,
            granularity=source.split,
            describe=describe,
            min_split=source.min_split,
        )

        def jobs(
            window: Window | None, partition: Partition, ledger: JobLedger | None
        ) -> list[Download]:
            if ledger is None:
                msg = f"{spec.name}: export jobs need a ledger"
                raise TypeError(msg)
            return runner.fetch(window, partition, ledger)

        return jobs
