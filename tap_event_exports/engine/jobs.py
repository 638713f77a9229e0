"""Asynchronous export jobs: create, poll, download, shared by every vendor that has them.

A vendor module implements :class:`ExportJobs` (how to create a job for a window, how to read
its status, where its files are); :class:`JobRunner` does the rest: polling at a growing interval
up to ``max_poll_time``, recreating expired or retriable failed jobs a bounded number of times,
splitting windows the vendor refuses as too large, and keeping job ids in the stream's state so
that a job a stopped run left behind is resumed by the next one instead of created again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import typing as t

from tap_event_exports.engine import waits
from tap_event_exports.engine.contract import ExportJobs, JobStatus, Partition, Phase
from tap_event_exports.engine.download import Download, download_all
from tap_event_exports.engine.errors import LinkGoneError, TapError, VendorError
from tap_event_exports.engine.pacing import creating_job
from tap_event_exports.engine.windows import Window, rfc3339

if t.TYPE_CHECKING:
    from tap_event_exports.engine.http import HttpPolicy
    from tap_event_exports.engine.windows import Granularity

logger = logging.getLogger("tap_event_exports.jobs")

POLL_GROWTH = 1.5
POLL_CAP_SECONDS = 300.0
MAX_RECREATE = 3
GONE_STATUSES = frozenset({404, 410})
"""What the vendor's own host answers for an export file that no longer exists."""


class JobFailedError(TapError):
    """An export job ended in a state that retrying will not change."""


class JobLedger:
    """The ids of jobs whose windows are not finished yet, kept in the stream's state.

    Workers record jobs as they create them; the dict in state is replaced, never mutated, so a
    STATE message written from the main thread at any moment sees a consistent copy.
    """

    KEY = "pending_jobs"
    revision: t.ClassVar[int] = 0
    """Counts changes of every ledger of the run, so a STATE can follow new job ids soon."""

    def __init__(self, state: dict[str, t.Any]) -> None:
        """Keep pending jobs under ``state["pending_jobs"]``."""
        self._state = state
        self._lock = threading.Lock()
        current = state.get(self.KEY)
        state[self.KEY] = dict(current) if isinstance(current, dict) else {}

    @staticmethod
    def key(window: Window | None) -> str:
        """The ledger key of a window."""
        if window is None:
            return "snapshot"
        return f"{rfc3339(window.start)}/{rfc3339(window.end)}"

    def get(self, window: Window | None) -> dict[str, t.Any] | None:
        """The entry of a window: ``{"job": id}`` or ``{"split": true}``."""
        entry = self._state[self.KEY].get(self.key(window))
        return entry if isinstance(entry, dict) else None

    def put(self, window: Window | None, entry: dict[str, t.Any]) -> None:
        """Record a window's job (or that it was split)."""
        with self._lock:
            self._state[self.KEY] = {**self._state[self.KEY], self.key(window): entry}
            JobLedger.revision += 1

    def keys(self) -> list[str]:
        """The keys (``start/end`` of a window, or ``snapshot``) of every entry."""
        return list(self._state[self.KEY])

    def stale(self, planned: list[Window]) -> dict[str, dict[str, t.Any]]:
        """Entries no planned window will resume (a changed ``window`` or ``start_date``)."""
        spans = [(rfc3339(w.start), rfc3339(w.end)) for w in planned]
        out = {}
        for key, entry in self._state[self.KEY].items():
            start, _, end = key.partition("/")
            if key != "snapshot" and not any(s <= start and end <= e for s, e in spans):
                out[key] = entry
        return out

    def forget(self, keys: t.Iterable[str]) -> None:
        """Remove entries by key."""
        with self._lock:
            drop = set(keys)
            self._state[self.KEY] = {
                k: v for k, v in self._state[self.KEY].items() if k not in drop
            }

    def drop_within(self, window: Window | None) -> None:
        """Forget a finished window and any pieces it was split into."""
        with self._lock:
            kept = {}
            for key, entry in self._state[self.KEY].items():
                if window is None:
                    if key != "snapshot":
                        kept[key] = entry
                    continue
                start, _, end = key.partition("/")
                inside = start >= rfc3339(window.start) and end <= rfc3339(window.end)
                if not inside:
                    kept[key] = entry
            self._state[self.KEY] = kept


class JobRunner:
    """Runs export jobs for windows: create (or resume) → poll → download."""

    def __init__(
        self,
        jobs: ExportJobs,
        policy: HttpPolicy,
        *,
        stream: str,
        poll_interval: float,
        max_poll_time: float,
        granularity: Granularity | None = None,
        describe: t.Callable[[Window], str] = str,
        max_recreate: int = MAX_RECREATE,
        min_split: dt.timedelta | None = None,
    ) -> None:
        """Run jobs of one stream.

        ``granularity`` is where too-large windows may be split (``None``: never split), and
        ``min_split`` the smallest window a split may produce.
        """
        self.jobs = jobs
        self.policy = policy
        self.stream = stream
        self.poll_interval = poll_interval
        self.max_poll_time = max_poll_time
        self.granularity = granularity
        self.describe = describe
        self.max_recreate = max_recreate
        self.min_split = min_split

    def fetch(
        self, window: Window | None, partition: Partition, ledger: JobLedger
    ) -> list[Download]:
        """The complete files of a window, whatever it takes (splitting it if need be).

        Files whose links are gone by the time they are fetched (expired between the status
        check and the download) come back only from a new job: it is created again, a bounded
        number of times, as for an expired job.
        """
        entry = ledger.get(window)
        if entry and entry.get("split") and window is not None and self.granularity:
            halves = window.halves(self.granularity)
            if halves:
                return self.fetch(halves[0], partition, ledger) + self.fetch(
                    halves[1], partition, ledger
                )
        recreated = 0  # new jobs of this window so far, for any reason: max_recreate in all
        while True:
            status, job_id, recreated = self._finish(window, partition, ledger, recreated)
            if status.phase is Phase.TOO_LARGE:
                return self._split(window, partition, ledger, status, job_id)
            what = f"{self._place(window, partition)}: job {job_id}"
            try:
                files = download_all(self.policy, status.files, what=what)
            except (LinkGoneError, VendorError) as exc:
                if isinstance(exc, VendorError) and exc.status not in GONE_STATUSES:
                    raise
                failure = exc
            else:
                return self._prepared(files)
            ledger.forget([JobLedger.key(window)])  # the next turn creates a new job
            where = self._where(window, partition)
            lost = f"{where}: job {job_id} files gone"
            recreated = self._again(ledger, window, lost, str(failure), recreated)

    def _prepared(self, files: list[Download]) -> list[Download]:
        """The vendor's readying of complete files; none is left behind if it fails."""
        try:
            return self.jobs.prepare(files)
        except BaseException:
            for file in files:
                file.discard()
            raise

    def _split(
        self,
        window: Window | None,
        partition: Partition,
        ledger: JobLedger,
        status: JobStatus,
        job_id: str,
    ) -> list[Download]:
        """The files of a window the vendor finds too large, fetched in two halves."""
        halves = window.halves(self.granularity) if window and self.granularity else None
        if halves and self.min_split and halves[0].end - halves[0].start < self.min_split:
            halves = None
        if halves is None:
            ledger.forget([JobLedger.key(window)])
            msg = (
                f"{self._where(window, partition)}: job {job_id} is too large for the vendor "
                f"and the window cannot be split further: {status.message}"
            )
            raise JobFailedError(msg)
        logger.info(
            "%s: job %s too large (%s); splitting into %s and %s",
            self._where(window, partition),
            job_id,
            status.message,
            self._show(halves[0]),
            self._show(halves[1]),
        )
        ledger.put(window, {"split": True})
        return self.fetch(halves[0], partition, ledger) + self.fetch(halves[1], partition, ledger)

    def _finish(
        self, window: Window | None, partition: Partition, ledger: JobLedger, recreated: int = 0
    ) -> tuple[JobStatus, str, int]:
        """Drive one window's job to a final state; return it, the job's id and the new jobs.

        ``recreated`` counts the window's new jobs so far (after files gone): with the ones
        made here, at most ``max_recreate`` in all.
        """
        where = self._where(window, partition)
        entry = ledger.get(window)
        job_id = entry.get("job") if entry else None
        if job_id:
            logger.info("%s: resuming job %s left by an earlier run", where, job_id)
            self.policy.stats.count(self.stream, "jobs_resumed")
        while True:
            created = False
            if not job_id:
                with creating_job():  # before any poll or download: the vendor starts work
                    job_id = (
                        self.jobs.create(window, partition)
                        if window is not None
                        else self.jobs.create_snapshot(partition)
                    )
                ledger.put(window, {"job": job_id})
                logger.info("%s: created job %s", where, job_id)
                self.policy.stats.count(self.stream, "jobs_created")
                created = True
            status = self._poll(job_id, partition, where, created=created)
            if status.phase in {Phase.DONE, Phase.TOO_LARGE}:
                return status, job_id, recreated
            if status.phase is Phase.FAILED:
                ledger.forget([JobLedger.key(window)])  # a failed job is never to be resumed
                msg = f"{where}: job {job_id} failed: {status.message}"
                raise JobFailedError(msg)
            ended = f"{where}: job {job_id} {status.phase.value}"
            recreated = self._again(ledger, window, ended, status.message, recreated)
            job_id = None

    def _again(
        self, ledger: JobLedger, window: Window | None, what: str, detail: str, recreated: int
    ) -> int:
        """Count one more new job for a window (``what``: the job and what befell it), or give up.

        Returns the new count; past ``max_recreate`` the window's entry is forgotten and the
        run fails naming the job and what kept happening.
        """
        recreated += 1
        if recreated > self.max_recreate:
            ledger.forget([JobLedger.key(window)])
            msg = f"{what} again after {self.max_recreate} new jobs: {detail}"
            raise JobFailedError(msg)
        logger.warning(
            "%s (%s); creating it again (%d/%d)",
            what,
            detail or "no details",
            recreated,
            self.max_recreate,
        )
        return recreated

    def _poll(self, job_id: str, partition: Partition, where: str, *, created: bool) -> JobStatus:
        """Check a job's status at a growing interval until it is no longer running.

        A job just ``created`` is first checked after ``poll_interval``: no vendor finishes an
        export in the moment its creation is answered, so a check right away would only spend a
        request of the quota (myTracker allows 100 a minute). A job resumed from an earlier run
        is checked at once: it may have finished meanwhile.
        """
        started = time.monotonic()
        interval = max(0.01, self.poll_interval)
        last_progress = ""
        if created:
            self._pause(min(interval, self.max_poll_time), where, job_id, "created")
            interval = min(interval * POLL_GROWTH, max(POLL_CAP_SECONDS, self.poll_interval))
        while True:
            status = self.jobs.status(job_id, partition)
            if status.phase is not Phase.RUNNING:
                return status
            if status.progress and status.progress != last_progress:
                logger.info("%s: job %s running (%s)", where, job_id, status.progress)
                last_progress = status.progress
            waited = time.monotonic() - started
            remaining = self.max_poll_time - waited
            if remaining <= 0:
                msg = (
                    f"{where}: job {job_id} still not finished after {waited:.0f}s "
                    f"(max_poll_time {self.max_poll_time:g}s)"
                )
                raise JobFailedError(msg)
            self._pause(min(interval, remaining), where, job_id, "still running")
            interval = min(interval * POLL_GROWTH, max(POLL_CAP_SECONDS, self.poll_interval))

    def _pause(self, seconds: float, where: str, job_id: str, why: str) -> None:
        """Wait before the next status check; a stopped run ends the job's wait at once."""
        place = where.partition(": ")[2]  # the vendor goes first in the wait's own line
        waits.announce(self.jobs.vendor, f"{place}: job {job_id} {why}, next status check", seconds)
        if self.policy.stop.wait(seconds):
            msg = f"{where}: job {job_id}: run stopped"
            raise JobFailedError(msg)

    def _where(self, window: Window | None, partition: Partition) -> str:
        return f"{self.jobs.vendor}: {self._place(window, partition)}"

    def _place(self, window: Window | None, partition: Partition) -> str:
        label = self.stream
        if partition:
            label += "[" + ", ".join(f"{k}={v}" for k, v in partition.items()) + "]"
        place = f"window {self._show(window)}" if window is not None else "snapshot"
        return f"{label}: {place}"

    def _show(self, window: Window | None) -> str:
        return self.describe(window) if window is not None else "snapshot"
