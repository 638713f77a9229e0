"""myTracker end to end on the export job engine, against the fake myTracker over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

import pytest

from tap_event_exports.engine.download import FILES_AT_ONCE
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.jobs import JobFailedError
from tap_event_exports.sandbox.mytracker import read_list
from tap_event_exports.vendors.mytracker import selector_type, sign, stream_name
from tests.conftest import CUSTOM_SELECTORS, INSTALL_SELECTORS, mytracker_config, utc_midnight
from tests.harness import run_tap, run_until_sigterm

UTC = dt.timezone.utc


def test_signature_reproduces_the_documented_test_vector():
    header = sign(
        "GET",
        "https://tracker.my.com/api/raw/v1/export/get.json?idReport=4",
        None,
        "77658",
        "72d2erEtbynf6f7ZYTsYKnb7",
    )
    assert header == "AuthHMAC 77658:PqrQR8zsgQU9Qcocjp6T6hnjF8Y="


def test_stream_names_and_selector_types():
    assert stream_name("customEvents") == "mytracker_custom_events"
    assert stream_name("installs") == "mytracker_installs"
    assert selector_type("tsEvent") == "date-time"
    assert selector_type("idApp") == "integer"
    assert selector_type("idAppTitle") == "string"
    assert selector_type("SDKKey") == "string"
    assert selector_type("params.value") == "array"
    assert selector_type("somethingNew") == "string"


def expected(rows, selectors, bound):
    out = []
    for row in rows:
        if int(row["tsEvent"]) >= bound.timestamp():
            continue
        record = {}
        for name in selectors:
            text = row[name]
            kind = selector_type(name)
            if text == "":
                record[name] = None
            elif kind == "date-time":
                record[name] = dt.datetime.fromtimestamp(int(text), UTC).isoformat()
            elif kind == "integer":
                record[name] = int(text)
            elif kind == "array":
                record[name] = read_list(text)
            else:
                record[name] = text
        out.append(record)
    return out


def canonical(records):
    return Counter(
        json.dumps({k: v for k, v in r.items() if k != "_record_id"}, sort_keys=True, default=str)
        for r in records
    )


def test_exact_datasets_per_stream_with_typed_selectors(mytracker):
    run = run_tap(mytracker_config(mytracker))
    marks = run.last_state["bookmarks"]
    bound = dt.datetime.fromisoformat(marks["mytracker_installs"]["replication_key_value"])
    installs = run.records("mytracker_installs")
    assert canonical(installs) == canonical(
        expected(mytracker.rows["installs"], INSTALL_SELECTORS, bound)
    )
    assert all(len(r["SDKKey"]) == 20 for r in installs), "SDKKey keeps its leading zeros"
    custom_rows = [
        r
        for r in mytracker.rows["customEvents"]
        if r["eventName"] in {"level_up", "tutorial"} and r["idApp"] in {"1", "454"}
    ]
    custom = run.records("mytracker_custom_events")
    assert canonical(custom) == canonical(expected(custom_rows, CUSTOM_SELECTORS, bound))
    assert any("param with\n line break" in (r["params.name"] or []) for r in custom)
    assert {type(r["revenue"]) for r in custom} == {str}, "unknown selectors are strings"
    keys = [r["_record_id"] for r in installs + custom]
    assert len(keys) == len(set(keys))
    assert mytracker.bad_signatures == 0
    downloads = mytracker.requests_to("/storage/download/raw/")
    assert downloads
    assert all(r.headers["authorization"].startswith("AuthHMAC ") for r in downloads)


def test_a_new_export_is_first_checked_after_poll_interval(mytracker):
    mytracker.job_seconds = 0.05
    run = run_tap(mytracker_config(mytracker) | {"poll_interval": 0.3})
    checks = Counter(r.arg("idRawExport") for r in mytracker.requests_to("get.json"))
    assert len(mytracker.exports) == 8  # four daily windows of two exports
    assert checks == dict.fromkeys(mytracker.exports, 1), "no check before poll_interval"
    assert len(run.records("mytracker_installs")) > 0


def test_an_exports_parts_come_several_at_once_and_are_read_in_order(mytracker):
    mytracker.part_rows = 4  # yesterday's 25 installs in 7 parts
    config = mytracker_config(mytracker) | {
        "start_date": utc_midnight(1).isoformat(),
        "end_date": utc_midnight(0).isoformat(),
    }
    config["mytracker"]["exports"] = config["mytracker"]["exports"][:1]
    mytracker.inject("slow", times=FILES_AT_ONCE, path="/storage/download/raw/", delay=0.5)
    run = run_tap(config)
    parts = sorted(
        r.path.rsplit(".", 3)[1] for r in mytracker.requests_to("/storage/download/raw/")
    )
    assert parts == [str(n) for n in range(7)]
    assert mytracker.max_in_flight == FILES_AT_ONCE
    rows = [
        row
        for row in mytracker.rows["installs"]
        if utc_midnight(1).timestamp() <= int(row["tsEvent"]) < utc_midnight(0).timestamp()
    ]
    assert len(rows) == 25
    records = [
        {k: v for k, v in r.items() if k != "_record_id"} for r in run.records("mytracker_installs")
    ]
    assert records == expected(rows, INSTALL_SELECTORS, utc_midnight(0))


def test_create_parameters(mytracker):
    run_tap(mytracker_config(mytracker, timezone="Europe/Moscow"))
    creates = [r for r in mytracker.log if r.path.endswith("create.json")]
    custom = next(r for r in creates if r.arg("event") == "customEvents")
    assert custom.query["eventName[]"] == ["level_up", "tutorial"]
    assert custom.arg("idApp") == "1,454"
    assert custom.arg("selectors") == ",".join(CUSTOM_SELECTORS)
    assert custom.arg("timezone") == "Europe/Moscow"
    today = utc_midnight(0).timestamp()
    for create in creates:
        start, last = int(create.arg("tsFrom")), int(create.arg("tsTo"))
        assert start % 86400 == 0, "windows start at UTC midnight"
        if start < today:
            assert last - start == 86399, "a past day is asked for whole, tsTo inclusive"
        else:
            assert start <= last < time.time(), "today's window ends before now"


def test_too_many_lines_splits_windows_and_delivers_every_row_once(mytracker):
    mytracker.row_limit = 12  # a day holds ~25 rows: every daily window must be halved
    run = run_tap(mytracker_config(mytracker))
    bound = dt.datetime.fromisoformat(
        run.last_state["bookmarks"]["mytracker_installs"]["replication_key_value"]
    )
    installs = run.records("mytracker_installs")
    assert canonical(installs) == canonical(
        expected(mytracker.rows["installs"], INSTALL_SELECTORS, bound)
    )
    spans = {
        int(r.arg("tsTo")) - int(r.arg("tsFrom")) + 1
        for r in mytracker.log
        if r.path.endswith("create.json")
    }
    assert min(spans) < 86400


def test_too_many_lines_below_the_minimum_fails_clearly(mytracker):
    mytracker.row_limit = 0
    with pytest.raises(
        JobFailedError,
        match="too large for the vendor and the window cannot be split further: Too many lines in export",
    ):
        run_tap(mytracker_config(mytracker))


def test_truncated_gzip_part_is_downloaded_again(mytracker):
    mytracker.fail_next("truncated", times=2)
    run = run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})
    bound = dt.datetime.fromisoformat(
        run.last_state["bookmarks"]["mytracker_installs"]["replication_key_value"]
    )
    assert canonical(run.records("mytracker_installs")) == canonical(
        expected(mytracker.rows["installs"], INSTALL_SELECTORS, bound)
    )


def test_error_occurred_recreates_the_export(mytracker):
    mytracker.fail_next("Error occurred")
    run = run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})
    assert len(run.records("mytracker_installs")) > 0
    assert sum(1 for e in mytracker.exports.values() if e.outcome == "Error occurred") == 1


def test_canceled_by_user_fails_clearly(mytracker):
    mytracker.fail_next("Canceled by user")
    with pytest.raises(JobFailedError, match=r"job \d+ failed: the export was canceled by a user"):
        run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})


def test_quota_429_waits_reset_in_second(mytracker):
    mytracker.fail_next("429", times=2)
    started = time.monotonic()
    run = run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})
    assert time.monotonic() - started >= 1.0
    assert run.records("mytracker_installs")
    assert mytracker.quota_refusals == 2


def test_client_stays_under_the_per_second_quota(mytracker):
    mytracker.limits = ((10, 1.0), (1000, 60.0))
    run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 4, "poll_interval": 0.01})
    assert mytracker.quota_refusals == 0


def test_wrong_secret_fails_fast_with_403(mytracker):
    config = mytracker_config(mytracker)
    config["mytracker"]["api_secret_key"] = "tok-SECRET-123"
    with pytest.raises(VendorError, match="HTTP 403 Access denied"):
        run_tap(config)
    assert len(mytracker.log) <= 2


def test_stopped_run_resumes_the_same_export(mytracker, tmp_path):
    mytracker.job_seconds = 3.0
    config = mytracker_config(mytracker) | {"max_concurrent_jobs": 1, "poll_interval": 0.2}
    state = run_until_sigterm(config, tmp_path, lambda: bool(mytracker.exports))
    pending = {
        (stream, window): entry["job"]
        for stream in ("mytracker_installs", "mytracker_custom_events")
        for window, entry in state["bookmarks"].get(stream, {}).get("pending_jobs", {}).items()
    }
    assert len(pending) == 1
    (stream, window), job = next(iter(pending.items()))
    event = mytracker.exports[job].event
    ts_from = str(int(dt.datetime.fromisoformat(window.split("/")[0]).timestamp()))
    seen = len(mytracker.log)
    mytracker.job_seconds = 0.1
    run = run_tap(config, state=state)
    later = mytracker.log[seen:]
    assert any(r.path.endswith("get.json") and r.arg("idRawExport") == job for r in later)
    assert not any(
        r.path.endswith("create.json") and r.arg("event") == event and r.arg("tsFrom") == ts_from
        for r in later
    ), "the resumed window was not created again"
    assert run.last_state["bookmarks"][stream]["pending_jobs"] == {}
    assert run.records(stream)


def test_failed_run_records_pending_exports_for_the_next_run(mytracker):
    mytracker.fail_next("Canceled by user")
    config = mytracker_config(mytracker) | {"max_concurrent_jobs": 3}
    mytracker.job_seconds = 0.5
    run = run_tap(config, raise_errors=False)
    assert isinstance(run.error, JobFailedError)
    pending = {
        entry["job"]
        for stream in ("mytracker_installs", "mytracker_custom_events")
        for entry in run.last_state["bookmarks"].get(stream, {}).get("pending_jobs", {}).values()
    }
    created = {e.id for e in mytracker.exports.values() if e.outcome == "Success!"}
    assert pending, "exports in flight when the run failed are in its last STATE"
    assert pending <= created


def test_exports_no_window_will_resume_are_canceled(mytracker):
    mytracker.job_seconds = 30
    stray = mytracker._create(
        {"event": ["installs"], "selectors": ["tsEvent"], "tsFrom": ["0"], "tsTo": ["86399"]}
    )
    stray_id = json.loads(stray.body)["data"]["idRawExport"]
    mytracker.job_seconds = 0.05
    state = {
        "bookmarks": {
            "mytracker_installs": {
                "pending_jobs": {
                    "1970-01-01T00:00:00+00:00/1970-01-02T00:00:00+00:00": {"job": stray_id}
                }
            }
        }
    }
    run = run_tap(mytracker_config(mytracker), state=state)
    assert mytracker.exports[stray_id].canceled
    assert run.last_state["bookmarks"]["mytracker_installs"]["pending_jobs"] == {}
