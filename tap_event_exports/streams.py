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

from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    MaxRecordsLimitException,
)
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_event_exports.delivery import ExportReader, Tally, describe
from tap_event_exports.engine.contract import SYNTHETIC_KEY
from tap_event_exports.engine.converters import column_type, property_schema
from tap_event_exports.engine.jobs import JobLedger
from tap_event_exports.engine.planning import PartitionPlan, label_of, plan_partition
from tap_event_exports.engine.scheduler import ExportScheduler, ExportUnit
from tap_event_exports.engine.state import advance_bookmark
from tap_event_exports.engine.windows import utc
from tap_event_exports.sdk import SdkStream
from tap_event_exports.sinks import BatchSink, CollectSink, MapperSink, RecordSink, record_sink

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers import types
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

    from tap_event_exports.engine.contract import ExportSpec, Partition
    from tap_event_exports.engine.runtime import Runtime
    from tap_event_exports.engine.windows import Window

Sink = RecordSink | MapperSink | BatchSink | CollectSink
DRY_RUN_ENDS = (AbortedSyncFailedException, AbortedSyncPausedException, MaxRecordsLimitException)
"""How the SDK ends a stream's dry run once it has its records: the run goes on."""


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
        self.reader = ExportReader(self)
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

    def get_replication_key_signpost(self, context: types.Context | None = None) -> None:
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

    def get_records(self, context: types.Context | None) -> Iterator[dict]:
        """Every record of the run as dicts, without writing messages."""
        sink = CollectSink()
        for _files in self._sync(context, sink, write_messages=False):
            yield from sink.take()

    def get_batches(
        self, batch_config: BatchConfig, context: types.Context | None = None
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

    def sync_context(
        self, context: types.Context | None, *, write_messages: bool
    ) -> Iterator[dict]:
        """RECORD messages window by window (the SDK's record loop)."""
        sink: Sink = record_sink(self) if write_messages and self.selected else CollectSink()
        for _files in self._sync(context, sink, write_messages=write_messages):
            if isinstance(sink, CollectSink):
                sink.take()
        return iter(())

    # --- the sync loop -----------------------------------------------------------------------

    def _sync(
        self, context: types.Context | None, sink: Sink, *, write_messages: bool
    ) -> Iterator[list[str]]:
        """Each export in turn: records to ``sink``, bookmark, STATE; yields closed BATCH files."""
        partitions: list[Partition] = [dict(context)] if context else (self.spec.partitions or [{}])
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
                        tally = self.reader.deliver(downloads, plan, window, sink, counter)
                        total.rows, total.size = total.rows + tally.rows, total.size + tally.size
                        total.windows += 1
                        tally.report(self.runtime.stats, self.name, self.spec.vendor)
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

    def _stop_workers(self, scheduler: ExportScheduler) -> None:
        self.runtime.stop.set()
        scheduler.close()

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
        self.window_log.info(
            "%s: %s done: %d rows, %d bytes; bookmark %s",
            plan.label,
            describe(self.spec, window),
            tally.rows,
            tally.size,
            plan.state.get("replication_key_value", "-"),
        )

    def _checkpoint(self) -> None:
        """Write STATE now (after flushing queued records, so the order stays right)."""
        if self._sink is not None:
            self._sink.flush()
        self._jobs_written = JobLedger.revision
        self.write_state()

    def _jobs_changed(self) -> None:
        """While waiting for an export: a STATE soon after new job ids, so a kill resumes them.

        With BATCH files too: while the stream waits, every finished window's files have been
        named in a BATCH message already, and the bookmark covers only those windows.
        """
        if self._jobs_written != JobLedger.revision and isinstance(
            self._sink, (RecordSink, MapperSink, BatchSink)
        ):
            self._checkpoint()

    # --- what exports reveal of the schema ---------------------------------------------------

    @property
    def synthetic(self) -> bool:
        """Whether records carry the synthetic key (from the start, or since a fallback)."""
        return self._synthetic

    def learn(self, header: list[str]) -> None:
        """A file's header: new columns, and the key fallback where the vendor id is missing."""
        self._learn_columns(header)
        if self.spec.key_fallback and not self._synthetic and self.primary_keys[0] not in header:
            self._fall_back_to_synthetic_key()

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
