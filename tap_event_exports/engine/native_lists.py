"""List columns read by the compiled helpers (``lists.c``) into the JSON text of each list.

The lists are exactly those :func:`~tap_event_exports.engine.lists.to_array` gives, for the
values it reads without ``json.loads`` and, in the ``quoted`` syntax, without a backslash (one
may be ClickHouse's escapes, decoded by ``lists.escaped_items``); a column with any other value
gives ``None`` and is read in Python as before.
"""

from __future__ import annotations

import ctypes

import pyarrow as pa

from tap_event_exports.engine import native
from tap_event_exports.engine.native_strings import string_buffers
from tap_event_exports.engine.typed_columns import JsonText

BYTES_PER_BYTE = 6
"""Output bytes an input byte can take at most (a control character escaped as ``\\u00xx``)."""
_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_TO_JSON = (
    native.functions(
        ("lists_to_json", _SIZE, [_SIZE, *[_POINTER] * 3, ctypes.c_int32, *[_POINTER] * 2, _SIZE])
    )
    or [None]
)[0]
"""``lists_to_json`` of the compiled helpers, if built."""


def json_lists(column: pa.Array, syntax: str) -> JsonText | None:
    """A string column of list values as JSON arrays of strings; ``None`` where it stops."""
    text = string_buffers(column) if _TO_JSON is not None else None
    if text is None:
        return None
    size = text.data.size if text.data is not None else 0
    capacity = BYTES_PER_BYTE * size + 2 * text.rows + 1
    out_offsets = pa.allocate_buffer(4 * (text.rows + 1))
    out_data = pa.allocate_buffer(capacity)
    done = _TO_JSON(
        text.rows,
        *text.addresses,
        int(syntax == "quoted"),
        out_offsets.address,
        out_data.address,
        capacity,
    )
    if done != text.rows:
        return None
    texts = pa.Array.from_buffers(
        pa.string(), text.rows, [text.validity, out_offsets, out_data], text.nulls
    )
    return JsonText(texts)
