"""The fake vendors answer as the vendors' documents say, checked over real HTTP.

Each fake's module docstring lists its documented behaviours with their sources; these tests
hold the fakes to them: status codes, headers and exact bodies of each kind of answer, status
machines and value formats. The tap is not involved.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
import time
import urllib.parse
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import requests

from tap_event_exports.sandbox.batch import BatchFake, generate_data
from tap_event_exports.sandbox.dfinery import EVENT_COLUMNS, DfineryFake, generate_events
from tap_event_exports.sandbox.keen import PROCESSING, KeenFake
from tap_event_exports.sandbox.keen import generate_events as keen_events
from tap_event_exports.sandbox.mytracker import (
    SPECIAL_ITEMS,
    MyTrackerFake,
    generate_rows,
    read_list,
    sign,
    write_list,
)
from tests.harness import at_once
from tests.properties import escaped_items

UTC = dt.timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
TIMEOUT = 10


def utc_midnight(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(UTC).date()
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(0), tzinfo=UTC)


# --- Dfinery -----------------------------------------------------------------------------------


def seoul_today() -> dt.date:
    return dt.datetime.now(SEOUL).date()


@pytest.fixture
def dfn():
    first = seoul_today() - dt.timedelta(days=2)
    with DfineryFake(events=generate_events(start=first, days=3, per_day=40)) as fake:
        yield fake


def dfn_body(**overrides) -> dict:
    today = seoul_today().isoformat()
    return {"events_condition_type": "all", "from_date": today, "to_date": today, **overrides}


def dfn_post(fake, body=None, *, path="/api/v1/export/event", token=None, service_id=None):
    return requests.post(
        f"{fake.base_url}{path}",
        params={"service_id": service_id or fake.service_id},
        json=dfn_body() if body is None else body,
        headers={"Authorization": f"Bearer {token or fake.token}"},
        timeout=TIMEOUT,
    )


def assert_rate_limit_headers(response, *, cycle="1H", remaining=None, reset_within=3600.0):
    """The three x-ratelimit-* headers, as Dfinery's examples show them."""
    headers = response.headers
    assert headers["x-ratelimit-limit"] == cycle
    left = headers["x-ratelimit-remaining"]
    assert left.isdigit()
    if remaining is not None:
        assert int(left) == remaining
    reset = headers["x-ratelimit-reset"]
    assert re.fullmatch(r"\d{13}", reset), "unix milliseconds"
    now_ms = time.time() * 1000
    assert now_ms < int(reset) <= now_ms + reset_within * 1000 + 1000
    return int(left), int(reset)


DFINERY_ANSWERS = {
    # kind: (setup(fake) -> request kwargs, status, JSON failure code or None for CSV)
    "200 csv": (lambda f: {}, 200, None),
    "200 userprofile csv": (
        lambda f: {
            "path": "/api/v1/export/userprofile",
            "body": {"properties_condition_type": "all"},
        },
        200,
        None,
    ),
    "200 client_connection_closed": (
        lambda f: f.fail_next("client_connection_closed") or {},
        200,
        "client_connection_closed",
    ),
    "400 invalid_parameter": (
        lambda f: {"body": dfn_body(events_condition_type="some")},
        400,
        "invalid_parameter",
    ),
    "400 from after to": (
        lambda f: {
            "body": dfn_body(
                from_date=seoul_today().isoformat(),
                to_date=(seoul_today() - dt.timedelta(days=1)).isoformat(),
            )
        },
        400,
        "invalid_parameter",
    ),
    "400 service_id": (lambda f: {"service_id": "other"}, 400, "invalid_parameter"),
    "400 exceed_date_range_limit": (
        lambda f: {"body": dfn_body(from_date=(seoul_today() - dt.timedelta(days=31)).isoformat())},
        400,
        "exceed_date_range_limit",
    ),
    "401": (lambda f: {"token": "wrong-token"}, 401, "unauthorized_token"),
    "429 reset soon": (
        lambda f: f.fail_next("429", reset_in=5.0) or {},
        429,
        "too_many_api_requests",
    ),
    "429 hourly quota spent": (
        lambda f: setattr(f, "hourly_limit", 0) or {},
        429,
        "too_many_api_requests",
    ),
    "500 unknown_error": (lambda f: f.fail_next("500") or {}, 500, "unknown_error"),
    "500 query_error": (lambda f: f.fail_next("query_error") or {}, 500, "query_error"),
}


@pytest.mark.parametrize("kind", list(DFINERY_ANSWERS))
def test_dfinery_answers_carry_documented_body_and_rate_limit_headers(dfn, kind):
    setup, status, code = DFINERY_ANSWERS[kind]
    response = dfn_post(dfn, **setup(dfn))
    assert response.status_code == status
    refused = status == 429
    left, reset = assert_rate_limit_headers(
        response, remaining=0 if refused else None, reset_within=3600.0
    )
    if code is None:
        assert response.headers["Content-Type"].startswith("text/csv")
        header = response.content.split(b"\r\n", 1)[0].decode().split(",")
        assert header == sorted(header)
        assert "df_unified_id" in header
        assert left == dfn.hourly_limit - 1, "this export counted against the hourly quota"
    else:
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"result": "fail", "message": code}
    if kind == "429 reset soon":
        assert reset <= time.time() * 1000 + 6000
    else:
        assert reset > time.time() * 1000 + 3000 * 1000, "the end of the hourly window"


def test_dfinery_hourly_quota_counts_down_then_refuses():
    with DfineryFake(events=[]) as fake:
        assert fake.hourly_limit == 100, "100 exports an hour (documented)"
        lefts, resets = [], set()
        for _ in range(100):
            response = dfn_post(fake)
            assert response.status_code == 200
            left, reset = assert_rate_limit_headers(response)
            lefts.append(left)
            resets.add(reset)
        assert lefts == list(range(99, -1, -1))
        refused = dfn_post(fake)
        assert refused.status_code == 429
        assert refused.json() == {"result": "fail", "message": "too_many_api_requests"}
        _, reset = assert_rate_limit_headers(refused, remaining=0)
        assert resets == {reset}, "one window: the same reset throughout"
        bad_token = dfn_post(fake, token="nope")
        assert bad_token.status_code == 401
        assert_rate_limit_headers(bad_token, remaining=0)


def test_dfinery_sixth_concurrent_export_is_refused():
    with DfineryFake(events=[], delay=0.6) as fake:
        assert fake.max_concurrent == 5, "5 at once (documented)"
        answers = at_once(6, lambda: dfn_post(fake))
        assert sorted(a.status_code for a in answers) == [200] * 5 + [429]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json() == {"result": "fail", "message": "too_many_api_requests"}
        # a refusal for concurrency, not for the quota: five of its requests are spent
        assert refused.headers["x-ratelimit-remaining"] == str(fake.hourly_limit - 5)


def test_dfinery_reset_header_follows_the_quota_period(dfn):
    reset_at = time.time() + 2075
    dfn.limit_cycle, dfn.advertised_remaining, dfn.quota_reset_at = "1d", 99999, reset_at
    for setup in (lambda: None, lambda: dfn.fail_next("500")):
        setup()
        response = dfn_post(dfn)
        assert response.headers["x-ratelimit-limit"] == "1d"
        assert response.headers["x-ratelimit-remaining"] == "99999"
        assert response.headers["x-ratelimit-reset"] == str(int(reset_at * 1000))
    assert response.status_code == 500
    assert response.json() == {"result": "fail", "message": "unknown_error"}
    with DfineryFake(events=[], clock_aligned=True) as aligned:
        _, reset = assert_rate_limit_headers(dfn_post(aligned))
        assert reset % 3_600_000 == 0, "on the clock hour"


def test_dfinery_to_date_is_optional(dfn):
    first = seoul_today() - dt.timedelta(days=1)
    body = {"events_condition_type": "all", "from_date": first.isoformat()}
    response = dfn_post(dfn, body)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert len(rows) == len(dfn.expected_events(first, seoul_today())) > 0


def test_dfinery_csv_is_shaped_like_the_documented_sample(dfn):
    first = seoul_today() - dt.timedelta(days=2)
    response = dfn_post(dfn, dfn_body(from_date=first.isoformat()))
    raw = response.content
    header, _rest = raw.split(b"\r\n", 1)
    columns = header.decode().split(",")
    assert columns == sorted(columns) == EVENT_COLUMNS
    assert columns[0].startswith("custom_"), "custom properties sort before df_*"
    rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    assert len(rows) == len(dfn.expected_events(first, seoul_today()))
    dotted = re.compile(r"\d{4}\.\d{1,2}\.\d{1,2} \d{1,2}:\d{2}")
    dashed = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}")
    assert all(dotted.fullmatch(r["df_event_datetime"]) for r in rows)
    servers = {bool(dashed.fullmatch(r["df_server_datetime"])) for r in rows}
    assert servers == {True, False}, "both date-time renderings of the sample"
    assert {r["custom_event_p_boolean"] for r in rows} == {"TRUE", "FALSE"}
    assert "null" in {r["custom_event_p_double_list"] for r in rows}
    assert b'"[""1"",""2""]"' in raw, "lists CSV-quoted as in the documented sample"
    three = re.compile(r"\d{13}:\d{13}:[0-9a-f-]{36}")
    two = re.compile(r"\d{13}:[0-9a-f-]{36}")
    forms = {bool(three.fullmatch(r["df_event_log_id"])) for r in rows}
    assert forms == {True, False}
    assert all(
        three.fullmatch(r["df_event_log_id"]) or two.fullmatch(r["df_event_log_id"]) for r in rows
    )
    items = [r for r in rows if r["df_event_name"] == "df_purchase"]
    assert items
    assert all(
        re.fullmatch(re.escape(r["df_event_log_id"]) + r":\d+", r["df_event_detail_log_id"])
        for r in items
    )
    only = dfn_post(
        dfn,
        dfn_body(properties=["df_discount"], properties_condition_type="include"),
    )
    kept = only.content.split(b"\r\n", 1)[0].decode().split(",")
    assert "df_discount" in kept
    assert "df_unified_id" in kept
    assert "df_event_log_id" in kept
    assert "df_keyword" not in kept, "other properties are left out"


# --- Keen ----------------------------------------------------------------------------------------


@pytest.fixture
def kn():
    start = utc_midnight(1)
    with KeenFake(
        {"pageviews": keen_events("pageviews", start=start, days=2, per_day=20)},
        job_seconds=0.15,
    ) as fake:
        yield fake


def keen_extract_url(fake, collection="pageviews") -> str:
    return f"{fake.base_url}/2.0/projects/{fake.project_id}/{collection}/_extract"


KEEN_ERRORS = {
    # kind: (setup(fake) -> (method, url, kwargs), status, error_code)
    "401": (lambda f: ("POST", keen_extract_url(f), {"key": "bad"}), 401, "InvalidApiKeyError"),
    "404 extraction": (
        lambda f: ("GET", keen_extract_url(f) + "/" + "0" * 24, {}),
        404,
        "ResourceNotFoundError",
    ),
    "400 filters missing": (
        lambda f: ("POST", keen_extract_url(f), {"json": {"timeframe": "this_day"}}),
        400,
        "MissingRequiredPropertyError",
    ),
    "429": (
        lambda f: f.fail_next("429") or ("POST", keen_extract_url(f), {}),
        429,
        "TooManyRequestsError",
    ),
    "500": (
        lambda f: f.fail_next("500") or ("POST", keen_extract_url(f), {}),
        500,
        "InternalServerError",
    ),
}


@pytest.mark.parametrize("kind", list(KEEN_ERRORS))
def test_keen_errors_are_message_and_error_code(kn, kind):
    setup, status, code = KEEN_ERRORS[kind]
    method, url, kwargs = setup(kn)
    key = kwargs.pop("key", kn.api_key)
    kwargs.setdefault("json", {"filters": []})
    response = requests.request(
        method, url, headers={"Authorization": key}, timeout=TIMEOUT, **kwargs
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "error_code"}
    assert body["error_code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "Retry-After" not in response.headers, "no wait header is documented"
    assert not any(h.lower().startswith("x-ratelimit") for h in response.headers)


def test_keen_429_with_retry_after_knob(kn):
    kn.retry_after = "1"
    kn.fail_next("429")
    response = requests.post(
        keen_extract_url(kn),
        json={"filters": []},
        headers={"Authorization": kn.api_key},
        timeout=TIMEOUT,
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error_code"] == "TooManyRequestsError"


def test_keen_extraction_walks_documented_statuses(kn):
    auth = {"Authorization": kn.api_key}
    created = requests.post(
        keen_extract_url(kn), json={"filters": []}, headers=auth, timeout=TIMEOUT
    )
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"_id", "status"}
    assert body["status"] == "not started"
    job = body["_id"]
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = requests.get(f"{keen_extract_url(kn)}/{job}", headers=auth, timeout=TIMEOUT).json()
        seen.append(status["status"])
        if status["status"] == "complete":
            break
        assert "results_url" not in status, "no results_url before complete (documented)"
        assert status["_id"] == job
        time.sleep(0.02)
    assert seen[-1] == "complete"
    assert seen[0] == "not started"
    assert set(status) == {"_id", "status", "results_url"}
    listing = requests.get(keen_extract_url(kn) + "s", headers=auth, timeout=TIMEOUT).json()
    assert listing == [status]
    url = status["results_url"]
    assert urllib.parse.urlsplit(url).hostname == "localhost", "results on another host"
    results = requests.get(url, timeout=TIMEOUT)
    assert results.status_code == 200
    rows = list(csv.DictReader(io.StringIO(results.text, newline="")))
    assert len(rows) == len(kn.collections["pageviews"])
    assert {"keen.id", "keen.timestamp", "user.email"} <= set(rows[0])
    assert kn.key_leaks == []


def test_keen_query_extraction_documented_parameters(kn):
    url = f"{kn.base_url}/3.0/projects/{kn.project_id}/queries/extraction"
    events = kn.collections["pageviews"]
    base = {"event_collection": "pageviews", "api_key": kn.api_key}
    everything = requests.get(url, params=base, timeout=TIMEOUT).json()
    assert set(everything) == {"result"}
    assert everything["result"] == events
    latest = requests.get(url, params=base | {"latest": 3}, timeout=TIMEOUT).json()
    assert latest["result"] == events[-3:]
    names = requests.get(
        url, params=base | {"property_names": '["keen.id","user.email"]'}, timeout=TIMEOUT
    ).json()["result"]
    assert names == [
        {"keen": {"id": e["keen"]["id"]}, "user": {"email": e["user"]["email"]}} for e in events
    ]
    mailed = requests.get(url, params=base | {"email": "a@example.com"}, timeout=TIMEOUT).json()
    assert mailed == {"result": PROCESSING}


# --- myTracker ---------------------------------------------------------------------------------


def test_mytracker_signature_matches_the_documented_test_vector():
    url = "https://tracker.my.com/api/raw/v1/export/get.json?idReport=4"
    header = sign("GET", url, None, "77658", "72d2erEtbynf6f7ZYTsYKnb7")
    assert header == "AuthHMAC 77658:PqrQR8zsgQU9Qcocjp6T6hnjF8Y="


@pytest.fixture
def mt():
    start = utc_midnight(1)
    rows = {
        event: generate_rows(event, start=start, days=2, per_day=40)
        for event in ("installs", "customEvents")
    }
    with MyTrackerFake(rows, job_seconds=0.15, part_rows=25, per_second=1000) as fake:
        yield fake


def mt_call(fake, method, path, params=None, *, secret=None):
    query = urllib.parse.urlencode(params or {}, doseq=True)
    url = f"{fake.base_url}{path}" + (f"?{query}" if query else "")
    auth = sign(method, url, None, fake.user_id, secret or fake.secret)
    return requests.request(method, url, headers={"Authorization": auth}, timeout=TIMEOUT)


CREATE = "/api/raw/v1/export/create.json"


def create_params(**overrides) -> dict:
    now = int(time.time())
    return {
        "event": "customEvents",
        "selectors": "tsEvent,params.name,params.value",
        "tsFrom": now - 2 * 86400,
        "tsTo": now - 1,
        **overrides,
    }


def bad(detail: str) -> dict:
    return {"code": 400, "message": "Bad Request", "data": {"error": {"detail": detail}}}


NOT_FOUND = {
    "code": 404,
    "message": "Not Found",
    "data": {"error": {"detail": "Raw export request not found"}},
}

MYTRACKER_ANSWERS = {
    # kind: (setup(fake) -> (method, path, params, secret), expected body or None for shape only)
    "403 bad signature": (
        lambda f: ("POST", CREATE, create_params(), "wrong-secret"),
        {"code": 403, "message": "Access denied", "data": None},
    ),
    "404 get": (
        lambda f: ("GET", "/api/raw/v1/export/get.json", {"idRawExport": "999"}, None),
        NOT_FOUND,
    ),
    "404 cancel": (
        lambda f: ("GET", "/api/raw/v1/export/cancel.json", {"idRawExport": "999"}, None),
        NOT_FOUND,
    ),
    "400 event missing": (
        lambda f: (
            "POST",
            CREATE,
            {k: v for k, v in create_params().items() if k != "event"},
            None,
        ),
        bad("Argument 'event' is expected but not set"),
    ),
    "400 event invalid": (
        lambda f: ("POST", CREATE, create_params(event="nothing"), None),
        bad(
            "Argument 'event' must be in set of allowed tables. "
            "Allowed values are: install, payment, launch, customEvent."
        ),
    ),
    "400 selectors": (
        lambda f: ("POST", CREATE, create_params(selectors=""), None),
        bad("Argument 'selectors' is invalid"),
    ),
    "400 filter over 1000 values": (
        lambda f: ("POST", CREATE, create_params(idCampaign=",".join(map(str, range(1001)))), None),
        bad("Argument 'idCampaign' set size expected to be below 1000"),
    ),
    "400 no export permission": (
        lambda f: setattr(f, "export_permission", False) or ("POST", CREATE, create_params(), None),
        bad("Export permissions required to export raw data from an account"),
    ),
    "429 quota": (lambda f: f.fail_next("429") or ("POST", CREATE, create_params(), None), None),
    "500": (
        lambda f: f.fail_next("500") or ("POST", CREATE, create_params(), None),
        {"code": 500, "message": "Internal Server Error", "data": None},
    ),
}


@pytest.mark.parametrize("kind", list(MYTRACKER_ANSWERS))
def test_mytracker_envelope_on_every_answer(mt, kind):
    setup, expected = MYTRACKER_ANSWERS[kind]
    method, path, params, secret = setup(mt)
    response = mt_call(mt, method, path, params, secret=secret)
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert response.status_code == body["code"]
    assert response.headers["Content-Type"] == "application/json"
    if expected is not None:
        assert body == expected
    if kind == "429 quota":
        assert body["code"] == 429
        assert body["message"] == "Too Many Requests"
        quotas = body["data"]["error"]["info"]["quotas"]
        assert [q["name"] for q in quotas] == [
            "RequestsByUserPerSecond",
            "RequestsByUserPerMinute",
            "RequestsByUserPerHour",
        ]
        for quota in quotas:
            assert set(quota) == {
                "name",
                "count",
                "limit",
                "resetTime",
                "resetInSecond",
                "exceeded",
            }
            assert isinstance(quota["resetInSecond"], int)
            assert quota["resetInSecond"] >= 1
            assert quota["resetTime"] == pytest.approx(time.time() + quota["resetInSecond"], abs=2)
        assert [q["limit"] for q in quotas] == [1000, 100, 1000]
        assert any(q["exceeded"] for q in quotas)


def test_mytracker_quota_defaults_are_the_documented_ones():
    with MyTrackerFake({}) as fake:
        assert fake.limits == ((10, 1.0), (100, 60.0), (1000, 3600.0))


def test_mytracker_full_queue_and_finished_cancel(mt):
    mt.queue_limit = 1
    mt.job_seconds = 5
    first = mt_call(mt, "POST", CREATE, create_params()).json()
    running = first["data"]["idRawExport"]
    full = mt_call(mt, "POST", CREATE, create_params())
    assert full.status_code == 400
    assert full.json() == {
        "code": 400,
        "message": "Bad Request",
        "data": {
            "error": {
                "detail": "Maximum number of simultaneous requests reached. Wait until there is "
                "space available in the queue.",
                "info": {"exports": [{"idRawExport": running}]},
            }
        },
    }
    mt.exports[running].duration = 0
    done = mt_call(mt, "GET", "/api/raw/v1/export/get.json", {"idRawExport": running}).json()
    assert done["data"]["status"] == "Success!"
    refused = mt_call(mt, "GET", "/api/raw/v1/export/cancel.json", {"idRawExport": running})
    assert refused.status_code == 400
    assert refused.json() == bad("This RawExport can not be cancel (it's completed)")


def poll_success(fake, export_id: str) -> tuple[list[dict], list[str]]:
    statuses = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = mt_call(fake, "GET", "/api/raw/v1/export/get.json", {"idRawExport": export_id})
        body = got.json()
        assert body["code"] == 200
        assert body["message"] == "Ok"
        data = body["data"]
        statuses.append(data["status"])
        if data["status"] == "Success!":
            return data["files"], statuses
        assert data["status"] == "In progress"
        assert data["idRawExport"] == export_id
        assert re.fullmatch(r"\d{1,2}%", data["progress"])
        assert isinstance(data["isCancellable"], bool)
        time.sleep(0.02)
    raise AssertionError(statuses)


def download(fake, files: list[dict]) -> list[dict[str, str]]:
    rows = []
    for file in files:
        part = mt_call(fake, "GET", urllib.parse.urlsplit(file["link"]).path)
        assert part.status_code == 200
        text = gzip.decompress(part.content).decode()
        rows.extend(csv.DictReader(io.StringIO(text, newline="")))
    return rows


def test_mytracker_export_walks_to_success_with_documented_files(mt):
    created = mt_call(mt, "POST", CREATE, create_params(selectors="tsEvent,idApp"))
    body = created.json()
    assert body["code"] == 200
    assert body["message"] == "Ok"
    export_id = body["data"]["idRawExport"]
    assert isinstance(export_id, str), "ids are strings"
    assert export_id.isdigit()
    files, statuses = poll_success(mt, export_id)
    assert statuses[0] == "In progress"
    assert len(files) > 1
    for n, file in enumerate(files):
        assert set(file) == {"link", "timestampExpires"}
        assert isinstance(file["timestampExpires"], str)
        assert file["timestampExpires"].isdigit()
        assert int(file["timestampExpires"]) > time.time()
        assert re.search(
            rf"/{export_id}\.customEvents\.[0-9a-f]{{32}}\.{n}\.csv\.gz$", file["link"]
        )
    rows = download(mt, files)
    assert list(rows[0]) == ["tsEvent", "idApp"]
    assert len(rows) == len(mt.exports[export_id].rows)


def test_mytracker_create_reads_dates_in_the_timezone(mt):
    zone = ZoneInfo("Asia/Yekaterinburg")
    day = dt.datetime.now(zone).date() - dt.timedelta(days=1)
    created = mt_call(
        mt,
        "POST",
        CREATE,
        {
            "event": "installs",
            "selectors": "tsEvent",
            "dateFrom": day.isoformat(),
            "dateTo": day.isoformat(),
            "timezone": "Asia/Yekaterinburg",
        },
    ).json()
    export = mt.exports[created["data"]["idRawExport"]]
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()
    wanted = [r for r in mt.rows["installs"] if start <= int(r["tsEvent"]) < start + 86400]
    assert export.rows == wanted
    assert wanted
    future = dt.datetime.now(zone).date() + dt.timedelta(days=2)
    refused = mt_call(
        mt,
        "POST",
        CREATE,
        {
            "event": "installs",
            "selectors": "tsEvent",
            "dateFrom": day.isoformat(),
            "dateTo": future.isoformat(),
        },
    )
    assert refused.status_code == 400
    assert refused.json()["data"]["error"]["detail"]


LIST = re.compile(r"\[(?:('[^']*'|\"[^\"]*\")(?:,('[^']*'|\"[^\"]*\"))*)?\]", re.DOTALL)
"""The older unescaped style (knob ``escaped_lists=False``)."""
ESCAPED_LIST = re.compile(r"\[(?:'(?:[^'\\\n\r]|\\.)*'(?:,'(?:[^'\\\n\r]|\\.)*')*)?\]")
"""The documented form: ClickHouse's single-quoted strings, no spaces, escapes for ``\\``,
``'`` and control characters (so no raw line break in a cell)."""


def test_mytracker_list_values_use_the_documented_format(mt):
    created = mt_call(
        mt, "POST", CREATE, create_params(selectors="tsEvent,params.name,params.value")
    )
    export_id = created.json()["data"]["idRawExport"]
    files, _ = poll_success(mt, export_id)
    rows = download(mt, files)
    source = mt.exports[export_id].rows
    cells = [r["params.name"] for r in rows] + [r["params.value"] for r in rows]
    assert Counter(cells) == Counter(
        [r["params.name"] for r in source] + [r["params.value"] for r in source]
    ), "the file carries the values as generated, through CSV quoting"
    assert all(ESCAPED_LIST.fullmatch(cell) for cell in cells), "every value in the documented form"
    items = [item for cell in cells for item in escaped_items(cell) or []]
    assert set(SPECIAL_ITEMS) <= set(items), "every awkward item went over the wire"
    assert "[]" in cells, "empty lists"
    assert any("'param with\\n line break'" in c for c in cells), "\\n for a line feed"
    assert any("'cr\\ronly'" in c for c in cells), "\\r for a carriage return"
    assert any("'it\\'s'" in c for c in cells), "\\' for a quote"
    assert any("'C:\\\\new\\\\table'" in c for c in cells), "\\\\ for a backslash"
    assert any("'say \"hi\"'" in c for c in cells), '" stays as it is'
    assert any("''" in c for c in cells), "empty items"
    assert not any("\n" in c or "\r" in c for c in cells), "no raw line break in a cell"


def test_mytracker_list_serialization_round_trips():
    for items in ([], [""], list(SPECIAL_ITEMS), ["a", "it's", 'say "x"', "", "x,y]"]):
        text = write_list(items)
        assert read_list(text) == items
        assert LIST.fullmatch(text)
    assert (
        write_list(["param1", "param2\n with line break"])
        == "['param1','param2\n with line break']"
    )
    with pytest.raises(ValueError):
        write_list(["both ' and \""])


# --- Batch ---------------------------------------------------------------------------------------


@pytest.fixture
def bt():
    data = generate_data(start=utc_midnight(2), days=3, per_day=12)
    with BatchFake(data, job_seconds=0.15) as fake:
        yield fake


def bt_url(fake, route: str) -> str:
    return f"{fake.base_url}/1.0/{fake.api_key}/export/{route}"


PUSH = {
    "from": "2000-01-01T00:00:00",
    "to": "now",
    "events": ["push_sent", "push_open"],
    "ids": ["install_id", "custom_id"],
}

BATCH_ERRORS = {
    # kind: (setup(fake) -> request kwargs, status, error name, error code)
    "401": (lambda f: {"key": "wrong"}, 401, "AUTHENTICATION_INVALID", 10),
    "404": (lambda f: {"route": "campaign/NOPE/events"}, 404, "ROUTE_NOT_FOUND", 20),
    "400 missing": (
        lambda f: {"json": {k: v for k, v in PUSH.items() if k != "ids"}},
        400,
        "MISSING_PARAMETER",
        30,
    ),
    "400 malformed": (
        lambda f: {"json": PUSH | {"from": "yesterday"}},
        400,
        "MALFORMED_PARAMETER",
        31,
    ),
    "400 json": (lambda f: {"data": b"{not json"}, 400, "MALFORMED_JSON_BODY", 32),
    "500": (lambda f: f.fail_next("500") or {}, 500, "SERVER_ERROR", 1),
    "503": (lambda f: f.fail_next("503") or {}, 503, "MAINTENANCE_ERROR", 2),
}


@pytest.mark.parametrize("kind", list(BATCH_ERRORS))
def test_batch_errors_have_documented_status_and_code(bt, kind):
    setup, status, name, code = BATCH_ERRORS[kind]
    kwargs = setup(bt)
    route = kwargs.pop("route", f"campaign/{sorted(bt.data.campaigns)[0]}/events")
    key = kwargs.pop("key", bt.rest_key)
    if "data" not in kwargs:
        kwargs.setdefault("json", PUSH)
    response = requests.post(
        bt_url(bt, route),
        headers={"X-Authorization": key, "Content-Type": "application/json"},
        timeout=TIMEOUT,
        **kwargs,
    )
    assert response.status_code == status
    body = response.json()
    assert body["error_code"] == name
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "Retry-After" not in response.headers, "no wait header is documented"


def test_batch_conflict_is_409(bt):
    bt.fail_next("409")
    response = requests.post(
        bt_url(bt, f"campaign/{sorted(bt.data.campaigns)[0]}/events"),
        json=PUSH,
        headers={"X-Authorization": bt.rest_key},
        timeout=TIMEOUT,
    )
    assert response.status_code == 409


def test_batch_export_walks_the_documented_status_machine(bt):
    auth = {"X-Authorization": bt.rest_key}
    token = sorted(bt.data.campaigns)[0]
    created = requests.post(
        bt_url(bt, f"campaign/{token}/events"), json=PUSH, headers=auth, timeout=TIMEOUT
    )
    assert created.status_code == 202
    assert set(created.json()) == {"requestId"}
    job = created.json()["requestId"]
    assert str(uuid.UUID(job)) == job
    seen, dates = [], set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = requests.get(bt_url(bt, f"request/{job}"), headers=auth, timeout=TIMEOUT).json()
        seen.append(status["status"])
        dates.add(status["request_date"])
        if status["status"] == "SUCCESS":
            break
        assert "file_url" not in status
        assert "completion_date" not in status
        time.sleep(0.02)
    assert seen[0] == "CREATED"
    assert "PENDING" in seen
    assert seen[-1] == "SUCCESS"
    assert len(dates) == 1, "request_date is when the request was created"
    assert {"id", "uri", "request_date", "file_url", "status", "completion_date", "request"} == set(
        status
    )
    assert status["request"] == PUSH
    assert status["id"] == job
    assert status["uri"] == f"/1.0/{bt.api_key}/export/campaign/{token}/events"
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
    assert stamp.fullmatch(status["request_date"])
    assert stamp.fullmatch(status["completion_date"])
    second = requests.post(
        bt_url(bt, "reachability/events"),
        json={k: PUSH[k] for k in ("from", "to", "ids")},
        headers=auth,
        timeout=TIMEOUT,
    ).json()["requestId"]
    listing = requests.get(bt_url(bt, "requests"), headers=auth, timeout=TIMEOUT).json()
    assert [r["id"] for r in listing] == [second, job], "newest first"
    link = requests.get(status["file_url"], headers=auth, allow_redirects=False, timeout=TIMEOUT)
    assert link.status_code == 302
    location = link.headers["Location"]
    parts = urllib.parse.urlsplit(location)
    assert parts.hostname == "localhost", "the real link is on another host"
    expires = int(urllib.parse.parse_qs(parts.query)["expires"][0])
    assert time.time() + 19 * 60 < expires <= time.time() + 20 * 60 + 1, "valid 20 minutes"
    file = requests.get(location, timeout=TIMEOUT)
    assert file.status_code == 200
    lines = file.text.split("\n")
    assert lines[0] == "install_id;custom_id;event_date;event_type"
    types = {line.split(";")[3] for line in lines[1:] if line}
    assert types == {"push_sent", "push_opened"}, "push_open is written push_opened"
    assert bt.auth_leaks == []


def test_batch_error_and_expired_states(bt):
    auth = {"X-Authorization": bt.rest_key}
    token = sorted(bt.data.campaigns)[0]
    bt.fail_next("ERROR")
    failed = requests.post(
        bt_url(bt, f"campaign/{token}/ids"), json=PUSH, headers=auth, timeout=TIMEOUT
    ).json()["requestId"]
    bt.file_ttl = 0.3
    expiring = requests.post(
        bt_url(bt, f"campaign/{token}/ids"), json=PUSH, headers=auth, timeout=TIMEOUT
    ).json()["requestId"]
    time.sleep(0.2)
    error = requests.get(bt_url(bt, f"request/{failed}"), headers=auth, timeout=TIMEOUT).json()
    assert error["status"] == "ERROR"
    assert error["error_msg"]
    assert "file_url" not in error
    assert (
        requests.get(bt_url(bt, f"request/{expiring}"), headers=auth, timeout=TIMEOUT).json()[
            "status"
        ]
        == "SUCCESS"
    )
    time.sleep(0.4)
    expired = requests.get(bt_url(bt, f"request/{expiring}"), headers=auth, timeout=TIMEOUT).json()
    assert expired["status"] == "EXPIRED"
    assert "file_url" not in expired
    gone = requests.get(
        bt_url(bt, f"request/{expiring}/results/export.csv"),
        headers=auth,
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert gone.status_code == 404
    assert gone.json()["error_code"] == "ROUTE_NOT_FOUND"
