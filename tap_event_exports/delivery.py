"""One export's files into the stream's sink: a read plan per file, keys per export.

The stream gives what an export needs (its spec, schema, selection and the columns learnt so
far); this module reads each file with :func:`~tap_event_exports.engine.reading.read_export`,
hashes synthetic keys with one generator per export (identical rows counted across its parts)
and deletes every file once read.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_event_exports.engine.contract import SYNTHETIC_KEY
from tap_event_exports.engine.converters import column_type
from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.reading import ReadPlan, read_export
from tap_event_exports.engine.synthetic_keys import SyntheticKeys
from tap_event_exports.engine.windows import rfc3339

if t.TYPE_CHECKING:
    from tap_event_exports.engine.contract import ExportSpec
    from tap_event_exports.engine.download import Download
    from tap_event_exports.engine.planning import PartitionPlan
    from tap_event_exports.engine.reading import Sink
    from tap_event_exports.engine.stats import RunStats
    from tap_event_exports.engine.windows import Window


class ReadingStream(t.Protocol):
    """What reading needs of a stream (``ExportStream`` is one): the reader stays below it."""

    spec: ExportSpec
    name: str

    @property
    def schema(self) -> dict[str, t.Any]:
        """The stream's schema, with the columns learnt so far."""

    @property
    def mask(self) -> t.Any:
        """The stream's selection mask (breadcrumb -> selected)."""

    @property
    def synthetic(self) -> bool:
        """Whether records carry the synthetic key."""

    def learn(self, header: list[str]) -> None:
        """A file's header: new columns, and the key fallback."""


@dataclass
class Tally:
    """Rows and bytes of a window (or a whole stream), for the log."""

    rows: int = 0
    size: int = 0
    windows: int = 0

    def report(self, stats: RunStats, stream: str, vendor: str) -> None:
        """Count one finished export in the run's totals."""
        stats.stream_of(stream, vendor)
        stats.count(stream, "rows", self.rows)
        stats.count(stream, "bytes", self.size)
        stats.count(stream, "windows")


def describe(spec: ExportSpec, window: Window | None) -> str:
    """An export as logs name it: ``window <the vendor's from/to>`` or ``snapshot``."""
    if window is None or spec.windowing is None:
        return "snapshot"
    return f"window {spec.windowing.describe(window)}"


class ExportReader:
    """Reads the exports of one stream."""

    def __init__(self, stream: ReadingStream) -> None:
        """Read for ``stream`` (its spec, schema and selection)."""
        self.stream = stream
        self.spec = stream.spec
        self.name = stream.name

    def deliver(
        self,
        downloads: list[Download],
        plan: PartitionPlan,
        window: Window | None,
        sink: Sink,
        counter: t.Any,
    ) -> Tally:
        """The records of one export's files, in order; every file is deleted afterwards."""
        tally = Tally()

        def count(rows: int) -> None:
            tally.rows += rows
            counter.increment(rows)

        keys = SyntheticKeys(self._key_scope(plan, window), by_name=self.spec.keys_by_name)
        try:
            for download in downloads:
                tally.size += download.bytes_received
                read = self._read_plan(download.path, plan, window, keys)
                if read is not None:
                    read_export(read, sink, count)
        finally:
            for download in downloads:
                download.discard()
        return tally

    def _key_scope(self, plan: PartitionPlan, window: Window | None) -> str:
        """What a synthetic key hashes besides the row: stream, partition (and window).

        The window only where rows carry no event time: their windows lie on a fixed grid.
        """
        partition = plan.partition or ""
        if self.spec.exact_lookback:
            return f"{self.name}|{partition}"
        nominal = rfc3339(window.start) if window is not None else "snapshot"
        return f"{self.name}|{partition}|{nominal}"

    def _read_plan(
        self, path: str, plan: PartitionPlan, window: Window | None, keys: SyntheticKeys
    ) -> ReadPlan | None:
        """How one file is read (``None`` for a file without even a header)."""
        what = f"{self.spec.vendor}: {plan.label}"
        if window is not None and self.spec.windowing is not None:
            what += f": window {self.spec.windowing.describe(window)}"
        export = CsvExport(path, delimiter=self.spec.delimiter, what=what)
        export.close()
        header = export.header
        if not header:
            return None
        stream = self.stream
        stream.learn(header)
        properties = stream.schema["properties"]
        mask = stream.mask
        keep = None
        if any(not mask[("properties", name)] for name in header):
            keep = lambda name: mask[("properties", name)]  # noqa: E731
        if stream.synthetic:
            keys.columns(header)
        return ReadPlan(
            path=path,
            what=what,
            header=header,
            types={name: column_type(properties[name]) for name in header},
            keep=keep,
            extra=dict(plan.partition) or None,
            key=(SYNTHETIC_KEY, keys) if stream.synthetic else None,
            delimiter=self.spec.delimiter,
            timezone=self.spec.timezone,
            lists=self.spec.lists,
        )
