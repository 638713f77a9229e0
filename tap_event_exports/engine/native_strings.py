"""Arrow string columns as the compiled column readers take them: row count and addresses.

Both readers (``numbers.c``, ``lists.c``) walk a column's offsets and text from its first row
and test a row's bit only where a validity bitmap is given; a sliced column (an offset into
its buffers) is left to Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class StringBuffers:
    """A string column's buffers, with the addresses a compiled reader is called with."""

    rows: int
    nulls: int
    validity: pa.Buffer | None
    """The bitmap, where a row is null (also the bitmap of a column read from this one)."""
    offsets: pa.Buffer
    data: pa.Buffer | None

    @property
    def addresses(self) -> tuple[int | None, int, int | None]:
        """Validity (``None``: every row present), offsets and text."""
        validity = self.validity.address if self.validity is not None else None
        return validity, self.offsets.address, self.data.address if self.data else None


def string_buffers(column: pa.Array) -> StringBuffers | None:
    """The buffers of an unsliced string column; ``None`` for any other column."""
    if column.type != pa.string() or column.offset:
        return None
    validity, offsets, data = column.buffers()
    if not column.null_count:
        validity = None
    return StringBuffers(len(column), column.null_count, validity, offsets, data)
