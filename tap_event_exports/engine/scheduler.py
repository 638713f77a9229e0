"""Run-wide export scheduling: every stream's and partition's exports in flight at once.

Streams emit their records one after another, window by window, as targets and state expect.
Fetching an export (a synchronous request, or an asynchronous job created, polled and
downloaded) is what takes the time, and it need not wait its turn: the scheduler starts the
exports of every selected stream and partition ahead of their turn, in the order they will be
emitted, under three bounds:

- ``max_in_flight`` exports at once in the whole run,
- each vendor credential's own limit (:class:`~tap_event_exports.engine.contract.Limits`),
- ``max_buffered_bytes`` of files downloaded but not yet emitted, so temp disk stays flat.

The export the emitting stream waits for is never held back by the byte bound, and it is
started first whenever a slot frees, so the run always moves forward.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from tap_event_exports.engine.pacing import export_rank

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    from tap_event_exports.engine.download import Download

logger = logging.getLogger("tap_event_exports.scheduler")

WAIT_SLICE_SECONDS = 0.5
"""How often a waiting consumer wakes to run its ``while_waiting`` callback."""


@dataclass(eq=False)
class ExportUnit:
    """One export to fetch: a window (or the snapshot) of one partition of one stream."""

    key: Hashable
    """Unique in the run: (stream, partition, window)."""
    group: str
    """The vendor credential whose limit the export counts against."""
    work: Callable[[], list[Download]]
    label: str = ""
    index: int = 0
    """Its place in emission order (set when it is planned)."""
    future: Future[list[Download]] | None = field(default=None, repr=False)
    size: int = 0
    """Bytes of its files once downloaded (and until emitted)."""


class ExportScheduler:
    """Fetches planned exports ahead of their turn; hands each over when its turn comes."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        group_limits: dict[str, int],
        max_buffered_bytes: int,
        stop: threading.Event,
    ) -> None:
        """Bound the run: exports in flight, per credential, and bytes waiting to be emitted."""
        self.max_in_flight = max(1, max_in_flight)
        self.group_limits = dict(group_limits)
        self.max_buffered_bytes = max(0, max_buffered_bytes)
        self.stop = stop
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="export")
        self._lock = threading.Condition()
        self._order: collections.OrderedDict[Hashable, ExportUnit] = collections.OrderedDict()
        """Every unit planned and not yet handed over, in emission order."""
        self._waiting: collections.deque[ExportUnit] = collections.deque()
        """Units not started yet, in emission order."""
        self._wanted: ExportUnit | None = None
        self._running: collections.Counter[str] = collections.Counter()
        self._queued: collections.Counter[str] = collections.Counter()
        """Units not started yet, per credential."""
        self._in_flight = 0
        self._buffered = 0
        self._planned = 0
        self._fetched = 0
        self._fetched_bytes = 0
        self._failed_at: int | None = None
        """The first unit in emission order whose export failed: the run stops there, so
        nothing after it is started."""
        self.peak_in_flight = 0
        self.peak_buffered_bytes = 0
        self._closed = False

    # --- planning ------------------------------------------------------------------------

    def submit(self, units: Iterable[ExportUnit]) -> None:
        """Plan units (in emission order); units already planned are left as they are."""
        with self._lock:
            for unit in units:
                if unit.key in self._order:
                    continue
                unit.index = self._planned
                self._planned += 1
                self._order[unit.key] = unit
                self._waiting.append(unit)
                self._queued[unit.group] += 1
            self._dispatch()

    def planned(self, key: Hashable) -> bool:
        """Whether a unit with this key is planned and not handed over yet."""
        with self._lock:
            return key in self._order

    # --- handing over --------------------------------------------------------------------

    def take(
        self, key: Hashable, *, while_waiting: Callable[[], None] | None = None
    ) -> list[Download]:
        """The files of a planned unit, waiting for them if need be (raises what it raised).

        ``while_waiting`` runs every :data:`WAIT_SLICE_SECONDS` on the caller's thread while
        it waits (to write a STATE with the job ids created meanwhile, say).
        """
        with self._lock:
            unit = self._order[key]
            self._wanted = unit
            self._dispatch()
        while True:
            future = unit.future
            if future is not None:
                try:
                    result = future.result(timeout=WAIT_SLICE_SECONDS)
                    break
                except FutureTimeout:
                    pass
                except BaseException:
                    self._handed_over(unit)
                    raise
            else:
                with self._lock:
                    self._lock.wait(WAIT_SLICE_SECONDS)
            if while_waiting is not None:
                while_waiting()
        self._handed_over(unit)
        return result

    def _handed_over(self, unit: ExportUnit) -> None:
        with self._lock:
            self._order.pop(unit.key, None)
            self._buffered -= unit.size
            unit.size = 0
            if self._wanted is unit:
                self._wanted = None
            self._dispatch()

    # --- starting work -------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start what the bounds allow (called with the lock held)."""
        if self._closed or self.stop.is_set():
            return
        wanted = self._wanted
        if wanted is not None and wanted.future is None:
            self._try_start(wanted, ignore_bytes=True)
        first = next(iter(self._order.values()), None)
        if first is not None and first.future is None:
            self._try_start(first, ignore_bytes=True)
        if self._expected_bytes() >= self.max_buffered_bytes:
            return
        blocked: set[str] = set()
        for unit in list(self._waiting):
            if self._in_flight >= self.max_in_flight or len(blocked) == len(self._queued):
                break
            if self._failed_at is not None and unit.index > self._failed_at:
                break
            if unit.group in blocked:
                continue
            if not self._try_start(unit, ignore_bytes=False):
                blocked.add(unit.group)

    def _try_start(self, unit: ExportUnit, *, ignore_bytes: bool) -> bool:
        if unit.future is not None or self._in_flight >= self.max_in_flight:
            return False
        if self._failed_at is not None and unit.index > self._failed_at:
            return False
        if self._running[unit.group] >= self.group_limits.get(unit.group, self.max_in_flight):
            return False
        if not ignore_bytes and self._expected_bytes() >= self.max_buffered_bytes:
            return False
        self._waiting.remove(unit)
        self._queued[unit.group] -= 1
        if not self._queued[unit.group]:
            del self._queued[unit.group]
        self._running[unit.group] += 1
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        unit.future = self._pool.submit(self._run, unit)
        return True

    def _expected_bytes(self) -> float:
        """Files waiting to be emitted, plus what the exports in flight will likely bring."""
        typical = self._fetched_bytes / self._fetched if self._fetched else 0.0
        return self._buffered + self._in_flight * typical

    def _run(self, unit: ExportUnit) -> list[Download]:
        started = time.monotonic()
        size = 0
        try:
            with export_rank(unit.index):  # its requests wait their turn in emission order
                downloads = unit.work()
            size = sum(d.bytes_written for d in downloads)
        except BaseException:
            with self._lock:
                if self._failed_at is None or unit.index < self._failed_at:
                    self._failed_at = unit.index
            raise
        finally:
            with self._lock:
                self._running[unit.group] -= 1
                self._in_flight -= 1
                self._fetched += 1
                self._fetched_bytes += size
                if size and unit.key in self._order:
                    unit.size = size
                    self._buffered += size
                    self.peak_buffered_bytes = max(self.peak_buffered_bytes, self._buffered)
                self._dispatch()
                self._lock.notify_all()
        logger.debug(
            "%s: fetched in %.1fs (%d bytes)", unit.label, time.monotonic() - started, size
        )
        return downloads

    # --- the end -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop starting work, wait for what runs, and delete files nobody will read."""
        with self._lock:
            self._closed = True
            left = list(self._order.values())
            self._waiting.clear()
            self._queued.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for unit in left:
            future = unit.future
            if future is None or future.cancelled() or future.exception() is not None:
                continue
            for download in future.result():
                download.discard()
        with self._lock:
            self._order.clear()
            self._buffered = 0


def group_limits(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The limit of each credential (the smallest declared, if streams disagree)."""
    limits: dict[str, int] = {}
    for group, limit in pairs:
        limits[group] = min(limit, limits.get(group, limit))
    return limits
