"""Batch's settings block and the streams it declares: plain data, no HTTP.

Discovery reads this without the SDK or ``requests``; ``vendors/batch.py`` adds how the
streams are fetched.
"""

from __future__ import annotations

import typing as t

from tap_event_exports.engine.contract import SYNTHETIC_KEY, Partition, StreamShape
from tap_event_exports.settings import Setting, fail, provider_common

BASE_URL = "https://api.batch.com"
DEFAULT_IDS = ["install_id", "custom_id", "advertising_id"]
PUSH_EVENTS = ["push_sent", "push_open", "push_error"]
IN_APP_EVENTS = ["inapp_shown", "inapp_clicked", "inapp_closed"]


class Kind(t.NamedTuple):
    """One kind of partitioned export (push campaigns, transactional groups, in-app campaigns)."""

    setting: str
    stream: str
    route: str
    partition: str
    default_events: list[str]
    extra_event_columns: dict[str, str]


KINDS = (
    Kind("push_campaigns", "push_campaign", "campaign", "campaign_token", PUSH_EVENTS, {}),
    Kind(
        "transactional_groups",
        "transactional",
        "transactional",
        "group_id",
        PUSH_EVENTS,
        {"transactional_token": "string"},
    ),
    Kind(
        "in_app_campaigns",
        "in_app_campaign",
        "in-app-campaign",
        "campaign_token",
        IN_APP_EVENTS,
        {"cta": "string", "cta_position": "integer"},
    ),
)
EXPORTS = ("events", "ids")
"""What each kind exports, one stream each: ``batch_<kind>_events`` and ``batch_<kind>_ids``."""
KIND_STREAMS = {f"batch_{kind.stream}_{what}": (kind, what) for kind in KINDS for what in EXPORTS}
REACHABILITY = "batch_reachability_events"
USERBASE = "batch_userbase"

ID_COLUMNS = {"install_id": "string", "custom_id": "string", "advertising_id": "string"}
EVENT_COLUMNS = {**ID_COLUMNS, "event_date": "date-time", "event_type": "string"}
IDS_COLUMNS = {**ID_COLUMNS, "event_type": "string"}
REACHABILITY_COLUMNS = {
    **EVENT_COLUMNS,
    "is_reachable": "boolean",
    "is_optin": "boolean",
    "has_custom_id": "boolean",
}
USERBASE_COLUMNS = {
    **ID_COLUMNS,
    "is_optin_push": "boolean",
    "install_date": "date-time",
    "last_start_date": "date-time",
    "smart_segment": "string",
}

EVENTS_SETTINGS = tuple(
    Setting(kind.setting, "string-list", f"Events to export for {kind.setting} (default: all).")
    for kind in KINDS
)


def _shape(
    name: str,
    columns: dict[str, str],
    column_types: dict[str, str],
    *,
    windowed: bool = True,
    partitions: list[Partition] | None = None,
    replication_key: str | None = None,
) -> StreamShape:
    """Windowed exports are keyed by the synthetic key, the userbase snapshot by install id."""
    return StreamShape(
        name=name,
        columns=columns,
        primary_keys=(SYNTHETIC_KEY,) if windowed else ("install_id",),
        windowed=windowed,
        replication_key=replication_key,
        synthetic_key=windowed,
        partitions=partitions or [],
        column_types=column_types,
    )


class BatchBlock:
    """The ``batch`` block: its settings and streams."""

    key = "batch"
    title = "Batch"
    description = (
        "Batch (batch.com) Export API: campaign, transactional, in-app, reachability and "
        "userbase exports."
    )
    settings: tuple[Setting, ...] = (
        *provider_common(
            base_url=BASE_URL,
            window="P1D",
            lookback="P1D",
            max_jobs=4,
            max_jobs_why="default 4; Batch documents no limit of its own",
        ),
        Setting(
            "api_key", "string", "The app's Batch API key (Live), part of every URL.", required=True
        ),
        Setting(
            "rest_api_key",
            "secret",
            "Company REST API key (sent as `X-Authorization`).",
            required=True,
        ),
        Setting("push_campaigns", "string-list", "Push campaign tokens to export."),
        Setting("transactional_groups", "string-list", "Transactional group ids to export."),
        Setting("in_app_campaigns", "string-list", "In-app campaign tokens to export."),
        Setting(
            "events",
            "object",
            "Events per kind (default: every event the kind offers).",
            fields=EVENTS_SETTINGS,
        ),
        Setting("ids", "string-list", "Identifiers to export.", default=DEFAULT_IDS),
        Setting("reachability", "boolean", "Export reachability events.", default=False),
        Setting("userbase", "boolean", "Export the userbase snapshot.", default=False),
        Setting(
            "column_types",
            "column-types",
            "Type of any column: string, integer, number, boolean, date-time or array.",
        ),
    )

    def streams(self, block: dict[str, t.Any]) -> list[StreamShape]:
        """Events and ids of each kind with tokens (one partition per token), then the rest."""
        if block["userbase"] and "install_id" not in (block["ids"] or DEFAULT_IDS):
            fail("batch.ids", "must include install_id when userbase is true (its key)")
        column_types = block["column_types"] or {}
        shapes: list[StreamShape] = []
        for kind in KINDS:
            tokens = block[kind.setting] or []
            if not tokens:
                continue
            partitions: list[Partition] = [{kind.partition: token} for token in tokens]
            for what in EXPORTS:
                columns = (
                    {**EVENT_COLUMNS, **kind.extra_event_columns}
                    if what == "events"
                    else IDS_COLUMNS
                )
                shapes.append(
                    _shape(
                        f"batch_{kind.stream}_{what}",
                        columns,
                        column_types,
                        partitions=partitions,
                        replication_key="event_date" if what == "events" else None,
                    )
                )
        if block["reachability"]:
            shapes.append(
                _shape(
                    REACHABILITY, REACHABILITY_COLUMNS, column_types, replication_key="event_date"
                )
            )
        if block["userbase"]:
            shapes.append(_shape(USERBASE, USERBASE_COLUMNS, column_types, windowed=False))
        return shapes
