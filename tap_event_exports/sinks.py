"""Where a stream's records go, one sink per output, chosen once per stream.

- :class:`RecordSink`: RECORD messages straight to stdout, byte for byte what the SDK writes,
  when no stream map or flattening applies (typed columns become msgspec rows).
- :class:`MapperSink`: through the SDK's stream maps and flattening, record by record (also the
  path of a dry run with a record limit).
- :class:`BatchSink`: BATCH files (``batch_config``), JSONL from typed columns, parquet from
  Arrow batches.
- :class:`CollectSink`: records as dicts, for :meth:`ExportStream.get_records`.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk.mapper import SameRecordTransform

from tap_event_exports.emit import FastRecordWriter
from tap_event_exports.engine.typed_columns import values_of

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from tap_event_exports.batch_files import BatchFiles
    from tap_event_exports.engine.reading import Form, ReadPlan
    from tap_event_exports.engine.typed_columns import TypedColumn
    from tap_event_exports.sdk import SdkStream


class RecordSink:
    """RECORD messages written by the fast writer."""

    form: Form = "columns"

    def __init__(self, writer: FastRecordWriter) -> None:
        """Write through ``writer`` (flushed by the stream before any other message)."""
        self.writer = writer

    def begin(self, plan: ReadPlan) -> None:  # noqa: D102
        self.writer.stamp(dt.datetime.now(dt.timezone.utc))
        self.writer.columns(plan.names)

    def write_batch(self, batch: pa.RecordBatch) -> int:  # noqa: D102
        return self.writer.write_columns(batch.columns)

    def write_columns(self, columns: list[TypedColumn]) -> int:  # noqa: D102
        return self.writer.write_columns(columns)

    def write_rows(self, rows: Iterator[list[t.Any]]) -> int:  # noqa: D102
        return self.writer.write_rows(rows)

    def flush(self) -> None:
        """Write out what is queued (before a STATE or SCHEMA message)."""
        self.writer.flush()


class MapperSink:
    """Records through the SDK's mapper, checking a dry run's record limit."""

    form: Form = "rows"

    def __init__(self, stream: SdkStream) -> None:
        """Write records of ``stream``."""
        self.stream = stream
        self.written = 0
        self._names: list[str] = []

    def begin(self, plan: ReadPlan) -> None:  # noqa: D102
        self._names = plan.names

    def write_batch(self, batch: pa.RecordBatch) -> int:  # noqa: D102
        return self.write_rows(iter([list(row.values()) for row in batch.to_pylist()]))

    def write_columns(self, columns: list[TypedColumn]) -> int:  # noqa: D102
        return self.write_rows(iter(map(list, zip(*map(values_of, columns), strict=True))))

    def write_rows(self, rows: Iterator[list[t.Any]]) -> int:  # noqa: D102
        names, stream, limit = self._names, self.stream, self.stream.record_limit
        count = 0
        for values in rows:
            if limit is not None:
                stream.check_record_limit(self.written)
            stream.write_record(dict(zip(names, values, strict=True)))
            self.written += 1
            count += 1
        return count

    def flush(self) -> None:
        """Nothing is queued: the SDK writes each message at once."""


class BatchSink:
    """BATCH files, closed window by window (see ``batch_files``)."""

    def __init__(self, files: BatchFiles) -> None:
        """Write into ``files``."""
        self.files = files
        self.form: Form = "arrow" if files.format == "parquet" else "columns"
        self._names: list[str] = []
        self._kinds: list[str] = []

    def begin(self, plan: ReadPlan) -> None:  # noqa: D102
        self._names, self._kinds = plan.names, plan.kinds

    def write_batch(self, batch: pa.RecordBatch) -> int:  # noqa: D102
        return self.files.write_batch(batch)

    def write_columns(self, columns: list[TypedColumn]) -> int:  # noqa: D102
        return self.files.write_columns(self._names, columns)

    def write_rows(self, rows: Iterator[list[t.Any]]) -> int:  # noqa: D102
        return self.files.write_rows(self._names, self._kinds, rows)

    def flush(self) -> None:
        """Files are closed at window ends, not flushed."""


class CollectSink:
    """Records kept as dicts until the caller takes them."""

    form: Form = "rows"

    def __init__(self) -> None:
        """Nothing collected yet."""
        self.records: list[dict[str, t.Any]] = []
        self._names: list[str] = []

    def begin(self, plan: ReadPlan) -> None:  # noqa: D102
        self._names = plan.names

    def write_batch(self, batch: pa.RecordBatch) -> int:  # noqa: D102
        self.records.extend(batch.to_pylist())
        return batch.num_rows

    def write_columns(self, columns: list[TypedColumn]) -> int:  # noqa: D102
        return self.write_rows(iter(map(list, zip(*map(values_of, columns), strict=True))))

    def write_rows(self, rows: Iterator[list[t.Any]]) -> int:  # noqa: D102
        names = self._names
        before = len(self.records)
        self.records.extend(dict(zip(names, values, strict=True)) for values in rows)
        return len(self.records) - before

    def take(self) -> list[dict[str, t.Any]]:
        """The records collected since the last call."""
        records, self.records = self.records, []
        return records

    def flush(self) -> None:
        """Nothing is written anywhere."""


def record_sink(stream: SdkStream) -> RecordSink | MapperSink:
    """The fast writer where no stream map, flattening or dry-run limit applies; else the SDK's."""
    maps = stream.stream_maps
    plain = (
        len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and not maps[0].flattening_enabled
        and maps[0].stream_alias == stream.name
    )
    if plain and stream.record_limit is None:
        return RecordSink(FastRecordWriter(stream.name))
    if not plain:
        stream.logger.info(
            "%s: stream maps or flattening configured; records go through the SDK's mapper",
            stream.name,
        )
    return MapperSink(stream)
