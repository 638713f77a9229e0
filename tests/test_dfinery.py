"""Dfinery end to end, against the fake Dfinery over real HTTP."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from tap_event_exports.engine.errors import RateLimitedError, RetriesExhaustedError, VendorError
from tap_event_exports.sandbox.dfinery import PROFILE_COLUMNS, DfineryFake, generate_events
from tap_event_exports.vendors.dfinery import DfineryDialect
from tests.conftest import DAYS, SEOUL, dfinery_config, seoul_today
from tests.harness import at_once, run_tap

UTC = dt.timezone.utc
KEY = "df_event_detail_log_id"

# The contract's typing of Dfinery's documented columns, written out independently of the tap.
NUMBERS = {
    "df_delivery_charge",
    "df_discount",
    "df_total_purchase_amount",
    "df_total_refund_amount",
    "df_items_df_discount",
    "df_items_df_price",
}
DATETIMES = {"df_event_datetime", "df_server_datetime", "df_correction_datetime"}


def expected_datetime(text: str, tz: ZoneInfo = SEOUL) -> str:
    match = re.fullmatch(r"(\d{4})\.(\d{1,2})\.(\d{1,2}) (\d{1,2}):(\d{2})", text)
    if match:
        y, mo, d, h, mi = (int(g) for g in match.groups())
        local = dt.datetime(y, mo, d, h, mi, tzinfo=tz)
    else:
        local = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=tz)
    return local.astimezone(UTC).isoformat()


def expected_record(row: dict[str, str]) -> dict:
    out: dict = {}
    for column, text in row.items():
        if text in ("", "null"):
            out[column] = None
        elif column in NUMBERS:
            out[column] = Decimal(text)
        elif column == "df_items_df_quantity":
            out[column] = int(text)
        elif column in DATETIMES:
            out[column] = expected_datetime(text)
        else:
            out[column] = text  # custom properties stay strings
    return out


def by_key(records: list[dict]) -> dict[str, dict]:
    return {r[KEY]: r for r in records}


def all_days(fake):
    return fake.expected_events(seoul_today() - dt.timedelta(days=DAYS - 1), seoul_today())


def test_full_sync_returns_exactly_the_dataset_typed(dfinery):
    run = run_tap(dfinery_config(dfinery))
    records = run.records("dfinery_events")
    expected = [expected_record(row) for row in all_days(dfinery)]
    assert len(records) == len(expected) > 100
    assert Counter(r[KEY] for r in records) == Counter(r[KEY] for r in expected)
    assert by_key(records) == by_key(expected)
    # spot checks of the odd corners
    purchases = [r for r in records if r["df_event_name"] == "df_purchase"]
    assert purchases
    assert all(r[KEY].startswith(r["df_event_log_id"] + ":") for r in purchases)
    big = [r for r in records if r["df_total_purchase_amount"] == Decimal("12345678901234567.25")]
    assert big, "a long decimal must keep every digit"
    assert any(r["df_keyword"] == 'say "hi",\nthen go' for r in records)
    assert any(r["df_items_df_item_name"] == "한국 상품 1" for r in records)
    assert {type(r["df_items_df_quantity"]) for r in purchases} == {int}


def test_one_request_per_local_day_with_inclusive_dates(dfinery):
    run_tap(dfinery_config(dfinery))
    days = [seoul_today() - dt.timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    assert sorted(b["from_date"] for b in dfinery.bodies) == [d.isoformat() for d in days]
    assert all(b["from_date"] == b["to_date"] for b in dfinery.bodies)
    assert all(b["events_condition_type"] == "all" for b in dfinery.bodies)


def test_filters_are_sent_as_documented(dfinery):
    config = dfinery_config(
        dfinery,
        events=["df_purchase"],
        events_condition_type="include",
        properties=["df_discount", "df_items_df_price"],
        properties_condition_type="include",
        window="P2D",
    )
    run = run_tap(config)
    # the run starts at start_date (its day) and runs to the grid of two-day steps from 1970
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    first_end = first + dt.timedelta(days=2 - (first - dt.date(1970, 1, 1)).days % 2)
    assert min(dfinery.bodies, key=lambda b: b["from_date"]) == {
        "events": ["df_purchase"],
        "events_condition_type": "include",
        "properties": ["df_discount", "df_items_df_price"],
        "properties_condition_type": "include",
        "from_date": first.isoformat(),
        "to_date": (first_end - dt.timedelta(days=1)).isoformat(),
    }
    records = run.records("dfinery_events")
    assert {r["df_event_name"] for r in records} == {"df_purchase"}
    assert "df_items_df_price" in records[0]
    assert "df_keyword" not in records[0]


def test_schema_types_and_unknown_columns_are_announced(dfinery):
    run = run_tap(dfinery_config(dfinery, column_types={"custom_event_p_boolean": "boolean"}))
    schemas = run.schemas("dfinery_events")
    first, last = schemas[0]["schema"]["properties"], schemas[-1]["schema"]["properties"]
    assert first["df_event_datetime"] == {"type": ["string", "null"], "format": "date-time"}
    assert first["df_total_purchase_amount"]["type"] == ["number", "null"]
    assert "sum" not in first  # a custom column: not known before the export shows it
    assert last["sum"] == {"type": ["string", "null"]}
    assert last["custom_event_p_boolean"]["type"] == ["boolean", "null"]
    assert schemas[0]["key_properties"] == [KEY]
    # the new SCHEMA comes before the first record that uses the new column
    position = run.messages.index(schemas[-1])
    first_record = next(i for i, m in enumerate(run.messages) if m["type"] == "RECORD")
    assert position < first_record
    records = run.records("dfinery_events")
    assert {type(r["custom_event_p_boolean"]) for r in records} == {bool}


def test_column_types_override_lists(dfinery):
    run = run_tap(dfinery_config(dfinery, column_types={"custom_event_p_long_list": "array"}))
    values = {
        tuple(r["custom_event_p_long_list"]) if r["custom_event_p_long_list"] else None
        for r in run.records("dfinery_events")
    }
    assert values == {None, ("1", "2")}


def test_state_after_every_window_and_bookmark_never_past_now(dfinery):
    before = dt.datetime.now(UTC)
    run = run_tap(dfinery_config(dfinery))
    bookmarks = [
        s["bookmarks"]["dfinery_events"].get("replication_key_value")
        for s in run.states()
        if "dfinery_events" in s.get("bookmarks", {})
    ]
    bookmarks = [b for b in bookmarks if b]
    assert len(set(bookmarks)) == DAYS
    assert bookmarks == sorted(bookmarks)
    midnights = [
        dt.datetime.combine(seoul_today() - dt.timedelta(days=n), dt.time(0), tzinfo=SEOUL)
        for n in range(DAYS - 2, -1, -1)
    ]
    assert sorted(set(bookmarks))[:-1] == [m.astimezone(UTC).isoformat() for m in midnights]
    final = dt.datetime.fromisoformat(bookmarks[-1])
    assert before - dt.timedelta(seconds=5) <= final <= dt.datetime.now(UTC)


def test_each_state_covers_every_record_before_it(dfinery):
    run = run_tap(dfinery_config(dfinery))
    seen: set[str] = set()
    for message in run.messages:
        if message["type"] == "RECORD":
            seen.add(message["record"][KEY])
        elif message["type"] == "STATE":
            mark = (
                message["value"]["bookmarks"].get("dfinery_events", {}).get("replication_key_value")
            )
            if not mark:
                continue
            bound = dt.datetime.fromisoformat(mark)
            due = {
                r[KEY]
                for r in all_days(dfinery)
                if dt.datetime.fromisoformat(expected_datetime(r["df_event_datetime"])) < bound
            }
            assert due <= seen


def test_incremental_run_rereads_only_the_lookback(dfinery):
    first = run_tap(dfinery_config(dfinery))
    dfinery.bodies.clear()
    second = run_tap(dfinery_config(dfinery), state=first.last_state)
    # bookmark is today (now): minus P1D lookback, rounded down to the day = yesterday and today
    assert sorted(b["from_date"] for b in dfinery.bodies) == [
        (seoul_today() - dt.timedelta(days=1)).isoformat(),
        seoul_today().isoformat(),
    ]
    expected = {
        r[KEY] for r in dfinery.expected_events(seoul_today() - dt.timedelta(days=1), seoul_today())
    }
    assert {r[KEY] for r in second.records("dfinery_events")} == expected
    dfinery.bodies.clear()
    run_tap(dfinery_config(dfinery, lookback="P3D"), state=second.last_state)
    assert len(dfinery.bodies) == 4
    dfinery.bodies.clear()
    run_tap(dfinery_config(dfinery, lookback="PT0S"), state=second.last_state)
    assert [b["from_date"] for b in dfinery.bodies] == [seoul_today().isoformat()]


def test_end_date_bounds_the_run_and_its_bookmark(dfinery):
    config = dfinery_config(dfinery)
    end = dt.datetime.combine(seoul_today() - dt.timedelta(days=2), dt.time(0), tzinfo=SEOUL)
    config["end_date"] = end.isoformat()
    run = run_tap(config)
    assert run.bookmark("dfinery_events") == end.astimezone(UTC).isoformat()
    expected = dfinery.expected_events(
        seoul_today() - dt.timedelta(days=DAYS - 1), seoul_today() - dt.timedelta(days=3)
    )
    assert {r[KEY] for r in run.records("dfinery_events")} == {r[KEY] for r in expected}


def test_thirty_day_limit_clamps_with_a_warning_naming_the_range(dfinery, caplog):
    config = dfinery_config(dfinery)
    config["start_date"] = "2020-01-01T00:00:00Z"
    run = run_tap(config)
    earliest = seoul_today() - dt.timedelta(days=30)
    assert min(b["from_date"] for b in dfinery.bodies) == earliest.isoformat()
    assert len(run.records("dfinery_events")) == len(all_days(dfinery))
    warning = next(
        r.getMessage() for r in caplog.records if "no longer be exported" in r.getMessage()
    )
    assert "[2020-01-01T00:00:00+00:00, " in warning
    midnight = dt.datetime.combine(earliest, dt.time(0), tzinfo=SEOUL).astimezone(UTC)
    assert f"{midnight.isoformat()})" in warning


def test_user_profiles_full_table(dfinery):
    config = dfinery_config(dfinery, user_profiles={"identities": ["df_external_id"]})
    run = run_tap(config)
    records = run.records("dfinery_user_profiles")
    assert len(records) == 25
    assert len({r["df_unified_id"] for r in records}) == 25
    sample = dfinery.profiles[0]
    record = next(r for r in records if r["df_unified_id"] == sample["df_unified_id"])
    assert record["df_push_optin"] is (sample["df_push_optin"] == "true")
    assert record["df_external_id"] == sample["df_external_id"]
    assert set(record) == {*PROFILE_COLUMNS, "df_external_id"}
    body = next(
        b for b in dfinery.bodies if "properties_condition_type" in b and "from_date" not in b
    )
    assert body == {
        "properties_condition_type": "all",
        "identities": ["df_external_id"],
    }


def test_user_profile_audience_is_checked_by_the_vendor(dfinery):
    with pytest.raises(VendorError, match="invalid_parameter"):
        run_tap(dfinery_config(dfinery, user_profiles={"audience": "nope"}))


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["500", "query_error", "cut", "reset", "client_connection_closed", "429"]
)
def test_transient_faults_recover_with_exact_dataset(dfinery, fault):
    dfinery.fail_next(fault, times=2, reset_in=0.3)
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1})
    records = run.records("dfinery_events")
    keys = [r[KEY] for r in records]
    assert len(keys) == len(set(keys)), "no record may be emitted twice in one run"
    assert set(keys) == {r[KEY] for r in all_days(dfinery)}
    assert len(dfinery.requests_to("/export/event")) == DAYS + 2


def test_429_waits_for_the_reset_header(dfinery):
    dfinery.fail_next("429", reset_in=1.5)
    started = dt.datetime.now(UTC)
    run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1})
    assert (dt.datetime.now(UTC) - started).total_seconds() >= 1.2


def test_long_rate_limit_stops_cleanly_with_state(dfinery):
    from tap_event_exports.engine.errors import RateLimitedError

    config = dfinery_config(dfinery) | {"max_concurrent_jobs": 1}
    dfinery.hourly_limit = 3
    dfinery.quota_reset_at = dt.datetime.now(UTC).timestamp() + 3600
    run = run_tap(config, raise_errors=False)
    assert isinstance(run.error, RateLimitedError)
    assert "retry after" in str(run.error)
    # three exports were allowed: three whole days are out, and the bookmark says so
    assert len(run.records("dfinery_events")) == len(
        dfinery.expected_events(
            seoul_today() - dt.timedelta(days=DAYS - 1), seoul_today() - dt.timedelta(days=DAYS - 3)
        )
    )
    fourth = dt.datetime.combine(
        seoul_today() - dt.timedelta(days=DAYS - 4), dt.time(0), tzinfo=SEOUL
    )
    assert run.bookmark("dfinery_events") == fourth.astimezone(UTC).isoformat()


def test_persistent_500_fails_naming_window_and_keeps_earlier_state(dfinery):
    dfinery.fail_next("500", times=100)
    config = dfinery_config(dfinery) | {"max_concurrent_jobs": 1, "max_retries": 3}
    run = run_tap(config, raise_errors=False)
    assert isinstance(run.error, RetriesExhaustedError)
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    assert f"window from_date={first} to_date={first}" in str(run.error)
    assert "unknown_error" in str(run.error)
    assert run.records("dfinery_events") == []
    assert run.bookmark("dfinery_events") is None
    assert len(dfinery.requests_to("/export/event")) == 3


def test_mid_run_failure_keeps_the_last_complete_window(dfinery):
    config = dfinery_config(dfinery) | {"max_concurrent_jobs": 1, "max_retries": 2}
    run_tap(config)  # prime nothing; then fail from the third request on
    dfinery.bodies.clear()
    dfinery.log.clear()
    original = dfinery.handle
    calls = {"n": 0}

    def third_fails(request):
        if request.path.endswith("/event"):
            calls["n"] += 1
            if calls["n"] >= 3:
                return __import__("tap_event_exports.sandbox.dfinery", fromlist=["fail"]).fail(
                    500, "unknown_error"
                )
        return original(request)

    dfinery.handle = third_fails
    run = run_tap(config, raise_errors=False)
    assert run.error is not None
    second_day = seoul_today() - dt.timedelta(days=DAYS - 2)
    bound = dt.datetime.combine(second_day + dt.timedelta(days=1), dt.time(0), tzinfo=SEOUL)
    assert run.bookmark("dfinery_events") == bound.astimezone(UTC).isoformat()
    expected = dfinery.expected_events(seoul_today() - dt.timedelta(days=DAYS - 1), second_day)
    assert {r[KEY] for r in run.records("dfinery_events")} == {r[KEY] for r in expected}


def test_a_refusal_on_the_quota_periods_last_request_is_no_rate_limit(dfinery):
    """Dfinery sends x-ratelimit-remaining on every answer: a 401 saying 0 left is a 401."""
    dfinery.advertised_remaining = 0
    config = dfinery_config(dfinery)
    config["dfinery"]["api_token"] = "tok-SECRET-123"
    with pytest.raises(VendorError) as caught:
        run_tap(config)
    assert "HTTP 401 unauthorized_token" in str(caught.value)
    assert len(dfinery.requests_to("/export/event")) <= 2


def test_bad_token_fails_fast_with_vendor_message(dfinery):
    config = dfinery_config(dfinery)
    config["dfinery"]["api_token"] = "tok-SECRET-123"
    with pytest.raises(VendorError) as caught:
        run_tap(config)
    message = str(caught.value)
    assert "HTTP 401 unauthorized_token" in message
    assert "dfinery_events: window from_date=" in message
    assert "tok-SECRET-123" not in message
    assert len(dfinery.requests_to("/export/event")) <= 2  # one per worker, no retry storm


def test_bearer_token_is_sent_and_never_logged(dfinery, caplog):
    run_tap(dfinery_config(dfinery))
    assert all(r.headers["authorization"] == f"Bearer {dfinery.token}" for r in dfinery.log)
    assert dfinery.token not in caplog.text


def test_concurrent_windows_overlap_and_stay_in_order(dfinery):
    dfinery.delay = 0.3
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 3})
    assert dfinery.max_in_flight == 3
    days = [
        dt.datetime.fromisoformat(r["df_event_datetime"]).astimezone(SEOUL).date()
        for r in run.records("dfinery_events")
    ]
    assert days == sorted(days)


def test_window_logs_at_info(dfinery, caplog):
    run_tap(dfinery_config(dfinery))
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and "window" in r.getMessage() and " done:" in r.getMessage()
    ]
    assert len(lines) == DAYS
    assert re.search(
        r"dfinery_events: window from_date=\S+ to_date=\S+ done: \d+ rows, \d+ bytes", lines[0]
    )


# --- quota and concurrency refusals ----------------------------------------------------------


def export_now(fake: DfineryFake) -> requests.Response:
    today = seoul_today().isoformat()
    return requests.post(
        f"{fake.base_url}/api/v1/export/event",
        params={"service_id": fake.service_id},
        json={"events_condition_type": "all", "from_date": today, "to_date": today},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=10,
    )


def test_concurrency_refusal_reports_the_quota_left():
    """A sixth export at once is refused with the hour's real remaining count: not a quota wait."""
    dialect = DfineryDialect("unused")
    with DfineryFake(events=[], delay=0.6) as fake:
        answers = at_once(6, lambda: export_now(fake))
        assert sorted(a.status_code for a in answers) == [200] * 5 + [429]
        busy = next(a for a in answers if a.status_code == 429)
        assert busy.json() == {"result": "fail", "message": "too_many_api_requests"}
        assert busy.headers["x-ratelimit-remaining"] == str(fake.hourly_limit - 5)
        message = dialect.error_message(busy)
        assert message == "too_many_api_requests (more than 5 exports at once; quota left)"
        assert not dialect.rate_limited(busy, message)
        fake.hourly_limit = 5
        spent = export_now(fake)
        assert spent.status_code == 429
        assert spent.headers["x-ratelimit-remaining"] == "0"
        assert dialect.rate_limited(spent, dialect.error_message(spent))


@pytest.mark.parametrize(("fault", "recovers"), [("concurrency", True), ("429", False)])
def test_429_waits_for_the_reset_only_when_the_quota_is_spent(dfinery, fault, recovers):
    """Both refusals reset in an hour: only the one with no export left stops the run."""
    dfinery.quota_reset_at = time.time() + 3600
    dfinery.fail_next(fault, times=2, reset_in=3600)
    started = time.monotonic()
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1}, raise_errors=False)
    keys = [r[KEY] for r in run.records("dfinery_events")]
    if recovers:
        assert run.error is None, run.error
        assert time.monotonic() - started < 20, "retried with the short backoff"
        assert sorted(keys) == sorted(r[KEY] for r in all_days(dfinery))
        assert len(dfinery.requests_to("/export/event")) == DAYS + 2
    else:
        assert isinstance(run.error, RateLimitedError)
        assert "too_many_api_requests" in str(run.error)
        assert "retry after" in str(run.error)
        assert keys == []
        assert len(dfinery.requests_to("/export/event")) == 1


# --- the status: false envelope --------------------------------------------------------------


def test_status_false_envelope_50000_is_retried(dfinery):
    dfinery.fail_next("internal_server_error", times=2)
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1})
    keys = [r[KEY] for r in run.records("dfinery_events")]
    assert sorted(keys) == sorted(r[KEY] for r in all_days(dfinery))
    assert len(dfinery.requests_to("/export/event")) == DAYS + 2
    dfinery.fail_next("internal_server_error", times=3)
    config = dfinery_config(dfinery) | {"max_concurrent_jobs": 1, "max_retries": 3}
    again = run_tap(config, raise_errors=False)
    assert isinstance(again.error, RetriesExhaustedError)
    assert str(again.error).endswith("last error: INTERNAL_SERVER_ERROR (code 50000)")


def test_ok_envelope_without_data_is_an_empty_day_not_csv(dfinery):
    """The guide's ``status: true`` envelope with ``data: null`` says OK and nothing: no rows,
    and its JSON never becomes columns."""
    dfinery.fail_next("ok_envelope")
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1})
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    later = dfinery.expected_events(first + dt.timedelta(days=1), seoul_today())
    assert sorted(r[KEY] for r in run.records("dfinery_events")) == sorted(r[KEY] for r in later)
    columns = set(run.schemas("dfinery_events")[-1]["schema"]["properties"])
    assert not {c for c in columns if "status" in c or "{" in c}


def test_json_where_csv_was_asked_is_retried_never_read_as_csv(dfinery):
    dfinery.fail_next("json_answer")
    dfinery.fail_next("odd_envelope")  # status true, but code 50000: no empty day
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1})
    keys = [r[KEY] for r in run.records("dfinery_events")]
    assert sorted(keys) == sorted(r[KEY] for r in all_days(dfinery))
    assert len(dfinery.requests_to("/export/event")) == DAYS + 2
    dfinery.fail_next("json_answer")
    dfinery.fail_next("odd_envelope")
    config = dfinery_config(dfinery) | {"max_concurrent_jobs": 1, "max_retries": 2}
    again = run_tap(config, raise_errors=False)
    assert isinstance(again.error, RetriesExhaustedError)
    assert str(again.error).endswith(  # the pretty-printed body on one line
        'last error: a JSON answer where a CSV export was expected: { "status": true, '
        '"code": 50000, "message": "INTERNAL_SERVER_ERROR", "data": null }'
    )
    assert "\n" not in str(again.error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": False, "code": 50000, "message": "INTERNAL_SERVER_ERROR"}, (True, False)),
        ({"status": False, "code": "50000", "message": "INTERNAL_SERVER_ERROR"}, (True, False)),
        ({"status": False, "code": 40001, "message": "VALIDATION_FAILURE"}, (False, False)),
        ({"status": False, "code": "40401", "message": "TOO_MANY_REQUEST"}, (True, True)),
        ({"status": True, "code": 20000, "message": "OK", "data": None}, None),
    ],
)
def test_envelope_codes(body, expected):
    """5xxxx retried, 4xxxx final, except the envelope's own rate limit (code as int or text)."""
    failure = DfineryDialect("unused").body_failure(body | {"data": None})
    if expected is None:
        assert failure is None
        return
    assert (failure.retriable, failure.rate_limited) == expected
    assert failure.message == f"{body['message']} (code {body['code']})"


def test_status_false_envelope_40001_fails_with_the_vendors_words(dfinery):
    dfinery.fail_next("validation_failure")
    run = run_tap(dfinery_config(dfinery) | {"max_concurrent_jobs": 1}, raise_errors=False)
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    assert isinstance(run.error, VendorError)
    assert str(run.error) == (
        f"dfinery: dfinery_events: window from_date={first} to_date={first}: "
        "VALIDATION_FAILURE (code 40001)"
    )
    assert run.records("dfinery_events") == []
    assert len(dfinery.requests_to("/export/event")) == 1, "a 4xxxx code is not retried"


# --- the 30-day edge -------------------------------------------------------------------------

EPOCH = dt.date(1970, 1, 1)


def month_of_events(**knobs) -> DfineryFake:
    """A fake whose events cover the 31 days from 30 days back to today."""
    first = seoul_today() - dt.timedelta(days=30)
    return DfineryFake(events=generate_events(start=first, days=31, per_day=4), **knobs)


def first_window_days(first: dt.date) -> int:
    """A window size whose first window, starting at ``first``, holds at least two days."""
    return next(k for k in range(2, 11) if k - (first - EPOCH).days % k >= 2)


@pytest.mark.parametrize("wide", [False, True])
def test_oldest_day_refused_is_given_up_with_a_warning(caplog, wide):
    oldest = seoul_today() - dt.timedelta(days=30)
    step = first_window_days(oldest) if wide else 1
    first_end = oldest + dt.timedelta(days=step - (oldest - EPOCH).days % step)
    with month_of_events(days_back=29) as fake:
        config = dfinery_config(fake, window=f"P{step}D") | {"max_concurrent_jobs": 1}
        config["start_date"] = "2020-01-01T00:00:00Z"
        run = run_tap(config)
        bodies = sorted(fake.bodies, key=lambda b: b["from_date"])
        served = fake.expected_events(oldest + dt.timedelta(days=1), seoul_today())
    last_of_first = (first_end - dt.timedelta(days=1)).isoformat()
    assert (bodies[0]["from_date"], bodies[0]["to_date"]) == (oldest.isoformat(), last_of_first)
    if wide:
        after = (oldest + dt.timedelta(days=1)).isoformat()
        assert (bodies[1]["from_date"], bodies[1]["to_date"]) == (after, last_of_first)
    else:
        assert bodies[1]["from_date"] == first_end.isoformat(), "nothing left of the window"
    assert sorted(r[KEY] for r in run.records("dfinery_events")) == sorted(r[KEY] for r in served)
    warnings = [r.getMessage() for r in caplog.records if "no longer serves" in r.getMessage()]
    assert warnings == [
        f"dfinery_events: Dfinery no longer serves {oldest}, the oldest of the 30 days back it "
        f"exports (exceed_date_range_limit); exporting from {oldest + dt.timedelta(days=1)}: "
        f"the events of {oldest} are lost to this tap"
    ]
    assert run.bookmark("dfinery_events") is not None


def test_a_refused_day_after_the_oldest_stays_an_error(caplog):
    """Only the oldest day may be given up: a refusal of any later day stops the run."""
    later = seoul_today() - dt.timedelta(days=29)
    midnight = dt.datetime.combine(later, dt.time(0), tzinfo=SEOUL).astimezone(UTC)
    state = {
        "bookmarks": {
            "dfinery_events": {
                "replication_key": "df_event_datetime",
                "replication_key_value": midnight.isoformat(),
            }
        }
    }
    with month_of_events(days_back=28) as fake:
        config = dfinery_config(fake, lookback="PT0S") | {"max_concurrent_jobs": 1}
        config["start_date"] = "2020-01-01T00:00:00Z"
        run = run_tap(config, state=state, raise_errors=False)
        sent = [(b["from_date"], b["to_date"]) for b in fake.bodies]
    assert sent == [(later.isoformat(), later.isoformat())]
    assert isinstance(run.error, VendorError)
    assert str(run.error).startswith(
        f"dfinery: dfinery_events: window from_date={later} to_date={later}: "
        "HTTP 400 exceed_date_range_limit"
    )
    assert run.records("dfinery_events") == []
    assert "no longer serves" not in caplog.text
