"""A fast RECORD writer for streams whose records need no per-record SDK work.

When no stream map or flattening applies, a typed record is already exactly what the SDK would
emit, so re-conforming it value by value and wrapping it in message objects is pure overhead.
This writer encodes the record with the same msgspec encoder the SDK's ``MsgSpecWriter`` uses,
between a pre-encoded envelope, and writes to stdout in large blocks. Callers flush it before
any other message (SCHEMA, STATE) is written, so message order is unchanged.
"""

from __future__ import annotations

import datetime as dt
import sys
import typing as t

from singer_sdk.contrib.msgspec import encoder

FLUSH_AT = 1 << 17


class FastRecordWriter:
    """Writes ``{"type":"RECORD","stream":...,"record":...,"time_extracted":...}`` lines."""

    def __init__(self, stream: str, out: t.BinaryIO | None = None) -> None:
        """Write RECORD messages of ``stream`` to ``out`` (stdout by default)."""
        self._out = out if out is not None else sys.stdout.buffer
        self._prefix = b'{"type":"RECORD","stream":' + encoder.encode(stream) + b',"record":'
        self._suffix = b"}\n"
        self._buffer = bytearray()
        self.stamp(dt.datetime.now(dt.timezone.utc))

    def stamp(self, extracted_at: dt.datetime) -> None:
        """Set the ``time_extracted`` of the records written from now on."""
        self._suffix = b',"time_extracted":' + encoder.encode(extracted_at) + b"}\n"

    def write(self, record: dict[str, t.Any]) -> None:
        """Queue one record; written out in blocks."""
        buffer = self._buffer
        buffer += self._prefix
        encoder.encode_into(record, buffer, -1)
        buffer += self._suffix
        if len(buffer) >= FLUSH_AT:
            self._out.write(buffer)
            buffer.clear()

    def flush(self) -> None:
        """Write out everything queued (before any other message is written)."""
        if self._buffer:
            self._out.write(self._buffer)
            self._buffer.clear()
        self._out.flush()
