"""Date-time text columns to RFC 3339 UTC text in Arrow kernels, for the common export forms.

The record reader converts each distinct date-time with Python's ``datetime``; exports with
millisecond timestamps have nearly as many distinct values as rows, so that costs a Python call
per row. Here the forms exports actually use are parsed and rendered by Arrow:

- ``2025.1.6 10:35`` (Dfinery's minute precision) and ``2025-01-06 10:38:10.036`` (ISO 8601
  without offset, up to 6 fraction digits): local times in the stream's timezone;
- the same ISO form ending in ``Z`` or ``+09:00``, and unix seconds or milliseconds: instants.

Local times get their zone's UTC offset per local hour, computed once in Python with ``zoneinfo``
and only where the offset is the same over the whole hour for both readings of an ambiguous time
(hours around a DST change are left to the record reader's converter, which reads them as Python
does). A column with any other form, or values Arrow rejects, returns ``None``: the caller then
uses the per-value converter, so the text is always exactly what the record reader gives.

Where the compiled helpers were built, ``datetimes.c`` parses and renders a block's column in
one pass over its values (the exact forms above, nothing looser); a column it stops at goes
through the Arrow kernels as before.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import typing as t
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from tap_event_exports.engine import native

DOTTED = r"^[0-9]{4}\.[0-9]{1,2}\.[0-9]{1,2} [0-9]{1,2}:[0-9]{2}$"
DOTTED_FORMAT = "%Y.%m.%d %H:%M"
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
ISO_LOCAL = _ISO + "$"
ISO_INSTANT = _ISO + "(Z|[+-][0-9]{2}:[0-9]{2})$"
UNIX = r"^[0-9]{1,18}$"
"""Unix seconds, or milliseconds above :data:`MILLIS_FROM` (as the record reader reads them)."""
HOUR_US = 3_600_000_000
SPAN_HOURS = 48
"""Local hours a column may span for one offset to be checked hour by hour (cached per hour)."""
REPEATS_FROM = 64
"""Columns this long are checked for repeated values first."""
EPOCH = dt.datetime(1970, 1, 1)  # local wall-clock arithmetic
FIRST_US = (dt.datetime(1000, 1, 1) - EPOCH) // dt.timedelta(microseconds=1)
"""Earliest instant rendered here: Arrow and Python agree on 4-digit years."""
LAST_US = (dt.datetime.max - EPOCH) // dt.timedelta(microseconds=1)
LOCAL = pa.timestamp("us")
INSTANT = pa.timestamp("us", "UTC")
# Arrow scalars made once: a Python value given to a kernel costs a failed numpy import each time
NO_TEXT = pa.scalar(None, pa.string())
HOUR = pa.scalar(HOUR_US, pa.int64())
END = 1 << 30
"""A slice start past the end of any rendered text (appends there)."""
MILLIS_FROM = pa.scalar(100_000_000_000, pa.int64())
MICROS_PER_MILLI = pa.scalar(1_000, pa.int64())
MICROS_PER_SECOND = pa.scalar(1_000_000, pa.int64())
TABLE_HOURS = 24 * 62
"""Local hours a column may span for ``datetimes.c`` (their offsets are passed as a table)."""
RENDERED_MAX = 32
"""Bytes of the longest rendered value: ``2025-01-06T10:38:10.036000+00:00``."""
NOT_ONE_OFFSET = -(2**63)
"""An hour whose UTC offset is not one value, for ``datetimes.c``."""


_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_COMPILED = native.functions(
    ("datetimes_parse", _SIZE, [_SIZE, *[_POINTER] * 3, _SIZE, *[_POINTER] * 3]),
    ("datetimes_render", _SIZE, [_SIZE, *[_POINTER] * 3, *[_SIZE] * 4, _POINTER, _POINTER]),
)
"""``datetimes_parse`` and ``datetimes_render`` of the compiled helpers, if built."""


class ArrowDateTimes:
    """Converts text columns of one timezone's local times (see the module docstring)."""

    def __init__(self, timezone: str) -> None:
        """Local times (those without an offset) are read in ``timezone``."""
        self.zone = ZoneInfo(timezone)
        self.utc = timezone == "UTC"
        self._offsets: dict[int, int | None] = {}
        self._last: tuple[pa.Array, pa.Array | None] | None = None

    def __call__(self, column: pa.Array) -> pa.Array | None:
        """The RFC 3339 UTC text of every value; ``None`` when a value is outside these forms.

        Columns that repeat their values (minute-precision times) are converted once per
        distinct value, and a column equal to the previous one is not converted again.
        """
        if self._last is not None and self._last[0].equals(column):
            return self._last[1]  # a copy of the previous column (a correction time, say)
        converted = self._convert(column)
        self._last = (column, converted)
        return converted

    def _convert(self, column: pa.Array) -> pa.Array | None:
        compiled = _COMPILED
        if compiled is not None and column.type == pa.string() and column.offset == 0:
            converted = self._convert_compiled(column, *compiled)
            if converted is not None:
                return converted
        if len(column) >= REPEATS_FROM:
            encoded = pc.dictionary_encode(column)
            if len(encoded.dictionary) * 2 <= len(column):
                converted = self._convert_values(encoded.dictionary)
                return None if converted is None else pc.take(converted, encoded.indices)
        return self._convert_values(column)

    def _convert_compiled(self, column: pa.Array, parse: t.Any, render: t.Any) -> pa.Array | None:
        """``datetimes.c``'s reading of a column; ``None`` where it stops at a value."""
        rows = len(column)
        validity, offsets, data = column.buffers()
        micros, kinds, hours = (
            (ctypes.c_int64 * rows)(),
            (ctypes.c_uint8 * rows)(),
            (ctypes.c_int64 * 2)(),
        )
        data_address = data.address if data is not None else None
        validity_address = validity.address if validity is not None and column.null_count else None
        if (
            parse(
                rows, validity_address, offsets.address, data_address, LAST_US, micros, kinds, hours
            )
            != rows
        ):
            return None
        first, last = hours
        shifts = None
        if not self.utc and first <= last:
            if last - first >= TABLE_HOURS:
                return None
            offsets_of_hours = [self._offset(hour) for hour in range(first, last + 1)]
            shifts = (ctypes.c_int64 * len(offsets_of_hours))(
                *(NOT_ONE_OFFSET if shift is None else shift for shift in offsets_of_hours)
            )
        out_offsets = pa.allocate_buffer(4 * (rows + 1))
        out_data = pa.allocate_buffer(max(1, RENDERED_MAX * rows))
        count = len(shifts) if shifts is not None else 0
        done = render(
            rows,
            micros,
            kinds,
            shifts,
            first,
            count,
            FIRST_US,
            LAST_US,
            out_offsets.address,
            out_data.address,
        )
        if done != rows:
            return None
        return pa.Array.from_buffers(
            pa.string(),
            rows,
            [validity if validity_address is not None else None, out_offsets, out_data],
            column.null_count,
        )

    def _convert_values(self, column: pa.Array) -> pa.Array | None:
        present = len(column) - column.null_count
        forms: list[pa.Array | None] = []
        counts: list[int] = []
        for pattern in (DOTTED, ISO_LOCAL, ISO_INSTANT, UNIX):
            if sum(counts) == present:  # every value has a form: skip the other patterns
                forms.append(None)
                counts.append(0)
                continue
            form = pc.match_substring_regex(column, pattern)
            forms.append(form)
            counts.append(pc.sum(form).as_py() or 0)
        if sum(counts) != present:
            return None
        try:
            micros = self._micros(column, forms, counts)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if micros is None or micros.null_count != column.null_count:
            return None
        if present:
            bounds = pc.min_max(micros).as_py()
            if bounds["min"] < FIRST_US or bounds["max"] > LAST_US:
                return None
        return render(micros.cast(LOCAL))

    def _micros(
        self, column: pa.Array, forms: list[pa.Array | None], counts: list[int]
    ) -> pa.Array | None:
        """Microseconds since the epoch (UTC) of every value."""
        dotted, local, instant, unix = forms
        parts = []
        wall = None
        if counts[0]:
            wall = pc.strptime(
                pc.if_else(dotted, column, NO_TEXT), DOTTED_FORMAT, "us", error_is_null=True
            )
        if counts[1]:
            iso = pc.if_else(local, column, NO_TEXT).cast(LOCAL)
            wall = iso if wall is None else pc.coalesce(wall, iso)
        if wall is not None:
            utc = self._local_to_utc(wall.cast(pa.int64()))
            if utc is None:
                return None
            parts.append(utc)
        if counts[2]:
            parts.append(pc.if_else(instant, column, NO_TEXT).cast(INSTANT).cast(pa.int64()))
        if counts[3]:
            number = pc.if_else(unix, column, NO_TEXT).cast(pa.int64())
            scale = pc.if_else(pc.greater(number, MILLIS_FROM), MICROS_PER_MILLI, MICROS_PER_SECOND)
            parts.append(pc.multiply_checked(number, scale))
        if not parts:
            return pa.nulls(len(column), pa.int64())
        return parts[0] if len(parts) == 1 else pc.coalesce(*parts)

    def _local_to_utc(self, wall: pa.Array) -> pa.Array | None:
        """Wall-clock microseconds to UTC ones, by the zone's offset of each local hour."""
        if self.utc or wall.null_count == len(wall):
            return wall
        bounds = pc.min_max(wall).as_py()
        if bounds["min"] < 0:
            return None  # before 1970: integer division would not floor
        first, last = bounds["min"] // HOUR_US, bounds["max"] // HOUR_US
        if last - first < SPAN_HOURS:  # a block's times lie close together
            shift = self._offset(first)
            if shift is not None and all(
                self._offset(hour) == shift for hour in range(first + 1, last + 1)
            ):
                return pc.subtract(wall, pa.scalar(shift, pa.int64()))
        hours = pc.divide(wall, HOUR)
        distinct = pc.unique(hours).drop_null()
        offsets = [self._offset(hour) for hour in distinct.to_pylist()]
        if None in offsets:
            return None
        shift = pc.take(pa.array(offsets, pa.int64()), pc.index_in(hours, distinct))
        return pc.subtract(wall, shift)

    def _offset(self, hour: int) -> int | None:
        """The zone's UTC offset (µs) over one local hour; ``None`` if it is not one offset."""
        if hour not in self._offsets:
            start = EPOCH + dt.timedelta(hours=hour)
            end = start + dt.timedelta(hours=1, microseconds=-1)
            seen = {
                self.zone.utcoffset(moment.replace(fold=fold))
                for moment in (start, end)
                for fold in (0, 1)
            }
            offset = seen.pop() if len(seen) == 1 else None
            self._offsets[hour] = None if offset is None else offset // dt.timedelta(microseconds=1)
        return self._offsets[hour]


def render(instants: pa.Array) -> pa.Array:
    """``2025-01-06T01:35:00+00:00`` / ``…:10.036000+00:00``: Python's ``isoformat`` in UTC."""
    text = instants.cast(pa.string())  # 2025-01-06 01:35:00.000000
    text = pc.replace_substring(text, ".000000", "")
    text = pc.binary_replace_slice(text, 10, 11, "T")  # 4-digit years: the space is the 11th
    return pc.binary_replace_slice(text, END, END, "+00:00")
