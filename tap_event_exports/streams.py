"""The two stream shapes on singer-sdk: windowed incremental exports and full-table snapshots.

singer-sdk moves a bookmark record by record, which only works for sorted data; raw exports are
not sorted. These streams own the sync loop instead: records are emitted window by window, and
the bookmark moves to a window's end only after all of its records are out. A run killed at any
point resumes from its last STATE and re-extracts at most the windows that were in flight.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
import typing as t
from dataclasses import dataclass, field

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_event_exports.emit import FastRecordWriter
from tap_event_exports.engine.concurrency import ordered_prefetch
from tap_event_exports.engine.errors import NotColumnar
from tap_event_exports.engine.http import HttpPolicy
from tap_event_exports.engine.jobs import JobLedger, JobRunner
from tap_event_exports.engine.records import (
    CsvExport,
    SyntheticKeys,
    column_type,
    property_schema,
)
from tap_event_exports.engine.state import advance_bookmark, read_bookmark
from tap_event_exports.engine.windows import Granularity, Window, plan_windows, rfc3339, utc

if t.TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

    from tap_event_exports.batch_files import BatchFiles
    from tap_event_exports.engine.columnar import ColumnarCsv
    from tap_event_exports.engine.download import Download
    from tap_event_exports.engine.http import VendorDialect
    from tap_event_exports.engine.jobs import ExportJobs
    from tap_event_exports.settings import GlobalSettings

SYNTHETIC_KEY = "_record_id"
ROWS_PER_WRITE = 50_000
"""Rows written between record-counter updates on the fast paths."""


@dataclass
class Windowing:
    """How a vendor cuts event time into export requests."""

    granularity: Granularity
    step: dt.timedelta
    lookback: dt.timedelta
    earliest: Callable[[dt.datetime], dt.datetime | None] = lambda _now: None
    """The oldest instant the vendor can still serve, given the current time."""
    describe: Callable[[Window], str] = str
    """How a window is shown in logs and errors (the vendor's own from/to values)."""


@dataclass
class ExportSpec:
    """Everything a vendor module declares about one stream."""

    name: str
    vendor: str
    columns: dict[str, str]
    """Built-in column types (see ``engine.records.COLUMN_TYPES``)."""
    primary_keys: tuple[str, ...]
    fetch: Callable[[Window | None, dict | None, JobLedger | None], list[Download]]
    """Fetch one window (or the snapshot, with ``None``) of one partition; runs in a worker.

    Streams of asynchronous exports get the ledger of their pending jobs; others ``None``."""
    timezone: str = "UTC"
    lists: str = "json"
    """How the vendor writes list values (``engine.records.LIST_SYNTAXES``)."""
    windowing: Windowing | None = None
    """``None`` for a full-table snapshot."""
    replication_key: str | None = None
    delimiter: str = ","
    synthetic_key: bool = False
    partitions: list[dict] | None = None
    column_types: dict[str, str] = field(default_factory=dict)
    key_fallback: bool = False
    """Use the synthetic key when an export lacks the primary key column (Keen's ``keen.id``)."""
    jobs: bool = False
    """Whether fetching creates export jobs whose ids are kept in state until used."""
    cancel: Callable[[str], None] | None = None
    """Cancel a vendor job by id (for jobs left in state that no window will resume)."""

    def schema(self) -> dict:
        """The stream's JSON schema: built-in columns, user overrides, key and partitions."""
        types = {**self.columns, **self.column_types}
        if self.synthetic_key:
            types[SYNTHETIC_KEY] = "string"
        for partition in self.partitions or []:
            for name in partition:
                types.setdefault(name, "string")
        return {
            "type": "object",
            "properties": {name: property_schema(kind) for name, kind in types.items()},
        }


@dataclass
class Tally:
    """Rows and bytes of a window (or a whole stream), for the log."""

    rows: int = 0
    size: int = 0
    windows: int = 0

    def add(self, other: Tally) -> None:
        """Count a finished window in a stream's total."""
        self.rows += other.rows
        self.size += other.size
        self.windows += 1


@dataclass
class Runtime:
    """What every stream of a run shares."""

    settings: GlobalSettings
    stop: threading.Event
    now: dt.datetime

    def http(self, dialect: VendorDialect, base_url: str) -> HttpPolicy:
        """A provider's HTTP policy under the run's timeout, retries and stop signal."""
        return HttpPolicy(
            dialect,
            timeout=self.settings.request_timeout,
            max_retries=self.settings.max_retries,
            stop=self.stop,
            base_url=base_url,
        )

    def jobs(
        self, jobs: ExportJobs, policy: HttpPolicy, stream: str, **options: t.Any
    ) -> JobRunner:
        """A stream's export job runner under the run's polling settings."""
        return JobRunner(
            jobs,
            policy,
            stream=stream,
            poll_interval=self.settings.poll_interval,
            max_poll_time=self.settings.max_poll_time,
            **options,
        )


class ExportStream(Stream):
    """A stream of records read from vendor export files."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    """Records are typed by compiled converters from the schema; re-conforming is redundant."""

    def __init__(self, tap: Tap, spec: ExportSpec, runtime: Runtime) -> None:
        """Build the stream from its vendor declaration."""
        self.spec = spec
        self.runtime = runtime
        super().__init__(tap=tap, schema=spec.schema(), name=spec.name)
        self.primary_keys = list(spec.primary_keys)
        self.replication_key = spec.replication_key if spec.windowing else None
        if spec.windowing and not spec.replication_key:
            # No time column to name, but still incremental: the bookmark is the window end.
            self.forced_replication_method = "INCREMENTAL"
        self._writer: FastRecordWriter | None = None
        self._batches: BatchFiles | None = None
        self._counter: t.Any = None
        self._synthetic = spec.synthetic_key
        self._total = Tally()
        self.window_log = logging.getLogger(f"tap_event_exports.{spec.vendor}")

    @property
    def is_sorted(self) -> bool:
        """Bookmarks advance window by window, never from records, so state is always resumable."""
        return True

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per vendor object (campaign token, group id) where the vendor has them."""
        return self.spec.partitions

    def get_replication_key_signpost(self, context: dict | None) -> None:
        """No signpost: bookmarks never come from record values."""
        return

    def get_records(self, context: dict | None) -> Iterator[dict]:
        """Every record of the run, without writing messages (used by BATCH and tests)."""
        yield from self._export(context, write_messages=False)

    def get_batches(
        self, batch_config: BatchConfig, context: dict | None = None
    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH files of the stream's records, closed window by window (see ``batch_files``).

        Each manifest is yielded after its window's bookmark has moved, so the STATE the SDK
        writes after the BATCH message covers exactly the files announced so far.
        """
        from tap_event_exports.batch_files import BatchFiles  # noqa: PLC0415 - pyarrow, BATCH only

        self._batches = BatchFiles(batch_config, tap_name=self.tap_name, stream_name=self.name)
        try:
            for manifest in self._sync_records(context, write_messages=False):
                yield batch_config.encoding, manifest
        finally:
            self._batches.abort()
            self._batches = None

    # --- the sync loop ----------------------------------------------------------------------

    def _sync_records(
        self,
        context: dict | None = None,
        *,
        write_messages: bool = True,
    ) -> Iterator[dict]:
        """Emit RECORD and STATE messages window by window (replaces the SDK's record loop)."""
        contexts = [context] if context else (self.partitions or [None])
        counter = self.get_record_counter()
        timer = self.get_sync_timer()
        self._writer = self._fast_writer() if write_messages and self.selected else None
        self._total = Tally()
        started = time.monotonic()
        self._counter = counter
        with counter, timer:
            for partition in contexts:
                counter.with_context(partition or {})
                timer.with_context(partition or {})
                yield from self._export(partition, write_messages=write_messages)
        self._counter = None
        if self._writer is not None:
            self._writer.flush()
        if write_messages:
            self._write_state_message()
        self.window_log.info(
            "%s: finished: %d records from %d %s, %d bytes downloaded, %.1fs",
            self.name,
            self._total.rows,
            self._total.windows,
            "window(s)" if self.spec.windowing else "snapshot(s)",
            self._total.size,
            time.monotonic() - started,
        )

    def _fast_writer(self) -> FastRecordWriter | None:
        maps = self.stream_maps
        plain = (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
        )
        if plain:
            return FastRecordWriter(self.name)
        self.logger.info(
            "%s: stream maps or flattening configured; records go through the SDK's mapper",
            self.name,
        )
        return None

    def _emit(self, record: dict, write_messages: bool) -> None:
        if not write_messages:
            return
        if self._writer is not None:
            self._writer.write(record)
        else:
            self._write_record_message(record)

    def _checkpoint(self) -> None:
        """Write STATE now (after flushing queued records, so the order stays right)."""
        if self._writer is not None:
            self._writer.flush()
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _export(self, partition: dict | None, *, write_messages: bool) -> Iterator[dict]:
        if self.spec.windowing is None:
            yield from self._export_snapshot(partition, write_messages=write_messages)
        else:
            yield from self._export_windows(partition, write_messages=write_messages)

    def _ledger(self, partition: dict | None) -> JobLedger | None:
        return JobLedger(self.get_context_state(partition)) if self.spec.jobs else None

    def _export_snapshot(self, partition: dict | None, *, write_messages: bool) -> Iterator[dict]:
        started = time.monotonic()
        ledger = self._ledger(partition)
        downloads = self.spec.fetch(None, partition, ledger)
        tally = Tally()
        yield from self._read_all(downloads, None, partition, write_messages, tally)
        self._total.add(tally)
        rows, size = tally.rows, tally.size
        if ledger is not None:
            ledger.drop_within(None)
            if write_messages:
                self._checkpoint()
        if self._batches is not None and (files := self._batches.finish()):
            yield files
        self.window_log.info(
            "%s: snapshot done: %d rows, %d bytes, %.1fs",
            self.name,
            rows,
            size,
            time.monotonic() - started,
        )

    def _export_windows(self, partition: dict | None, *, write_messages: bool) -> Iterator[dict]:
        windowing = self.spec.windowing
        assert windowing is not None  # noqa: S101 - checked by the caller
        state = self.get_context_state(partition)
        label = self._label(partition)
        now = self.runtime.now
        plan = plan_windows(
            start_date=self.runtime.settings.start_date,
            end_date=self.runtime.settings.end_date,
            now=now,
            bookmark=read_bookmark(state, stream=label),
            lookback=windowing.lookback,
            step=windowing.step,
            granularity=windowing.granularity,
            earliest=windowing.earliest(now),
        )
        if plan.lost is not None:
            self.logger.warning(
                "%s: %s can no longer be exported: %s serves data back to %s only; "
                "events in that range are lost to this tap",
                label,
                plan.lost,
                self.spec.vendor,
                rfc3339(plan.lost.end),
            )
        if not plan.windows:
            self.window_log.info("%s: nothing to extract (bookmark is at the end)", label)
            return
        self.window_log.info(
            "%s: %d window(s) from %s to %s",
            label,
            len(plan.windows),
            rfc3339(plan.windows[0].start),
            rfc3339(plan.windows[-1].end),
        )

        ledger = self._ledger(partition)
        if ledger is not None:
            self._cancel_stale(ledger, plan.windows, label)

        def fetch(window: Window) -> tuple[list[Download], float]:
            started = time.monotonic()
            return self.spec.fetch(window, partition, ledger), started

        results = ordered_prefetch(
            plan.windows,
            fetch,
            in_flight=self.runtime.settings.max_concurrent_jobs,
            stop=self.runtime.stop,
            name=self.name,
            discard=lambda result: [download.discard() for download in result[0]],
        )
        try:
            yield from self._emit_windows(results, state, ledger, partition, write_messages)
        except BaseException:
            # Stop the workers, then record what they created: pending jobs are resumed by the
            # next run, so none is left behind unknown (and none needs cancelling).
            results.close()
            if write_messages:
                self._checkpoint()
            raise

    def _emit_windows(
        self,
        results: Iterator[tuple[Window, tuple[list[Download], float]]],
        state: dict,
        ledger: JobLedger | None,
        partition: dict | None,
        write_messages: bool,
    ) -> Iterator[dict]:
        windowing = self.spec.windowing
        assert windowing is not None  # noqa: S101 - windowed streams only
        label = self._label(partition)
        now = self.runtime.now
        for window, (downloads, started) in results:
            tally = Tally()
            yield from self._read_all(downloads, window, partition, write_messages, tally)
            self._total.add(tally)
            rows, size = tally.rows, tally.size
            bookmark = min(window.end, utc(now))
            advance_bookmark(state, replication_key=self.replication_key or "", value=bookmark)
            if ledger is not None:
                ledger.drop_within(window)
            if write_messages:
                self._checkpoint()
            if self._batches is not None and (files := self._batches.finish()):
                yield files
            self.window_log.info(
                "%s: window %s done: %d rows, %d bytes, %.1fs; bookmark %s",
                label,
                windowing.describe(window),
                rows,
                size,
                time.monotonic() - started,
                rfc3339(bookmark),
            )

    def _cancel_stale(self, ledger: JobLedger, planned: list[Window], label: str) -> None:
        """Cancel (where the vendor can) and forget jobs that no planned window will resume."""
        stale = ledger.stale(planned)
        for key, entry in stale.items():
            job = entry.get("job")
            if job and self.spec.cancel is not None:
                try:
                    self.spec.cancel(job)
                    self.window_log.info("%s: canceled job %s of window %s", label, job, key)
                except Exception as exc:
                    self.window_log.info("%s: could not cancel job %s: %s", label, job, exc)
        ledger.forget(stale)

    def _label(self, partition: dict | None) -> str:
        if not partition:
            return self.name
        return f"{self.name}[{', '.join(f'{k}={v}' for k, v in partition.items())}]"

    # --- records -----------------------------------------------------------------------------

    def _read_all(
        self,
        downloads: list[Download],
        window: Window | None,
        partition: dict | None,
        write_messages: bool,
        tally: Tally,
    ) -> Iterator[dict]:
        """The records of a window's files, in order; every file is deleted afterwards."""
        try:
            for download in downloads:
                tally.size += download.bytes_received
                yield from self._read(download, window, partition, write_messages, tally)
        finally:
            for download in downloads:
                download.discard()

    def _read(
        self,
        download: Download,
        window: Window | None,
        partition: dict | None,
        write_messages: bool,
        tally: Tally,
    ) -> Iterator[dict]:
        """Deliver one file's records: to the fast writer, to BATCH files, or as dicts."""
        label = self._label(partition)
        what = f"{self.spec.vendor}: {label}" + (
            f": window {self.spec.windowing.describe(window)}"
            if window is not None and self.spec.windowing
            else ""
        )
        export = CsvExport(download.path, delimiter=self.spec.delimiter, what=what)
        if not export.header:
            export.close()
            return
        self._learn_columns(export.header, write_messages)
        if (
            self.spec.key_fallback
            and not self._synthetic
            and self.primary_keys[0] not in export.header
        ):
            self._fall_back_to_synthetic_key(write_messages)
        properties = self.schema["properties"]
        types = {name: column_type(properties[name]) for name in export.header}
        key = None
        if self._synthetic:
            # the window's place on the grid, not its (possibly cut short) end: stable
            nominal = rfc3339(window.start) if window is not None else "snapshot"
            scope = f"{self.name}|{partition or ''}|{nominal}"
            key = (SYNTHETIC_KEY, SyntheticKeys(scope))
        mask = self.mask
        keep = None
        if any(not mask[("properties", name)] for name in export.header):
            keep = lambda name: mask[("properties", name)]  # noqa: E731
        extra = dict(partition) if partition else None
        timezone, lists = self.spec.timezone, self.spec.lists
        if self._batches is not None:
            self._write_batch_files(export, types, keep, extra, key, tally)
            return
        writer = self._writer
        if writer is not None and self.ABORT_AT_RECORD_COUNT is None:
            writer.stamp(dt.datetime.now(dt.timezone.utc))
            writer.columns(export.names(keep=keep, extra=extra, key=key))
            export.close()
            columnar = self._columnar(export.path, export.header)
            try:
                for columns in columnar.value_columns(types, keep=keep, extra=extra, key=key):
                    self._count(tally, writer.write_columns(columns))
            except NotColumnar as exc:
                self._left_columnar(export.what, exc)
                export = CsvExport(export.path, delimiter=self.spec.delimiter, what=export.what)
                _, rows = export.rows(
                    types,
                    timezone=timezone,
                    lists=lists,
                    keep=keep,
                    extra=extra,
                    key=key,
                    skip=exc.done,
                )
                while count := writer.write_rows(itertools.islice(rows, ROWS_PER_WRITE)):
                    self._count(tally, count)
            return
        names, rows = export.rows(
            types, timezone=timezone, lists=lists, keep=keep, extra=extra, key=key
        )
        if writer is not None:
            writer.stamp(dt.datetime.now(dt.timezone.utc))
        limit = self.ABORT_AT_RECORD_COUNT
        emit = self._emit
        for values in rows:
            if limit is not None:
                self._check_max_record_limit(self._total.rows + tally.rows)
            record = dict(zip(names, values, strict=True))
            emit(record, write_messages)
            self._count(tally, 1)
            yield record

    def _count(self, tally: Tally, rows: int) -> None:
        tally.rows += rows
        if self._counter is not None:
            self._counter.increment(rows)

    def _write_batch_files(  # noqa: PLR0917 - the parts of one file's read
        self,
        export: CsvExport,
        types: dict[str, str],
        keep: Callable[[str], bool] | None,
        extra: dict | None,
        key: tuple[str, SyntheticKeys] | None,
        tally: Tally,
    ) -> None:
        """Write one file's records to BATCH files, from Arrow blocks where they can be read.

        Parquet files with a synthetic key (hashed from the values as written, which its
        Arrow typing does not keep) go through the record reader.
        """
        batches = self._batches
        assert batches is not None  # noqa: S101 - BATCH mode only
        timezone, lists = self.spec.timezone, self.spec.lists
        skip = 0
        if batches.format == "jsonl" or key is None:
            names = export.names(keep=keep, extra=extra, key=key)
            export.close()
            columnar = self._columnar(export.path, export.header)
            try:
                if batches.format == "jsonl":
                    for columns in columnar.value_columns(types, keep=keep, extra=extra, key=key):
                        self._count(tally, batches.write_columns(names, columns))
                else:
                    for batch in columnar.batches(types, keep=keep, extra=extra):
                        self._count(tally, batches.write_batch(batch))
            except NotColumnar as exc:
                self._left_columnar(export.what, exc)
                skip = exc.done
            else:
                return
            export = CsvExport(export.path, delimiter=self.spec.delimiter, what=export.what)
        names, rows = export.rows(
            types, timezone=timezone, lists=lists, keep=keep, extra=extra, key=key, skip=skip
        )
        kinds = [column_type(self.schema["properties"][name]) for name in names]
        self._count(tally, batches.write_rows(names, kinds, rows))

    def _columnar(self, path: str, header: list[str]) -> ColumnarCsv:
        """The Arrow reader of a file.

        pyarrow is loaded by the first export read, not at startup: discovery stays quick.
        """
        from tap_event_exports.engine.columnar import ColumnarCsv  # noqa: PLC0415

        return ColumnarCsv(
            path,
            header,
            delimiter=self.spec.delimiter,
            timezone=self.spec.timezone,
            lists=self.spec.lists,
        )

    def _left_columnar(self, what: str, stop: NotColumnar) -> None:
        self.logger.info("%s: %s; the rest of the file goes through the record reader", what, stop)

    def _learn_columns(self, header: list[str], write_messages: bool) -> None:
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
        self._announce_schema(write_messages)

    def _fall_back_to_synthetic_key(self, write_messages: bool) -> None:
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
        self._announce_schema(write_messages)

    def _announce_schema(self, write_messages: bool) -> None:
        """Re-register a changed schema with the mapper and send it before the next record."""
        if self._tap.mapper is not None:
            self._tap.mapper.register_raw_stream_schema(self.name, self.schema, self.primary_keys)
            self._stream_maps = self._tap.mapper.stream_maps[self.name]
        if write_messages and self.selected:
            if self._writer is not None:
                self._writer.flush()
            self._write_schema_message()
