"""BATCH files (singer-sdk ``batch_config``), written so that STATE never runs ahead of them.

singer-sdk's own batcher fills ``batch_size`` chunks from the record stream regardless of
windows, so a STATE written after a BATCH message can cover records still waiting in the next
chunk, and it keeps each chunk in memory as Python dicts. Here files are written as records
arrive, closed at every window end (and every ``batch_size`` rows), and announced only once
closed: the STATE that follows a BATCH message covers exactly the windows in its files. JSONL
lines are encoded like RECORD messages; parquet is written batch by batch from Arrow columns.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import typing as t
from uuid import uuid4

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tap_event_exports.emit import LineWriter
from tap_event_exports.engine.columnar import rows_to_batch
from tap_event_exports.engine.concurrency import WriteBehind, one_thread
from tap_event_exports.gzip_blocks import GzipBlocks

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk.helpers._batch import BatchConfig

    from tap_event_exports.engine.typed_columns import TypedColumn

DEFAULT_BATCH_SIZE = 100_000
ROWS_PER_CHUNK = 10_000
ROW_GROUP_ROWS = 8192
"""Parquet rows per row group: batches are gathered to this size (readers dislike tiny groups;
each group costs the writer per column, and 8192 rows of 47 columns cost about 8 MiB more peak
memory than 4096 for about a sixth less of the writer's time)."""
DICTIONARY_SAMPLE = 256
"""Rows a file's first row group needs for its columns' repetition to decide their dictionaries
(a file of fewer rows gives every column one)."""
DICTIONARY_SETTLED = ROW_GROUP_ROWS
"""Rows of a file's first row group from which its choice of dictionaries holds for the later
files of the stream with the same columns (the choice costs 5-16 ms of 47 columns' counting on
the typing thread at each new file, while the writer thread, the slower one, waits for that
file's first row group)."""
SINK_BUFFER_BYTES = 1 << 20
"""Bytes the parquet writer gathers before writing to the storage's (Python) file: each write
to it takes the GIL from the threads typing the next rows, and a row group's column chunks
would otherwise be a few dozen writes of a few KiB."""
ROW_GROUPS_IN_FLIGHT = 1
"""Row groups handed to the writer thread and not yet written (bounds the memory they hold)."""
JSONL_GZIP_LEVEL = 2
"""ISA-L's default level: on event exports about 14 times faster than zlib's level 6 for files
about a third larger (and smaller than zlib's level 1); plain gzip members, read by any gzip
reader."""
GZIP_BLOCK_BYTES = 1 << 20
"""Bytes of JSONL lines handed to the deflating thread at a time (one hand-over per MiB)."""


class BatchFiles:
    """The BATCH files of one stream in one run."""

    def __init__(self, batch_config: BatchConfig, *, tap_name: str, stream_name: str) -> None:
        """Write files under ``batch_config.storage`` in its encoding."""
        self.config = batch_config
        self.format = batch_config.encoding.format
        if self.format not in ("jsonl", "parquet"):
            msg = f"batch_config: encoding format {self.format!r} is not jsonl or parquet"
            raise ValueError(msg)
        self.gzip = batch_config.encoding.compression == "gzip"
        self.limit = batch_config.batch_size or DEFAULT_BATCH_SIZE
        self._sync_id = f"{tap_name}--{stream_name}-{uuid4()}"
        self._files = 0
        self._stack: contextlib.ExitStack | None = None
        self._lines: LineWriter | None = None
        self._parquet: ParquetFile | None = None
        self._rows_in_file = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._closed: list[str] = []
        self._dictionaries: dict[pa.Schema, list[str] | bool] = {}
        """The settled choice of dictionaries per schema (see :data:`DICTIONARY_SETTLED`)."""
        self._row_groups = WriteBehind(ROW_GROUPS_IN_FLIGHT, one_thread("parquet-writer"))

    # --- writing ------------------------------------------------------------------------------

    def write_rows(self, names: list[str], kinds: list[str], rows: Iterator[list[t.Any]]) -> int:
        """Write typed value rows (``kinds`` are the columns' types); returns how many."""
        total = 0
        while True:
            chunk = list(itertools.islice(rows, min(self._room(), ROWS_PER_CHUNK)))
            if not chunk:
                return total
            if self.format == "parquet":
                self._write_table(rows_to_batch(names, kinds, chunk))
            else:
                lines = self._jsonl()
                lines.columns(names)
                lines.write_rows(chunk)
                self._rows_in_file += len(chunk)
            total += len(chunk)

    def write_columns(self, names: list[str], columns: list[TypedColumn]) -> int:
        """Write typed rows given as columns (JSONL only); returns how many."""
        rows = len(columns[0]) if columns else 0
        start = 0
        while start < rows:
            room = self._room()
            lines = self._jsonl()
            lines.columns(names)
            whole = start == 0 and room >= rows
            part = columns if whole else [column[start : start + room] for column in columns]
            written = lines.write_columns(part)
            self._rows_in_file += written
            start += written
        return rows

    def write_batch(self, batch: pa.RecordBatch) -> int:
        """Write an Arrow batch (parquet only); returns its row count."""
        rows = batch.num_rows
        while batch.num_rows:
            room = self._room()
            self._write_table(batch.slice(0, room))
            batch = batch.slice(room)
        return rows

    def finish(self) -> list[str]:
        """Close the open file (a window ended); the URLs of the files closed since last time.

        Every one of them is complete on return (parquet files are closed on the writer thread).
        """
        self._close_file()
        self._row_groups.wait()
        closed, self._closed = self._closed, []
        return closed

    def abort(self) -> None:
        """Close without announcing the open file (its window did not finish)."""
        self._row_groups.wait(raise_errors=False)
        if self._parquet is not None:
            self._parquet.discard()
        if self._lines is not None:
            self._lines.settle()
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.close()
        self._stack = self._lines = self._parquet = None
        self._pending = []
        self._pending_rows = 0

    # --- files --------------------------------------------------------------------------------

    def _room(self) -> int:
        if self._rows_in_file >= self.limit:
            self._close_file()
        return self.limit - self._rows_in_file

    def _write_table(self, batch: pa.RecordBatch) -> None:
        if self._parquet is not None and batch.schema != self._parquet.schema:
            try:
                batch = batch.cast(self._parquet.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                self._close_file()  # a list column changed item type: a file of its own
        if self._parquet is None:
            name = self._name("parquet.gz" if self.gzip else "parquet")
            self._parquet = ParquetFile(
                functools.partial(self.config.storage.open, name, "wb"),
                batch.schema,
                compression="gzip" if self.gzip else "snappy",
            )
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._rows_in_file += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._write_row_group()

    def _write_row_group(self) -> None:
        """Hand the gathered batches to the writer thread as one row group.

        Parquet encoding runs in Arrow without the GIL, so on a thread of its own it overlaps
        with the parsing and typing of the next batches.
        """
        if self._pending and self._parquet is not None:
            if self._parquet.dictionaries is None:
                self._parquet.dictionaries = self._dictionaries_for(self._pending)
            self._row_groups.submit(self._parquet.write, self._pending)
        self._pending = []
        self._pending_rows = 0

    def _dictionaries_for(self, batches: list[pa.RecordBatch]) -> list[str] | bool:
        """The columns given a dictionary in a new file whose first row group is ``batches``.

        Its rows say more than the file's first batch, which may be a few rows left over from
        the last file (the same day's instants got a dictionary in one file and not in the
        next). A choice made on a whole row group stands for the stream's later files of the
        same columns.
        """
        schema = batches[0].schema
        settled = self._dictionaries.get(schema)
        if settled is not None:
            return settled
        table = pa.Table.from_batches(batches)
        chosen = repeating_columns(table)
        if table.num_rows >= DICTIONARY_SETTLED:
            self._dictionaries[schema] = chosen
        return chosen

    def _jsonl(self) -> LineWriter:
        if self._lines is None:
            target = self._open("json.gz" if self.gzip else "json")
            if not self.gzip:
                self._lines = LineWriter(target)
                return self._lines
            assert self._stack is not None  # noqa: S101 - opened above
            blocks = GzipBlocks(target, level=JSONL_GZIP_LEVEL, block_bytes=GZIP_BLOCK_BYTES)
            self._lines = LineWriter(
                self._stack.enter_context(blocks), block_bytes=GZIP_BLOCK_BYTES
            )
        return self._lines

    def _name(self, suffix: str) -> str:
        """The next file's name."""
        self._files += 1
        prefix = self.config.storage.prefix or ""
        self._filename = f"{prefix}{self._sync_id}-{self._files}.{suffix}"
        return self._filename

    def _open(self, suffix: str) -> t.IO[bytes]:
        name = self._name(suffix)
        self._stack = contextlib.ExitStack()
        return self._stack.enter_context(self.config.storage.open(name, "wb"))

    def _close_file(self) -> None:
        if self._parquet is not None:
            # closed on the writer thread after its last row group: the caller goes on
            # typing the next file's rows meanwhile, and finish() waits for it
            self._write_row_group()
            self._row_groups.submit(self._parquet.close)
        elif self._stack is not None:
            if self._lines is not None:
                self._lines.flush()
            self._stack.close()
        else:
            return
        self._closed.append(self.config.storage.get_url(self._filename))
        self._stack = self._lines = self._parquet = None
        self._rows_in_file = 0


class ParquetFile:
    """One parquet file, opened, written and closed on the writer thread, in order.

    singer-sdk's storage opens each file inside a transaction of a filesystem shared by all its
    files and ends it when the file closes, which closes every file then open: only one file may
    be open at a time. So the writer thread opens a file with its first row group and closes it
    after its last, while the caller types the next file's rows.
    """

    def __init__(
        self,
        open_file: Callable[[], t.ContextManager[t.IO[bytes]]],
        schema: pa.Schema,
        *,
        compression: str,
    ) -> None:
        """A file ``open_file`` opens, of ``schema``, not opened yet."""
        self.schema = schema
        self._open_file = open_file
        self._compression = compression
        self.dictionaries: list[str] | bool | None = None
        """The columns given a dictionary (``True``: all), chosen before the first row group."""
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None

    def write(self, batches: list[pa.RecordBatch]) -> None:
        """Write ``batches`` as one row group (writer thread)."""
        table = pa.Table.from_batches(batches)
        self._opened().write_table(table, row_group_size=max(1, table.num_rows))

    def close(self) -> None:
        """Write the footer and close the file (writer thread)."""
        try:
            self._opened().close()
        finally:
            self._stack.close()

    def discard(self) -> None:
        """Close the file without finishing it (once the writer thread is idle)."""
        with contextlib.suppress(Exception):
            self._stack.close()

    def _opened(self) -> pq.ParquetWriter:
        if self._writer is None:
            handle = self._stack.enter_context(self._open_file())
            sink = pa.output_stream(handle, buffer_size=SINK_BUFFER_BYTES)
            self._stack.callback(sink.close)
            self._writer = pq.ParquetWriter(
                sink,
                self.schema,
                compression=self._compression,
                use_dictionary=True if self.dictionaries is None else self.dictionaries,
            )
        return self._writer


def repeating_columns(batch: pa.RecordBatch | pa.Table) -> list[str] | bool:
    """The columns worth a parquet dictionary: at most half their values distinct in ``batch``.

    Ids and instants are nearly all distinct: a dictionary for them is built, found too large
    and dropped again in every row group, the writer's slowest work for no smaller file. A
    batch of fewer than :data:`DICTIONARY_SAMPLE` rows tells too little: every column gets one.
    """
    if batch.num_rows < DICTIONARY_SAMPLE:
        return True
    repeating = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        try:
            distinct = pc.count_distinct(column, mode="all").as_py()
        except pa.ArrowNotImplementedError:  # lists: left to the writer's default
            distinct = 0
        if distinct * 2 <= len(column):
            repeating.append(field.name)
    return repeating
