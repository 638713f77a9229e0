"""The export stream on singer-sdk: records window by window, bookmarks only after a window.

singer-sdk moves a bookmark record by record, which only works for sorted data; raw exports are
not sorted. This stream owns the sync loop instead. Its exports (windows of each partition) are
planned once, fetched ahead of their turn by the run's scheduler, and emitted in order: a
window's records go to the stream's sink, then its bookmark moves, then a STATE follows. A run
killed at any point resumes from its last STATE and re-extracts at most the windows that were
in flight.
"""

from __future__ import annotations

import functools
import logging
import time
import typing as t
from dataclasses import dataclass

from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    MaxRecordsLimitException,
)
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_event_exports.emit import FastRecordWriter
from tap_event_exports.engine.contract import SYNTHETIC_KEY
from tap_event_exports.engine.converters import column_type, property_schema
from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.jobs import JobLedger
from tap_event_exports.engine.planning import PartitionPlan, label_of, plan_partition
from tap_event_exports.engine.reading import ReadPlan, read_export
from tap_event_exports.engine.scheduler import ExportScheduler, ExportUnit
from tap_event_exports.engine.state import advance_bookmark
from tap_event_exports.engine.synthetic_keys import SyntheticKeys
from tap_event_exports.engine.windows import rfc3339, utc
from tap_event_exports.sdk import SdkStream
from tap_event_exports.sinks import BatchSink, CollectSink, MapperSink, RecordSink

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

    from tap_event_exports.engine.contract import ExportSpec, Partition
    from tap_event_exports.engine.download import Download
    from tap_event_exports.engine.runtime import Runtime
    from tap_event_exports.engine.windows import Window

Sink = RecordSink | MapperSink | BatchSink | CollectSink
DRY_RUN_ENDS = (AbortedSyncFailedException, AbortedSyncPausedException, MaxRecordsLimitException)
"""How the SDK ends a stream's dry run once it has its records: the run goes on."""


@dataclass
class Tally:
    """Rows and bytes of a window (or a whole stream), for the log."""

    rows: int = 0
    size: int = 0
    windows: int = 0


class ExportStream(SdkStream):
    """A stream of records read from vendor export files."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    """Records are typed by compiled converters from the schema; re-conforming is redundant."""

    def __init__(self, tap: Tap, spec: ExportSpec, runtime: Runtime) -> None:
        """Build the stream from its vendor declaration."""
        self.spec = spec
        self.runtime = runtime
        self.fetch = runtime.fetcher(spec)
        super().__init__(tap=tap, schema=spec.schema(), name=spec.name)
        self.primary_keys = list(spec.primary_keys)
        self.replication_key = spec.replication_key if spec.windowing else None
        if spec.windowing and not spec.replication_key:
            # No time column to name, but still incremental: the bookmark is the window end.
            self.forced_replication_method = "INCREMENTAL"
        self._synthetic = spec.synthetic_key
        self._plans: dict[str, PartitionPlan] = {}
        self._sink: Sink | None = None
        self._jobs_written = -1
        self.window_log = logging.getLogger(f"tap_event_exports.{spec.vendor}")

    @property
    def is_sorted(self) -> bool:
        """Bookmarks advance window by window, never from records, so state is always resumable."""
        return True

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per vendor object (campaign token, group id) where the vendor has them."""
        return list(self.spec.partitions) or None

    def get_replication_key_signpost(self, context: dict | None) -> None:
        """No signpost: bookmarks never come from record values."""
        return

    # --- planning --------------------------------------------------------------------------

    def prepare(self) -> list[ExportUnit]:
        """Plan every partition from the state now; return their exports in emission order."""
        return [unit for p in self.spec.partitions or [{}] for unit in self._units(self._plan(p))]

    def _plan(self, partition: Partition) -> PartitionPlan:
        label = label_of(self.name, partition)
        if label not in self._plans:
            state = self.get_context_state(partition or None)
            self._plans[label] = plan_partition(self.spec, partition, state, self.runtime)
        return self._plans[label]

    def _units(self, plan: PartitionPlan) -> list[ExportUnit]:
        fetch, vendor = self.fetch, self.spec.vendor
        describe = self.spec.windowing.describe if self.spec.windowing else str
        return [
            ExportUnit(
                key=plan.key(window),
                group=self.spec.limits.group,
                work=functools.partial(fetch, window, plan.partition, plan.ledger),
                label=f"{vendor}: {plan.label}: "
                + ("snapshot" if window is None else f"window {describe(window)}"),
            )
            for window in plan.windows
        ]

    # --- the SDK's entry points ------------------------------------------------------------

    def get_records(self, context: dict | None) -> Iterator[dict]:
        """Every record of the run as dicts, without writing messages."""
        sink = CollectSink()
        for _files in self._sync(context, sink, write_messages=False):
            yield from sink.take()

    def get_batches(
        self, batch_config: BatchConfig, context: dict | None = None
    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH files of the stream's records, closed window by window (see ``batch_files``).

        Each manifest is yielded after its window's bookmark has moved, so the STATE the SDK
        writes after the BATCH message covers exactly the files announced so far.
        """
        from tap_event_exports.batch_files import BatchFiles  # noqa: PLC0415 - pyarrow, BATCH only

        files = BatchFiles(batch_config, tap_name=self.tap_name, stream_name=self.name)
        try:
            for manifest in self._sync(context, BatchSink(files), write_messages=False):
                if manifest:
                    yield batch_config.encoding, manifest
        finally:
            files.abort()

    def sync_context(self, context: dict | None, *, write_messages: bool) -> Iterator[dict]:
        """RECORD messages window by window (the SDK's record loop)."""
        sink: Sink = self._record_sink() if write_messages and self.selected else CollectSink()
        for _files in self._sync(context, sink, write_messages=write_messages):
            if isinstance(sink, CollectSink):
                sink.take()
        return iter(())

    def _record_sink(self) -> RecordSink | MapperSink:
        maps = self.stream_maps
        plain = (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
        )
        if plain and self.record_limit is None:
            return RecordSink(FastRecordWriter(self.name))
        if not plain:
            self.logger.info(
                "%s: stream maps or flattening configured; records go through the SDK's mapper",
                self.name,
            )
        return MapperSink(self)

    # --- the sync loop -----------------------------------------------------------------------

    def _sync(self, context: dict | None, sink: Sink, *, write_messages: bool) -> Iterator[list]:
        """Each export in turn: records to ``sink``, bookmark, STATE; yields closed BATCH files."""
        partitions = [dict(context)] if context else (self.spec.partitions or [{}])
        own = self.runtime.scheduler is None
        scheduler = self.runtime.scheduler or self.runtime.own_scheduler([self.spec.limits])
        counter, timer, total = self.get_record_counter(), self.get_sync_timer(), Tally()
        started = time.monotonic()
        self._sink = sink
        try:
            with counter, timer:
                for partition in partitions:
                    counter.with_context(partition)
                    timer.with_context(partition)
                    plan = self._plan(partition)
                    units = self._units(plan)
                    scheduler.submit(units)
                    for unit, window in zip(units, plan.windows, strict=True):
                        downloads = scheduler.take(unit.key, while_waiting=self._jobs_changed)
                        tally = self._deliver(downloads, plan, window, sink, counter)
                        total.rows, total.size = total.rows + tally.rows, total.size + tally.size
                        total.windows += 1
                        self._count(tally)
                        self._finish(plan, window, tally, write_messages, started)
                        yield sink.files.finish() if isinstance(sink, BatchSink) else []
        except DRY_RUN_ENDS:
            self._stop_workers(scheduler)  # a dry run has its records: the run goes on
            self.runtime.stop.clear()
            raise
        except BaseException:
            self._stop_workers(scheduler)  # the run ends: job ids stay in state, resumed later
            if write_messages:
                self._checkpoint()
            raise
        finally:
            self._sink = None
            if own:
                scheduler.close()
        if write_messages:
            self._checkpoint()
        self.window_log.info(
            "%s: finished: %d records from %d %s, %d bytes downloaded, %.1fs",
            self.name,
            total.rows,
            total.windows,
            "window(s)" if self.spec.windowing else "snapshot(s)",
            total.size,
            time.monotonic() - started,
        )

    def _count(self, tally: Tally) -> None:
        stats = self.runtime.stats
        stats.stream_of(self.name, self.spec.vendor)
        stats.count(self.name, "rows", tally.rows)
        stats.count(self.name, "bytes", tally.size)
        stats.count(self.name, "windows")

    def _stop_workers(self, scheduler: ExportScheduler) -> None:
        self.runtime.stop.set()
        scheduler.close()

    def _deliver(
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

        keys = SyntheticKeys(self._key_scope(plan, window))
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

    def _finish(
        self,
        plan: PartitionPlan,
        window: Window | None,
        tally: Tally,
        write_messages: bool,
        started: float,
    ) -> None:
        """A window's records are out: move its bookmark, forget its jobs, write STATE."""
        if window is not None:
            bookmark = min(window.end, utc(self.runtime.now))
            before = plan.state.get("replication_key_value")
            advance_bookmark(plan.state, replication_key=self.replication_key or "", value=bookmark)
            self.runtime.stats.bookmark(plan.label, before, plan.state.get("replication_key_value"))
        if plan.ledger is not None:
            plan.ledger.drop_within(window)
        if write_messages:
            self._checkpoint()
        where = (
            "snapshot"
            if window is None or self.spec.windowing is None
            else (f"window {self.spec.windowing.describe(window)}")
        )
        self.window_log.info(
            "%s: %s done: %d rows, %d bytes; bookmark %s",
            plan.label,
            where,
            tally.rows,
            tally.size,
            rfc3339(min(window.end, utc(self.runtime.now))) if window is not None else "-",
        )

    def _checkpoint(self) -> None:
        """Write STATE now (after flushing queued records, so the order stays right)."""
        if self._sink is not None:
            self._sink.flush()
        self._jobs_written = JobLedger.revision
        self.write_state()

    def _jobs_changed(self) -> None:
        """While waiting for an export: a STATE soon after new job ids, so a kill resumes them."""
        if self._jobs_written != JobLedger.revision and isinstance(
            self._sink, (RecordSink, MapperSink)
        ):
            self._checkpoint()

    # --- reading one file --------------------------------------------------------------------

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
        self._learn_columns(header)
        if self.spec.key_fallback and not self._synthetic and self.primary_keys[0] not in header:
            self._fall_back_to_synthetic_key()
        properties = self.schema["properties"]
        mask = self.mask
        keep = None
        if any(not mask[("properties", name)] for name in header):
            keep = lambda name: mask[("properties", name)]  # noqa: E731
        return ReadPlan(
            path=path,
            what=what,
            header=header,
            types={name: column_type(properties[name]) for name in header},
            keep=keep,
            extra=dict(plan.partition) or None,
            key=(SYNTHETIC_KEY, keys) if self._synthetic else None,
            delimiter=self.spec.delimiter,
            timezone=self.spec.timezone,
            lists=self.spec.lists,
        )

    def _learn_columns(self, header: list[str]) -> None:
        """Add columns the schema does not know yet, and announce them with a new SCHEMA."""
        properties = self.schema["properties"]
        unknown = [name for name in header if name not in properties]
        if not unknown:
            return
        for name in unknown:
            properties[name] = property_schema(self.spec.column_types.get(name, "string"))
        self.logger.info(
            "%s: new column(s) %s delivered as %s",
            self.name,
            ", ".join(unknown),
            ", ".join(column_type(properties[n]) for n in unknown),
        )
        self._announce_schema()

    def _fall_back_to_synthetic_key(self) -> None:
        """The export has no vendor id column: key records by ``_record_id`` from now on."""
        self.logger.warning(
            "%s: the export has no %s column; records are keyed by %s instead",
            self.name,
            self.primary_keys[0],
            SYNTHETIC_KEY,
        )
        self._synthetic = True
        self.schema["properties"][SYNTHETIC_KEY] = property_schema("string")
        self.primary_keys = [SYNTHETIC_KEY]
        self._announce_schema()

    def _announce_schema(self) -> None:
        """Re-register a changed schema with the mapper and send it before the next record."""
        self.reregister_schema()
        if isinstance(self._sink, (RecordSink, MapperSink)) and self.selected:
            self._sink.flush()
            self.write_schema()


def scheduler_for(runtime: Runtime, streams: list[ExportStream]) -> ExportScheduler:
    """The run's scheduler, with the exports of ``streams`` planned in emission order."""
    scheduler = runtime.own_scheduler([stream.spec.limits for stream in streams])
    for stream in streams:
        scheduler.submit(stream.prepare())
    return scheduler
