"""Bad configurations: one line naming the setting, exit 1, no traceback."""

from __future__ import annotations

import copy
import json

import pytest

from tests.harness import run_cli

GOOD = {
    "start_date": "2025-01-01T00:00:00Z",
    "dfinery": {
        "service_id": "svc",
        "api_token": "tok-SECRET-123",
        "base_url": "http://127.0.0.1:9",
    },
}


def variant(path: str, value):
    config = copy.deepcopy(GOOD)
    target = config
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    if value is DELETE:
        target.pop(last)
    else:
        target[last] = value
    return config


DELETE = object()

CASES = [
    (variant("start_date", DELETE), "config: start_date: is required"),
    (variant("start_date", "yesterday"), "config: start_date: 'yesterday' is not an RFC 3339"),
    (variant("start_date", 20250101), "config: start_date: must be an RFC 3339 date-time string"),
    (
        variant("end_date", "2024-12-31T00:00:00Z"),
        "config: end_date: must be later than start_date",
    ),
    (variant("request_timeout", "soon"), "config: request_timeout: must be a number of seconds"),
    (variant("max_retries", 0), "config: max_retries: must be at least 1"),
    (variant("max_retries", 2.5), "config: max_retries: must be an integer"),
    (variant("max_concurrent_jobs", "many"), "config: max_concurrent_jobs: must be an integer"),
    (variant("poll_interval", -1), "config: poll_interval: must be at least 0"),
    ({"start_date": "2025-01-01T00:00:00Z"}, "config: no provider is configured"),
    (variant("dfinery", "svc"), "config: dfinery: must be an object"),
    (variant("dfinery.service_id", DELETE), "config: dfinery.service_id: is required"),
    (variant("dfinery.api_token", DELETE), "config: dfinery.api_token: is required"),
    (variant("dfinery.api_token", ""), "config: dfinery.api_token: must be a non-empty string"),
    (variant("dfinery.servce_id", "x"), "config: dfinery.servce_id: unknown setting"),
    (variant("dfinery.window", "1 day"), "config: dfinery.window: '1 day' is not an ISO-8601"),
    (variant("dfinery.window", "PT6H"), "config: dfinery.window: must be a whole number of days"),
    (variant("dfinery.lookback", "P1M"), "config: dfinery.lookback: 'P1M' is not an ISO-8601"),
    (
        variant("dfinery.timezone", "Mars/Base"),
        "config: dfinery.timezone: 'Mars/Base' is not an IANA",
    ),
    (
        variant("dfinery.events_condition_type", "some"),
        "config: dfinery.events_condition_type: must be one of all, include, exclude",
    ),
    (
        variant("dfinery.events_condition_type", "include"),
        "config: dfinery.events: must list events",
    ),
    (variant("dfinery.events", [1, 2]), "config: dfinery.events: must be a list of strings"),
    (
        variant("dfinery.max_concurrent_jobs", 6),
        "config: dfinery.max_concurrent_jobs: must be at most 5, got 6",
    ),
    (
        variant("dfinery.column_types", {"sum": "float"}),
        "config: dfinery.column_types.sum: must be one of",
    ),
    (
        variant("dfinery.user_profiles", {"properties_condition_type": "x"}),
        "config: dfinery.user_profiles.properties_condition_type: must be one of",
    ),
    (
        variant("dfinery.user_profiles", {"audince": "a"}),
        "config: dfinery.user_profiles.audince: unknown setting",
    ),
    (
        {
            "start_date": "2025-01-01T00:00:00Z",
            "batch": {
                "api_key": "k",
                "rest_api_key": "tok-SECRET-123",
                "userbase": True,
                "ids": ["custom_id"],
            },
        },
        "config: batch.ids: must include install_id when userbase is true",
    ),
]


@pytest.mark.parametrize(("config", "expected"), CASES, ids=[c[1][8:48] for c in CASES])
def test_bad_config_is_one_line(config, expected):
    run = run_cli([], config=config, timeout=60)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert errors == [f"tap-event-exports: error: {errors[0].split('error: ', 1)[1]}"]
    assert expected in errors[0]
    assert "Traceback" not in run.stderr
    assert "SECRET" not in run.stderr
    assert run.messages == []


def test_discover_lists_streams_without_start_date():
    config = variant("start_date", DELETE)
    config["dfinery"]["user_profiles"] = {}
    run = run_cli(["--discover"], config=config, timeout=60)
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == {"dfinery_events", "dfinery_user_profiles"}
    assert streams["dfinery_events"]["key_properties"] == ["df_event_detail_log_id"]
    assert streams["dfinery_user_profiles"]["key_properties"] == ["df_unified_id"]


def test_discover_reports_bad_provider_block_in_one_line():
    run = run_cli(["--discover"], config=variant("dfinery.window", "PT6H"), timeout=60)
    assert run.returncode == 1
    assert "config: dfinery.window: must be a whole number of days" in run.stderr
    assert "Traceback" not in run.stderr


BAD_FILES = [
    ("state", "{not json", "state: "),
    ("state", '{"bookmarks": []}', "state: 'bookmarks' must be an object of streams"),
    (
        "state",
        '{"bookmarks": {"dfinery_events": "2025-01-01"}}',
        "state: bookmarks of stream 'dfinery_events' must be an object",
    ),
    ("state", '{"dfinery_events": {"x": 1}}', "state: no 'bookmarks' object"),
    (
        "state",
        '{"bookmarks": {"dfinery_events": {"replication_key_value": "last tuesday"}}}',
        "state: bookmark of stream 'dfinery_events' is not an RFC 3339 date-time",
    ),
    ("catalog", "[1, 2", "catalog: "),
    (
        "catalog",
        '{"streams": [{"tap_stream_id": "dfinery_evnts", "stream": "dfinery_evnts", "schema": {}, "metadata": []}]}',
        "catalog: stream 'dfinery_evnts' is not one this config has",
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), BAD_FILES, ids=[c[2][:40] for c in BAD_FILES]
)
def test_bad_state_and_catalog_files(tmp_path, kind, text, expected):
    path = tmp_path / f"{kind}.json"
    path.write_text(text)
    run = run_cli([f"--{kind}", str(path)], config=GOOD, timeout=60)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert expected in errors[0]
    assert "Traceback" not in run.stderr


def test_flat_state_of_older_taps_is_converted(dfinery):
    from tests.conftest import dfinery_config
    from tests.harness import run_tap

    config = dfinery_config(dfinery)
    first = run_tap(config)
    mark = first.bookmark("dfinery_events")
    dfinery.bodies.clear()
    run_tap(config, state={"dfinery_events": mark})
    assert len(dfinery.bodies) == 2  # resumed from the bookmark: lookback day and today
