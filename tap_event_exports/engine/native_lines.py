"""JSON lines from Arrow columns by the compiled encoder (``json_lines.c``), when it was built.

The encoder writes what msgspec writes for the same values, without a Python object per cell
and with the GIL released (ctypes lets go of it for the call), so the parsing thread works
while the lines are built. Columns typed in bulk stay Arrow arrays (strings, integers,
booleans); columns the record reader's converters typed in Python come pre-encoded by msgspec,
one value per line. Without the library (:mod:`~tap_event_exports.engine.native`)
:func:`encoder_for` gives ``None`` and callers encode with msgspec.
"""

from __future__ import annotations

import ctypes
import typing as t

import pyarrow as pa
from singer_sdk.contrib.msgspec import encoder

from tap_event_exports.engine import native
from tap_event_exports.engine.typed_columns import JsonText

if t.TYPE_CHECKING:
    from tap_event_exports.engine.typed_columns import TypedColumn

STRING, INT64, BOOL, LINES, JSON = range(5)
ARROW_KINDS = {pa.string(): STRING, pa.int64(): INT64, pa.bool_(): BOOL}


class Column(ctypes.Structure):
    """One column of a block, as ``json_lines.c`` reads it."""

    _fields_: t.ClassVar = [
        ("kind", ctypes.c_int32),
        ("unused", ctypes.c_int32),
        ("offset", ctypes.c_int64),
        ("validity", ctypes.c_void_p),
        ("offsets", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("cursor", ctypes.c_int64),
        ("size", ctypes.c_int64),
        ("key", ctypes.c_char_p),
        ("key_size", ctypes.c_int64),
        ("next", ctypes.c_int64),
    ]


_SIZE = ctypes.c_int64
_ENCODE = (
    native.functions(
        (
            "json_lines_encode",
            _SIZE,
            [
                ctypes.POINTER(Column),
                *[_SIZE] * 3,  # columns, first row, rows
                ctypes.c_char_p,  # prefix and its size
                _SIZE,
                ctypes.c_char_p,  # suffix and its size
                _SIZE,
                ctypes.c_void_p,  # out and its capacity
                _SIZE,
                ctypes.POINTER(_SIZE),  # bytes written
            ],
        )
    )
    or [None]
)[0]
"""``json_lines_encode`` of the compiled helpers, if built."""


def available() -> bool:
    """Whether the compiled encoder is loaded."""
    return _ENCODE is not None


def encoder_for(names: list[str]) -> BlockEncoder | None:
    """An encoder for rows with these column names, or ``None`` without the library."""
    return BlockEncoder(names) if _ENCODE is not None else None


KEY_COPY = 32
"""Bytes the library moves at once for a key (``KEY_COPY`` in ``json_lines.c``)."""


class BlockEncoder:
    """Encodes blocks of columns with fixed names as JSON lines.

    Each row becomes ``prefix {"name":value,...} suffix``: a RECORD message's envelope around
    the record object, or nothing but the newline for a JSONL file.
    """

    def __init__(self, names: list[str]) -> None:
        """Pre-encode the names as msgspec encodes a key."""
        self._keys = [
            (b"" if index == 0 else b",") + encoder.encode(name) + b":"
            for index, name in enumerate(names)
        ]
        self._padded = [key + bytes(KEY_COPY) for key in self._keys]

    def block(
        self,
        columns: t.Sequence[TypedColumn],
        rows: int,
        frame: tuple[bytes, bytes] = (b"", b"\n"),
    ) -> EncodedBlock:
        """A block of columns of ``rows`` values each, ready to be encoded on any thread.

        ``frame`` is what goes before and after each record object (the suffix ends the
        line). The library reads Arrow memory as given, so every column's length is checked.
        """
        if len(columns) != len(self._keys) or any(len(column) != rows for column in columns):
            lengths = [len(column) for column in columns]
            msg = f"a block of {rows} rows for {len(self._keys)} names has columns of {lengths}"
            raise ValueError(msg)
        return EncodedBlock(self._keys, self._padded, columns, rows, frame)


class EncodedBlock:
    """One block's columns described for the library; :meth:`fill` writes its lines."""

    def __init__(
        self,
        keys: list[bytes],
        padded: list[bytes],
        columns: t.Sequence[TypedColumn],
        rows: int,
        frame: tuple[bytes, bytes],
    ) -> None:
        """Point the library's column slots at the columns' memory (held while this lives).

        ``padded`` holds the keys followed by :data:`KEY_COPY` bytes: the library copies a
        short key as one fixed-size move.
        """
        self.rows = rows
        self._count = len(keys)
        self._slots = (Column * max(len(keys), 1))()
        self._held: list[object] = [padded]
        for slot, key, room, column in zip(self._slots, keys, padded, columns, strict=False):
            slot.key, slot.key_size = room, len(key)
            self._held.append(_describe(slot, column))
        self._prefix = frame[0] + b"{"
        self._suffix = b"}" + frame[1]
        self._used = ctypes.c_int64()

    def fill(self, row: int, out: int, capacity: int, rows: int | None = None) -> tuple[int, int]:
        """Encode whole rows from ``row`` (up to ``rows``) into ``capacity`` bytes at ``out``.

        Returns the first row not written and the bytes written. Each call goes on from the
        row the previous one stopped at (pre-encoded columns are read in order). The GIL is
        released meanwhile.
        """
        done = _ENCODE(
            self._slots,
            self._count,
            row,
            self.rows if rows is None else rows,
            self._prefix,
            len(self._prefix),
            self._suffix,
            len(self._suffix),
            out,
            capacity,
            ctypes.byref(self._used),
        )
        if done < 0:
            msg = "a column of the block holds fewer values than the block has rows"
            raise ValueError(msg)
        return done, self._used.value


def _describe(slot: Column, column: TypedColumn) -> object:
    """Point ``slot`` at a column's memory; returns what must stay alive meanwhile."""
    if isinstance(column, list):
        return _lines(slot, column)
    kind: int | None = JSON
    if isinstance(column, JsonText):
        column = column.texts
    else:
        kind = ARROW_KINDS.get(column.type)
    if kind is None:
        if column.type == pa.large_string():
            column = column.cast(pa.string())
            kind = STRING
        else:
            return _lines(slot, column.to_pylist())
    buffers = column.buffers()
    slot.kind, slot.offset = kind, column.offset
    slot.validity = buffers[0].address if buffers[0] is not None and column.null_count else None
    if kind in (STRING, JSON):
        slot.offsets = buffers[1].address
        data = buffers[2]
    else:
        slot.offsets = None
        data = buffers[1]
    slot.data = data.address if data is not None else None
    slot.cursor = slot.size = 0
    return column


def _lines(slot: Column, values: list[t.Any]) -> bytes:
    """Values encoded by msgspec, one a line, for the encoder to copy."""
    text = encoder.encode_lines(values)
    slot.kind, slot.offset, slot.validity, slot.offsets = LINES, 0, None, None
    slot.data = ctypes.cast(ctypes.c_char_p(text), ctypes.c_void_p).value
    slot.cursor, slot.size = 0, len(text)
    return text
