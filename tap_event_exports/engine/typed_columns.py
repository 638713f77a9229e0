"""What a block's typed column can be, on its way from a reader to a sink.

The columnar reader types a block column by column: Arrow arrays where Arrow or the compiled
helpers type in bulk, lists of Python values where the record reader's converters do, and
:class:`JsonText` where the compiled helpers wrote each value's JSON. Sinks that need Python
values take them from :func:`values_of`; the JSON-lines encoder reads each form as it is.
"""

from __future__ import annotations

import typing as t

import msgspec

if t.TYPE_CHECKING:
    import pyarrow as pa

    TypedColumn: t.TypeAlias = "pa.Array | list[t.Any] | JsonText"
    """A block's column: an Arrow array typed in bulk, Python values typed by converters, or
    the JSON text of values typed by the compiled helpers."""


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


def values_of(column: TypedColumn) -> list[t.Any]:
    """A typed column's Python values (an Arrow array gives the record reader's values)."""
    if isinstance(column, list):
        return column
    values: list[t.Any] = column.to_pylist()
    return values
