"""One export file into one sink: the Arrow reader first, the record reader where it cannot.

A :class:`ReadPlan` is made once per file: its header, the type of each column, which columns
are kept, the synthetic key and the partition values. :func:`read_export` then delivers the
file to a :class:`Sink` in the form the sink consumes best (Arrow batches, typed columns or
typed rows). The Arrow reader parses and types blocks in C++; at the first block it cannot type
exactly as the record reader would, it raises :class:`~.errors.NotColumnar` with the rows it
delivered, and the record reader continues from that row, so every row arrives once, typed
the same way.
"""

from __future__ import annotations

import itertools
import logging
import typing as t
from dataclasses import dataclass

from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.errors import NotColumnar

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pyarrow as pa

    from tap_event_exports.engine.synthetic_keys import SyntheticKeys
    from tap_event_exports.engine.typed_columns import TypedColumn

logger = logging.getLogger("tap_event_exports.reading")

Form = t.Literal["arrow", "columns", "rows"]
ROWS_PER_WRITE = 50_000
"""Rows handed to a sink at once by the record reader."""


@dataclass
class ReadPlan:
    """How one file is read, decided once from its header and the stream's schema."""

    path: str
    what: str
    """Names the export in errors: vendor, stream, partition and window."""
    header: list[str]
    types: dict[str, str]
    """The column type of every header name."""
    keep: Callable[[str], bool] | None = None
    """Which columns are delivered (catalog selection); all when ``None``."""
    extra: dict[str, t.Any] | None = None
    """Constant columns added to every record (partition values)."""
    key: tuple[str, SyntheticKeys] | None = None
    """The synthetic key column and its generator."""
    delimiter: str = ","
    timezone: str = "UTC"
    lists: str = "json"

    @property
    def names(self) -> list[str]:
        """The record's columns, in order: kept header columns, key, partition columns."""
        names = [name for name in self.header if self.keep is None or self.keep(name)]
        if self.key is not None:
            names.append(self.key[0])
        names.extend(self.extra or {})
        return names

    @property
    def kinds(self) -> list[str]:
        """The column type of each of :attr:`names`."""
        return [self.types.get(name, "string") for name in self.names]


class Sink(t.Protocol):
    """Where a stream's records go: stdout RECORD messages, BATCH files or the SDK's mapper."""

    form: Form
    """What the sink consumes best; every sink also takes rows."""

    def begin(self, plan: ReadPlan) -> None:
        """A file with these columns starts."""

    def write_batch(self, batch: pa.RecordBatch) -> int:
        """Write typed Arrow columns; return the rows written."""
        ...

    def write_columns(self, columns: list[TypedColumn]) -> int:
        """Write a block of typed values given as columns; return the rows written."""
        ...

    def write_rows(self, rows: Iterator[list[t.Any]]) -> int:
        """Write typed rows; return the rows written."""
        ...


def read_export(plan: ReadPlan, sink: Sink, count: Callable[[int], None]) -> None:
    """Deliver every row of a file to ``sink``; ``count`` hears how many rows went out."""
    sink.begin(plan)
    form = sink.form
    if form == "arrow" and plan.key is not None:
        form = "rows"  # keys hash the values as written, which Arrow batches do not keep
    skip = 0
    if form != "rows":
        try:
            _read_columnar(plan, sink, form, count)
        except NotColumnar as stop:
            logger.info(
                "%s: %s; the rest of the file goes through the record reader", plan.what, stop
            )
            skip = stop.done
        else:
            return
    export = CsvExport(plan.path, delimiter=plan.delimiter, what=plan.what)
    try:
        _, rows = export.rows(
            plan.types,
            timezone=plan.timezone,
            lists=plan.lists,
            keep=plan.keep,
            extra=plan.extra,
            key=plan.key,
            skip=skip,
        )
        while written := sink.write_rows(itertools.islice(rows, ROWS_PER_WRITE)):
            count(written)
    finally:
        export.close()


def _read_columnar(plan: ReadPlan, sink: Sink, form: Form, count: Callable[[int], None]) -> None:
    """Arrow's part of a file (pyarrow is loaded by the first file read, not at startup)."""
    from tap_event_exports.engine.columnar import ColumnarCsv  # noqa: PLC0415

    columnar = ColumnarCsv(
        plan.path,
        plan.header,
        delimiter=plan.delimiter,
        timezone=plan.timezone,
        lists=plan.lists,
    )
    if form == "arrow":
        for batch in columnar.batches(plan.types, keep=plan.keep, extra=plan.extra):
            count(sink.write_batch(batch))
    else:
        for columns in columnar.typed_columns(
            plan.types, keep=plan.keep, extra=plan.extra, key=plan.key
        ):
            count(sink.write_columns(columns))
