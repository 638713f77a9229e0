"""What singer-sdk users rely on keeps working: stream maps, flattening, catalog selection; and
the fast RECORD path gives exactly the records and types of the SDK's general path."""

from __future__ import annotations

import json

import pyarrow as pa

from tap_event_exports.engine import columnar
from tap_event_exports.engine.columnar import ColumnarCsv
from tap_event_exports.tap import TapEventExports
from tests.conftest import batch_config, dfinery_config, mytracker_config
from tests.harness import run_tap

KEY = "df_event_detail_log_id"


def test_fast_path_equals_the_sdk_path(dfinery, caplog):
    fast = run_tap(dfinery_config(dfinery))
    assert not any("records go through the SDK's mapper" in r.getMessage() for r in caplog.records)
    # flattening makes the stream take the SDK's mapper path; the records are flat already
    general = run_tap(
        dfinery_config(dfinery) | {"flattening_enabled": True, "flattening_max_depth": 1}
    )
    assert any("records go through the SDK's mapper" in r.getMessage() for r in caplog.records)

    assert exact(fast.records("dfinery_events")) == exact(general.records("dfinery_events"))
    types = {(k, type(v).__name__) for r in fast.records("dfinery_events") for k, v in r.items()}
    assert types == {
        (k, type(v).__name__) for r in general.records("dfinery_events") for k, v in r.items()
    }


def test_stream_maps_filter_alias_and_drop(dfinery):
    config = dfinery_config(dfinery) | {
        "stream_maps": {
            "dfinery_events": {
                "__filter__": "df_event_name == 'df_purchase'",
                "df_keyword": "__NULL__",
            },
            "sessions": {
                "__source__": "dfinery_events",
                "__filter__": "df_event_name == 'df_start_session'",
            },
        }
    }
    run = run_tap(config)
    purchases = run.records("dfinery_events")
    assert purchases
    assert {r["df_event_name"] for r in purchases} == {"df_purchase"}
    assert all("df_keyword" not in r for r in purchases)
    sessions = run.records("sessions")
    assert sessions
    assert {r["df_event_name"] for r in sessions} == {"df_start_session"}
    assert run.bookmark("dfinery_events")


def test_catalog_deselection_on_the_fast_path(dfinery):
    config = dfinery_config(dfinery)
    catalog = TapEventExports(config=config).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == ["properties", "df_keyword"]:
                entry["metadata"]["selected"] = False
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    run = run_tap(config, catalog=catalog)
    records = run.records("dfinery_events")
    assert records
    assert all("df_keyword" not in r for r in records)
    assert all(KEY in r for r in records)


def test_deselected_stream_is_not_exported(batch):
    config = batch_config(batch, reachability=True, userbase=True)
    catalog = TapEventExports(config=config).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "batch_userbase"
    run = run_tap(config, catalog=catalog)
    assert run.records("batch_userbase")
    assert run.records("batch_reachability_events") == []
    assert not [r for r in batch.log if "reachability" in r.path]


def exact(records):
    return sorted(json.dumps(r, sort_keys=True, default=repr) for r in records)


def test_mytracker_fast_path_equals_the_sdk_path(mytracker):
    """Synthetic keys, unix times and integers: the same on both paths."""
    fast = run_tap(mytracker_config(mytracker))
    mapped = mytracker_config(mytracker) | {
        "stream_maps": {"mytracker_installs": {"key_copy": "_record_id"}}
    }
    general = run_tap(mapped)
    records = fast.records("mytracker_installs")
    assert len(records) > 50
    assert exact(records) == exact(
        {k: v for k, v in r.items() if k != "key_copy"}
        for r in general.records("mytracker_installs")
    )
    assert all(r["key_copy"] == r["_record_id"] for r in general.records("mytracker_installs"))
    sample = records[0]
    assert isinstance(sample["idApp"], int)
    assert sample["tsEvent"].endswith("+00:00")
    assert isinstance(sample["SDKKey"], str)


def test_record_messages_continue_with_the_record_reader(mytracker, monkeypatch, caplog):
    """A block the columnar reader cannot take mid-file: the record reader delivers the rest,
    with the same records and keys."""
    plain = run_tap(mytracker_config(mytracker))
    blocks = ColumnarCsv._blocks

    def two_then_fail(self, **options):
        for number, block in enumerate(blocks(self, **options)):
            if number == 2:
                raise pa.ArrowInvalid("a block Arrow cannot parse")
            yield block

    monkeypatch.setattr(columnar, "BLOCK_SIZE", 256)
    monkeypatch.setattr(ColumnarCsv, "_blocks", two_then_fail)
    run = run_tap(mytracker_config(mytracker))
    assert any("goes through the record reader" in r.getMessage() for r in caplog.records)
    for stream in ("mytracker_installs", "mytracker_custom_events"):
        assert exact(run.records(stream)) == exact(plain.records(stream))
        assert len(run.records(stream)) > 30
