"""Keen IO's settings block and the streams it declares: plain data, no HTTP.

Discovery reads this without the SDK or ``requests``; ``vendors/keen.py`` adds how the
streams are fetched.
"""

from __future__ import annotations

import typing as t

from tap_event_exports.engine.contract import StreamShape
from tap_event_exports.naming import snake_case
from tap_event_exports.settings import Setting, fail, provider_common

BASE_URL = "https://api.keen.io"
OPERATORS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "exists",
    "in",
    "contains",
    "not_contains",
    "within",
)
COLUMNS = {"keen.id": "string", "keen.timestamp": "date-time", "keen.created_at": "date-time"}
FILTER_SETTINGS = (
    Setting(
        "property_name",
        "string",
        "Property to filter on: its dotted column name (`user.email`, `keen.timestamp`) or its "
        "2.0 name (`body:user:email`, `keen:timestamp`, `header:timestamp`); each API is sent "
        "the spelling it documents (2.0 `body:` colon paths, 3.0 dotted paths).",
        required=True,
    ),
    Setting("operator", "enum", "Filter operator.", required=True, choices=OPERATORS),
    Setting("property_value", "any", "Value to compare with (any JSON value)."),
)


def stream_name(collection: str) -> str:
    """``Purchases v2`` → ``keen_purchases_v2``."""
    return f"keen_{snake_case(collection)}"


class KeenBlock:
    """The ``keen`` block: its settings, rules and streams (one per collection)."""

    key = "keen"
    title = "Keen IO"
    description = "Keen IO extractions of event collections (extraction files or queries)."
    settings: tuple[Setting, ...] = (
        *provider_common(
            base_url=BASE_URL,
            window="P1D",
            lookback="PT2H",
            max_jobs=4,
            max_jobs_why="default 4; Keen runs about 24 queries of a project at once",
        ),
        Setting("project_id", "string", "Keen project id.", required=True),
        Setting(
            "api_key", "secret", "Read or master key (sent as `Authorization`).", required=True
        ),
        Setting("collections", "string-list", "Event collections, one stream each.", required=True),
        Setting(
            "filters",
            "object-list",
            "Filters applied to every extraction: list of {property_name, operator, "
            "property_value}; operators eq, ne, lt, lte, gt, gte, exists, in, contains, "
            "not_contains, within.",
            fields=FILTER_SETTINGS,
        ),
        Setting(
            "api",
            "enum",
            "extract: 2.0 extraction file (asynchronous); query: 3.0 synchronous extraction.",
            default="extract",
            choices=("extract", "query"),
        ),
        Setting(
            "column_types",
            "column-types",
            "Type of any column: string, integer, number, boolean, date-time or array.",
        ),
    )

    def check(self, block: dict[str, t.Any]) -> None:
        """Cross-field rules."""
        if not block["collections"]:
            fail("keen.collections", "must list at least one event collection")
        names = [snake_case(c) for c in block["collections"]]
        for index, name in enumerate(names):
            if not name:
                fail(f"keen.collections[{index}]", "must contain letters or digits")
            if names.count(name) > 1:
                fail(f"keen.collections[{index}]", f"gives the stream name keen_{name} twice")

    def streams(self, block: dict[str, t.Any]) -> list[StreamShape]:
        """One stream per collection, in the order listed."""
        self.check(block)
        return [
            StreamShape(
                name=stream_name(collection),
                columns=COLUMNS,
                primary_keys=("keen.id",),
                replication_key="keen.timestamp",
                column_types=block["column_types"] or {},
            )
            for collection in block["collections"]
        ]
