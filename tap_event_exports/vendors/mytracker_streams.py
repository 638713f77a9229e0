"""myTracker's settings block and the streams it declares: plain data, no HTTP.

Discovery reads this without the SDK or ``requests``; ``vendors/mytracker.py`` adds how the
streams are fetched.
"""

from __future__ import annotations

import re
import typing as t

from tap_event_exports.engine.contract import SYNTHETIC_KEY, StreamShape
from tap_event_exports.naming import snake_case
from tap_event_exports.settings import Setting, fail, provider_common

BASE_URL = "https://tracker.my.com"
CREATE_PARAMETERS = (
    "idApp",
    "SDKKey",
    "idAccount",
    "idAd",
    "idCampaign",
    "idCountry",
    "idProject",
    "idPartner",
    "isVerified",
    "idPurchaseType",
    "eventName",
    "eventNameInvert",
    "availabilityTsFrom",
    "availabilityTsTo",
    "rooted",
    "idAdMediator",
    "idSegment",
)
EXPORT_SETTINGS = (
    Setting("event", "string", "Event to export (Events dictionary): installs...", required=True),
    Setting("selectors", "string-list", "Fields to export (Selectors dictionary).", required=True),
    Setting(
        "filters",
        "any",
        "Other create parameters: idApp, SDKKey, idCampaign, eventName, eventNameInvert, ...",
    ),
)


def selector_type(name: str) -> str:
    """The column type of a known selector: timestamps, ids, titles and list parameters.

    ISO 3166 codes are strings: ``*ISOAlpha2`` letters, and ``*ISONumeric`` three digits with
    their leading zeros (``040``), not numbers.
    """
    if name in {"params.name", "params.value"}:
        return "array"
    if "ISOAlpha" in name or "ISONumeric" in name:
        return "string"
    if name in {
        "SDKKey",
        "dtEvent",
        "eventName",
        "eventValue",
        "customUserId",
    }:
        return "string"
    if re.fullmatch(r"ts[A-Z]\w*", name):
        return "date-time"
    if name.endswith("Title") or name.endswith("Name"):
        return "string"
    if re.fullmatch(r"id[A-Z]\w*", name) and not name.startswith("idfa"):
        return "integer"
    if name.startswith("count") or name.startswith("screen") or name in {"dpi", "xdpi", "ydpi"}:
        return "number"
    if name in {"adTrackingEnabled", "bluetoothEnabled", "rooted"}:
        return "integer"
    return "string"


def stream_name(event: str) -> str:
    """``customEvents`` → ``mytracker_custom_events``."""
    return f"mytracker_{snake_case(event)}"


class MyTrackerBlock:
    """The ``mytracker`` block: its settings, rules and streams (one per export)."""

    key = "mytracker"
    title = "myTracker"
    description = "myTracker Raw Data Export API: signed asynchronous exports of raw events."
    settings: tuple[Setting, ...] = (
        *provider_common(
            base_url=BASE_URL,
            window="P1D",
            lookback="P1D",
            max_jobs=4,
            max_jobs_why="default 4; requests are also paced to the API user's quotas",
        ),
        Setting("api_user_id", "string", "API User ID (profile → API Credentials).", required=True),
        Setting(
            "api_secret_key",
            "secret",
            "API Secret Key; every request is signed with it (AuthHMAC).",
            required=True,
        ),
        Setting(
            "exports",
            "object-list",
            "Exports, one stream each.",
            required=True,
            fields=EXPORT_SETTINGS,
        ),
        Setting("timezone", "timezone", "Timezone sent with every export.", default="UTC"),
        Setting(
            "column_types",
            "column-types",
            "Type of any column: string, integer, number, boolean, date-time or array.",
        ),
    )

    def check(self, block: dict[str, t.Any]) -> None:
        """Cross-field rules."""
        names = [stream_name(e["event"]) for e in block["exports"]]
        for index, export in enumerate(block["exports"]):
            filters = export["filters"] or {}
            if not isinstance(filters, dict):
                fail(f"mytracker.exports[{index}].filters", "must be an object")
            unknown = sorted(set(filters) - set(CREATE_PARAMETERS))
            if unknown:
                fail(
                    f"mytracker.exports[{index}].filters.{unknown[0]}",
                    f"unknown create parameter (known: {', '.join(CREATE_PARAMETERS)})",
                )
            if names.count(names[index]) > 1:
                fail(f"mytracker.exports[{index}].event", f"{export['event']} is listed twice")

    def streams(self, block: dict[str, t.Any]) -> list[StreamShape]:
        """One stream per export, keyed by the synthetic key; ``tsEvent`` is its event time."""
        self.check(block)
        shapes = []
        for export in block["exports"]:
            columns = {selector: selector_type(selector) for selector in export["selectors"]}
            shapes.append(
                StreamShape(
                    name=stream_name(export["event"]),
                    columns=columns,
                    primary_keys=(SYNTHETIC_KEY,),
                    replication_key="tsEvent" if "tsEvent" in columns else None,
                    synthetic_key=True,
                    column_types=block["column_types"] or {},
                )
            )
        return shapes
