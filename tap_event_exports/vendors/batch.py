"""Batch (batch.com) Export API v1.0: asynchronous export requests of campaign and app events.

``POST /1.0/<api_key>/export/<kind>/...`` answers 202 ``{"requestId"}``; ``GET
/1.0/<api_key>/export/request/<id>`` walks ``CREATED``/``PENDING`` to ``SUCCESS`` with a
``file_url`` on the API that redirects (302) to the file, a ``;``-separated CSV. Raw events are
kept 90 days; ``from``/``to`` are UTC ``YYYY-MM-DDTHH:MM:SS``.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_event_exports.engine.contract import (
    ExportJobs,
    ExportSpec,
    JobExports,
    JobStatus,
    Limits,
    Partition,
    Phase,
    VendorDialect,
    Windowing,
)
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec, json_body
from tap_event_exports.engine.windows import SecondGranularity, Window, utc
from tap_event_exports.settings import Setting, provider_common

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.runtime import Runtime

BASE_URL = "https://api.batch.com"
LOOKBACK_DAYS = 90
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


class BatchDialect(VendorDialect):
    """How Batch authenticates and words its errors."""

    name = "batch"
    retry_statuses = frozenset({409})
    """409: "the user in the POST data is currently being processed": wait and retry."""

    def __init__(self, rest_api_key: str) -> None:
        """Authenticate with the company REST API key."""
        self._key = rest_api_key

    def authenticate(self, request: requests.PreparedRequest) -> None:  # noqa: D102
        request.headers["X-Authorization"] = self._key

    def error_message(self, response: requests.Response) -> str:  # noqa: D102
        body = json_body(response)
        if isinstance(body, dict):
            parts = [
                str(body[k])
                for k in ("error_code", "code", "message", "error_msg", "error")
                if body.get(k) not in (None, "")
            ]
            if parts:
                return " ".join(dict.fromkeys(parts))
        return response.reason or ""


class BatchJobs(ExportJobs):
    """Batch export requests as export jobs."""

    vendor = "batch"

    def __init__(
        self,
        policy: HttpPolicy,
        base: str,
        route: t.Callable[[Partition], str],
        payload: t.Callable[[Window], dict] | dict,
        stream: str,
    ) -> None:
        """Create requests at ``route`` of a partition with ``payload``.

        ``payload`` gives the body of a window (a function), or is the snapshot's body (a dict).
        """
        self.policy = policy
        self.base = base
        self.route = route
        self.payload = payload
        self.stream = stream

    def create(self, window: Window, partition: Partition) -> str:  # noqa: D102
        if isinstance(self.payload, dict):
            msg = f"batch: {self.stream} is a snapshot"
            raise TypeError(msg)
        return self._create(self.payload(window), partition)

    def create_snapshot(self, partition: Partition) -> str:  # noqa: D102
        if not isinstance(self.payload, dict):
            msg = f"batch: {self.stream} exports windows"
            raise TypeError(msg)
        return self._create(self.payload, partition)

    def _create(self, payload: dict, partition: Partition) -> str:
        what = f"{self.stream}: create export request"
        spec = RequestSpec("POST", self.base + self.route(partition), json=payload)
        body = json_body(self.policy.request(spec, what=what))
        request_id = body.get("requestId") if isinstance(body, dict) else None
        if not request_id:
            msg = f"batch: {what}: no requestId in the answer: {str(body)[:200]}"
            raise VendorError(msg)
        return str(request_id)

    def status(self, job_id: str, partition: Partition) -> JobStatus:  # noqa: D102
        spec = RequestSpec("GET", f"{self.base}/export/request/{job_id}")
        try:
            response = self.policy.request(spec, what=f"{self.stream}: request {job_id}")
        except VendorError as exc:
            if exc.status == 404:
                return JobStatus(Phase.EXPIRED, message="request not found")
            raise
        body = json_body(response) or {}
        state = str(body.get("status", "")).upper()
        if state in {"CREATED", "PENDING", "RUNNING"}:
            return JobStatus(Phase.RUNNING, progress=state.lower())
        if state == "SUCCESS":
            url = body.get("file_url")
            if not url:
                return JobStatus(Phase.FAILED, message="SUCCESS without a file_url")
            return JobStatus(Phase.DONE, files=[RequestSpec("GET", url)])
        if state == "EXPIRED":
            return JobStatus(Phase.EXPIRED, message="the export file expired")
        if state == "ERROR":
            return JobStatus(Phase.FAILED, message=str(body.get("error_msg") or "ERROR"))
        return JobStatus(Phase.FAILED, message=f"unknown status {state!r}")


class Batch:
    """The Batch provider."""

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

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """The Batch streams a validated block enables."""
        policy = runtime.http(BatchDialect(block["rest_api_key"]), block["base_url"])
        limits = Limits(f"batch:{block['api_key']}", block["max_concurrent_jobs"])
        base = f"{block['base_url'].rstrip('/')}/1.0/{block['api_key']}"
        granularity = SecondGranularity()
        ids = block["ids"]
        events = block["events"] or {}
        column_types = block["column_types"] or {}

        def stamp(value: dt.datetime) -> str:
            return utc(value).strftime("%Y-%m-%dT%H:%M:%S")

        def describe(window: Window) -> str:
            return f"from={stamp(window.start)} to={stamp(window.end - granularity.unit)}"

        def earliest(now: dt.datetime) -> dt.datetime:
            return granularity.floor(now - dt.timedelta(days=LOOKBACK_DAYS))

        windowing = Windowing(
            granularity=granularity,
            step=block["window"],
            lookback=block["lookback"],
            earliest=earliest,
            describe=describe,
        )

        def spec(
            name: str,
            route: t.Callable[[Partition], str],
            payload: t.Callable[[Window], dict] | dict,
            columns: dict[str, str],
            *,
            windowed: bool = True,
            partitions: list[Partition] | None = None,
            replication_key: str | None = None,
        ) -> ExportSpec:
            jobs = BatchJobs(policy, base, route, payload, name)
            return ExportSpec(
                name=name,
                vendor="batch",
                columns=columns,
                primary_keys=("_record_id",) if windowed else ("install_id",),
                source=JobExports(jobs, policy),
                limits=limits,
                timezone="UTC",
                windowing=windowing if windowed else None,
                replication_key=replication_key,
                delimiter=";",
                synthetic_key=windowed,
                partitions=partitions or [],
                column_types=column_types,
            )

        def window_body(window: Window, **extra: t.Any) -> dict:
            return {
                "from": stamp(window.start),
                "to": stamp(window.end - granularity.unit),
                **extra,
                "ids": ids,
            }

        streams: list[ExportSpec] = []
        for kind in KINDS:
            tokens = block[kind.setting] or []
            if not tokens:
                continue
            partitions = [{kind.partition: token} for token in tokens]
            kind_events = events.get(kind.setting) or kind.default_events
            for what in ("events", "ids"):

                def route(partition: Partition, kind: Kind = kind, what: str = what) -> str:
                    return f"/export/{kind.route}/{partition[kind.partition]}/{what}"

                def payload(window: Window, kind_events: list[str] = kind_events) -> dict:
                    return window_body(window, events=kind_events)

                columns = (
                    {**EVENT_COLUMNS, **kind.extra_event_columns}
                    if what == "events"
                    else IDS_COLUMNS
                )
                streams.append(
                    spec(
                        f"batch_{kind.stream}_{what}",
                        route,
                        payload,
                        columns,
                        partitions=partitions,
                        replication_key="event_date" if what == "events" else None,
                    )
                )
        if block["reachability"]:
            streams.append(
                spec(
                    "batch_reachability_events",
                    lambda _p: "/export/reachability/events",
                    window_body,
                    REACHABILITY_COLUMNS,
                    replication_key="event_date",
                )
            )
        if block["userbase"]:
            streams.append(
                spec(
                    "batch_userbase",
                    lambda _p: "/export/userbase",
                    {"ids": ids},
                    USERBASE_COLUMNS,
                    windowed=False,
                )
            )
        return streams
