"""Number and integer columns read from their text by the compiled helpers (``numbers.c``).

Arrow's way (a regular expression for the accepted forms, a cast, ``+ 0.0`` for ``-0``) took
about a quarter of a second of the main thread per million rows of a parquet run, for
Dfinery's six number columns. The compiled reader checks the same forms and gives the same
values (doubles correctly rounded, as Arrow's cast gives them); at the first value outside the
forms it gives ``None`` and Arrow types the column as before.
"""

from __future__ import annotations

import ctypes
import typing as t

import pyarrow as pa

from tap_event_exports.engine import native
from tap_event_exports.engine.converters import to_number
from tap_event_exports.engine.native_strings import string_buffers
from tap_event_exports.engine.typed_columns import JsonText

_SIZE, _POINTER = ctypes.c_int64, ctypes.c_void_p
_READ, _JSON = native.functions(
    ("numbers_read", _SIZE, [_SIZE, *[_POINTER] * 3, ctypes.c_int32, _POINTER]),
    ("numbers_json", _SIZE, [_SIZE, *[_POINTER] * 5]),
) or [None, None]
"""``numbers_read`` and ``numbers_json`` of the compiled helpers, if built."""
TYPES = {"number": pa.float64(), "integer": pa.int64()}


def read_numbers(column: pa.Array, kind: str) -> pa.Array | None:
    """A string column's values as ``kind`` (number or integer); ``None`` where it stops."""
    text = string_buffers(column) if _READ is not None else None
    if text is None:
        return None
    values = pa.allocate_buffer(max(1, 8 * text.rows))
    done = _READ(text.rows, *text.addresses, int(kind == "integer"), values.address)
    if done != text.rows:
        return None
    return pa.Array.from_buffers(TYPES[kind], text.rows, [text.validity, values], text.nulls)


class NumberJson(JsonText):
    """A number column's JSON; its Python values are the record reader's.

    msgspec would decode a long decimal's text as a float, where the record reader gives a
    ``Decimal``: each text is read by ``to_number`` instead, which gives back the value it
    was written from (the text of a float is at most 16 characters, that of a ``Decimal``
    longer, as in the value it came from).
    """

    def __getitem__(self, rows: slice) -> NumberJson:
        """Some of the column's rows."""
        return NumberJson(self.texts[rows])

    def to_pylist(self) -> list[t.Any]:
        """The values the texts encode, as the record reader types them."""
        return [None if text is None else to_number(text) for text in self.texts.to_pylist()]


def number_json(column: pa.Array) -> NumberJson | None:
    """A number column's values as the JSON the record reader writes for them.

    That is ``converters.to_number`` encoded by msgspec (``12.50`` is ``12.5``, ``007`` is
    ``7``, a decimal of more than 16 characters is written as it is), written by the compiled
    helpers for plain integers and decimals; ``None`` where a value has another form (an
    exponent, a long integer, a value below 0.00001, or 0.000001 for a long decimal), and the
    caller converts each distinct value as before.
    """
    text = string_buffers(column) if _JSON is not None else None
    if text is None:
        return None
    offsets = pa.allocate_buffer(4 * (text.rows + 1))
    data = pa.allocate_buffer(max(1, text.data.size if text.data is not None else 0))
    if _JSON(text.rows, *text.addresses, offsets.address, data.address) != text.rows:
        return None
    buffers = [text.validity, offsets, data]
    return NumberJson(pa.Array.from_buffers(pa.string(), text.rows, buffers, text.nulls))
