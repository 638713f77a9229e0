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
    StreamShape,
    VendorDialect,
    Windowing,
)
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec, json_body
from tap_event_exports.engine.windows import SecondGranularity, Window, utc
from tap_event_exports.vendors.batch_streams import (
    KIND_STREAMS,
    REACHABILITY,
    USERBASE,
    BatchBlock,
    Kind,
)

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.runtime import Runtime

LOOKBACK_DAYS = 90
JSON_TYPE = {"Content-Type": "application/json"}
"""Sent on status requests too, as the get-status page's example does (they have no body)."""


ERROR_FIELDS = (
    "error_code",
    "errorCode",
    "code",
    "message",
    "error_msg",
    "error_message",
    "errorMessage",
    "description",
    "error",
)
"""Where an error body may word the error: the shape of v1.0's bodies is not documented (only
each error's name, HTTP status and code), so every usual spelling is read."""
REQUEST_ID_FIELDS = ("requestId", "request_id", "id")
"""The create answer's id: the example spells it ``requestId``, the prose "request_id", and the
status answer names the same id ``id``."""


def error_words(body: t.Any) -> str:
    """The words of an error body, codes first, each once (a nested ``error`` object's too)."""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for key in ERROR_FIELDS:
        value = body.get(key)
        if isinstance(value, dict):
            parts.append(error_words(value))
        elif value not in (None, "") and not isinstance(value, list):
            parts.append(str(value))
    return " ".join(dict.fromkeys(part for part in parts if part))


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
        return error_words(json_body(response)) or response.reason or ""


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
        found = (body.get(key) for key in REQUEST_ID_FIELDS) if isinstance(body, dict) else ()
        request_id = next((value for value in found if value not in (None, "")), None)
        if request_id is None or isinstance(request_id, (dict, list, bool)):
            msg = f"batch: {what}: no requestId in the answer: {str(body)[:200]}"
            raise VendorError(msg)
        return str(request_id)

    def status(self, job_id: str, partition: Partition) -> JobStatus:  # noqa: D102
        spec = RequestSpec("GET", f"{self.base}/export/request/{job_id}", headers=JSON_TYPE)
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
        if state == "ERROR":  # nothing says it is final: created again, a bounded number of times
            return JobStatus(Phase.RETRY, message=str(body.get("error_msg") or "ERROR"))
        return JobStatus(Phase.FAILED, message=f"unknown status {state!r}")


class Batch(BatchBlock):
    """The Batch provider: its declaration, fetched by asynchronous export requests."""

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """The Batch streams a validated block enables."""
        policy = runtime.http(BatchDialect(block["rest_api_key"]), block["base_url"])
        limits = Limits(f"batch:{block['api_key']}", block["max_concurrent_jobs"])
        base = f"{block['base_url'].rstrip('/')}/1.0/{block['api_key']}"
        granularity = SecondGranularity()
        ids = block["ids"]
        events = block["events"] or {}

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
            shape: StreamShape,
            route: t.Callable[[Partition], str],
            payload: t.Callable[[Window], dict] | dict,
        ) -> ExportSpec:
            jobs = BatchJobs(policy, base, route, payload, shape.name)
            return ExportSpec.of(
                shape,
                vendor="batch",
                source=JobExports(jobs, policy),
                limits=limits,
                timezone="UTC",
                windowing=windowing if shape.windowed else None,
                delimiter=";",
            )

        def window_body(window: Window, **extra: t.Any) -> dict:
            return {
                "from": stamp(window.start),
                "to": stamp(window.end - granularity.unit),
                **extra,
                "ids": ids,
            }

        streams: list[ExportSpec] = []
        for shape in self.streams(block):
            if shape.name == REACHABILITY:
                streams.append(spec(shape, lambda _p: "/export/reachability/events", window_body))
                continue
            if shape.name == USERBASE:
                streams.append(spec(shape, lambda _p: "/export/userbase", {"ids": ids}))
                continue
            kind, what = KIND_STREAMS[shape.name]
            kind_events = events.get(kind.setting) or kind.default_events

            def route(partition: Partition, kind: Kind = kind, what: str = what) -> str:
                return f"/export/{kind.route}/{partition[kind.partition]}/{what}"

            def payload(window: Window, kind_events: list[str] = kind_events) -> dict:
                return window_body(window, events=kind_events)

            streams.append(spec(shape, route, payload))
        return streams
