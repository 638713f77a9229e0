"""Keen IO end to end in both API modes, against the fake Keen over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tap_event_exports.engine.download import Download
from tap_event_exports.engine.errors import RetriesExhaustedError, VendorError
from tap_event_exports.engine.jobs import JobFailedError
from tap_event_exports.sandbox.keen import matches
from tap_event_exports.vendors import keen as keen_vendor
from tests.conftest import KEEN_MINUTE_SECONDS, keen_config
from tests.harness import run_tap, run_until_sigterm

UTC = dt.timezone.utc


def expected_record(event: dict) -> dict:
    """Flat, dotted, and typed as the contract says (keen times as RFC 3339 UTC, rest text)."""
    out: dict = {}

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(inner, f"{path}.{key}" if path else key)
            return
        if path in {"keen.timestamp", "keen.created_at"}:
            out[path] = (
                dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).isoformat()
            )
        elif value is None or value == []:
            out[path] = None if value is None else "[]"
        elif isinstance(value, bool):
            out[path] = "true" if value else "false"
        elif isinstance(value, list):
            out[path] = json.dumps(value, separators=(",", ":"))
        else:
            out[path] = str(value)

    walk(event, "")
    return out


def canonical(records):
    return Counter(
        json.dumps({k: v for k, v in r.items() if v is not None}, sort_keys=True) for r in records
    )


def bound_of(run, stream):
    return dt.datetime.fromisoformat(run.last_state["bookmarks"][stream]["replication_key_value"])


def expected_for(fake, collection, bound, filters=()):
    events = fake.select(collection, list(filters), None)
    keep = [
        e
        for e in events
        if dt.datetime.fromisoformat(e["keen"]["timestamp"].replace("Z", "+00:00")) < bound
    ]
    return [expected_record(e) for e in keep]


@pytest.mark.parametrize("api", ["extract", "query"])
def test_exact_dataset_in_both_modes(keen, api):
    run = run_tap(keen_config(keen, api=api))
    for collection, stream in (
        ("Purchases v2", "keen_purchases_v2"),
        ("pageviews", "keen_pageviews"),
    ):
        records = run.records(stream)
        assert canonical(records) == canonical(
            expected_for(keen, collection, bound_of(run, stream))
        )
        assert len({r["keen.id"] for r in records}) == len(records)
    schema = run.schemas("keen_pageviews")[0]
    assert schema["key_properties"] == ["keen.id"]
    assert schema["schema"]["properties"]["keen.timestamp"]["format"] == "date-time"
    assert keen.key_leaks == [], "the results_url must never receive the API key"


def test_both_modes_give_the_same_records(keen):
    extract = run_tap(keen_config(keen, api="extract"))
    query = run_tap(keen_config(keen, api="query"))
    for stream in ("keen_purchases_v2", "keen_pageviews"):
        bound = min(bound_of(extract, stream), bound_of(query, stream))

        def upto(records, bound=bound):
            return [r for r in records if dt.datetime.fromisoformat(r["keen.timestamp"]) < bound]

        assert canonical(upto(extract.records(stream))) == canonical(upto(query.records(stream)))


def test_windows_are_absolute_utc_timeframes_with_filters_passed_through(keen):
    filters = [{"property_name": "item.price", "operator": "gte", "property_value": 10}]
    run = run_tap(keen_config(keen, api="query", filters=filters))
    frames = keen.timeframes
    assert frames[0]["start"].endswith("+00:00")
    starts = sorted({f["start"] for f in frames})
    assert all(dt.datetime.fromisoformat(s).time() == dt.time(0) for s in starts)
    query = next(r for r in keen.log if r.path.endswith("/queries/extraction"))
    assert json.loads(query.arg("filters")) == filters
    assert query.headers["authorization"] == keen.api_key
    records = run.records("keen_pageviews")
    assert records
    assert all(float(r["item.price"]) >= 10 for r in records)


@pytest.mark.parametrize(
    ("rule", "passes", "fails"),
    [
        ({"operator": "eq", "property_value": 3}, {"a": 3}, {"a": 4}),
        ({"operator": "ne", "property_value": 3}, {"a": 4}, {"a": 3}),
        ({"operator": "lt", "property_value": 3}, {"a": 2}, {"a": 3}),
        ({"operator": "lte", "property_value": 3}, {"a": 3}, {"a": 4}),
        ({"operator": "gt", "property_value": 3}, {"a": 4}, {"a": 3}),
        ({"operator": "gte", "property_value": 3}, {"a": 3}, {"a": 2}),
        ({"operator": "exists", "property_value": True}, {"a": None}, {"b": 1}),
        ({"operator": "exists", "property_value": False}, {"b": 1}, {"a": 1}),
        ({"operator": "in", "property_value": [1, 2]}, {"a": 2}, {"a": 3}),
        ({"operator": "contains", "property_value": "ea"}, {"a": "tea"}, {"a": "coffee"}),
        ({"operator": "not_contains", "property_value": "ea"}, {"a": "coffee"}, {"a": "tea"}),
        (
            {
                "operator": "within",
                "property_value": {"coordinates": [0, 51.5], "max_distance_miles": 10},
            },
            {"a": {"coordinates": [0.01, 51.51]}},
            {"a": {"coordinates": [2.35, 48.85]}},
        ),
    ],
)
def test_fake_applies_keen_filter_operators(rule, passes, fails):
    rule = {"property_name": "a", **rule}
    assert matches(passes, rule)
    assert not matches(fails, rule)


def test_nested_filter_paths(keen):
    filters = [
        {"property_name": "user.email", "operator": "eq", "property_value": "user7@example.com"}
    ]
    run = run_tap(keen_config(keen, api="extract", filters=filters))
    records = run.records("keen_purchases_v2")
    assert records
    assert {r["user.email"] for r in records} == {"user7@example.com"}


def test_query_split_on_cap_loses_nothing(keen, monkeypatch):
    keen.result_cap = 20
    monkeypatch.setattr(keen_vendor, "QUERY_RESULT_CAP", 20)
    run = run_tap(keen_config(keen, api="query"))
    for collection, stream in (
        ("Purchases v2", "keen_purchases_v2"),
        ("pageviews", "keen_pageviews"),
    ):
        assert canonical(run.records(stream)) == canonical(
            expected_for(keen, collection, bound_of(run, stream))
        )
    # A capped window is queried again in parts: some timeframe lies strictly inside another.
    # (Comparing span lengths with 12 hours held only before noon UTC, while today's window,
    # cut at the run's start, was the shortest.)
    frames = {
        (dt.datetime.fromisoformat(f["start"]), dt.datetime.fromisoformat(f["end"]))
        for f in keen.timeframes
    }
    assert any(
        outer != inner and outer[0] <= inner[0] and inner[1] <= outer[1]
        for outer in frames
        for inner in frames
    ), "capped windows were split and queried again"


def test_resume_pending_extraction_after_stop(keen, tmp_path):
    keen.job_seconds = 3.0
    config = keen_config(keen, collections=["pageviews"]) | {
        "max_concurrent_jobs": 1,
        "poll_interval": 0.2,
    }
    state = run_until_sigterm(config, tmp_path, lambda: bool(keen.extractions))
    pending = state["bookmarks"]["keen_pageviews"]["pending_jobs"]
    assert len(pending) == 1
    job = next(iter(pending.values()))["job"]
    created = len(keen.extractions)
    keen.job_seconds = 0.05
    seen = len(keen.log)
    run = run_tap(config, state=state)
    polled = [r for r in keen.log[seen:] if r.path.endswith(f"/_extract/{job}")]
    assert polled, "the pending extraction was polled, not created again"
    posts = [r for r in keen.log[seen:] if r.method == "POST"]
    window_start = next(iter(pending)).split("/")[0]
    assert all(r.json()["timeframe"]["start"] != window_start for r in posts)
    assert len(keen.extractions) == created + len(posts)
    assert run.last_state["bookmarks"]["keen_pageviews"]["pending_jobs"] == {}
    assert canonical(run.records("keen_pageviews")) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )


def test_errors_carry_keens_message(keen):
    config = keen_config(keen)
    config["keen"]["api_key"] = "tok-SECRET-123"
    with pytest.raises(VendorError, match="HTTP 401 InvalidApiKeyError: The API key is not valid"):
        run_tap(config)


@pytest.mark.parametrize("api", ["extract", "query"])
def test_429_and_500_and_cut_download_recover(keen, api):
    keen.retry_after = "1"
    keen.fail_next("429")
    keen.fail_next("500")
    keen.fail_next("cut")
    started = time.monotonic()
    run = run_tap(keen_config(keen, api=api) | {"max_concurrent_jobs": 1})
    assert time.monotonic() - started >= 1.0, "Retry-After was honoured"
    records = run.records("keen_pageviews")
    assert len(records) == len({r["keen.id"] for r in records})
    assert canonical(records) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )


def test_extraction_that_never_completes_names_the_job(keen):
    keen.job_seconds = 60
    config = keen_config(keen, collections=["pageviews"]) | {
        "max_poll_time": 1,
        "max_concurrent_jobs": 1,
    }
    with pytest.raises(
        JobFailedError,
        match=r"keen: keen_pageviews: window timeframe=.*: job [0-9a-f]{24} still not finished",
    ):
        run_tap(config)


def test_extraction_error_status_fails_clearly(keen):
    keen.fail_next("error")
    config = keen_config(keen, collections=["pageviews"]) | {"max_concurrent_jobs": 1}
    with pytest.raises(JobFailedError, match=r"job [0-9a-f]{24} failed: extraction failed"):
        run_tap(config)


def test_events_without_keen_id_get_the_synthetic_key(keen):
    for event in keen.collections["pageviews"]:
        del event["keen"]["id"]
    run = run_tap(keen_config(keen, collections=["pageviews"]))
    schemas = run.schemas("keen_pageviews")
    assert schemas[-1]["key_properties"] == ["_record_id"]
    keys = [r["_record_id"] for r in run.records("keen_pageviews")]
    assert keys
    assert len(keys) == len(set(keys))


# --- rate limit and query time limit ---------------------------------------------------------


def test_rest_of_minute_counts_to_the_next_minute_plus_the_margin(monkeypatch):
    monkeypatch.setattr(keen_vendor, "RATE_LIMIT_PERIOD_SECONDS", 60.0)  # Keen's, not the fake's
    margin = keen_vendor.RATE_LIMIT_MARGIN_SECONDS
    assert margin > 0
    assert keen_vendor.rest_of_minute(1_700_000_015.0) == pytest.approx(25.0 + margin)
    assert keen_vendor.rest_of_minute(1_700_000_039.75) == pytest.approx(0.25 + margin)
    assert keen_vendor.rest_of_minute(1_700_000_040.0) == pytest.approx(60.0 + margin)


def keen_429(fake) -> requests.Response:
    fake.fail_next("429")
    url = f"{fake.base_url}/3.0/projects/{fake.project_id}/queries/extraction"
    response = requests.get(
        url,
        params={"event_collection": "pageviews"},
        headers={"Authorization": fake.api_key},
        timeout=10,
    )
    assert response.status_code == 429
    return response


def test_a_429_waits_for_retry_after_or_else_for_the_next_minute(keen, monkeypatch):
    monkeypatch.setattr(keen_vendor, "RATE_LIMIT_PERIOD_SECONDS", 60.0)  # Keen's, not the fake's
    dialect = keen_vendor.KeenDialect(keen.api_key)
    before = time.time()
    plain = keen_429(keen)
    assert "Retry-After" not in plain.headers, "Keen documents no wait header"
    wait = dialect.wait_hint(plain) - keen_vendor.RATE_LIMIT_MARGIN_SECONDS
    after = time.time()
    assert 0 < wait <= 60
    # waited from some instant in [before, after] to a minute boundary: from ``before``, the
    # end of the wait lies at most ``after - before`` short of one
    assert -(before + wait) % 60 <= after - before + 1e-3
    keen.retry_after = "7"
    assert dialect.wait_hint(keen_429(keen)) == 7.0


@pytest.mark.parametrize("api", ["extract", "query"])
def test_429_without_retry_after_waits_out_the_minute(keen, monkeypatch, api):
    """Keen blocks the rest of the minute: the retry comes after it, and the sync completes."""
    minute = KEEN_MINUTE_SECONDS  # the fake's and the tap's (conftest)
    keen.fail_next("429")
    time.sleep(minute - time.time() % minute)  # the 429 comes early in a minute: most is blocked
    started = time.monotonic()
    config = keen_config(keen, api=api, collections=["pageviews"])
    run = run_tap(config | {"max_concurrent_jobs": 1})
    assert keen.refused == 1, "no request was sent while the minute was blocked"
    assert time.monotonic() - started < minute + keen_vendor.RATE_LIMIT_MARGIN_SECONDS + 5
    assert canonical(run.records("keen_pageviews")) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )


def frame_of(frame: dict) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(frame["start"]), dt.datetime.fromisoformat(frame["end"])


def query_state(fake) -> dict:
    """The state a query-mode run of ``pageviews`` ends with: its last window's end."""
    end = max(frame_of(f)[1] for f in fake.timeframes)
    bookmark = {"replication_key": "keen.timestamp", "replication_key_value": end.isoformat()}
    return {"bookmarks": {"keen_pageviews": bookmark}}


def assert_split_at_once(fake) -> None:
    """Every window the fake timed out was asked once, then again in parts (never retried)."""
    assert fake.timed_out, "some windows were too large for the query time limit"
    asked = Counter(frame_of(f) for f in fake.timeframes)
    for frame in map(frame_of, fake.timed_out):
        assert asked[frame] == 1, f"{frame} was split at its first time-out, not retried"
        inside = [f for f in asked if frame[0] <= f[0] and f[1] <= frame[1] and f != frame]
        assert inside, f"{frame} was queried again in parts"


@pytest.mark.parametrize("body", ["keen", "message", "text", "empty"])
def test_any_504_to_a_query_splits_the_window_at_once(keen, caplog, body):
    """Keen's own body, a bare message, a plain-text page or no body: a 504 is the limit."""
    keen.timeout_over = 12
    keen.timeout_body = body
    config = keen_config(keen, api="query", collections=["pageviews"])
    run = run_tap(config | {"max_concurrent_jobs": 1})
    records = run.records("keen_pageviews")
    assert len(records) == len({r["keen.id"] for r in records})
    assert canonical(records) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )
    assert run.last_state == query_state(keen)
    assert_split_at_once(keen)
    assert "the query time limit (HTTP 504); splitting in two" in caplog.text
    assert "attempt 1/" not in caplog.text, "nothing was retried"


def test_a_query_unanswered_at_the_read_timeout_splits_the_window(keen, caplog):
    """``request_timeout`` ends the wait before Keen's 504 comes: split at once, as for it."""
    keen.timeout_over = 20  # the whole days: a few time-outs, a second each
    keen.timeout_seconds = 2.5
    config = keen_config(keen, api="query", collections=["pageviews"])
    run = run_tap(config | {"max_concurrent_jobs": 1, "request_timeout": 1})
    records = run.records("keen_pageviews")
    assert len(records) == len({r["keen.id"] for r in records})
    assert canonical(records) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )
    assert run.last_state == query_state(keen)
    assert_split_at_once(keen)
    assert "no answer within request_timeout (1s); splitting in two" in caplog.text
    assert "attempt 1/" not in caplog.text, "nothing was retried"


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("keen", "HTTP 504 QueryTimeoutError: The query did not finish in 300 seconds"),
        ("empty", "HTTP 504 Gateway Timeout"),
    ],
)
def test_query_timeout_within_one_second_fails_naming_the_window(keen, body, answer):
    keen.timeout_over = 0
    keen.timeout_body = body
    config = keen_config(keen, api="query", collections=["pageviews"])
    with pytest.raises(VendorError) as caught:
        run_tap(config | {"max_concurrent_jobs": 1})
    message = str(caught.value)
    found = re.fullmatch(
        r"keen: keen_pageviews: window timeframe=(\S+)\.\.(\S+): "
        + re.escape(answer)
        + r" within one second; add filters to narrow it",
        message,
    )
    assert found, message
    start, end = (dt.datetime.fromisoformat(g) for g in found.groups())
    assert end - start == dt.timedelta(seconds=1)
    assert (start, end) == frame_of(keen.timed_out[-1])
    assert max(Counter(frame_of(f) for f in keen.timeframes).values()) == 1


# --- 2.0 colon paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dotted"),
    [
        ("keen:timestamp", "keen.timestamp"),
        ("keen:id", "keen.id"),
        ("body:user:email", "user.email"),
        ("body:amount", "amount"),
        ("body", "body"),
        ("user.email", "user.email"),
        ("header:timestamp", "header.timestamp"),
    ],
)
def test_dotted_name_of_a_2_0_colon_path(name, dotted):
    assert keen_vendor.dotted_name(name) == dotted


def downloaded(tmp_path, data: bytes) -> Download:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    return Download(str(path), len(data), len(data), 0.5)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_a_2_0_header_is_renamed_and_the_rows_kept_byte_for_byte(tmp_path, newline):
    header = b'keen:timestamp,"body:a,b","body:line\nbreak",body:user:email'
    rows = b'2026-01-01T00:00:00Z,"x:y",1,"a@b"' + newline + b"2026-01-02T00:00:00Z,,2," + newline
    before = downloaded(tmp_path, header + newline + rows)
    after = keen_vendor.dotted_header(before)
    assert after.path != before.path
    assert not Path(before.path).exists(), "the file with the old header is gone"
    data = Path(after.path).read_bytes()
    assert data == b'keen.timestamp,"a,b","line\nbreak",user.email' + newline + rows
    assert (after.bytes_received, after.bytes_written) == (before.bytes_received, len(data))
    after.discard()


@pytest.mark.parametrize(
    ("data", "renamed"),
    [
        (b"keen:timestamp,body:user:email", b"keen.timestamp,user.email"),  # a header alone
        (b"\xef\xbb\xbfkeen:id,body:a\n1,2\n", b"\xef\xbb\xbfkeen.id,a\n1,2\n"),  # a BOM kept
        (b"\xef\xbb\xbfbody:user:email,keen:id\r\n", b"\xef\xbb\xbfuser.email,keen.id\r\n"),
        (b'\xef\xbb\xbf"body:a,b",keen:id\n', b'\xef\xbb\xbf"a,b",keen.id\n'),
        (b"keen:id,body:a\r1,2\r", b"keen:id,body:a\r1,2\r"),  # CR alone: the reader says
        (b"", b""),
        (b"keen:id,body:\xff\n1,2\n", b"keen:id,body:\xff\n1,2\n"),  # not UTF-8: the reader says
        # 2.0's header holds the event's time: keen.timestamp, unless keen:timestamp is there
        (b"header:timestamp,body:a\nt,1\n", b"keen.timestamp,a\nt,1\n"),
        (
            b"keen:timestamp,header:timestamp,body:a\nt,u,1\n",
            b"keen.timestamp,header.timestamp,a\nt,u,1\n",
        ),
    ],
)
def test_a_2_0_header_alone_with_a_bom_empty_or_unreadable(tmp_path, data, renamed):
    after = keen_vendor.dotted_header(downloaded(tmp_path, data))
    assert Path(after.path).read_bytes() == renamed
    after.discard()


@pytest.mark.parametrize(
    ("head", "end"),
    [
        (b'body:a"b,keen:id\n' + b"1,2\n" * 1000, None),  # a quote never closed
        (b'"body:a\nb",keen:id\n1,2\n', 19),  # a line break inside a quoted name
        (b'"x""y",keen:id\n"1\n2",3\n', 15),  # doubled quotes
        (b"keen:id", None),
    ],
)
def test_where_a_header_line_ends(head, end):
    assert keen_vendor.header_end(head, whole=False) == end


def test_any_504_to_a_query_is_final_and_only_to_a_query():
    """Whatever its body, a query's 504 is the time limit; elsewhere a 504 is retried."""
    dialect = keen_vendor.KeenDialect("key")
    query = "https://api.keen.io/3.0/projects/p/queries/extraction?event_collection=c"
    extract = "https://api.keen.io/2.0/projects/p/c/_extract"

    def answer(status: int, body: bytes, kind: str, url: str = query) -> requests.Response:
        response = requests.Response()
        response.status_code, response.url, response._content = status, url, body
        response.headers["Content-Type"] = kind
        return response

    keen_body = b'{"message": "The query did not finish", "error_code": "QueryTimeoutError"}'
    assert dialect.final(answer(504, keen_body, "application/json"), "")
    assert dialect.final(answer(504, b'{"message": "timed out"}', "application/json"), "")
    assert dialect.final(answer(504, b"<html>Gateway Time-out</html>", "text/html"), "")
    assert dialect.final(answer(504, b"", ""), "")
    assert not dialect.final(answer(504, keen_body, "application/json", extract), "")
    assert not dialect.final(answer(500, keen_body, "application/json"), "")


def test_a_dotted_header_or_one_whose_names_would_clash_stays_as_it_came(tmp_path, caplog):
    plain = downloaded(tmp_path, b"keen.timestamp,user.email\r\nt,a:b\r\n")
    assert keen_vendor.dotted_header(plain) is plain
    clash = downloaded(tmp_path, b"body:x,x\r\n1,2\r\n")
    assert keen_vendor.dotted_header(clash) is clash
    assert Path(clash.path).read_bytes() == b"body:x,x\r\n1,2\r\n"
    assert "keep their names" in caplog.text


def test_colon_paths_of_a_2_0_file_read_as_the_dotted_columns(keen):
    """Keen 2.0 addresses properties by colon paths (``keen:timestamp``, ``body:user:email``):
    the file's columns get the dotted names the 3.0 API gives, so both modes agree."""
    keen.colon_names = True
    extract = run_tap(keen_config(keen, api="extract"))
    keen.colon_names = False
    query = run_tap(keen_config(keen, api="query"))
    for stream in ("keen_purchases_v2", "keen_pageviews"):
        bound = min(bound_of(extract, stream), bound_of(query, stream))
        got = [
            r
            for r in extract.records(stream)
            if dt.datetime.fromisoformat(r["keen.timestamp"]) < bound
        ]
        want = [
            r
            for r in query.records(stream)
            if dt.datetime.fromisoformat(r["keen.timestamp"]) < bound
        ]
        assert got
        assert canonical(got) == canonical(want)
        names = set(extract.schemas(stream)[-1]["schema"]["properties"])
        assert not any(":" in name for name in names), names


# --- filter property names: 2.0 colon paths, 3.0 dotted paths ----------------------------------


@pytest.mark.parametrize(
    ("name", "colon", "dotted"),
    [
        ("user.email", "body:user:email", "user.email"),
        ("amount", "body:amount", "amount"),
        ("keen.timestamp", "keen:timestamp", "keen.timestamp"),
        ("header.timestamp", "header:timestamp", "header.timestamp"),
        ("header.id", "body:header:id", "header.id"),  # a user property named header
        ("body:user:email", "body:user:email", "user.email"),
        ("body:amount", "body:amount", "amount"),
        ("keen:timestamp", "keen:timestamp", "keen.timestamp"),
        ("header:timestamp", "header:timestamp", "keen.timestamp"),
        ("keen", "body:keen", "keen"),
        ("url:path", "url:path", "url:path"),
    ],
)
def test_a_filter_name_in_each_apis_spelling(name, colon, dotted):
    assert keen_vendor.colon_name(name) == colon
    assert keen_vendor.query_name(name) == dotted


AMOUNTS = (1.25, 3.5, 3.75, 10)
SPELLINGS = {
    "dotted": ("amount", "user.id", "keen.timestamp"),
    "colon": ("body:amount", "body:user:id", "keen:timestamp"),
    "header": ("body:amount", "body:user:id", "header:timestamp"),
}
SENT = {
    "extract": {
        "dotted": ["body:amount", "body:user:id", "keen:timestamp"],
        "colon": ["body:amount", "body:user:id", "keen:timestamp"],
        "header": ["body:amount", "body:user:id", "header:timestamp"],
    },
    "query": {spelling: ["amount", "user.id", "keen.timestamp"] for spelling in SPELLINGS},
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("api", ["extract", "query"])
def test_filter_names_in_either_spelling_select_the_same_rows(keen, api, spelling):
    """The seed's own ``body:amount`` filter, a nested and a Keen property, spelt either way:
    2.0 is sent its ``body:``/``keen:``/``header:`` names, 3.0 dotted paths, and the rows
    are exactly those the filters select."""
    events = keen.collections["pageviews"]
    for number, event in enumerate(events):
        event["amount"] = AMOUNTS[number % len(AMOUNTS)]
    middle = events[len(events) // 2]["keen"]["timestamp"]
    amount, user_id, stamp = SPELLINGS[spelling]
    filters = [
        {"property_name": amount, "operator": "gt", "property_value": 3.50},
        {"property_name": user_id, "operator": "lt", "property_value": 500},
        {"property_name": stamp, "operator": "gte", "property_value": middle},
    ]
    config = keen_config(keen, api=api, collections=["pageviews"], filters=filters)
    run = run_tap(config | {"max_concurrent_jobs": 1})
    bound = bound_of(run, "keen_pageviews")
    wanted = [
        expected_record(e)
        for e in events
        if e["amount"] > 3.5
        and e["user"]["id"] < 500
        and e["keen"]["timestamp"] >= middle
        and dt.datetime.fromisoformat(e["keen"]["timestamp"].replace("Z", "+00:00")) < bound
    ]
    assert wanted
    assert canonical(run.records("keen_pageviews")) == canonical(wanted)
    if api == "extract":
        sent = [r.json()["filters"] for r in keen.log if r.method == "POST"]
        state = {"keen_pageviews": {"pending_jobs": {}}}
    else:
        sent = [json.loads(r.arg("filters")) for r in keen.requests_to("/queries/extraction")]
        state = {"keen_pageviews": {}}
    assert sent
    assert all([f["property_name"] for f in rules] == SENT[api][spelling] for rules in sent)
    state["keen_pageviews"] |= {
        "replication_key": "keen.timestamp",
        "replication_key_value": bound.isoformat(),
    }
    assert run.last_state == {"bookmarks": state}


@pytest.mark.parametrize(
    ("version", "name"),
    [("2.0", "user.email"), ("2.0", "header:id"), ("3.0", "body:user:email")],
)
def test_the_fake_refuses_a_property_name_its_api_does_not_have(keen, version, name):
    rule = [{"property_name": name, "operator": "exists", "property_value": True}]
    auth = {"Authorization": keen.api_key}
    project = f"{keen.base_url}/{version}/projects/{keen.project_id}"
    if version == "2.0":
        response = requests.post(
            f"{project}/pageviews/_extract", json={"filters": rule}, headers=auth, timeout=10
        )
    else:
        params = {"event_collection": "pageviews", "filters": json.dumps(rule)}
        response = requests.get(
            f"{project}/queries/extraction", params=params, headers=auth, timeout=10
        )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "error_code"}
    assert body["error_code"] == "InvalidFilterError"
    assert f"{name!r} is not an API {version} property name" in body["message"]


def test_a_2_0_name_the_api_does_not_have_is_keens_own_400(keen):
    """A name with a colon is sent to 2.0 as written: Keen's refusal names it."""
    filters = [{"property_name": "user:email", "operator": "exists", "property_value": True}]
    config = keen_config(keen, collections=["pageviews"], filters=filters)
    with pytest.raises(
        VendorError,
        match=r"^keen: keen_pageviews: create extraction: HTTP 400 InvalidFilterError: "
        r"'user:email' is not an API 2.0 property name",
    ):
        run_tap(config)


# --- status answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ("status-text", r"\(text/plain\): 'Service busy'"),
        ("status-array", r"\(application/json\): '\[\{\"_id\": "),
    ],
)
def test_a_status_answer_that_is_not_a_json_object_fails_in_one_line(keen, fault, shown):
    """Not read as "still running" (polled until max_poll_time): retried, then one line."""
    keen.fail_next(fault, times=10)
    config = keen_config(keen, collections=["pageviews"]) | {"max_concurrent_jobs": 1}
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError) as caught:
        run_tap(config)
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(
        r"keen: keen_pageviews: extraction [0-9a-f]{24}: gave up after 4 attempts "
        r"\(max_retries\); last error: the status answer is not a JSON object " + shown,
        message,
    ), message
    assert time.monotonic() - started < 10
    assert list(keen.faults) == [fault] * 6, "four status answers were read, no more"


def test_a_stray_status_answer_is_retried_and_an_unknown_word_polled_again(keen):
    keen.fail_next("status-text")
    keen.fail_next("status-array")
    keen.fail_next("status-unknown", times=3)
    config = keen_config(keen, collections=["pageviews"]) | {"max_concurrent_jobs": 1}
    run = run_tap(config)
    assert not keen.faults, "every stray answer was met"
    records = run.records("keen_pageviews")
    assert canonical(records) == canonical(
        expected_for(keen, "pageviews", bound_of(run, "keen_pageviews"))
    )
    bookmark = {
        "pending_jobs": {},
        "replication_key": "keen.timestamp",
        "replication_key_value": bound_of(run, "keen_pageviews").isoformat(),
    }
    assert run.last_state == {"bookmarks": {"keen_pageviews": bookmark}}
