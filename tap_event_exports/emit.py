"""Fast JSON output for streams whose records need no per-record SDK work.

When no stream map or flattening applies, a typed record is already exactly what the SDK would
emit, so re-conforming it value by value and wrapping it in message objects is pure overhead.
Rows are encoded as instances of a msgspec ``Struct`` built once per file header (positional
construction and pre-encoded field names, much cheaper than a dict per row) by the same encoder
the SDK's ``MsgSpecWriter`` uses, so the JSON of a record is byte for byte what the SDK writes.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import itertools
import re
import sys
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import encoder

from tap_event_exports.engine.concurrency import WriteBehind, one_thread
from tap_event_exports.engine.typed_columns import values_of

if t.TYPE_CHECKING:
    import gzip
    from collections.abc import Callable

    from tap_event_exports.engine.native_lines import BlockEncoder, EncodedBlock
    from tap_event_exports.engine.typed_columns import TypedColumn

FLUSH_AT = 1 << 17
"""Bytes per write: a pipe's reader wakes once per block (larger blocks cost more system time)."""
ROWS_PER_ENCODE = 512
"""Rows encoded at once (bounds the memory of one encoded block: about 1 MiB of wide rows)."""
BLOCKS_BEHIND = 2
"""Blocks of columns waiting for the output thread at most (each holds its Arrow arrays)."""
OUTPUT_THREAD = one_thread("line-writer")
"""The one thread that encodes and writes every writer's blocks of Arrow columns, in order."""


UNSAFE_NAME = re.compile(r'["\\\x00-\x1f\x7f]')
"""Characters msgspec does not take in a renamed field (column names may hold anything)."""


def row_type(names: list[str]) -> Callable[..., t.Any]:
    """A Struct type whose instances, built from a row's values, encode as the record object.

    Column names msgspec cannot rename to (quotes, backslashes, control characters) get
    plain dicts instead, which encode the same, only more slowly. Rows are not tracked by the
    garbage collector (``gc=False``): they hold values only, never a cycle, and a million
    tracked rows made the collector walk every live object again and again.
    """
    if any(UNSAFE_NAME.search(name) for name in names):
        return lambda *values: dict(zip(names, values, strict=True))
    fields = [(f"f{index}", object) for index in range(len(names))]
    rename = {f"f{index}": name for index, name in enumerate(names)}
    return msgspec.defstruct("Record", fields, rename=rename, gc=False)


RecordMessage = msgspec.defstruct(
    "RecordMessage",
    [("type", str), ("stream", str), ("record", object), ("time_extracted", dt.datetime)],
    gc=False,
)
"""A RECORD message, encoded exactly as the SDK writes one (fields in the SDK's order)."""


@t.runtime_checkable
class BlockSink(t.Protocol):
    """An output that takes a filled buffer whole (no copy) and gives an empty one back."""

    def swap(self, block: bytearray, used: int) -> bytearray:
        """Take the first ``used`` bytes of ``block``; an empty buffer of the same size."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take bytes the caller may reuse."""

    def flush(self) -> None:
        """Write out everything taken."""


class LineWriter:
    """Writes one JSON object per line, a block of rows at a time.

    A block's rows are encoded at once: by the compiled encoder straight from Arrow columns
    where it was built (:mod:`~tap_event_exports.engine.native_lines`), on the output thread
    while the caller types the next block, else by one msgspec ``encode_lines`` call (encoding
    row by row into a growing buffer cost about twice as much as the rows' encoding itself).
    Both write the same bytes. Lines gather in one buffer (:data:`FLUSH_AT` bytes unless
    told), written out when full. Callers flush it before any other message (SCHEMA, STATE)
    is written, so message order is unchanged.
    """

    def __init__(
        self, out: t.IO[bytes] | gzip.GzipFile | BlockSink, *, block_bytes: int = FLUSH_AT
    ) -> None:
        """Write lines to ``out`` in blocks of ``block_bytes``.

        A :class:`BlockSink` takes each filled buffer whole and gives an empty one back.
        """
        self._out = out
        self._size = block_bytes
        self._swap = out.swap if isinstance(out, BlockSink) else None
        self._hold(bytearray(block_bytes))
        self._fill = 0
        self._row: Callable[..., t.Any] | None = None
        self._names: list[str] = []
        self._native: BlockEncoder | t.Literal[False] | None = False
        self._behind = WriteBehind(BLOCKS_BEHIND, OUTPUT_THREAD)

    def columns(self, names: list[str]) -> None:
        """Set the column names of the rows written from now on (see :meth:`write_rows`).

        The row type is made again only when the names change (a type per block would cost
        a class each time, freed only by the cycle collector).
        """
        if self._row is None or names != self._names:
            self._row = row_type(names)
            self._names = list(names)
            self._native = False

    def write(self, record: dict[str, t.Any]) -> None:
        """Queue one record given as a dict."""
        self._queue(self._lines([record]))

    def write_rows(self, rows: t.Iterable[t.Sequence[t.Any]]) -> int:
        """Queue rows of values in the order given to :meth:`columns`; returns how many."""
        row = self._row
        assert row is not None  # noqa: S101 - columns() comes first
        count = 0
        rows = iter(rows)
        while chunk := [row(*values) for values in itertools.islice(rows, ROWS_PER_ENCODE)]:
            self._queue(self._lines(chunk))
            count += len(chunk)
        return count

    def write_columns(self, columns: t.Sequence[TypedColumn]) -> int:
        """Queue rows given as columns (in the order given to :meth:`columns`); returns how many.

        A column is a list of Python values or, from the columnar reader, an Arrow array
        whose Python values are the record's.
        """
        row = self._row
        assert row is not None  # noqa: S101 - columns() comes first
        rows = len(columns[0]) if columns else 0
        if not all(isinstance(column, list) for column in columns):
            native = self._native_encoder()
            if native is not None:
                block = native.block(columns, rows, self._frame())
                self._behind.submit(self._encode, block)
                return rows
        values = [values_of(column) for column in columns]
        for start in range(0, rows, ROWS_PER_ENCODE):
            part = [column[start : start + ROWS_PER_ENCODE] for column in values]
            self._queue(self._lines(list(map(row, *part))))
        return rows

    def settle(self) -> None:
        """Wait for the output thread's blocks, their failures ignored (before an abandon)."""
        self._behind.wait(raise_errors=False)

    def flush(self) -> None:
        """Write out everything queued."""
        self._behind.wait()
        if self._fill:
            self._write_out()
        self._out.flush()

    def _native_encoder(self) -> BlockEncoder | None:
        """The compiled encoder for the current names (``None`` without the library)."""
        if self._native is False:
            from tap_event_exports.engine.native_lines import encoder_for  # noqa: PLC0415

            self._native = encoder_for(self._names)
        return self._native

    def _frame(self) -> tuple[bytes, bytes]:
        """What surrounds each record object on its line."""
        return b"", b"\n"

    def _encode(self, block: EncodedBlock) -> None:
        """Encode a block into the buffer, writing it out whenever it fills (output thread)."""
        row = 0
        while row < block.rows:
            done, used = block.fill(row, self._address + self._fill, self._size - self._fill)
            self._fill += used
            if done == row:  # the buffer is full, or one row is larger than all of it
                if self._fill:
                    self._write_out()
                    continue
                done = self._encode_large_row(block, row)
            row = done

    def _encode_large_row(self, block: EncodedBlock, row: int) -> int:
        """Write a row larger than the buffer from a buffer of its own; returns the next row."""
        size = 2 * self._size
        while True:
            large = ctypes.create_string_buffer(size)
            done, used = block.fill(row, ctypes.addressof(large), size, rows=row + 1)
            if done > row:
                self._out.write(memoryview(large).cast("B")[:used])
                return done
            size *= 2

    def _lines(self, records: list[t.Any]) -> bytes:
        """The JSON lines of records."""
        return encoder.encode_lines(records)

    def _queue(self, lines: bytes) -> None:
        if not self._behind.idle:  # the output thread's blocks go first
            self._behind.wait()
        size, block = len(lines), self._size
        if self._fill and self._fill + size > block:
            self._write_out()
        if size >= block:
            view = memoryview(lines)
            for start in range(0, size, block):  # the pipe's reader wakes per block
                self._out.write(view[start : start + block])
        else:
            self._view[self._fill : self._fill + size] = lines
            self._fill += size

    def _write_out(self) -> None:
        if self._swap is not None:
            self._hold(self._swap(self._block, self._fill))
        else:
            self._out.write(self._view[: self._fill])
        self._fill = 0

    def _hold(self, block: bytearray) -> None:
        """Fill ``block`` from now on."""
        self._block = block
        self._view = memoryview(block)
        self._address = ctypes.addressof((ctypes.c_char * len(block)).from_buffer(block))


class FastRecordWriter(LineWriter):
    """Writes ``{"type":"RECORD","stream":...,"record":...,"time_extracted":...}`` lines."""

    def __init__(self, stream: str, out: t.BinaryIO | None = None) -> None:
        """Write RECORD messages of ``stream`` to ``out`` (stdout by default)."""
        super().__init__(out if out is not None else sys.stdout.buffer)
        self.stream = stream
        self.stamp(dt.datetime.now(dt.timezone.utc))

    def stamp(self, extracted_at: dt.datetime) -> None:
        """Set the ``time_extracted`` of the records written from now on."""
        self._extracted_at = extracted_at

    def _frame(self) -> tuple[bytes, bytes]:
        """The RECORD message's envelope, as msgspec encodes :data:`RecordMessage`."""
        return (
            b'{"type":"RECORD","stream":' + encoder.encode(self.stream) + b',"record":',
            b',"time_extracted":' + encoder.encode(self._extracted_at) + b"}\n",
        )

    def _lines(self, records: list[t.Any]) -> bytes:
        stream, extracted_at = self.stream, self._extracted_at
        return encoder.encode_lines(
            [RecordMessage("RECORD", stream, record, extracted_at) for record in records]
        )
