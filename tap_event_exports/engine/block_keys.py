"""Synthetic keys of a whole block of raw Arrow columns at once.

Where the compiled helpers were built, ``synthetic_keys.c`` hashes every row of the block
straight from the Arrow columns (no joined copy, no Python object per row) and writes the keys'
text; :class:`SyntheticKeys` counts the repeats in between, so the keys are exactly those of
:meth:`SyntheticKeys.of_encoded`. Otherwise the rows are joined by Arrow and hashed in Python.
"""

from __future__ import annotations

import ctypes
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from tap_event_exports.engine import native
from tap_event_exports.engine.synthetic_keys import DIGEST, SyntheticKeys

SEPARATOR = pa.scalar("\x1f")
KEY_TEXT_MAX = 2 * DIGEST + 21
"""Bytes of the longest key: the digest in hex, ``~`` and a repeat count."""


class TextColumn(ctypes.Structure):
    """A string column without nulls, as ``synthetic_keys.c`` reads it."""

    _fields_: t.ClassVar = [
        ("offset", ctypes.c_int64),
        ("offsets", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
    ]


_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_COMPILED = native.functions(
    ("synthetic_digests", None, [_SIZE, _SIZE, _POINTER, ctypes.c_char_p, _SIZE, _POINTER]),
    ("synthetic_keys_text", None, [_SIZE, *[_POINTER] * 4]),
)
"""``synthetic_digests`` and ``synthetic_keys_text`` of the compiled helpers, if built."""


def block_digests(prefix: bytes, raw: pa.RecordBatch) -> t.Any:
    """The BLAKE2b-128 digests of a block's rows (a ctypes buffer), hashed after ``prefix``.

    ``None`` where the compiled helpers cannot read the block (no library, a column that is
    not text or has nulls). Pure work outside the GIL: the thread that parses the next blocks
    runs it, so the one typing them only counts the repeats.
    """
    columns = raw.columns
    if (
        _COMPILED is None
        or not columns
        or any(column.type != pa.string() or column.null_count for column in columns)
    ):
        return None
    rows = raw.num_rows
    described = (TextColumn * len(columns))()
    for slot, column in zip(described, columns, strict=True):
        buffers = column.buffers()
        slot.offset, slot.offsets = column.offset, buffers[1].address
        slot.data = buffers[2].address if buffers[2] is not None else None
    digests = ctypes.create_string_buffer(max(1, DIGEST * rows))
    _COMPILED[0](rows, len(columns), described, prefix, len(prefix), digests)
    return digests


def block_keys(
    keys: SyntheticKeys, raw: pa.RecordBatch, digests: t.Any = None
) -> pa.Array | list[str]:
    """The keys of a block's rows (its columns as written, every value present).

    ``digests`` are the rows' :func:`block_digests` under ``keys.prefix``, if already made.
    """
    if keys.by_name:
        values = [column.to_pylist() for column in raw.columns]
        return keys.of_rows(list(zip(*values, strict=True)))
    if digests is None:
        digests = block_digests(keys.prefix, raw)
    if digests is None or _COMPILED is None:
        texts = [column.cast(pa.string()) for column in raw.columns]  # as the separator is
        joined = pc.binary_join_element_wise(*texts, SEPARATOR)
        return keys.of_encoded(joined.cast(pa.binary()).to_pylist())
    text_of = _COMPILED[1]
    rows = raw.num_rows
    repeats = (ctypes.c_int64 * max(1, rows))()
    keys.count_into(rows, digests, repeats)
    out_offsets = pa.allocate_buffer(4 * (rows + 1))
    out_data = pa.allocate_buffer(max(1, KEY_TEXT_MAX * rows))
    text_of(rows, digests, repeats, out_offsets.address, out_data.address)
    return pa.Array.from_buffers(pa.string(), rows, [None, out_offsets, out_data], 0)
