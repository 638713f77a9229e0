"""Bookmarks inside singer-sdk's state layout.

A stream's (or partition's) state dict keeps the SDK's shape,
``{"replication_key": ..., "replication_key_value": <RFC 3339 UTC>}``, so Meltano and targets
treat it as any other tap's. The value means: every event before it has been extracted.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_event_exports.engine.errors import TapError
from tap_event_exports.engine.windows import rfc3339, utc

BOOKMARK = "replication_key_value"


class StateError(TapError):
    """A state file that cannot be resumed from."""


def read_bookmark(state: dict[str, t.Any], *, stream: str) -> dt.datetime | None:
    """Return the bookmark of a stream/partition state, or ``None`` if it has none yet."""
    if not isinstance(state, dict):
        msg = f"state: bookmarks of stream '{stream}' must be an object, got {type(state).__name__}"
        raise StateError(msg)
    value = state.get(BOOKMARK)
    if value is None:
        return None
    try:
        return utc(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        msg = f"state: bookmark of stream '{stream}' is not an RFC 3339 date-time: {value!r}"
        raise StateError(msg) from None


def advance_bookmark(state: dict[str, t.Any], *, replication_key: str, value: dt.datetime) -> bool:
    """Move the bookmark forward to ``value``; never backwards. Return whether it moved."""
    current = state.get(BOOKMARK)
    new = rfc3339(value)
    if current is not None and utc(dt.datetime.fromisoformat(current)) >= utc(value):
        return False
    if replication_key:
        state["replication_key"] = replication_key
    state[BOOKMARK] = new
    return True
