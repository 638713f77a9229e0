"""ISO-8601 durations (``P1D``, ``PT6H``, ``P1W``) for the ``window`` and ``lookback`` settings."""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: str) -> dt.timedelta:
    """Parse an ISO-8601 duration made of weeks, days, hours, minutes and seconds.

    Months and years are refused: their length varies, so a window of ``P1M`` would be ambiguous.

    Raises:
        ValueError: with a message that says which forms are accepted.
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not match or text.strip().upper() in {"P", "PT"} or text.strip().upper().endswith("T"):
        msg = f"{text!r} is not an ISO-8601 duration such as P1D, PT6H or P1DT12H (no months/years)"
        raise ValueError(msg)
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return dt.timedelta(**parts)


def format_duration(value: dt.timedelta) -> str:
    """Render a timedelta back as an ISO-8601 duration, for messages."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{secs}S" if secs else ""
    return out + ("T" + clock if clock else "") if (days or clock) else "PT0S"
