"""Whole-row blocks of a CSV file, cut by the tap so that pyarrow parses one block at a time.

In RFC 4180 CSV a newline is a row end exactly when an even number of quote characters precede
it; blocks end only there. Blocks pyarrow would read differently from Python's strict csv are
recognised here and left to the record reader.
"""

from __future__ import annotations

import ctypes
import io
import re
import struct
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from tap_event_exports.engine import native

if t.TYPE_CHECKING:
    from collections.abc import Iterator

LONGEST_ROW = 1 << 26
"""Bytes without a row end after which a file is left to the record reader."""
BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte order mark: pyarrow drops one at the start of every block it parses."""


NULL_SPELLINGS = pa.array(["", "null"])
"""Values the columnar reader reads as nulls (its ``null_values``)."""
NO_TEXT = pa.scalar(None, pa.string())


_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_STRAY_QUOTE, _NULL_SPELLINGS, _ROW_END = native.functions(
    ("csv_stray_quote", _SIZE, [ctypes.c_char_p, _SIZE, ctypes.c_int32]),
    ("csv_null_spellings", _SIZE, [_SIZE, _SIZE, *[_POINTER] * 4]),
    ("csv_row_end", _SIZE, [ctypes.c_char_p, _SIZE]),
) or (None, None, None)
"""``csv_stray_quote``, ``csv_null_spellings`` and ``csv_row_end`` of the compiled helpers,
if built."""


def with_nulls(column: pa.Array) -> pa.Array:
    """A string column read as written, with ``""`` and ``null`` as nulls (as first read).

    The compiled helpers give it a new validity bitmap over the same text; else Arrow's
    kernels replace those values.
    """
    if _NULL_SPELLINGS is None or column.type != pa.string() or column.offset:
        return pc.if_else(pc.is_in(column, NULL_SPELLINGS), NO_TEXT, column)
    rows = len(column)
    validity, offsets, data = column.buffers()
    bitmap = pa.allocate_buffer(max(1, (rows + 7) // 8))
    nulls = _NULL_SPELLINGS(
        rows,
        0,
        validity.address if validity is not None and column.null_count else None,
        offsets.address,
        data.address if data is not None else None,
        bitmap.address,
    )
    return pa.Array.from_buffers(pa.string(), rows, [bitmap, offsets, data], nulls)


def whole_rows(source: io.BufferedIOBase, size: int) -> Iterator[memoryview]:
    """Blocks of about ``size`` bytes that end at a row end (a newline outside quotes).

    In RFC 4180 CSV a newline is a row end exactly when an even number of quote characters
    precede it. A file without such newlines for ``LONGEST_ROW`` bytes (lone carriage-return
    line ends, a stray quote) stops with ``ArrowInvalid``; the record reader then reads it.

    The file is read into one buffer, and each block is a view of it, valid until the next
    block is asked for: cutting blocks out of fresh ``bytes`` copied every byte twice and
    cost a new megabyte of memory per block.
    """
    buffer = bytearray(2 * size)
    kept = 0  # a partial row carried over, at the buffer's start
    while True:
        if len(buffer) - kept < size:  # a row longer than the buffer: a larger one
            grown = bytearray(max(2 * len(buffer), kept + size))
            grown[:kept] = buffer[:kept]
            buffer = grown
        view = memoryview(buffer)
        read = source.readinto(view[kept : kept + size])
        if not read:
            if kept:
                yield view[:kept]
            return
        filled = kept + read
        end = row_end(view[:filled])
        if not end:
            if filled > LONGEST_ROW:
                msg = f"no row end outside quotes in {LONGEST_ROW} bytes"
                raise pa.ArrowInvalid(msg)
            kept = filled
            continue
        yield view[:end]
        kept = filled - end
        buffer[:kept] = buffer[end:filled]


def row_end(block: memoryview) -> int:
    """Where the last whole row of ``block`` ends (after its last newline outside quotes).

    Zero if no newline is outside quotes. The compiled scan (``csv_scan.c``) counts the quotes
    once; without it Python counts them before each newline tried, from the end.
    """
    if _ROW_END is not None:
        return int(_ROW_END(c_bytes(block), len(block)))
    text = bytes(block)
    end = text.rfind(b"\n") + 1
    while end and text.count(b'"', 0, end) % 2:
        end = text.rfind(b"\n", 0, end - 1) + 1
    return end


def c_bytes(block: bytes | memoryview) -> bytes | ctypes.Array[ctypes.c_char]:
    """What a compiled scan takes for ``block``: bytes as they are, a view of a buffer in place."""
    if isinstance(block, bytes):
        return block
    return (ctypes.c_char * len(block)).from_buffer(block)


def first_row_end(block: bytes) -> int:
    """Where the first row of a block ends (after its newline outside quotes; else its end)."""
    end = first_line_break(block)
    return len(block) if end is None else end


def first_line_break(block: bytes) -> int | None:
    """Where the first row of a block ends, after its newline outside quotes (``None``: none).

    One pass, even where a quote is never closed (counting from the start at every line break
    took 38 s for a 1 MiB header with an unclosed quote).
    """
    end = block.find(b"\n")
    quotes = block.count(b'"', 0, end) if end != -1 else 0
    while end != -1 and quotes % 2:  # a line break inside a quoted field
        following = block.find(b"\n", end + 1)
        quotes += block.count(b'"', end, following) if following != -1 else 0
        end = following
    return None if end == -1 else end + 1


def stray_quote(block: bytes | memoryview, delimiter: str) -> bool:
    """Whether a quote stands between two characters that are not delimiters or line ends.

    Python's csv (strict) refuses ``"b"c`` and pyarrow reads it as ``bc``; such blocks are
    left to the record reader, which names the line (or, for a literal quote inside an
    unquoted field such as ``b"c``, reads it exactly as pyarrow would). The compiled scan
    (``csv_scan.c``) looks at each quote's neighbours; without it RE2 scans the block.
    """
    if _STRAY_QUOTE is not None and len(delimiter.encode()) == 1:
        return bool(_STRAY_QUOTE(c_bytes(block), len(block), ord(delimiter)))
    return stray_quote_by_regex(block, delimiter)


def stray_quote_by_regex(block: bytes | memoryview, delimiter: str) -> bool:
    """:func:`stray_quote` by RE2 over the block read as Latin-1."""
    block = bytes(block)
    if b'"' not in block:
        return False
    offsets = pa.py_buffer(struct.pack("<qq", 0, len(block)))
    text = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(block)])
    other = f'[^{re.escape(delimiter)}\\r\\n"]'
    return bool(pc.any(pc.match_substring_regex(text, f'{other}"{other}')).as_py())
