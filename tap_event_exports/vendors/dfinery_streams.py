"""Dfinery's settings block and the streams it declares: plain data, no HTTP.

Discovery reads this without the SDK or ``requests``; ``vendors/dfinery.py`` adds how the
streams are fetched.
"""

from __future__ import annotations

import typing as t

from tap_event_exports.engine.contract import StreamShape
from tap_event_exports.engine.windows import DayGranularity
from tap_event_exports.settings import Setting, fail, provider_common

BASE_URL = "https://openapi.dfinery.ai"
MAX_CONCURRENT_EXPORTS = 5
"""Export requests a service may have running at once (Dfinery's rate-limit page)."""
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


class DfineryBlock:
    """The ``dfinery`` block: its settings, rules and streams."""

    key = "dfinery"
    title = "Dfinery"
    description = "Dfinery (IGAWorks) Export API: events by day, and user profiles."
    settings: tuple[Setting, ...] = (
        *provider_common(
            base_url=BASE_URL,
            window="P1D",
            lookback="P1D",
            max_jobs=MAX_CONCURRENT_EXPORTS,
            max_jobs_why="Dfinery allows 5 exports at once per service, the most accepted",
            max_jobs_limit=MAX_CONCURRENT_EXPORTS,
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

    def streams(self, block: dict[str, t.Any]) -> list[StreamShape]:
        """Events by day, and the user-profile snapshot where ``user_profiles`` is present."""
        self.check(block)
        column_types = block["column_types"] or {}
        shapes = [
            StreamShape(
                name="dfinery_events",
                columns=EVENT_COLUMNS,
                primary_keys=("df_event_detail_log_id",),
                replication_key="df_event_datetime",
                column_types=column_types,
            )
        ]
        if block["user_profiles"] is not None:
            shapes.append(
                StreamShape(
                    name="dfinery_user_profiles",
                    columns=PROFILE_COLUMNS,
                    primary_keys=("df_unified_id",),
                    windowed=False,
                    column_types=column_types,
                )
            )
        return shapes
