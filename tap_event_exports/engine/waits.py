"""One log line for every wait long enough to look like a hang.

Quota pacing, rate-limit pauses, retry backoff and job polls can each sit still for a while; an
operator watching the log must see which vendor waits, why, for how long and until when.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("tap_event_exports.waits")

LONG_WAIT_SECONDS = 5.0
"""Waits at least this long are announced at INFO; shorter ones stay silent."""


def until(seconds: float) -> str:
    """The wall-clock end of a wait starting now, RFC 3339 in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def announce(vendor: str, why: str, seconds: float) -> None:
    """Log a wait of ``seconds`` (if it is long) before it starts."""
    if seconds >= LONG_WAIT_SECONDS:
        logger.info("%s: waiting %.1fs (until %s): %s", vendor, seconds, until(seconds), why)
