"""A fake of Dfinery's Export API, as documented.

``POST /api/v1/export/event?service_id=`` and ``/api/v1/export/userprofile`` answer with a CSV
(alphabetical columns, CRLF, ``null`` and list values, purchase items one row each), or with
``{"result": "fail", "message": <code>}``. Exports reach back 30 days; 100 exports per hour and
5 at once; rate-limit headers in milliseconds, as the documentation's examples show.
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
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def fail(status: int, code: str, **headers: str) -> FakeResponse:
    """A Dfinery error answer."""
    return FakeResponse.json(status, {"result": "fail", "message": code}, **headers)


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
            log_id = f"{sent_ms + rng.randrange(900)}:{sent_ms}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
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
    out = []
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
    ) -> None:
        """Serve ``events`` and ``profiles``; ``today`` fixes the 30-day limit's reference.

        ``memoize`` keeps each rendered export for identical requests, so a benchmark measures
        the tap rather than the fake's CSV writing (``events`` must not change afterwards).
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
        """Unix time the hourly quota resets (default: the end of the current hour)."""
        self.faults: deque[tuple[str, str, float]] = deque()
        self.bodies: list[dict] = []
        self._quota_lock = threading.Lock()
        self._hour: int = -1
        self._used = 0
        self._running = 0

    # --- switches ----------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1, path: str = "", reset_in: float = 1.0) -> None:
        """Make the next ``times`` export requests (to ``path``) fail.

        Kinds: ``500`` (unknown_error), ``query_error``, ``429`` (reset in ``reset_in`` s),
        ``cut`` (body cut mid-way), ``reset`` (no answer), ``client_connection_closed``
        (HTTP 200 with a JSON failure body), ``slow`` (answer after ``reset_in`` s).
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

    def _reset_ms(self) -> int:
        if self.quota_reset_at is not None:
            return int(self.quota_reset_at * 1000)
        now = time.time()
        return int((now - now % 3600 + 3600) * 1000)

    def _limit_headers(self, remaining: int, reset_ms: int | None = None) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "1H",
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(reset_ms or self._reset_ms()),
        }

    def _admit(self) -> FakeResponse | None:
        with self._quota_lock:
            hour = int(time.time() // 3600)
            if hour != self._hour:
                self._hour, self._used = hour, 0
            if self._used >= self.hourly_limit or self._running >= self.max_concurrent:
                return fail(429, "too_many_api_requests", **self._limit_headers(0))
            self._used += 1
            self._running += 1
        return None

    # --- routing -----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse | None:  # noqa: D102
        if request.path not in {"/api/v1/export/event", "/api/v1/export/userprofile"}:
            return None
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
        first, last = self._date(body.get("from_date")), self._date(body.get("to_date"))
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
        if first < self.today() - dt.timedelta(days=DAYS_BACK):
            return fail(400, "exceed_date_range_limit")
        remaining = self.hourly_limit - self._used
        headers = {"Content-Type": "text/csv; charset=utf-8", **self._limit_headers(remaining)}
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
        """The local day of a row's ``df_event_datetime``."""
        date_part = row["df_event_datetime"].split(" ")[0]
        year, month, day = (int(p) for p in date_part.split("."))
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
