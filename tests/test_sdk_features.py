"""What singer-sdk users rely on keeps working: stream maps, flattening, catalog selection; and
the fast RECORD path gives exactly the records and types of the SDK's general path."""

from __future__ import annotations

import json

from tap_event_exports.tap import TapEventExports
from tests.conftest import batch_config, dfinery_config
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

    def exact(records):
        return sorted(json.dumps(r, sort_keys=True, default=repr) for r in records)

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
