"""Number and integer columns read from their text by the compiled helpers (``numbers.c``).

Arrow's way (a regular expression for the accepted forms, a cast, ``+ 0.0`` for ``-0``) took
about a quarter of a second of the main thread per million rows of a parquet run, for
Dfinery's six number columns. The compiled reader checks the same forms and gives the same
values (doubles only where one IEEE operation rounds them correctly, as Arrow's cast does);
at the first value outside it gives ``None`` and Arrow types the column as before.
"""

from __future__ import annotations

import ctypes

import pyarrow as pa

from tap_event_exports.engine import native

_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_READERS = native.functions(
    ("numbers_read", _SIZE, [_SIZE, *[_POINTER] * 3, ctypes.c_int32, _POINTER]),
)
"""``numbers_read`` of the compiled helpers, if built."""
TYPES = {"number": pa.float64(), "integer": pa.int64()}


def read_numbers(column: pa.Array, kind: str) -> pa.Array | None:
    """A string column's values as ``kind`` (number or integer); ``None`` where it stops."""
    if _READERS is None or column.type != pa.string() or column.offset:
        return None
    rows = len(column)
    validity, offsets, data = column.buffers()
    present = validity if validity is not None and column.null_count else None
    values = pa.allocate_buffer(max(1, 8 * rows))
    done = _READERS[0](
        rows,
        present.address if present is not None else None,
        offsets.address,
        data.address if data is not None else None,
        int(kind == "integer"),
        values.address,
    )
    if done != rows:
        return None
    return pa.Array.from_buffers(TYPES[kind], rows, [present, values], column.null_count)
