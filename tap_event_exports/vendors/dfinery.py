"""Dfinery (IGAWorks) Export API: synchronous CSV exports of events by date, and user profiles.

``POST /api/v1/export/event?service_id=`` answers with the CSV itself; dates are inclusive
``yyyy-MM-dd`` days read in the service's timezone, at most 30 days back. Errors are JSON
``{"result": "fail", "message": <code>}``, one of them (``client_connection_closed``) on HTTP 200.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_event_exports.engine.contract import (
    BodyFailure,
    ExportSpec,
    Limits,
    Partition,
    SnapshotRequest,
    VendorDialect,
    Windowing,
    WindowRequests,
)
from tap_event_exports.engine.download import Download, download
from tap_event_exports.engine.http import RequestSpec, json_body
from tap_event_exports.engine.windows import DayGranularity, Window
from tap_event_exports.settings import Setting, fail, provider_common

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.runtime import Runtime

BASE_URL = "https://openapi.dfinery.ai"
EXPORT_DAYS_BACK = 30
PROBE_EVENT = "tap_event_exports_connection_check"
"""An event name no service has: its export is a header row."""
MAX_CONCURRENT_EXPORTS = 5
"""Export requests a service may have running at once (Dfinery's rate-limit page)."""
EXPORT_QUOTA = ((100, 3600.0),)
"""Export requests per hour per service, kept on the client side for the whole run."""
CONDITIONS = ("all", "include", "exclude")

EVENT_COLUMNS: dict[str, str] = {
    # system event properties: always exported
    "df_unified_id": "string",
    "df_api_version": "string",
    "df_event_name": "string",
    "event_name": "string",
    "df_event_log_id": "string",
    "df_event_detail_log_id": "string",
    "df_event_datetime": "date-time",
    "df_server_datetime": "date-time",
    "df_correction_datetime": "date-time",
    "df_service_id": "string",
    "df_source_type": "string",
    # standard event properties
    "df_delivery_charge": "number",
    "df_discount": "number",
    "df_keyword": "string",
    "df_order_id": "string",
    "df_payment_method": "string",
    "df_sharing_channel": "string",
    "df_sign_channel": "string",
    "df_total_purchase_amount": "number",
    "df_total_refund_amount": "number",
    # standard item properties (one row per item of a purchase)
    "df_items_df_category1": "string",
    "df_items_df_category2": "string",
    "df_items_df_category3": "string",
    "df_items_df_category4": "string",
    "df_items_df_category5": "string",
    "df_items_df_discount": "number",
    "df_items_df_item_id": "string",
    "df_items_df_item_name": "string",
    "df_items_df_price": "number",
    "df_items_df_quantity": "integer",
}

PROFILE_COLUMNS: dict[str, str] = {
    "df_unified_id": "string",
    "df_external_id": "string",
    "df_gender": "string",
    "df_birth": "string",
    "df_membership": "string",
    "df_kakao_ads_optin": "boolean",
    "df_push_ads_optin": "boolean",
    "df_push_night_ads_optin": "boolean",
    "df_push_optin": "boolean",
    "df_sms_ads_optin": "boolean",
}

HINTS = {
    "unauthorized_token": "the export API token was refused; check dfinery.api_token",
    "invalid_parameter": "a request parameter is missing or malformed",
    "exceed_date_range_limit": (
        f"from_date is older than the {EXPORT_DAYS_BACK} days Dfinery can export"
    ),
    "too_many_api_requests": "export quota exceeded (100 requests per hour, 5 at once)",
    "unknown_error": "unexpected error on Dfinery's side",
    "query_error": "Dfinery's query failed",
    "client_connection_closed": "Dfinery closed the export before it finished",
}
RETRIABLE_CODES = frozenset(
    {"client_connection_closed", "too_many_api_requests", "unknown_error", "query_error"}
)

USER_PROFILE_SETTINGS = (
    Setting("audience", "string", "Audience id to export; default: all users."),
    Setting("properties", "string-list", "User properties to include or exclude."),
    Setting(
        "properties_condition_type",
        "enum",
        "How `properties` applies: all, include or exclude.",
        default="all",
        choices=CONDITIONS,
    ),
    Setting("identities", "string-list", "Identities to export (Dfinery supports df_external_id)."),
    Setting(
        "identities_condition_type",
        "enum",
        "How `identities` applies: all, include or exclude.",
        choices=CONDITIONS,
    ),
)


class DfineryDialect(VendorDialect):
    """How Dfinery authenticates and words its errors."""

    name = "dfinery"

    def __init__(self, token: str) -> None:
        """Sign requests with the export token."""
        self._token = token

    def authenticate(self, request: requests.PreparedRequest) -> None:  # noqa: D102
        request.headers["Authorization"] = f"Bearer {self._token}"

    def error_message(self, response: requests.Response) -> str:  # noqa: D102
        body = json_body(response)
        if isinstance(body, dict) and body.get("message"):
            code = str(body["message"])
            hint = HINTS.get(code)
            return f"{code} ({hint})" if hint else code
        return response.reason or ""

    def rate_limited(self, response: requests.Response, message: str) -> bool:
        """A 429, ``too_many_api_requests``, or ``x-ratelimit-remaining`` at 0.

        Dfinery sends its ``x-ratelimit-*`` headers on every answer; their reset is the end of
        the quota period (often hours away), a wait only on these answers, never on a 500.
        """
        return super().rate_limited(response, message) or message.startswith(
            "too_many_api_requests"
        )

    def body_failure(self, body: t.Any) -> BodyFailure | None:  # noqa: D102
        if not isinstance(body, dict) or body.get("result") != "fail":
            return None
        code = str(body.get("message", "unknown"))
        hint = HINTS.get(code)
        return BodyFailure(
            code in RETRIABLE_CODES,
            f"{code} ({hint})" if hint else code,
            rate_limited=code == "too_many_api_requests",
        )


class Dfinery:
    """The Dfinery provider."""

    key = "dfinery"
    title = "Dfinery"
    description = "Dfinery (IGAWorks) Export API: events by day, and user profiles."
    settings: tuple[Setting, ...] = (
        *provider_common(
            base_url=BASE_URL,
            window="P1D",
            lookback="P1D",
            max_jobs=MAX_CONCURRENT_EXPORTS,
            max_jobs_why="Dfinery allows 5 exports at once per service",
        ),
        Setting("service_id", "string", "Dfinery service id.", required=True),
        Setting(
            "api_token",
            "secret",
            "Export API token (sent as `Authorization: Bearer`).",
            required=True,
        ),
        Setting("events", "string-list", "Event names to include or exclude."),
        Setting(
            "events_condition_type",
            "enum",
            "How `events` applies: all, include or exclude.",
            default="all",
            choices=CONDITIONS,
        ),
        Setting("properties", "string-list", "Event properties to include or exclude."),
        Setting(
            "properties_condition_type",
            "enum",
            "How `properties` applies: all, include or exclude (default: all properties).",
            choices=CONDITIONS,
        ),
        Setting(
            "timezone",
            "timezone",
            "IANA timezone of the API's dates and of naive datetimes in exports.",
            default="Asia/Seoul",
        ),
        Setting(
            "column_types",
            "column-types",
            "Type of any column: string, integer, number, boolean, date-time or array.",
        ),
        Setting(
            "user_profiles",
            "object",
            "Present = the dfinery_user_profiles stream is enabled.",
            fields=USER_PROFILE_SETTINGS,
        ),
    )

    def check(self, block: dict[str, t.Any]) -> None:
        """Cross-field rules the schema alone cannot say."""
        if block["events_condition_type"] != "all" and not block["events"]:
            fail("dfinery.events", "must list events when events_condition_type is not all")
        if block["properties_condition_type"] in {"include", "exclude"} and not block["properties"]:
            fail("dfinery.properties", "must list properties when properties_condition_type is set")
        granularity = DayGranularity(block["timezone"])
        if problem := granularity.check_step(block["window"]):
            fail("dfinery.window", problem)

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """The Dfinery streams a validated block enables."""
        self.check(block)
        policy = runtime.http(
            DfineryDialect(block["api_token"]), block["base_url"], pacing=EXPORT_QUOTA
        )
        limits = Limits(f"dfinery:{block['service_id']}", block["max_concurrent_jobs"])
        base = block["base_url"].rstrip("/")
        service = {"service_id": block["service_id"]}
        granularity = DayGranularity(block["timezone"])

        def describe(window: Window) -> str:
            first, last = granularity.inclusive_dates(window)
            return f"from_date={first} to_date={last}"

        def earliest(now: dt.datetime) -> dt.datetime:
            today = granularity.local_date(now)
            return granularity.midnight(today - dt.timedelta(days=EXPORT_DAYS_BACK))

        def fetch_events(window: Window, _partition: Partition) -> list[Download]:
            first, last = granularity.inclusive_dates(window)
            body: dict[str, t.Any] = {
                "events_condition_type": block["events_condition_type"],
                "from_date": first.isoformat(),
                "to_date": last.isoformat(),
            }
            if block["events"]:
                body["events"] = block["events"]
            if block["properties_condition_type"]:
                body["properties_condition_type"] = block["properties_condition_type"]
            if block["properties"]:
                body["properties"] = block["properties"]
            spec = RequestSpec("POST", f"{base}/api/v1/export/event", params=service, json=body)
            return [download(policy, spec, what=f"dfinery_events: window {describe(window)}")]

        def probe(_partition: Partition) -> None:
            """Today's export of an event no service has: a header row proves token and service."""
            today = granularity.local_date(runtime.now).isoformat()
            body = {
                "events_condition_type": "include",
                "events": [PROBE_EVENT],
                "from_date": today,
                "to_date": today,
            }
            spec = RequestSpec("POST", f"{base}/api/v1/export/event", params=service, json=body)
            download(policy, spec, what="dfinery_events: connection check").discard()

        streams = [
            ExportSpec(
                name="dfinery_events",
                vendor="dfinery",
                columns=EVENT_COLUMNS,
                primary_keys=("df_event_detail_log_id",),
                replication_key="df_event_datetime",
                source=WindowRequests(fetch_events),
                limits=limits,
                probe=probe,
                timezone=block["timezone"],
                windowing=Windowing(
                    granularity=granularity,
                    step=block["window"],
                    lookback=block["lookback"],
                    earliest=earliest,
                    describe=describe,
                ),
                column_types=block["column_types"] or {},
            )
        ]
        profiles = block["user_profiles"]
        if profiles is not None:

            def fetch_profiles(_partition: Partition) -> list[Download]:
                body = {k: v for k, v in profiles.items() if v not in (None, [])}
                spec = RequestSpec(
                    "POST", f"{base}/api/v1/export/userprofile", params=service, json=body
                )
                return [download(policy, spec, what="dfinery_user_profiles: snapshot")]

            streams.append(
                ExportSpec(
                    name="dfinery_user_profiles",
                    vendor="dfinery",
                    columns=PROFILE_COLUMNS,
                    primary_keys=("df_unified_id",),
                    source=SnapshotRequest(fetch_profiles),
                    limits=limits,
                    timezone=block["timezone"],
                    column_types=block["column_types"] or {},
                )
            )
        return streams
