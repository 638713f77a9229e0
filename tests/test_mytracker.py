"""myTracker end to end on the export job engine, against the fake myTracker over real HTTP."""

from __future__ import annotations

import datetime as dt
import gzip
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
from tap_event_exports.engine.lists import to_array
from tap_event_exports.sandbox.mytracker import (
    SPECIAL_ITEMS,
    ListCell,
    MyTrackerFake,
    escape_list,
    write_list,
)
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
from tests.properties import escaped_items, quoted_items

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
    # ISO 3166 numeric codes are three digits with leading zeros ("040"): strings
    assert selector_type("idCountryISONumeric") == "string"
    assert selector_type("idRegionISONumeric") == "string"
    assert selector_type("idCountryISOAlpha2") == "string"
    assert selector_type("idCountry") == "integer"


def expected(rows, selectors, bound, *, escaped=True):
    """The records of ``rows``. A list cell's items come back exactly from the documented
    escapes; from the older unescaped style as the documents read that text (a backslash in
    an item may then read as an escape)."""
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
            elif kind == "array" and isinstance(text, ListCell):  # the escapes keep items exact
                record[name] = text.items if escaped else quoted_items(write_list(text.items))
            elif kind == "array":  # a cell given as text
                record[name] = quoted_items(text)
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


# --- list values as the documents write them ------------------------------------------------------

LISTS = ("params.name", "params.value")
DOCUMENTED_TEXT = (
    "['param1','param2\\n with line break','param3 with special characters\\'\\\\\"\",' ]"
)
"""The selector dictionary's example of a list cell, as it appears in the CSV file's text."""
DOCUMENTED = DOCUMENTED_TEXT.replace('""', '"')
"""The cell's value: ``""`` is CSV's doubled quote."""
DOCUMENTED_ITEMS = ["param1", "param2\n with line break", "param3 with special characters'\\\","]


@pytest.mark.parametrize(
    ("value", "items"),
    [
        (DOCUMENTED, DOCUMENTED_ITEMS),
        ("['a\\nb','c\nd']", ["a\nb", "c\nd"]),  # the \n escape, and a real line break
        ("['a\\\\nb']", ["a\\nb"]),  # an escaped backslash, then n
        ("['it\\'s','C:\\\\new\\\\table']", ["it's", "C:\\new\\table"]),
        ("['\\t\\r\\b\\f\\0\\a\\v']", ["\t\r\b\f\0\a\v"]),
        ("['\\x41\\xd0\\x9f\\xC3\\xA9']", ["AПé"]),  # bytes of UTF-8 text
        ("['\\xff','\\x4']", ["\\xff", "\\x4"]),  # not UTF-8; not an \xHH escape
        ("['\\w\\d\\é']", ["\\w\\d\\é"]),  # unknown escapes keep their backslash
        ('["say \\"hi\\"", \'x\' ,]', ['say "hi"', "x"]),  # double quotes, spaces, a last comma
        ("['a\\', 'b']", ["a\\", "b"]),  # not an escaped list: read as written, as before
        ("[]", []),
    ],
)
def test_list_values_read_clickhouse_escapes(value, items):
    assert to_array(value, "quoted") == items
    assert quoted_items(value) == items, "the documents' reading agrees"


def test_a_list_no_writer_escaped_reads_as_before():
    assert to_array("['it's', 'a\\b']", "quoted") == ["it's", "a\\b"]


def test_the_fakes_escaper_writes_lists_as_the_documents_show_them():
    assert escape_list(["param1", "param2\n with line break"]) == (
        "['param1','param2\\n with line break']"
    )
    assert escape_list(["it's", "C:\\new", 'say "hi"', "\x07\x00\r\t"]) == (
        "['it\\'s','C:\\\\new','say \"hi\"','\x07\\0\\r\\t']"
    )
    assert escape_list([]) == "[]"
    items = [*SPECIAL_ITEMS, "both ' and \"", "\\x41"]
    assert escaped_items(escape_list(items)) == items
    cell = ListCell(items)  # what generated rows hold: the documented text, and its items
    assert cell == escape_list(items)
    assert cell.items == items


def test_the_documented_list_example_in_a_csv_cell_over_http():
    """The documents' example cell, served in a gzip part, arrives as its three items; a list
    the fake writes with ClickHouse's escapes arrives as its items; ISO numeric codes keep
    their zeros."""
    start = utc_midnight(1)
    value_items = ["a\nb", "it's", "C:\\new", 'say "hi"', "\x07\x00"]
    row = {
        "tsEvent": str(int(start.timestamp()) + 3600),
        "idCountryISONumeric": "040",
        "params.name": DOCUMENTED,
        "params.value": value_items,
    }
    selectors = ["tsEvent", "idCountryISONumeric", "params.name", "params.value"]
    with MyTrackerFake({"customEvents": [row]}, job_seconds=0.05) as fake:
        config = mytracker_config(fake, exports=[{"event": "customEvents", "selectors": selectors}])
        config |= {"start_date": start.isoformat(), "end_date": utc_midnight(0).isoformat()}
        run = run_tap(config)
        (export,) = fake.exports.values()
        text = gzip.decompress(export.parts[0]).decode()
    assert text == (
        "tsEvent,idCountryISONumeric,params.name,params.value\n"
        f'{row["tsEvent"]},040,"{DOCUMENTED_TEXT}",'
        "\"['a\\nb','it\\'s','C:\\\\new','say \"\"hi\"\"','\x07\\0']\"\n"
    )
    records = [
        {k: v for k, v in r.items() if k != "_record_id"}
        for r in run.records("mytracker_custom_events")
    ]
    assert records == [
        {
            "tsEvent": (start + dt.timedelta(hours=1)).isoformat(),
            "idCountryISONumeric": "040",
            "params.name": DOCUMENTED_ITEMS,
            "params.value": value_items,
        }
    ]
    schema = run.schemas("mytracker_custom_events")[0]["schema"]["properties"]
    assert "string" in schema["idCountryISONumeric"]["type"]
    assert "integer" not in schema["idCountryISONumeric"]["type"]


def test_lists_in_the_older_unescaped_style_still_read(mytracker):
    """Items as written (real line breaks, ``"it's"`` in double quotes) read as before; an item
    with a backslash reads as the documents' escapes say."""
    mytracker.escaped_lists = False
    run = run_tap(mytracker_config(mytracker))
    bound = dt.datetime.fromisoformat(
        run.last_state["bookmarks"]["mytracker_custom_events"]["replication_key_value"]
    )
    custom = run.records("mytracker_custom_events")
    assert canonical(custom) == canonical(
        expected(custom_rows(mytracker), CUSTOM_SELECTORS, bound, escaped=False)
    )
    values = [item for r in custom for name in LISTS for item in r[name] or []]
    assert {"it's", 'say "hi"', "param with\n line break", "crlf\r\nend"} <= set(values)
    assert "C:\new\table" in values, "written unescaped, the backslashes read as escapes"
    cells = [gzip.decompress(part).decode() for e in mytracker.exports.values() for part in e.parts]
    assert any('""it\'s""' in cell for cell in cells), "the older style: in double quotes"


# --- flags -------------------------------------------------------------------------------------


def test_flag_filters_go_as_1_and_0(mytracker):
    """``eventNameInvert`` is "0 — off (by default) 1 — on", ``isVerified`` "For example: 1"."""
    config = mytracker_config(mytracker)
    config["mytracker"]["exports"][0]["filters"] = {"isVerified": False}
    config["mytracker"]["exports"][1]["filters"]["eventNameInvert"] = True
    run = run_tap(config)
    creates = mytracker.requests_to("create.json")
    assert {r.arg("eventNameInvert") for r in creates if r.arg("event") == "customEvents"} == {"1"}
    assert {r.arg("isVerified") for r in creates if r.arg("event") == "installs"} == {"0"}
    bound = dt.datetime.fromisoformat(
        run.last_state["bookmarks"]["mytracker_custom_events"]["replication_key_value"]
    )
    inverted = [
        r
        for r in mytracker.rows["customEvents"]
        if r["eventName"] not in {"level_up", "tutorial"} and r["idApp"] in {"1", "454"}
    ]
    assert inverted
    assert canonical(run.records("mytracker_custom_events")) == canonical(
        expected(inverted, CUSTOM_SELECTORS, bound)
    )


@BOTH_WAYS
def test_the_fake_refuses_a_flag_other_than_0_or_1(mytracker, body_only):
    mytracker.errors_as_http_200 = body_only
    url = (
        f"{mytracker.base_url}/api/raw/v1/export/create.json?event=customEvents"
        "&selectors=tsEvent&tsFrom=0&tsTo=86399&eventNameInvert=True"
    )
    auth = sign("POST", url, None, mytracker.user_id, mytracker.secret)
    answer = requests.post(url, headers={"Authorization": auth}, timeout=10)
    assert answer.status_code == (200 if body_only else 400)
    assert answer.json() == {
        "code": 400,
        "message": "Bad Request",
        "data": {"error": {"detail": "Argument 'eventNameInvert' is invalid"}},
    }
    assert mytracker.exports == {}


def test_a_flag_the_api_refuses_fails_with_its_words(mytracker):
    config = mytracker_config(mytracker)
    config["mytracker"]["exports"][1]["filters"]["eventNameInvert"] = "yes"
    with pytest.raises(VendorError, match=r"HTTP 400 Bad Request: Argument 'eventNameInvert' is"):
        run_tap(config | {"max_concurrent_jobs": 1})


# --- status answers: many parts, relative links -------------------------------------------------


def wide_quotas(monkeypatch) -> dict:
    """Client pacing and the fake's quotas far above what a test's hundreds of requests need."""
    monkeypatch.setattr(mytracker_vendor, "RATE_LIMITS", ((100_000, 1.0),))
    return {"per_second": 100_000, "per_minute": 10**6, "per_hour": 10**7}


def one_day(fake, selectors=("tsEvent", "idApp")) -> dict:
    """Yesterday's installs, one export."""
    config = mytracker_config(fake, exports=[{"event": "installs", "selectors": list(selectors)}])
    return config | {
        "start_date": utc_midnight(1).isoformat(),
        "end_date": utc_midnight(0).isoformat(),
    }


def status_answer(fake, export_id: str) -> requests.Response:
    url = f"{fake.base_url}/api/raw/v1/export/get.json?idRawExport={export_id}"
    auth = sign("GET", url, None, fake.user_id, fake.secret)
    return requests.get(url, headers={"Authorization": auth}, timeout=10)


def test_an_export_of_a_thousand_parts_syncs_every_row(monkeypatch):
    """A status answer listing 1000 part links is far beyond 64 KiB: it is read whole."""
    start = int(utc_midnight(1).timestamp())
    rows = [{"tsEvent": str(start + 80 * n), "idApp": str(n)} for n in range(1000)]
    quotas = wide_quotas(monkeypatch)
    with MyTrackerFake({"installs": rows}, job_seconds=0.05, part_rows=1, **quotas) as fake:
        run = run_tap(one_day(fake))
        (export_id,) = fake.exports
        answer = status_answer(fake, export_id)
        downloads = fake.requests_to("/storage/download/raw/")
    assert len(answer.content) > 65536
    assert len(answer.json()["data"]["files"]) == 1000
    assert len(downloads) == 1000
    records = run.records("mytracker_installs")
    assert [r["idApp"] for r in records] == list(range(1000)), "every row once, in part order"
    assert run.last_state["bookmarks"]["mytracker_installs"] == {
        "replication_key": "tsEvent",
        "replication_key_value": utc_midnight(0).isoformat(),
        "pending_jobs": {},
    }


def test_a_status_answer_beyond_the_limit_fails_in_one_line(monkeypatch):
    monkeypatch.setattr(mytracker_vendor, "ANSWER_LIMIT", 2000)
    start = int(utc_midnight(1).timestamp())
    rows = [{"tsEvent": str(start + 80 * n), "idApp": str(n)} for n in range(30)]
    with MyTrackerFake({"installs": rows}, job_seconds=0.05, part_rows=1) as fake:
        with pytest.raises(VendorError) as caught:
            run_tap(one_day(fake))
    assert str(caught.value) == (
        "mytracker: mytracker_installs: raw export 1: an answer longer than 2000 bytes (not read)"
    )


def test_relative_part_links_are_resolved_against_the_api(mytracker):
    mytracker.relative_links = True
    mytracker.part_rows = 4
    started = time.time()
    run = run_tap(mytracker_config(mytracker))
    assert_exact_sync(run, mytracker, started=started)
    mytracker.limits = ((10**6, 1.0),)  # this test's own request, not the tap's
    links = [f["link"] for f in status_answer(mytracker, "1").json()["data"]["files"]]
    assert links
    assert all(link.startswith("/storage/download/raw/1.") for link in links)
    downloads = mytracker.requests_to("/storage/download/raw/")
    assert len(downloads) == sum(len(e.parts) for e in mytracker.exports.values())
    assert mytracker.bad_signatures == 0


# --- "Too many lines" below an hour -------------------------------------------------------------


def test_a_dense_hour_is_split_below_an_hour_and_every_row_arrives_once(monkeypatch):
    """tsFrom/tsTo are unix seconds: windows are halved past one hour, down to a minute."""
    day = int(utc_midnight(1).timestamp())
    dense = day + 10 * 3600
    times = [dense + 89 * n for n in range(40)] + [day + 3 * 3600, day + 20 * 3600]
    rows = [{"tsEvent": str(ts), "idApp": str(n)} for n, ts in enumerate(times)]
    quotas = wide_quotas(monkeypatch)
    with MyTrackerFake({"installs": rows}, job_seconds=0.02, row_limit=10, **quotas) as fake:
        run = run_tap(one_day(fake) | {"poll_interval": 0.01})
        creates = fake.requests_to("create.json")
        refused = [e for e in fake.exports.values() if e.outcome == "User error occurred"]
    records = run.records("mytracker_installs")
    assert sorted(r["idApp"] for r in records) == list(range(len(times))), "each row once"
    spans = [int(r.arg("tsTo")) - int(r.arg("tsFrom")) + 1 for r in creates]
    assert refused
    assert any(span < 3600 for span in spans), "the dense hour was split"
    assert min(spans) >= 60
    assert sum(1 for span in spans if span < 3600) >= 4
    assert run.last_state["bookmarks"]["mytracker_installs"] == {
        "replication_key": "tsEvent",
        "replication_key_value": utc_midnight(0).isoformat(),
        "pending_jobs": {},
    }


@pytest.mark.parametrize(
    ("zone", "day_shift"), [("UTC", 0), ("Asia/Tokyo", 1), ("America/Los_Angeles", 0)]
)
def test_dt_event_is_the_events_date_in_the_timezone_sent(zone, day_shift):
    """``dtEvent`` is the event's date in ``timezone`` [providers 3.4]: an event at 20:00 UTC
    is on the next day in Tokyo, the same day in Los Angeles."""
    start = utc_midnight(1)
    moment = start + dt.timedelta(hours=20)
    row = {"tsEvent": str(int(moment.timestamp())), "dtEvent": "unused", "idApp": "1"}
    selectors = ["tsEvent", "dtEvent", "idApp"]
    with MyTrackerFake({"installs": [row]}, job_seconds=0.05) as fake:
        config = mytracker_config(
            fake, exports=[{"event": "installs", "selectors": selectors}], timezone=zone
        )
        config |= {"start_date": start.isoformat(), "end_date": utc_midnight(0).isoformat()}
        run = run_tap(config)
        (create,) = [r for r in fake.log if r.path.endswith("/create.json")]
    assert create.arg("timezone") == zone
    records = [
        {k: v for k, v in r.items() if k != "_record_id"} for r in run.records("mytracker_installs")
    ]
    assert records == [
        {
            "tsEvent": moment.isoformat(),
            "dtEvent": (moment.date() + dt.timedelta(days=day_shift)).isoformat(),
            "idApp": 1,
        }
    ]
