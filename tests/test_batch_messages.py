"""BATCH messages (singer-sdk batch_config): files hold every record and bookmarks still advance."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_event_exports import batch_files
from tap_event_exports.batch_files import DICTIONARY_SAMPLE, repeating_columns
from tap_event_exports.engine import columnar
from tests.conftest import dfinery_config
from tests.harness import run_tap

KEY = "df_event_detail_log_id"


def as_doubles(record: dict) -> dict:
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in record.items()}


def read_batch_files(message: dict) -> list[dict]:
    rows: list[dict] = []
    for url in message["manifest"]:
        path = urlparse(url).path
        if message["encoding"]["format"] == "jsonl":
            with gzip.open(path, "rt") as handle:
                rows += [json.loads(line) for line in handle]
        else:
            rows += pq.read_table(path).to_pylist()
    return rows


@pytest.mark.parametrize("encoding", ["jsonl", "parquet"])
def test_batch_files_hold_every_record_and_state_advances(dfinery, tmp_path, encoding, monkeypatch):
    monkeypatch.setattr(batch_files, "DICTIONARY_SAMPLE", 8)  # these files hold 50 rows at most
    plain = run_tap(dfinery_config(dfinery))
    config = dfinery_config(dfinery) | {
        "batch_config": {
            "encoding": {"format": encoding, "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
            "batch_size": 50,
        }
    }
    run = run_tap(config)
    batches = [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "dfinery_events"]
    assert len(batches) > 2, "several files, so state between them is exercised"
    assert run.records("dfinery_events") == []
    rows = [row for message in batches for row in read_batch_files(message)]
    expected = plain.records("dfinery_events")
    assert sorted(r[KEY] for r in rows) == sorted(r[KEY] for r in expected)
    # every value of every record, typed as in RECORD messages (parquet numbers are doubles)
    assert {r[KEY]: as_doubles(r) for r in rows} == {r[KEY]: as_doubles(r) for r in expected}

    # bookmarks are window ends, as in a RECORD run (the last one is the run's own start time)
    def window_marks(r):
        return sorted(
            {
                s["bookmarks"]["dfinery_events"].get("replication_key_value")
                for s in r.states()
                if s["bookmarks"].get("dfinery_events", {}).get("replication_key_value")
            }
        )[:-1]

    assert set(window_marks(run)) <= set(window_marks(plain))
    if encoding == "parquet":  # the ids get no dictionary; columns whose values repeat do
        first = pq.ParquetFile(urlparse(batches[0]["manifest"][0]).path).metadata
        names = first.schema.names
        encodings = {names[i]: first.row_group(0).column(i).encodings for i in range(len(names))}
        assert "RLE_DICTIONARY" not in encodings[KEY]
        assert "RLE_DICTIONARY" in encodings["df_event_name"]
    marks = [
        s["bookmarks"]["dfinery_events"].get("replication_key_value")
        for s in run.states()
        if "dfinery_events" in s["bookmarks"]
    ]
    marks = [m for m in marks if m]
    assert len(set(marks)) > 1, "bookmarks advance between BATCH messages, not only at the end"
    assert marks == sorted(marks)
    # Every STATE after a BATCH covers only records whose files were already announced.
    announced: set[str] = set()
    for message in run.messages:
        if message["type"] == "BATCH" and message["stream"] == "dfinery_events":
            announced |= {r[KEY] for r in read_batch_files(message)}
        elif message["type"] == "STATE":
            mark = (
                message["value"]["bookmarks"].get("dfinery_events", {}).get("replication_key_value")
            )
            if mark:
                due = {r[KEY] for r in expected if r["df_event_datetime"] < mark}
                assert due <= announced


def test_parquet_continues_with_the_record_reader_past_odd_values(
    dfinery, tmp_path, caplog, monkeypatch
):
    """A value the bulk typing does not take ("+3" for an integer) mid-file: nothing is lost."""
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 4096)  # several batches per file
    plain = run_tap(dfinery_config(dfinery))
    middle = len(dfinery.events) // 2
    dfinery.events[middle]["df_items_df_quantity"] = "+3"
    config = dfinery_config(dfinery) | {
        "batch_config": {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}"},
        }
    }
    run = run_tap(config)
    assert any("goes through the record reader" in r.getMessage() for r in caplog.records)
    batches = [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "dfinery_events"]
    rows = [row for message in batches for row in read_batch_files(message)]
    expected = {r[KEY]: as_doubles(r) for r in plain.records("dfinery_events")}
    expected[dfinery.events[middle]["df_event_detail_log_id"]]["df_items_df_quantity"] = 3
    assert len(rows) == len(expected)
    assert {r[KEY]: as_doubles(r) for r in rows} == expected


def sdk_target_records(messages: list[dict]) -> list[dict]:
    """The records a singer-sdk target reads from these BATCH messages (its own gzip reader)."""
    from singer_sdk import Target
    from singer_sdk import typing as th
    from singer_sdk.sinks import BatchSink as SdkBatchSink

    collected: list[dict] = []

    class CollectingSink(SdkBatchSink):
        def process_batch(self, context: dict) -> None:
            collected.extend(context["records"])

    class CollectingTarget(Target):
        name = "target-collect"
        config_jsonschema = th.PropertiesList().to_dict()
        default_sink_class = CollectingSink

    lines = "".join(json.dumps(m, default=str) + "\n" for m in messages if m["type"] != "STATE")
    CollectingTarget(config={}).listen(io.StringIO(lines))
    return collected


def test_jsonl_gzip_files_read_back_exactly_by_gzip_and_the_sdk_reader(dfinery, tmp_path):
    """The files are plain gzip: Python's gzip module and singer-sdk's batch reader see every
    record of the RECORD run, value for value and in the same order."""
    plain = run_tap(dfinery_config(dfinery))
    config = dfinery_config(dfinery) | {
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}"},
            "batch_size": 70,
        }
    }
    run = run_tap(config)
    expected = plain.records("dfinery_events")
    assert len(expected) > 200
    batches = [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "dfinery_events"]
    assert len(batches) > 2
    by_gzip = []
    for message in batches:
        for url in message["manifest"]:
            with gzip.open(urlparse(url).path, "rb") as handle:
                by_gzip += [json.loads(line, parse_float=Decimal) for line in handle]
    assert by_gzip == expected
    by_sdk = sdk_target_records(run.messages)
    assert [as_doubles(r) for r in by_sdk] == [as_doubles(r) for r in expected]


def test_parquet_dictionaries_only_for_columns_whose_values_repeat():
    rows = DICTIONARY_SAMPLE * 2
    batch = pa.RecordBatch.from_pydict(
        {
            "id": [f"id-{i}" for i in range(rows)],
            "half": [f"v{i % (rows // 2)}" for i in range(rows)],
            "most": [f"v{i % (rows // 2 + 1)}" for i in range(rows)],
            "empty": pa.array([None] * rows, pa.string()),
            "items": [[1], [2]] * (rows // 2),
        }
    )
    assert repeating_columns(batch) == ["half", "empty", "items"]
    chunked = pa.Table.from_batches([batch.slice(0, 5), batch.slice(5, 300), batch.slice(305)])
    assert repeating_columns(chunked) == ["half", "empty", "items"]
    # a file of a few rows tells too little: every column gets one
    assert repeating_columns(batch.slice(0, DICTIONARY_SAMPLE - 1)) is True


def test_a_files_dictionaries_follow_its_first_row_group_not_its_first_batch(tmp_path):
    """A file may open with a few rows left over from the last one: all distinct there, its
    instants repeat over the row group (the same minute many times), and get a dictionary."""
    from singer_sdk.helpers._batch import BatchConfig

    from tap_event_exports.batch_files import ROW_GROUP_ROWS, BatchFiles

    config = BatchConfig.from_dict(
        {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}"},
            "batch_size": 100_000,
        }
    )
    files = BatchFiles(config, tap_name="t", stream_name="s")
    rows = ROW_GROUP_ROWS + 10
    minutes = [f"2026-12-03T{i // 60 % 24:02d}:{i % 60:02d}:00+00:00" for i in range(rows)]
    instants = (
        minutes[:DICTIONARY_SAMPLE] + [minutes[i % 100] for i in range(rows)][DICTIONARY_SAMPLE:]
    )
    ids = [f"id-{i}" for i in range(rows)]
    first = DICTIONARY_SAMPLE  # distinct instants only
    files.write_batch(pa.RecordBatch.from_pydict({"at": instants[:first], "id": ids[:first]}))
    files.write_batch(pa.RecordBatch.from_pydict({"at": instants[first:], "id": ids[first:]}))
    (url,) = files.finish()
    written = pq.ParquetFile(urlparse(url).path)
    group = written.metadata.row_group(0)
    assert "RLE_DICTIONARY" in group.column(0).encodings
    assert "RLE_DICTIONARY" not in group.column(1).encodings
    assert written.read().to_pydict() == {"at": instants, "id": ids}


def dictionary_columns(url: str) -> list[str]:
    """The columns of a parquet file's first row group written with a dictionary."""
    metadata = pq.ParquetFile(urlparse(url).path).metadata
    group = metadata.row_group(0)
    return [
        group.column(i).path_in_schema
        for i in range(metadata.num_columns)
        if "RLE_DICTIONARY" in group.column(i).encodings
    ]


def test_a_choice_of_dictionaries_made_on_a_whole_row_group_holds_for_the_streams_next_files(
    tmp_path,
):
    """Each new file would otherwise count its columns again on the typing thread while the
    writer waits; a first file too small to tell does not decide for the others, and other
    columns are chosen for anew."""
    from singer_sdk.helpers._batch import BatchConfig

    from tap_event_exports.batch_files import ROW_GROUP_ROWS, BatchFiles

    rows = ROW_GROUP_ROWS
    config = BatchConfig.from_dict(
        {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}"},
            "batch_size": rows,
        }
    )
    repeating = [f"r{i % 10}" for i in range(rows)]
    distinct = [f"d{i}" for i in range(rows)]
    files = BatchFiles(config, tap_name="t", stream_name="s")
    small = DICTIONARY_SAMPLE * 2  # a window of a few rows: its own choice, not settled
    files.write_batch(pa.RecordBatch.from_pydict({"a": distinct[:small], "b": repeating[:small]}))
    (tiny,) = files.finish()
    files.write_batch(pa.RecordBatch.from_pydict({"a": repeating, "b": distinct}))
    files.write_batch(pa.RecordBatch.from_pydict({"a": distinct, "b": repeating}))
    files.write_batch(pa.RecordBatch.from_pydict({"a": distinct, "b": repeating, "c": repeating}))
    settling, following, wider = files.finish()
    assert dictionary_columns(tiny) == ["b"]
    assert dictionary_columns(settling) == ["a"]
    assert dictionary_columns(following) == ["a"], "the settled choice, not its own"
    assert dictionary_columns(wider) == ["b", "c"], "other columns: chosen for anew"
    written = pq.read_table(urlparse(following).path).to_pydict()
    assert written == {"a": distinct, "b": repeating}


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_parquet_files_closed_on_the_writer_thread_are_whole_when_announced(
    dfinery, tmp_path, batch_size, compression
):
    """One file open at a time (the SDK's storage ends its transaction at each close), each
    closed behind the caller: every announced file is complete, and none is announced twice."""
    plain = run_tap(dfinery_config(dfinery)).records("dfinery_events")
    config = dfinery_config(dfinery) | {
        "batch_config": {
            "encoding": {"format": "parquet", "compression": compression},
            "storage": {"root": f"file://{tmp_path}"},
            "batch_size": batch_size,
        }
    }
    run = run_tap(config)
    urls = [url for m in run.messages if m["type"] == "BATCH" for url in m["manifest"]]
    assert len(urls) == len(set(urls)) >= len(plain) // batch_size
    rows = [row for url in urls for row in pq.read_table(urlparse(url).path).to_pylist()]
    assert [r[KEY] for r in rows] == [r[KEY] for r in plain], "every record once, in order"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        urlparse(url).path.rsplit("/", 1)[1] for url in urls
    ), "no file left half-written or unannounced"


def test_an_aborted_parquet_window_announces_nothing_and_leaves_the_writer_idle(tmp_path):
    from singer_sdk.helpers._batch import BatchConfig

    from tap_event_exports.batch_files import BatchFiles

    config = BatchConfig.from_dict(
        {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}"},
            "batch_size": 2,
        }
    )
    files = BatchFiles(config, tap_name="t", stream_name="s")
    files.write_batch(pa.RecordBatch.from_pydict({"a": ["1", "2", "3", "4", "5"]}))
    announced = files.finish()
    assert [pq.read_table(urlparse(u).path).column("a").to_pylist() for u in announced] == [
        ["1", "2"],
        ["3", "4"],
        ["5"],
    ]
    files.write_batch(pa.RecordBatch.from_pydict({"a": ["6", "7", "8"]}))
    files.abort()  # the window failed: nothing more is announced, the writer thread is idle
    assert files._row_groups.idle
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert len(on_disk) == 4, "the three announced and the one closed before the failure"
    unannounced = set(on_disk) - {urlparse(u).path.rsplit("/", 1)[1] for u in announced}
    (name,) = unannounced
    assert pq.read_table(tmp_path / name).column("a").to_pylist() == ["6", "7"]
