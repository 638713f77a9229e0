"""Client-side pacing: requests kept under a vendor's documented "N per T seconds" quotas.

When requests wait for the quota, the one the run needs soonest goes first: a job's creation
(the vendor can start working), then requests in the order their exports will be emitted (the
next window's polls and downloads before those of later windows). And while an export needed
sooner is still being fetched, later ones leave one request of every quota free for it: its
requests come one at a time, so without that room the others' requests would take every slot
between two of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import threading
import time
import typing as t

from tap_event_exports.engine import waits

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXPORT_RANK: contextvars.ContextVar[int] = contextvars.ContextVar("export_rank", default=-1)
"""The emission order of the export a thread works on (-1: none, e.g. a connection check)."""
CREATING: contextvars.ContextVar[bool] = contextvars.ContextVar("creating", default=False)
STOP_CHECK_SECONDS = 0.25
"""How often a request waiting its turn looks at the run's stop event."""
_fetching: set[int] = set()
"""The ranks of the exports being fetched now."""


@contextlib.contextmanager
def export_rank(index: int) -> Iterator[None]:
    """Requests made inside are paced as those of the export at ``index`` in emission order."""
    token = EXPORT_RANK.set(index)
    _fetching.add(index)
    try:
        yield
    finally:
        _fetching.discard(index)
        EXPORT_RANK.reset(token)


@contextlib.contextmanager
def creating_job() -> Iterator[None]:
    """Requests made inside create a job: they go before any poll or download."""
    token = CREATING.set(True)
    try:
        yield
    finally:
        CREATING.reset(token)


class RateLimiter:
    """Keeps requests under several "N per T seconds" limits at once (sliding windows).

    Each window is kept 10% (at least 0.1 s) longer than the vendor's, so requests that travel
    at different speeds still arrive within the quota. One limiter serves every worker of a
    provider, so it counts every request of the run.
    """

    def __init__(
        self,
        limits: tuple[tuple[int, float], ...],
        stop: threading.Event,
        *,
        vendor: str,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        """``limits``: (count, seconds) pairs, as the vendor documents them."""
        self.on_wait = on_wait
        self.documented = limits
        self.limits = tuple((count, seconds + max(0.1, seconds * 0.1)) for count, seconds in limits)
        self.stop = stop
        self.vendor = vendor
        self._sent: list[float] = []
        self._lock = threading.Condition()
        self._queue: list[tuple[bool, int, int]] = []
        """Requests waiting for their turn: (not a creation, export rank, arrival)."""
        self._arrivals = itertools.count()
        self._ranks: set[int] = set()
        """Ranks of the exports that sent requests here (kept while they are fetched)."""

    def describe(self) -> str:
        """The documented limits, e.g. ``10/1s, 100/60s``."""
        return ", ".join(f"{count}/{seconds:g}s" for count, seconds in self.documented)

    def acquire(self) -> None:
        """Wait until one more request fits every limit and no request needed sooner waits."""
        rank = EXPORT_RANK.get()
        entry = (not CREATING.get(), rank, next(self._arrivals))
        with self._lock:
            if rank >= 0:
                self._ranks.add(rank)
            heapq.heappush(self._queue, entry)
            announced = False
            try:
                while not self.stop.is_set():
                    if self._queue[0] != entry:  # a request needed sooner goes first
                        self._lock.wait(STOP_CHECK_SECONDS)
                        continue
                    now = time.monotonic()
                    wait = self._wait(now, reserve=self._sooner_fetching(rank))
                    if wait <= 0:
                        self._sent.append(now)
                        return
                    if not announced:
                        announced = True
                        waits.announce(
                            self.vendor, f"client-side quota pacing ({self.describe()})", wait
                        )
                        if self.on_wait is not None:
                            self.on_wait(wait)
                    self._lock.wait(min(wait, STOP_CHECK_SECONDS))
            finally:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
                self._lock.notify_all()

    def _sooner_fetching(self, rank: int) -> bool:
        """Whether an export emitted before ``rank`` still sends requests here."""
        self._ranks &= _fetching
        return rank >= 0 and any(other < rank for other in self._ranks)

    def _wait(self, now: float, *, reserve: bool) -> float:
        """Seconds until one more request fits every limit (zero or less: now).

        With ``reserve``, one request of every limit (of more than one) stays free.
        """
        longest = max(seconds for _, seconds in self.limits)
        self._sent = [s for s in self._sent if now - s < longest]
        wait = 0.0
        for count, seconds in self.limits:
            allowed = count - 1 if reserve and count > 1 else count
            recent = [s for s in self._sent if now - s < seconds]
            if len(recent) >= allowed:
                wait = max(wait, recent[-allowed] + seconds - now)
        return wait


class VendorPause:
    """A pause every worker of a vendor observes: until the reset a rate limit announced."""

    def __init__(self) -> None:
        """No pause yet."""
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        """Pause every request to the vendor for ``seconds`` from now (or longer, if set)."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left of the pause (zero or less: none)."""
        with self._lock:
            return self._until - time.monotonic()
