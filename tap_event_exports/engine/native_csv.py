"""Whole-row CSV blocks parsed by the compiled helpers (``csv_parse.c``) into string columns.

pyarrow's CSV reader spent about 0.85 s of CPU on the 300 MB of a 1M-row Dfinery export; the
compiled parser takes well under half that on the blocks it accepts (RFC 4180 fields, rows
ending in LF or CRLF, the header's number of fields, UTF-8) and gives the batch
pyarrow would, value for value and null for null. Any other block gives ``None`` and pyarrow
parses it as before (and raises what it raised).
"""

from __future__ import annotations

import ctypes
import itertools

import pyarrow as pa

from tap_event_exports.engine import native
from tap_event_exports.engine.csv_blocks import c_bytes

GIVE_UP, MORE_ROWS = -1, -2
"""``csv_parse_fields``' answers for a block it leaves to pyarrow and for a too small table."""
FIRST_CAPACITY = 4096
"""Rows the field table holds at first, at most (doubled when a block has more)."""
ALIGNMENT = 64
"""Bytes each column's offsets, text and bitmap are aligned to in the block's shared buffers."""

_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_PARSE, _FILL = native.functions(
    (
        "csv_parse_fields",
        _SIZE,
        [ctypes.c_char_p, _SIZE, ctypes.c_int32, _SIZE, _SIZE, *[_POINTER] * 2],
    ),
    (
        "csv_fill_columns",
        None,
        [ctypes.c_char_p, _POINTER, *[_SIZE] * 3, ctypes.c_int32, *[_POINTER] * 4],
    ),
) or (None, None)
"""``csv_parse_fields`` and ``csv_fill_columns`` of the compiled helpers, if built."""


def available() -> bool:
    """Whether the compiled parser was built."""
    return _PARSE is not None


class BlockParser:
    """Parses blocks of one file's rows (its header's columns), one block at a time."""

    def __init__(self, header: list[str], delimiter: str) -> None:
        """Columns named ``header``, fields separated by ``delimiter``.

        A delimiter other than one ASCII character leaves every block to pyarrow.
        """
        self.header = header
        self.delimiter = ord(delimiter) if len(delimiter) == 1 and delimiter.isascii() else None
        self._capacity = 0
        self._spans: ctypes.Array[ctypes.c_int32] | None = None
        columns = len(header)
        self._bytes = (ctypes.c_int64 * columns)()
        self._nulls = (ctypes.c_int64 * columns)()

    def parse(self, block: bytes | memoryview, *, nulls: bool) -> pa.RecordBatch | None:
        """The block's rows as string columns (``""`` and ``null`` as nulls with ``nulls``).

        ``None`` where pyarrow must parse the block. The columns hold copies of the text, so
        the block's buffer may be reused once this returns.
        """
        assert _PARSE is not None  # noqa: S101 - see available()
        assert _FILL is not None  # noqa: S101
        if self.delimiter is None:
            return None
        columns = len(self.header)
        size = len(block)
        text = c_bytes(block)
        most = (size + 1) // columns + 1  # a row takes at least a byte per column
        if self._spans is None:
            self._grow(min(FIRST_CAPACITY, most))
        while True:
            assert self._spans is not None  # noqa: S101 - made above
            rows = _PARSE(
                text, size, self.delimiter, columns, self._capacity, self._spans, self._bytes
            )
            if rows != MORE_ROWS:
                break
            grown = max(2 * self._capacity, FIRST_CAPACITY)
            self._grow(min(grown, most) if self._capacity < most else grown)
        if rows in (GIVE_UP, 0):  # a block of empty lines is left to pyarrow too
            return None
        offsets_size = _aligned(4 * (rows + 1))
        bitmap_size = _aligned((rows + 7) // 8)
        data_sizes = [_aligned(taken) for taken in self._bytes]
        offsets = pa.allocate_buffer(offsets_size * columns)
        bitmaps = pa.allocate_buffer(bitmap_size * columns)
        data = pa.allocate_buffer(max(1, sum(data_sizes)))
        starts = list(itertools.accumulate(data_sizes, initial=0))[:-1]
        pointers = ctypes.c_void_p * columns
        _FILL(
            text,
            self._spans,
            rows,
            columns,
            self._capacity,
            int(nulls),
            pointers(*[offsets.address + i * offsets_size for i in range(columns)]),
            pointers(*[data.address + start for start in starts]),
            pointers(*[bitmaps.address + i * bitmap_size for i in range(columns)]),
            self._nulls,
        )
        arrays = []
        for i, (start, size, null_count) in enumerate(
            zip(starts, data_sizes, self._nulls, strict=True)
        ):
            bitmap = bitmaps.slice(i * bitmap_size, bitmap_size) if null_count else None
            places = offsets.slice(i * offsets_size, 4 * (rows + 1))
            arrays.append(
                pa.Array.from_buffers(
                    pa.string(), rows, [bitmap, places, data.slice(start, size)], null_count
                )
            )
        return pa.RecordBatch.from_arrays(arrays, names=self.header)

    def _grow(self, capacity: int) -> None:
        """A field table for ``capacity`` rows.

        A field takes 8 bytes, and a block has at most a row per column's byte: the table
        stays within about 8 times the block's size however wide the file.
        """
        self._capacity = capacity
        self._spans = (ctypes.c_int32 * (2 * len(self.header) * capacity))()


def _aligned(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
