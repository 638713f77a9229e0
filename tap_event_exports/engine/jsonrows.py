"""JSON arrays of events to CSV files, in constant memory.

Some exports come as one JSON document (``{"result": [event, ...]}``). Turning it into a CSV file
lets the same reader and converters type it as the CSV exports are typed: nested objects become
dotted column names (``user.email``), and values are written as the vendors' CSV files write them.
Two streaming passes over the downloaded file: one for the columns and the count, one to write.
"""

from __future__ import annotations

import collections
import csv
import decimal
import json
import os
import re
import tempfile
import typing as t

import ijson

from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.workspace import current_directory

if t.TYPE_CHECKING:
    from collections.abc import Iterator


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


class JsonNumber(str):
    """A JSON number's text as the document wrote it (``1e-07``, ``0.10``, ``1E16``)."""


STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(")?', re.DOTALL)
"""A JSON string; its closing quote (group 1) is absent where the bytes read so far end inside
it (before a last lone backslash, if any)."""
NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")
NUMBER_CHARS = b"0123456789.eE+-"
LONGEST_NUMBER = 4300
"""Characters of the longest number read (Python's limit for the digits of an integer read
from text: the parser cannot read a longer one)."""


class NumberTooLong(Exception):
    """A JSON number longer than :data:`LONGEST_NUMBER` characters."""


class NumberTexts:
    """A file's reader that also keeps the text of every JSON number it reads, in order.

    The JSON parser gives numbers as values (``Decimal("1E-7")`` for ``1e-07`` and for
    ``0.0000001`` alike); the tokens found in the bytes it reads give their text. Every number
    the parser reports is the next number token outside a string, so the two are taken in step.
    The bytes are scanned before the parser sees them, so a number too long for it is refused
    first (:class:`NumberTooLong`).
    """

    def __init__(self, source: t.BinaryIO, *, keep: bool = True) -> None:
        """Read ``source``; without ``keep``, numbers are only checked, not kept."""
        self._source = source
        self._keep = keep
        self._rest = b""
        self._texts: collections.deque[bytes] = collections.deque()

    def read(self, size: int = -1) -> bytes:
        """The next bytes of the file, whose number tokens are kept."""
        data = self._source.read(size)
        if data or size:  # read(0) asks what the file gives, bytes or text
            self._scan(self._rest + data, final=not data)
        return data

    def next_text(self) -> str:
        """The text of the next number."""
        return self._texts.popleft().decode("ascii")

    def _scan(self, data: bytes, *, final: bool) -> None:
        """Keep the number tokens of ``data``; what may go on in the next bytes waits.

        Strings are split out first (no number is inside one), then the numbers of what is
        left are found, both in C. Of a string that goes on, only its opening quote and a last
        lone backslash wait, so a long string is not scanned again at every read.
        """
        parts = STRING.split(data)  # outside, closing quote, outside, ..., outside
        outside = parts[0::2]
        self._rest = b""
        if len(parts) > 1 and parts[-2] is None:  # the last string goes on
            if not final:
                self._rest = b'"' + parts[-1]
            outside.pop()  # nothing but that lone backslash
        elif not final:
            last = outside[-1]
            tail = last[len(last.rstrip(NUMBER_CHARS)) :]
            if tail[:1] and tail[:1] in b"-0123456789":  # a number the next bytes may go on with
                self._rest = tail
                outside[-1] = last[: -len(tail)]
        found = NUMBER.findall(b" ".join(outside))
        if len(self._rest) > LONGEST_NUMBER or max(map(len, found), default=0) > LONGEST_NUMBER:
            raise NumberTooLong
        if self._keep:
            self._texts.extend(found)


def _with_number_texts(source: NumberTexts) -> Iterator[tuple[str, str, t.Any]]:
    """The parser's events of ``source``, each number given as its :class:`JsonNumber` text."""
    for prefix, event, value in ijson.parse(source, use_float=False):
        if event == "number":
            yield prefix, event, JsonNumber(source.next_text())
        else:
            yield prefix, event, value


def compact(value: t.Any) -> str:
    """A list or object as compact JSON, numbers as the document wrote them."""
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(compact, value)) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(key, ensure_ascii=False)}:{compact(item)}" for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


def render(value: t.Any) -> str:
    """A value as CSV text: empty for null, ``true``/``false``, numbers as written, lists JSON."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, dict)):
        return compact(value)
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
            for event in ijson.items(NumberTexts(source, keep=False), prefix, use_float=False):
                if not isinstance(event, dict):
                    msg = f"{what}: expected event objects in the JSON result, got {event!r:.80}"
                    raise DataError(msg)
                columns.update(dict.fromkeys(flatten(event)))
                count += 1
    except ijson.JSONError as exc:
        msg = f"{what}: the JSON result is malformed: {exc}"
        raise DataError(msg) from None
    except (decimal.InvalidOperation, NumberTooLong):
        msg = f"{what}: the JSON result holds a number out of range"
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
            for event in ijson.items(_with_number_texts(NumberTexts(source)), prefix):
                flat = flatten(event)
                writer.writerow([render(flat.get(name)) for name in header])
    except BaseException:
        os.unlink(out_path)
        raise
    return out_path, count
