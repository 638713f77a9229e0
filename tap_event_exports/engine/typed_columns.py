"""What a block's typed column can be, on its way from a reader to a sink.

The columnar reader types a block column by column: Arrow arrays where Arrow or the compiled
helpers type in bulk, lists of Python values where the record reader's converters do, and
:class:`JsonText` where the compiled helpers wrote each value's JSON (or
:class:`SpreadJson`, where each distinct value was typed and encoded once). Sinks that need Python
values take them from :func:`values_of`; the JSON-lines encoder reads each form as it is.
"""

from __future__ import annotations

import typing as t

import msgspec

if t.TYPE_CHECKING:
    import pyarrow as pa

    TypedColumn: t.TypeAlias = "pa.Array | list[t.Any] | JsonText"
    """A block's column: an Arrow array typed in bulk, Python values typed by converters, or
    the JSON text of values typed by the compiled helpers or once per distinct value."""


class JsonText:
    """A column given as the JSON text of each value (an Arrow string array; nulls are nulls).

    The compiled helpers write list values so (``lists.c``); the JSON-lines encoder copies the
    text, and :meth:`to_pylist` decodes the values the record reader would give.
    """

    def __init__(self, texts: pa.Array) -> None:
        """Hold ``texts``."""
        self.texts = texts

    def __len__(self) -> int:
        """The column's rows."""
        return len(self.texts)

    def __getitem__(self, rows: slice) -> JsonText:
        """Some of the column's rows."""
        return JsonText(self.texts[rows])

    def to_pylist(self) -> list[t.Any]:
        """The values the texts encode."""
        decode = msgspec.json.decode
        return [None if text is None else decode(text) for text in self.texts.to_pylist()]


class SpreadJson(JsonText):
    """A column typed once per distinct value: each row's JSON text, and its Python value.

    ``texts`` holds each row's JSON (nulls are nulls), ``values`` the typed distinct values
    followed by ``None``, and ``indices`` each row's place in ``values`` (nulls at the end).
    The JSON-lines encoder copies the texts; :meth:`to_pylist` gives the typed values
    themselves (decoding the text would not give back a ``Decimal``).
    """

    def __init__(self, texts: pa.Array, values: list[t.Any], indices: pa.Array) -> None:
        """Hold the rows' ``texts`` and where each row's value is in ``values``."""
        super().__init__(texts)
        self.values = values
        self.indices = indices

    def __getitem__(self, rows: slice) -> SpreadJson:
        """Some of the column's rows."""
        return SpreadJson(self.texts[rows], self.values, self.indices[rows])

    def to_pylist(self) -> list[t.Any]:
        """The typed values of the rows."""
        return list(map(self.values.__getitem__, self.indices.to_pylist()))


def values_of(column: TypedColumn) -> list[t.Any]:
    """A typed column's Python values (an Arrow array gives the record reader's values)."""
    if isinstance(column, list):
        return column
    values: list[t.Any] = column.to_pylist()
    return values
