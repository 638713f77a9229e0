"""myTracker end to end on the export job engine, against the fake myTracker over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections import Counter

import pytest
import requests

from tap_event_exports.engine.download import FILES_AT_ONCE
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.jobs import JobFailedError
from tap_event_exports.sandbox.mytracker import read_list
from tap_event_exports.vendors import mytracker as mytracker_vendor
from tap_event_exports.vendors.mytracker import selector_type, sign, stream_name
from tests.conftest import (
    CUSTOM_SELECTORS,
    INSTALL_SELECTORS,
    MYTRACKER_DAYS,
    mytracker_config,
    utc_midnight,
)
from tests.harness import run_cli, run_tap, run_until_sigterm

UTC = dt.timezone.utc
BOTH_WAYS = pytest.mark.parametrize(
    "body_only", [False, True], ids=["code-as-http-status", "code-in-body-only"]
)
"""Failures sent with the envelope's code as HTTP status, or with HTTP 200 and the code only in
the envelope (whether the API mirrors the code is not documented)."""


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


@BOTH_WAYS
def test_quota_429_waits_reset_in_second(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
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


@BOTH_WAYS
def test_wrong_secret_fails_fast_with_403(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    config = mytracker_config(mytracker)
    config["mytracker"]["api_secret_key"] = "tok-SECRET-123"
    status = "code 403" if body_only else "HTTP 403"
    with pytest.raises(VendorError) as caught:
        run_tap(config)
    assert re.fullmatch(
        rf"mytracker: mytracker_\w+: create raw export tsFrom=\d+ tsTo=\d+: {status} Access denied",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.status == 403
    # an HTTP 403 stops every other request of the run; a 403 inside an HTTP 200 is known only
    # once its body is read, after the workers waiting behind the first request were let go
    assert len(mytracker.log) <= (4 if body_only else 2)


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


# --- failure envelopes, either way the vendor sends them ----------------------------------------


@BOTH_WAYS
def test_the_fake_sends_failures_either_way(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    url = f"{mytracker.base_url}/api/raw/v1/export/get.json?idRawExport=999"
    auth = sign("GET", url, None, mytracker.user_id, mytracker.secret)
    answer = requests.get(url, headers={"Authorization": auth}, timeout=10)
    assert answer.status_code == (200 if body_only else 404)
    assert answer.json() == {
        "code": 404,
        "message": "Not Found",
        "data": {"error": {"detail": "Raw export request not found"}},
    }


def custom_rows(fake):
    """The custom events the configured filters select."""
    return [
        r
        for r in fake.rows["customEvents"]
        if r["eventName"] in {"level_up", "tutorial"} and r["idApp"] in {"1", "454"}
    ]


def assert_exact_sync(run, fake, *, started: float) -> None:
    """Every selected row exactly once, no export left pending, both bookmarks at the run's now."""
    marks = run.last_state["bookmarks"]
    bounds = {marks[s]["replication_key_value"] for s in marks}
    assert set(marks) == {"mytracker_installs", "mytracker_custom_events"}
    assert len(bounds) == 1
    bound = dt.datetime.fromisoformat(bounds.pop())
    assert started - 1 <= bound.timestamp() <= time.time()
    assert all(marks[s]["pending_jobs"] == {} for s in marks)
    assert canonical(run.records("mytracker_installs")) == canonical(
        expected(fake.rows["installs"], INSTALL_SELECTORS, bound)
    )
    assert canonical(run.records("mytracker_custom_events")) == canonical(
        expected(custom_rows(fake), CUSTOM_SELECTORS, bound)
    )


def stray_export(fake, seconds: float) -> str:
    """An export someone else started, running for ``seconds``: it fills a queue of one."""
    fake.job_seconds = seconds
    answer = fake._create(
        {"event": ["installs"], "selectors": ["tsEvent"], "tsFrom": ["0"], "tsTo": ["86399"]}
    )
    fake.job_seconds = 0.1
    return json.loads(answer.body)["data"]["idRawExport"]


@BOTH_WAYS
def test_a_full_queue_is_waited_for_and_every_row_arrives(mytracker, body_only, caplog):
    mytracker.errors_as_http_200 = body_only
    mytracker.queue_limit = 1  # the tap keeps 4 exports in flight by default
    mytracker.job_seconds = 0.3
    started = time.time()
    run = run_tap(mytracker_config(mytracker) | {"max_retries": 2})
    assert_exact_sync(run, mytracker, started=started)
    assert len(mytracker.exports) == 8, "each of the 8 windows was created once"
    refused = Counter(mytracker.queue_refused)
    assert max(refused.values()) > 2, "a create waited longer than max_retries quick retries"
    # one refused create at a time asks again (each refusal counts toward 60 errors a minute):
    # the creates' repeated refusals come in one unbroken run per create
    seen: set = set()
    again = []
    for create in mytracker.queue_refused:  # in the order the fake refused them
        if create in seen:
            again.append(create)
        seen.add(create)
    runs = [create for n, create in enumerate(again) if n == 0 or again[n - 1] != create]
    assert len(runs) == len(set(again)), again
    warnings = [r for r in caplog.records if "waiting for room" in r.getMessage()]
    assert len(warnings) == len(refused), "one line per create that found the queue full"
    for record in warnings:
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert "Maximum number of simultaneous requests reached. Wait until there is space" in (
            message
        )
        listed = re.search(r"\(idRawExport (\d+)\)", message)
        assert listed, message
        assert listed.group(1) in mytracker.exports


@BOTH_WAYS
def test_a_queue_that_stays_full_fails_after_max_poll_time_naming_its_exports(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    mytracker.queue_limit = 1
    stray = stray_export(mytracker, 60)
    config = mytracker_config(mytracker) | {"max_poll_time": 1, "max_concurrent_jobs": 1}
    status = "code 400" if body_only else "HTTP 400"
    started = time.monotonic()
    with pytest.raises(VendorError) as caught:
        run_tap(config)
    assert time.monotonic() - started < 10
    assert re.fullmatch(
        rf"mytracker: mytracker_\w+: create raw export tsFrom=\d+ tsTo=\d+: {status} Bad "
        r"Request: Maximum number of simultaneous requests reached\. Wait until there is space "
        rf"available in the queue\. \(idRawExport {stray}\); still full after \ds "
        r"\(max_poll_time 1s\)",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.status == 400
    assert len(mytracker.queue_refused) > config["max_retries"]
    assert list(mytracker.exports) == [stray]


def test_connection_check_does_not_wait_for_a_full_queue(mytracker):
    mytracker.queue_limit = 1
    stray = stray_export(mytracker, 60)
    started = time.monotonic()
    run = run_cli(["--test"], config=mytracker_config(mytracker))
    assert time.monotonic() - started < 20
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    failed = [
        line
        for line in run.stderr.splitlines()
        if line.startswith("tap-event-exports: mytracker: FAILED: ")
    ]
    assert len(failed) == 1, run.stderr[-2000:]
    assert failed[0].endswith(
        "400 Bad Request: Maximum number of simultaneous requests reached. Wait until there is "
        f"space available in the queue. (idRawExport {stray})"
    )
    assert len(mytracker.queue_refused) == 1


@BOTH_WAYS
def test_a_resumed_export_the_vendor_no_longer_knows_is_created_again(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    first = utc_midnight(MYTRACKER_DAYS - 1)
    window = f"{first.isoformat()}/{(first + dt.timedelta(days=1)).isoformat()}"
    state = {"bookmarks": {"mytracker_installs": {"pending_jobs": {window: {"job": "999"}}}}}
    started = time.time()
    run = run_tap(mytracker_config(mytracker), state=state)
    assert_exact_sync(run, mytracker, started=started)
    gone = [r for r in mytracker.requests_to("get.json") if r.arg("idRawExport") == "999"]
    assert len(gone) == 1
    again = [
        r
        for r in mytracker.requests_to("create.json")
        if r.arg("event") == "installs" and r.arg("tsFrom") == str(int(first.timestamp()))
    ]
    assert len(again) == 1


@BOTH_WAYS
def test_parts_expired_before_their_download_bring_a_new_export(mytracker, body_only, caplog):
    """A link that expires between the status check and the download answers 404: asking it
    again cannot help, so the window's export is created again and every row arrives once."""
    mytracker.errors_as_http_200 = body_only
    mytracker.expire_on_download = 1
    started = time.time()
    with caplog.at_level(logging.WARNING, logger="tap_event_exports.jobs"):
        run = run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})
    assert_exact_sync(run, mytracker, started=started)
    assert mytracker.expire_on_download == 0
    windows = {(r.arg("event"), r.arg("tsFrom")) for r in mytracker.requests_to("create.json")}
    assert len(mytracker.requests_to("create.json")) == len(windows) + 1, "one export again"
    status = "code 404" if body_only else "HTTP 404"
    gone = [m for m in caplog.messages if "files gone" in m]
    assert len(gone) == 1
    assert f"{status} Not Found" in gone[0]
    assert "creating it again (1/3)" in gone[0]


@BOTH_WAYS
def test_a_refused_export_fails_at_once_with_the_vendors_words(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    mytracker.export_permission = False
    status = "code 400" if body_only else "HTTP 400"
    with pytest.raises(VendorError) as caught:
        run_tap(mytracker_config(mytracker) | {"max_concurrent_jobs": 1})
    assert re.fullmatch(
        rf"mytracker: mytracker_\w+: create raw export tsFrom=\d+ tsTo=\d+: {status} Bad "
        r"Request: Export permissions required to export raw data from an account",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.status == 400
    assert len(mytracker.requests_to("create.json")) == 1, "not retried"


@BOTH_WAYS
def test_a_server_error_is_retried(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    mytracker.fail_next("500", times=2)
    started = time.time()
    run = run_tap(mytracker_config(mytracker))
    assert_exact_sync(run, mytracker, started=started)
    assert "500" not in mytracker.faults, "both 500s were answered, and retried"


def test_a_full_queue_is_asked_again_no_more_than_the_error_quota_allows(monkeypatch):
    """Each refusal is an error, and the API blocks a user past 60 a minute: the pauses start
    at 5 s whatever poll_interval says (four exports in flight: at most 48 a minute), grow
    by half and stop growing at a minute."""
    monkeypatch.setattr(mytracker_vendor, "QUEUE_PAUSE_FLOOR", 5.0)  # the tests use 0.01
    pauses = mytracker_vendor.QueueWait(first=0.05, limit=3600).pauses()
    first = [next(pauses) for _ in range(10)]
    assert first[:3] == [5.0, 7.5, 11.25]
    assert first[-1] == 60.0
    assert 4 * 60 / first[0] <= 60
    slow = mytracker_vendor.QueueWait(first=90, limit=3600).pauses()
    assert [next(slow) for _ in range(2)] == [90, 90]
