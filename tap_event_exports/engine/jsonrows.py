"""JSON arrays of events to CSV files, in constant memory.

Some exports come as one JSON document (``{"result": [event, ...]}``). Turning it into a CSV file
lets the same reader and converters type it as the CSV exports are typed: nested objects become
dotted column names (``user.email``), and values are written as the vendors' CSV files write them.
Two streaming passes over the downloaded file: one for the columns and the count, one to write.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import typing as t
from decimal import Decimal

import ijson

from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.workspace import current_directory


class ResultCapped(Exception):
    """The vendor returned as many events as it ever returns: some may be missing."""

    def __init__(self, count: int) -> None:
        """Remember how many events came back."""
        super().__init__(f"{count} events, the most the vendor returns at once")
        self.count = count


def flatten(
    event: dict[str, t.Any], prefix: str = "", out: dict[str, t.Any] | None = None
) -> dict[str, t.Any]:
    """``{"user": {"email": x}}`` → ``{"user.email": x}``; lists stay values."""
    out = {} if out is None else out
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, f"{name}.", out)
        else:
            out[name] = value
    return out


def _json_default(value: t.Any) -> t.Any:
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and "." not in str(value)
            else float(value)
        )
    raise TypeError(type(value).__name__)


def render(value: t.Any) -> str:
    """A value as CSV text: empty for null, ``true``/``false``, exact numbers, JSON for lists."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def events_to_csv(
    path: str, *, prefix: str, cap: int | None = None, what: str, directory: str | None = None
) -> tuple[str, int]:
    """Write the events under ``prefix`` (an ijson path) of a JSON file as a CSV file.

    Returns the CSV path and the event count. Raises :class:`ResultCapped` when the count reaches
    ``cap``, so the caller can ask for a smaller range instead of losing events.
    """
    columns: dict[str, None] = {}
    count = 0
    try:
        with open(path, "rb") as source:
            for event in ijson.items(source, prefix, use_float=False):
                if not isinstance(event, dict):
                    msg = f"{what}: expected event objects in the JSON result, got {event!r:.80}"
                    raise DataError(msg)
                columns.update(dict.fromkeys(flatten(event)))
                count += 1
    except ijson.JSONError as exc:
        msg = f"{what}: the JSON result is malformed: {exc}"
        raise DataError(msg) from None
    if cap is not None and count >= cap:
        raise ResultCapped(count)
    header = sorted(columns)
    handle, out_path = tempfile.mkstemp(
        prefix="tap-event-exports-", suffix=".csv", dir=directory or current_directory()
    )
    try:
        with (
            open(path, "rb") as source,
            os.fdopen(handle, "w", newline="", encoding="utf-8") as sink,
        ):
            writer = csv.writer(sink)
            writer.writerow(header)
            for event in ijson.items(source, prefix, use_float=False):
                flat = flatten(event)
                writer.writerow([render(flat.get(name)) for name in header])
    except BaseException:
        os.unlink(out_path)
        raise
    return out_path, count
