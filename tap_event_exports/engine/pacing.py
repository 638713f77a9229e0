"""Client-side pacing: requests kept under a vendor's documented "N per T seconds" quotas."""

from __future__ import annotations

import threading
import time
import typing as t

from tap_event_exports.engine import waits

if t.TYPE_CHECKING:
    from collections.abc import Callable


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
        self._lock = threading.Lock()

    def describe(self) -> str:
        """The documented limits, e.g. ``10/1s, 100/60s``."""
        return ", ".join(f"{count}/{seconds:g}s" for count, seconds in self.documented)

    def acquire(self) -> None:
        """Wait until one more request fits every limit (logging a long wait)."""
        while True:
            with self._lock:
                now = time.monotonic()
                longest = max(seconds for _, seconds in self.limits)
                self._sent = [s for s in self._sent if now - s < longest]
                wait = 0.0
                for count, seconds in self.limits:
                    recent = [s for s in self._sent if now - s < seconds]
                    if len(recent) >= count:
                        wait = max(wait, recent[-count] + seconds - now)
                if wait <= 0:
                    self._sent.append(now)
                    return
            waits.announce(self.vendor, f"client-side quota pacing ({self.describe()})", wait)
            if self.on_wait is not None:
                self.on_wait(wait)
            if self.stop.wait(wait):
                return


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
