"""A fake of Dfinery's Export API, as documented.

``POST /api/v1/export/event?service_id=`` and ``/api/v1/export/userprofile`` answer with a CSV
(alphabetical columns, CRLF, ``null`` and list values, purchase items one row each), or with
``{"result": "fail", "message": <code>}``. Exports reach back 30 days; 100 exports per hour and
5 at once; every answer carries the rate-limit headers, reset in milliseconds.

Sources: ``seeds/000`` (event export page), ``seeds/001`` (API guide: rate-limit header examples,
user-profile export, error bodies), ``providers.md`` section 1 (export "Detailed response",
"Request limit", KO pages). Tests: ``tests/test_sandbox_fidelity.py`` (``fid``),
``tests/test_dfinery.py`` and ``tests/test_fault_matrix.py``. A fake's position on something the
documents leave open is marked UNCONFIRMED, with its knob where there is one.

Documented behaviour, where it comes from and where it is exercised:

- Auth ``Authorization: Bearer <export token>``; a bad token is ``401 unauthorized_token``
  [seeds/000 Header table; providers 1.3, 1.7] (fid ``test_dfinery_answers_carry_documented_body_and_rate_limit_headers[401]``).
- ``service_id`` query parameter required, ``Content-Type: application/json`` required
  [seeds/000]. Missing or wrong: ``400 invalid_parameter`` (UNCONFIRMED which code) (fid ``[400 service_id]``).
- Body fields: ``events_condition_type`` required, one of all/include/exclude; ``events``,
  ``properties`` lists of strings; ``properties_condition_type`` optional; ``from_date``
  required ``yyyy-MM-dd``; ``to_date`` "Select" (optional) in seeds/000's table (providers 1.4
  could not read that cell). Without ``to_date`` the fake exports through its ``today()``
  (UNCONFIRMED) (fid ``test_dfinery_to_date_is_optional``). ``from_date`` after ``to_date``:
  ``400 invalid_parameter`` (UNCONFIRMED) (fid ``[400 from after to]``).
- Both dates inclusive local days (UNCONFIRMED; the docs' example uses from == to for one day),
  timezone ``Asia/Seoul`` by default (UNCONFIRMED; knob ``timezone``) (``test_dfinery.py``).
- Lookback: data up to 30 days back only; an older ``from_date`` is
  ``400 exceed_date_range_limit`` [providers 1.7, 1.8 (KO warning); seeds/001 example body]
  (fid ``[400 exceed_date_range_limit]``). Day 30 itself is allowed (UNCONFIRMED; knob
  ``days_back``: 29 refuses it) (``test_dfinery.py::test_oldest_day_refused_is_given_up_with_a_warning``).
- 200 body: CSV, comma separated, header first, data from the second line [seeds/000 Response];
  columns in alphabetical order as in the sample header (``custom_*`` before ``df_*``)
  [seeds/000 sample]; unified id and system event properties always included whatever
  ``properties``/``properties_condition_type`` say; missing values empty [seeds/000]
  (fid ``test_dfinery_csv_is_shaped_like_the_documented_sample``). Content-Type ``text/csv;
  charset=utf-8`` and CRLF line ends: UNCONFIRMED (curl ``-o results.csv`` shows neither).
- The event column is ``df_event_name`` as in the sample header; the doc table says
  ``event_name`` [seeds/000]: the fake follows the sample (UNCONFIRMED which is real).
- Values as in the sample [seeds/000]: ``TRUE``/``FALSE``, literal ``null``, date-times
  ``2025.1.6 10:35`` (minute precision) and now and then ``2025-01-06 10:38:10.036``; log ids
  ``<ms>:<ms>:<uuid>`` or ``<ms>:<uuid>``; purchase items one row each with
  ``df_event_detail_log_id = <df_event_log_id>:<n>``; lists ``["1","2"]`` (CSV-quoted
  ``"[""1"",""2""]"``, seeds/001 user-profile sample) (fid ``test_dfinery_csv_is_shaped_like_the_documented_sample``).
  Rows given to the fake may carry ``df_event_datetime`` in either rendering; the export of a
  day holds the rows whose local date is that day (``tests/test_dfinery_properties.py``).
- Error body ``{"result": "fail", "message": <code>}`` with the documented HTTP status
  [providers 1.7; seeds/001 examples]: 200 ``client_connection_closed`` (JSON on a 200!),
  400 ``invalid_parameter`` / ``exceed_date_range_limit``, 401 ``unauthorized_token``,
  429 ``too_many_api_requests``, 500 ``unknown_error`` / ``query_error``
  (fid ``test_dfinery_answers_carry_documented_body_and_rate_limit_headers``).
- The API guide's HTTP 200 envelope ``{"status": false, "code": 40001, "message":
  "VALIDATION_FAILURE", "data": null}`` and ``code 50000 INTERNAL_SERVER_ERROR`` [seeds/001];
  providers 1.7 places it in the Import API, so the export routes sending it is UNCONFIRMED:
  only on demand, ``fail_next("validation_failure")`` / ``fail_next("internal_server_error")``
  (``test_dfinery.py::test_status_false_envelope_50000_is_retried``,
  ``test_status_false_envelope_40001_fails_with_the_vendors_words``).
- Rate-limit headers ``x-ratelimit-limit`` (cycle: ``1y``/``1M``/``1d``/``1H``/``1m``/``1s``),
  ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (unix **milliseconds**, the end of the
  quota period) on EVERY answer of the export routes: 200 CSV, 200 JSON failure, 400, 401,
  429 (remaining ``0``), 500 [seeds/001 curl examples ``1d``/``99999``/``1682593200268`` and
  on 429 ``0``/``1682640000000``; providers 1.9]; a refusal for concurrency carries the
  real remaining count (see Quota). The doc table spells them
  ``X-Rate-Limit-*`` with reset in seconds; the fake sends what the examples show
  (fid ``test_dfinery_answers_carry_documented_body_and_rate_limit_headers``, matrix row
  "5xx with the vendor's routine headers").
- Quota: 100 exports an hour and 5 at once per service [providers 1.9 table]. Over either:
  ``429 too_many_api_requests``; over the hourly quota with ``x-ratelimit-remaining: 0``, over
  the concurrency cap with the exports really left in the hour (how the concurrency cap is
  signalled is UNCONFIRMED; the fake uses the same 429 and truthful headers) (fid
  ``test_dfinery_hourly_quota_counts_down_then_refuses``,
  ``test_dfinery_sixth_concurrent_export_is_refused``; ``test_dfinery.py``
  ``test_concurrency_refusal_reports_the_quota_left``). Knobs ``hourly_limit``,
  ``max_concurrent``; ``fail_next("concurrency")`` refuses the next export that way.
- The cycle the export route reports: UNCONFIRMED. The fake reports its hourly quota,
  ``1H`` with the real remaining count; ``limit_cycle`` and ``advertised_remaining`` make it
  report e.g. the examples' ``1d``/``99999`` (fid ``test_dfinery_reset_header_follows_the_quota_period``).
- Windows: the real service resets on the clock (the examples reset on the hour / at 00:00
  UTC). The fake anchors its hourly windows at its own start so every test sees the same
  distances (reset ~1 h away), or on the clock with ``clock_aligned=True``;
  ``quota_reset_at`` pins the reported reset. Which answers count against the quota:
  UNCONFIRMED (here: those that pass auth and request-shape checks).
- Synchronous: no job, no polling, no file URL [providers 1.2].
- User-profile export: ``properties_condition_type`` required; ``audience`` optional (unknown:
  ``400 invalid_parameter``, UNCONFIRMED); ``df_unified_id`` always; identities give only
  ``df_external_id`` [providers 1.5; seeds/001 sample] (``test_dfinery.py``).

Not the vendor (vendor-neutral faults of ``server.Fault``, e.g. a proxy's HTML page) carry no
Dfinery headers; paths outside the two export routes get the base server's 404.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from zoneinfo import ZoneInfo

from tap_event_exports.sandbox.server import FakeRequest, FakeResponse, FakeServer

EVENT_COLUMNS = sorted(
    [
        "custom_012",
        "custom_event_p_boolean",
        "custom_event_p_datetime",
        "custom_event_p_double",
        "custom_event_p_double_list",
        "custom_event_p_long",
        "custom_event_p_long_list",
        "custom_event_p_string_list",
        "df_api_version",
        "df_correction_datetime",
        "df_delivery_charge",
        "df_discount",
        "df_event_datetime",
        "df_event_detail_log_id",
        "df_event_log_id",
        "df_event_name",
        "df_items_custom_012391239128",
        "df_items_custom_item_boolean",
        "df_items_custom_item_datetime",
        "df_items_custom_item_double",
        "df_items_custom_item_double_list",
        "df_items_custom_item_long",
        "df_items_custom_item_long_list",
        "df_items_custom_item_string",
        "df_items_custom_item_string_list",
        "df_items_df_category1",
        "df_items_df_category2",
        "df_items_df_category3",
        "df_items_df_category4",
        "df_items_df_category5",
        "df_items_df_discount",
        "df_items_df_item_id",
        "df_items_df_item_name",
        "df_items_df_price",
        "df_items_df_quantity",
        "df_keyword",
        "df_order_id",
        "df_payment_method",
        "df_server_datetime",
        "df_service_id",
        "df_sharing_channel",
        "df_sign_channel",
        "df_source_type",
        "df_total_purchase_amount",
        "df_total_refund_amount",
        "df_unified_id",
        "sum",
    ]
)
SYSTEM_COLUMNS = frozenset(
    {
        "df_unified_id",
        "df_api_version",
        "df_event_name",
        "event_name",
        "df_event_datetime",
        "df_server_datetime",
        "df_correction_datetime",
        "df_event_detail_log_id",
        "df_event_log_id",
    }
)
PROFILE_COLUMNS = [
    "custom_user_datetime",
    "df_gender",
    "df_kakao_ads_optin",
    "df_membership",
    "df_push_ads_optin",
    "df_push_night_ads_optin",
    "df_push_optin",
    "df_sms_ads_optin",
    "df_unified_id",
    "scenario_list_string",
]
EVENT_NAMES = (
    "df_start_session",
    "df_end_session",
    "df_sign_up",
    "df_login",
    "df_purchase",
    "df_view_product",
)
CONDITIONS = {"all", "include", "exclude"}
DAYS_BACK = 30
ENVELOPES = {
    "validation_failure": (40001, "VALIDATION_FAILURE"),
    "internal_server_error": (50000, "INTERNAL_SERVER_ERROR"),
}
"""The API guide's ``status: false`` envelopes (HTTP 200), by fault kind."""
OK_ENVELOPE = {"status": True, "code": 20000, "message": "OK", "data": None}
"""The API guide's success envelope (HTTP 200), shown beside its export-token example."""
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def fail(status: int, code: str, **headers: str) -> FakeResponse:
    """A Dfinery error answer."""
    return FakeResponse.json(status, {"result": "fail", "message": code}, **headers)


def envelope(code: int, message: str) -> FakeResponse:
    """The API guide's HTTP 200 envelope of a failure."""
    return FakeResponse.json(200, {"status": False, "code": code, "message": message, "data": None})


def dotted(moment: dt.datetime) -> str:
    """``2025.1.6 10:35``: Dfinery's minute-precision rendering."""
    return f"{moment.year}.{moment.month}.{moment.day} {moment.hour}:{moment.minute:02d}"


def _uid(rng: random.Random) -> str:
    return "".join(rng.choice(ALNUM) for _ in range(7))


def generate_events(
    *,
    start: dt.date,
    days: int,
    per_day: int,
    timezone: str = "Asia/Seoul",
    seed: int = 7,
    users: int = 40,
) -> list[dict[str, str]]:
    """Rows shaped like Dfinery's sample export, spread over ``days`` local days from ``start``."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    people = [_uid(rng) for _ in range(users)]
    rows: list[dict[str, str]] = []
    for day in range(days):
        midnight = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(0), tzinfo=tz)
        for _ in range(per_day):
            moment = midnight + dt.timedelta(seconds=rng.randrange(86400))
            sent_ms = int(moment.timestamp() * 1000)
            unique = uuid.UUID(int=rng.getrandbits(128), version=4)
            # the sample has both forms: <ms>:<ms>:<uuid> and <ms>:<uuid>
            log_id = (
                f"{sent_ms + rng.randrange(900)}:{sent_ms}:{unique}"
                if rng.random() < 0.5
                else f"{sent_ms}:{unique}"
            )
            name = rng.choice(EVENT_NAMES)
            server = moment + dt.timedelta(milliseconds=rng.randrange(1, 5000))
            base = dict.fromkeys(EVENT_COLUMNS, "")
            base.update(
                {
                    "custom_event_p_boolean": rng.choice(["TRUE", "FALSE"]),
                    "custom_event_p_double_list": "null",
                    "custom_event_p_long_list": rng.choice(["null", '["1","2"]']),
                    "custom_event_p_string_list": "null",
                    "df_api_version": "1.0.0",
                    "df_correction_datetime": dotted(moment),
                    "df_event_datetime": dotted(moment),
                    "df_event_log_id": log_id,
                    "df_event_detail_log_id": log_id,
                    "df_event_name": name,
                    "df_items_custom_item_boolean": "FALSE",
                    "df_items_custom_item_double_list": "null",
                    "df_items_custom_item_long_list": "null",
                    "df_items_custom_item_string_list": "null",
                    "df_server_datetime": (
                        server.strftime("%Y-%m-%d %H:%M:%S.") + f"{server.microsecond // 1000:03d}"
                        if rng.random() < 0.3
                        else dotted(server)
                    ),
                    "df_service_id": "xyroon",
                    "df_source_type": "SDK",
                    "df_unified_id": rng.choice(people),
                }
            )
            if name == "df_sign_up":
                base["df_sign_channel"] = rng.choice(["Kakao", "Naver", "Email"])
            if name == "df_view_product" and rng.random() < 0.3:
                base["df_keyword"] = 'say "hi",\nthen go'
            if name != "df_purchase":
                rows.append(base)
                continue
            base["df_order_id"] = f"order-{rng.randrange(10**6)}"
            base["df_payment_method"] = rng.choice(["card", "bank", "kakaopay"])
            base["df_delivery_charge"] = rng.choice(["0", "2500", "3000"])
            base["df_total_purchase_amount"] = rng.choice(
                ["12000", "3000.5", "12345678901234567.25", "99000"]
            )
            for n in range(1, rng.randint(1, 3) + 1):
                item = dict(base)
                item.update(
                    {
                        "df_event_detail_log_id": f"{log_id}:{n}",
                        "df_items_df_item_id": f"item-{rng.randrange(100)}",
                        "df_items_df_item_name": f"한국 상품 {n}",
                        "df_items_df_price": rng.choice(["3000", "1500.75", "990"]),
                        "df_items_df_quantity": str(rng.randint(1, 4)),
                        "df_items_df_discount": rng.choice(["", "0", "100.5"]),
                        "df_items_df_category1": rng.choice(["fashion", "food", "books"]),
                    }
                )
                rows.append(item)
    return rows


def generate_profiles(n: int, *, seed: int = 3) -> list[dict[str, str]]:
    """User profiles shaped like Dfinery's sample."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    while len(out) < n:
        uid = _uid(rng)
        if uid in seen:
            continue
        seen.add(uid)
        flags = [rng.choice(["true", "false"]) for _ in range(5)]
        out.append(
            {
                "custom_user_datetime": "",
                "df_gender": rng.choice(["Male", "Female", ""]),
                "df_kakao_ads_optin": flags[0],
                "df_membership": rng.choice(["", "gold", "silver"]),
                "df_push_ads_optin": flags[1],
                "df_push_night_ads_optin": flags[2],
                "df_push_optin": flags[3],
                "df_sms_ads_optin": flags[4],
                "df_unified_id": uid,
                "scenario_list_string": rng.choice(["null", '["1","2"]']),
                "df_external_id": f"ext-{uid.lower()}",
            }
        )
    return out


def csv_for(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    """Rows as Dfinery writes them: comma separated, minimal quoting, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().encode()


class DfineryFake(FakeServer):
    """Dfinery's Export API on 127.0.0.1, with switches for its failure modes."""

    def __init__(
        self,
        *,
        events: list[dict[str, str]] | None = None,
        profiles: list[dict[str, str]] | None = None,
        service_id: str = "svc-demo",
        token: str = "dfn-export-token",
        timezone: str = "Asia/Seoul",
        today: dt.date | None = None,
        audiences: dict[str, list[str]] | None = None,
        hourly_limit: int = 100,
        max_concurrent: int = 5,
        delay: float = 0.0,
        port: int = 0,
        memoize: bool = False,
        limit_cycle: str = "1H",
        advertised_remaining: int | None = None,
        clock_aligned: bool = False,
        days_back: int = DAYS_BACK,
    ) -> None:
        """Serve ``events`` and ``profiles``; ``today`` fixes the 30-day limit's reference.

        ``memoize`` keeps each rendered export for identical requests, so a benchmark measures
        the tap rather than the fake's CSV writing (``events`` must not change afterwards).
        ``limit_cycle`` and ``advertised_remaining`` are what the rate-limit headers report
        (default: the hourly export quota and its real remaining count); ``clock_aligned``
        starts quota windows on the clock hour instead of at the fake's creation;
        ``days_back`` is the oldest day (counted back from ``today``) an export may start.
        """
        super().__init__(port=port)
        self.memoize = memoize
        self._rendered: dict[str, bytes] = {}
        self.events = events or []
        self.profiles = profiles or []
        self.service_id = service_id
        self.token = token
        self.tz = ZoneInfo(timezone)
        self._today = today
        self.audiences = audiences or {}
        self.hourly_limit = hourly_limit
        self.max_concurrent = max_concurrent
        self.delay = delay
        self.quota_reset_at: float | None = None
        """Unix time the rate-limit headers give as the reset (default: the window's end)."""
        self.limit_cycle = limit_cycle
        """``x-ratelimit-limit``: the quota period (``1y``, ``1M``, ``1d``, ``1H``, ``1m``, ``1s``)."""
        self.advertised_remaining = advertised_remaining
        """``x-ratelimit-remaining`` on answers that are not refusals (default: the real count)."""
        self.clock_aligned = clock_aligned
        self.days_back = days_back
        self._anchor = time.time()
        self.faults: deque[tuple[str, str, float]] = deque()
        self.bodies: list[dict] = []
        self._quota_lock = threading.Lock()
        self._window: int = -1
        self._used = 0
        self._running = 0

    # --- switches ----------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1, path: str = "", reset_in: float = 1.0) -> None:
        """Make the next ``times`` export requests (to ``path``) fail.

        Kinds: ``500`` (unknown_error), ``query_error``, ``429`` (quota spent, reset in
        ``reset_in`` s), ``concurrency`` (429 with exports left: too many at once), ``cut``
        (body cut mid-way), ``reset`` (no answer), ``client_connection_closed`` (HTTP 200 with
        a JSON failure body), ``validation_failure`` / ``internal_server_error`` (HTTP 200
        with a ``status: false`` envelope), ``ok_envelope`` (the guide's ``status: true``
        envelope with ``data: null``), ``json_answer`` (that envelope holding data: JSON where
        CSV was asked), ``odd_envelope`` (``status: true`` with code 50000, pretty-printed as
        the guide prints its bodies), ``slow`` (answer after ``reset_in`` s).
        """
        for _ in range(times):
            self.faults.append((kind, path, reset_in))

    def _take(self, path: str) -> tuple[str, float] | None:
        with self._quota_lock:
            for index, (kind, where, arg) in enumerate(self.faults):
                if where in path:
                    del self.faults[index]
                    return kind, arg
        return None

    def today(self) -> dt.date:
        """The fake's current date in its timezone."""
        return self._today or dt.datetime.now(self.tz).date()

    # --- rate limits -------------------------------------------------------------------------

    WINDOW_SECONDS = 3600.0

    def _window_bounds(self, now: float) -> tuple[int, float]:
        """The current quota window's number and its end (unix seconds)."""
        anchor = 0.0 if self.clock_aligned else self._anchor
        number = int((now - anchor) // self.WINDOW_SECONDS)
        return number, anchor + (number + 1) * self.WINDOW_SECONDS

    def _reset_ms(self) -> int:
        if self.quota_reset_at is not None:
            return int(self.quota_reset_at * 1000)
        return int(self._window_bounds(time.time())[1] * 1000)

    def remaining(self) -> int:
        """Exports left in the current window."""
        with self._quota_lock:
            self._roll()
            return max(0, self.hourly_limit - self._used)

    def _roll(self) -> None:
        number, _ = self._window_bounds(time.time())
        if number != self._window:
            self._window, self._used = number, 0

    def _limit_headers(
        self, remaining: int | None = None, reset_ms: int | None = None
    ) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers; ``remaining=0`` on refusals."""
        if remaining is None:
            remaining = (
                self.remaining() if self.advertised_remaining is None else self.advertised_remaining
            )
        return {
            "x-ratelimit-limit": self.limit_cycle,
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(reset_ms or self._reset_ms()),
        }

    def _admit(self) -> FakeResponse | None:
        with self._quota_lock:
            self._roll()
            if self._used >= self.hourly_limit:
                return fail(429, "too_many_api_requests", **self._limit_headers(0))
            if self._running >= self.max_concurrent:
                return self._busy(self.hourly_limit - self._used)
            self._used += 1
            self._running += 1
        return None

    def _busy(self, left: int) -> FakeResponse:
        """A refusal for concurrency: 429, with the exports really left in the quota period."""
        if self.advertised_remaining is not None:
            left = self.advertised_remaining
        return fail(429, "too_many_api_requests", **self._limit_headers(left))

    # --- routing -----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse | None:
        """Answer an export request; every answer carries the rate-limit headers."""
        if request.path not in {"/api/v1/export/event", "/api/v1/export/userprofile"}:
            return None
        response = self._route(request)
        if not response.close_before_response:
            refused = response.status == 429  # a concurrency refusal stamps its own
            stamped = self._limit_headers(0 if refused else None)
            for name, value in stamped.items():
                response.headers.setdefault(name, value)
        return response

    def _route(self, request: FakeRequest) -> FakeResponse:
        if request.method != "POST":
            return fail(400, "invalid_parameter")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return fail(401, "unauthorized_token")
        if request.arg("service_id") != self.service_id:
            return fail(400, "invalid_parameter")
        if "application/json" not in request.headers.get("content-type", ""):
            return fail(400, "invalid_parameter")
        try:
            body = request.json()
        except ValueError:
            return fail(400, "invalid_parameter")
        if not isinstance(body, dict):
            return fail(400, "invalid_parameter")
        self.bodies.append(body)
        refused = self._admit()
        if refused is not None:
            return refused
        try:
            fault = self._take(request.path)
            if fault and fault[0] == "slow":
                time.sleep(fault[1])
                fault = None
            if self.delay:
                time.sleep(self.delay)
            if fault:
                kind, arg = fault
                if kind == "500":
                    return fail(500, "unknown_error")
                if kind == "query_error":
                    return fail(500, "query_error")
                if kind == "429":
                    reset = int((time.time() + arg) * 1000)
                    return fail(429, "too_many_api_requests", **self._limit_headers(0, reset))
                if kind == "concurrency":
                    return self._refund_as_busy()
                if kind in ENVELOPES:
                    return envelope(*ENVELOPES[kind])
                if kind == "ok_envelope":  # the API guide's success envelope, no data
                    return FakeResponse.json(200, OK_ENVELOPE)
                if kind == "json_answer":
                    return FakeResponse.json(200, OK_ENVELOPE | {"data": {"rows": 1}})
                if kind == "odd_envelope":  # status true with a failure's code, pretty-printed
                    odd = OK_ENVELOPE | {"code": 50000, "message": "INTERNAL_SERVER_ERROR"}
                    body = json.dumps(odd, indent=2).encode()
                    return FakeResponse(200, body, {"Content-Type": "application/json"})
                if kind == "reset":
                    return FakeResponse(close_before_response=True)
                if kind == "client_connection_closed":
                    return fail(200, "client_connection_closed")
            if request.path.endswith("/event"):
                response = self._export_events(body)
            else:
                response = self._export_profiles(body)
            if fault and fault[0] == "cut" and response.status == 200:
                assert isinstance(response.body, bytes)  # noqa: S101
                response.cut_after = len(response.body) // 2
            return response
        finally:
            with self._quota_lock:
                self._running -= 1

    def _refund_as_busy(self) -> FakeResponse:
        """Refuse an admitted export for concurrency: it no longer counts against the quota."""
        with self._quota_lock:
            self._used -= 1
            left = self.hourly_limit - self._used
        return self._busy(left)

    # --- exports -----------------------------------------------------------------------------

    def _date(self, value: object) -> dt.date | None:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None

    @staticmethod
    def _strings(value: object) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    def _export_events(self, body: dict) -> FakeResponse:
        condition = body.get("events_condition_type")
        properties_condition = body.get("properties_condition_type")
        first = self._date(body.get("from_date"))
        # to_date is "Select" (optional) in the documented table: without it, through today
        last = self.today() if body.get("to_date") is None else self._date(body.get("to_date"))
        if (
            condition not in CONDITIONS
            or properties_condition not in (None, *CONDITIONS)
            or first is None
            or last is None
            or first > last
            or not self._strings(body.get("events"))
            or not self._strings(body.get("properties"))
        ):
            return fail(400, "invalid_parameter")
        if first < self.today() - dt.timedelta(days=self.days_back):
            return fail(400, "exceed_date_range_limit")
        headers = {"Content-Type": "text/csv; charset=utf-8"}
        memo = json.dumps(body, sort_keys=True) if self.memoize else None
        if memo is not None and memo in self._rendered:
            return FakeResponse(200, self._rendered[memo], headers)
        rows = self.expected_events(first, last, body.get("events"), condition)
        columns = self._columns(body.get("properties"), properties_condition)
        data = csv_for(rows, columns)
        if memo is not None:
            self._rendered[memo] = data
        return FakeResponse(200, data, headers)

    def _columns(self, properties: list[str] | None, condition: str | None) -> list[str]:
        if condition in (None, "all") or not properties:
            return EVENT_COLUMNS
        if condition == "include":
            return [c for c in EVENT_COLUMNS if c in SYSTEM_COLUMNS or c in properties]
        return [c for c in EVENT_COLUMNS if c in SYSTEM_COLUMNS or c not in properties]

    def event_day(self, row: dict[str, str]) -> dt.date:
        """The local day of a row's ``df_event_datetime``.

        Both renderings of the sample export are read: ``2025.1.6 10:35`` and
        ``2025-01-06 10:38:10.036`` [seeds/000 sample].
        """
        date_part = row["df_event_datetime"].split(" ")[0]
        year, month, day = (int(p) for p in re.split(r"[.-]", date_part))
        return dt.date(year, month, day)

    def expected_events(
        self,
        first: dt.date,
        last: dt.date,
        events: list[str] | None = None,
        condition: str = "all",
    ) -> list[dict[str, str]]:
        """The rows an export of the inclusive days ``first``..``last`` contains."""
        out = []
        for row in self.events:
            if not first <= self.event_day(row) <= last:
                continue
            name = row["df_event_name"]
            if condition == "include" and name not in (events or []):
                continue
            if condition == "exclude" and name in (events or []):
                continue
            out.append(row)
        return out

    def _export_profiles(self, body: dict) -> FakeResponse:
        condition = body.get("properties_condition_type")
        identities_condition = body.get("identities_condition_type")
        audience = body.get("audience")
        if (
            condition not in CONDITIONS
            or identities_condition not in (None, *CONDITIONS)
            or not self._strings(body.get("properties"))
            or not self._strings(body.get("identities"))
            or (audience is not None and audience not in self.audiences)
        ):
            return fail(400, "invalid_parameter")
        members = set(self.audiences[audience]) if audience else None
        rows = [p for p in self.profiles if members is None or p["df_unified_id"] in members]
        properties = body.get("properties") or []
        columns = [
            c
            for c in PROFILE_COLUMNS
            if c == "df_unified_id"
            or condition == "all"
            or not properties
            or (condition == "include" and c in properties)
            or (condition == "exclude" and c not in properties)
        ]
        if body.get("identities") and identities_condition != "exclude":
            columns = sorted([*columns, "df_external_id"])
        headers = {"Content-Type": "text/csv; charset=utf-8"}
        return FakeResponse(200, csv_for(rows, columns), headers)
