"""Fast JSON output for streams whose records need no per-record SDK work.

When no stream map or flattening applies, a typed record is already exactly what the SDK would
emit, so re-conforming it value by value and wrapping it in message objects is pure overhead.
Rows are encoded as instances of a msgspec ``Struct`` built once per file header (positional
construction and pre-encoded field names, much cheaper than a dict per row) by the same encoder
the SDK's ``MsgSpecWriter`` uses, so the JSON of a record is byte for byte what the SDK writes.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import encoder

if t.TYPE_CHECKING:
    import gzip
    from collections.abc import Callable

FLUSH_AT = 1 << 17


UNSAFE_NAME = re.compile(r'["\\\x00-\x1f\x7f]')
"""Characters msgspec does not take in a renamed field (column names may hold anything)."""


def row_type(names: list[str]) -> Callable[..., t.Any]:
    """A Struct type whose instances, built from a row's values, encode as the record object.

    Column names msgspec cannot rename to (quotes, backslashes, control characters) get
    plain dicts instead, which encode the same, only more slowly.
    """
    if any(UNSAFE_NAME.search(name) for name in names):
        return lambda *values: dict(zip(names, values, strict=True))
    fields = [(f"f{index}", object) for index in range(len(names))]
    rename = {f"f{index}": name for index, name in enumerate(names)}
    return msgspec.defstruct("Record", fields, rename=rename)


class LineWriter:
    """Writes one JSON object per line, each between a fixed prefix and suffix, in blocks.

    Callers flush it before any other message (SCHEMA, STATE) is written, so message order is
    unchanged.
    """

    def __init__(
        self, out: t.IO[bytes] | gzip.GzipFile, prefix: bytes = b"", suffix: bytes = b"\n"
    ) -> None:
        """Write lines ``prefix + object + suffix`` to ``out``."""
        self._out = out
        self._prefix = prefix
        self._suffix = suffix
        self._buffer = bytearray()
        self._row: Callable[..., t.Any] | None = None
        self._names: list[str] = []

    def columns(self, names: list[str]) -> None:
        """Set the column names of the rows written from now on (see :meth:`write_rows`).

        The row type is made again only when the names change (a type per block would cost
        a class each time, freed only by the cycle collector).
        """
        if self._row is None or names != self._names:
            self._row = row_type(names)
            self._names = list(names)

    def write(self, record: dict[str, t.Any]) -> None:
        """Queue one record given as a dict."""
        buffer = self._buffer
        buffer += self._prefix
        encoder.encode_into(record, buffer, -1)
        buffer += self._suffix
        if len(buffer) >= FLUSH_AT:
            self._out.write(buffer)
            buffer.clear()

    def write_rows(self, rows: t.Iterable[t.Sequence[t.Any]]) -> int:
        """Queue rows of values in the order given to :meth:`columns`; returns how many."""
        row = self._row
        assert row is not None  # noqa: S101 - columns() comes first
        return self._write_structs(row(*values) for values in rows)

    def write_columns(self, columns: list[list[t.Any]]) -> int:
        """Queue rows given as columns (in the order given to :meth:`columns`); returns how many."""
        row = self._row
        assert row is not None  # noqa: S101 - columns() comes first
        return self._write_structs(map(row, *columns))

    def _write_structs(self, records: t.Iterable[t.Any]) -> int:
        buffer = self._buffer
        prefix, suffix, out = self._prefix, self._suffix, self._out
        encode_into = encoder.encode_into
        count = 0
        for record in records:
            buffer += prefix
            encode_into(record, buffer, -1)
            buffer += suffix
            count += 1
            if len(buffer) >= FLUSH_AT:
                out.write(buffer)
                buffer.clear()
        return count

    def flush(self) -> None:
        """Write out everything queued."""
        if self._buffer:
            self._out.write(self._buffer)
            self._buffer.clear()
        self._out.flush()


class FastRecordWriter(LineWriter):
    """Writes ``{"type":"RECORD","stream":...,"record":...,"time_extracted":...}`` lines."""

    def __init__(self, stream: str, out: t.BinaryIO | None = None) -> None:
        """Write RECORD messages of ``stream`` to ``out`` (stdout by default)."""
        prefix = b'{"type":"RECORD","stream":' + encoder.encode(stream) + b',"record":'
        super().__init__(out if out is not None else sys.stdout.buffer, prefix)
        self.stamp(dt.datetime.now(dt.timezone.utc))

    def stamp(self, extracted_at: dt.datetime) -> None:
        """Set the ``time_extracted`` of the records written from now on."""
        self._suffix = b',"time_extracted":' + encoder.encode(extracted_at) + b"}\n"
