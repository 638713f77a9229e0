"""Keen IO extractions: the asynchronous extraction to a CSV file, or the synchronous query.

``api: extract`` (default) creates ``POST /2.0/projects/<id>/<collection>/_extract`` jobs and
polls them until ``complete`` with a ``results_url`` (pre-signed storage: no key sent there).
``api: query`` reads ``GET /3.0/projects/<id>/queries/extraction`` as a stream; a window that
comes back at the API's cap is split and queried again. Both give the same flat records: nested
properties keep their dotted path as column name.
"""

from __future__ import annotations

import json
import logging
import time
import typing as t
import urllib.parse

from tap_event_exports.engine.contract import (
    BodyFailure,
    ExportJobs,
    ExportSpec,
    JobExports,
    JobStatus,
    Limits,
    Partition,
    Phase,
    VendorDialect,
    Windowing,
    WindowRequests,
)
from tap_event_exports.engine.download import Download, download
from tap_event_exports.engine.errors import DataError, VendorError
from tap_event_exports.engine.http import RequestSpec, json_body
from tap_event_exports.engine.jsonrows import ResultCapped, events_to_csv
from tap_event_exports.engine.windows import SecondGranularity, Window, rfc3339
from tap_event_exports.naming import snake_case
from tap_event_exports.settings import Setting, fail, provider_common

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.http import HttpPolicy
    from tap_event_exports.engine.runtime import Runtime

logger = logging.getLogger("tap_event_exports.keen")

BASE_URL = "https://api.keen.io"
QUERY_RESULT_CAP = 100_000
"""Keen's synchronous extraction returns at most this many events."""
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
    Setting("property_name", "string", "Property to filter on (dotted path).", required=True),
    Setting("operator", "enum", "Filter operator.", required=True, choices=OPERATORS),
    Setting("property_value", "any", "Value to compare with (any JSON value)."),
)


class KeenDialect(VendorDialect):
    """How Keen authenticates and words its errors."""

    name = "keen"

    def __init__(self, api_key: str) -> None:
        """Send the key as the raw ``Authorization`` header."""
        self._key = api_key

    def authenticate(self, request: requests.PreparedRequest) -> None:  # noqa: D102
        request.headers["Authorization"] = self._key

    def error_message(self, response: requests.Response) -> str:  # noqa: D102
        body = json_body(response)
        if isinstance(body, dict) and (body.get("message") or body.get("error_code")):
            return f"{body.get('error_code', '')}: {body.get('message', '')}".strip(": ")
        return response.reason or ""

    def body_failure(self, body: t.Any) -> BodyFailure | None:  # noqa: D102
        if isinstance(body, dict) and body.get("error_code"):
            return BodyFailure(False, f"{body['error_code']}: {body.get('message', '')}")
        return None


def timeframe(window: Window) -> dict[str, str]:
    """An absolute timeframe in UTC: Keen reads it as ``[start, end)``."""
    return {"start": rfc3339(window.start), "end": rfc3339(window.end)}


class KeenExtractions(ExportJobs):
    """2.0 extractions to file as export jobs."""

    vendor = "keen"

    def __init__(self, policy: HttpPolicy, url: str, filters: list[dict], stream: str) -> None:
        """``url`` is the collection's ``_extract`` resource."""
        self.policy = policy
        self.url = url
        self.filters = filters
        self.stream = stream

    def create(self, window: Window, partition: Partition) -> str:  # noqa: D102
        body = {"filters": self.filters, "timeframe": timeframe(window)}
        answer = json_body(
            self.policy.request(
                RequestSpec("POST", self.url, json=body), what=f"{self.stream}: create extraction"
            )
        )
        if not isinstance(answer, dict) or not answer.get("_id"):
            msg = f"keen: {self.stream}: no extraction id in the answer: {str(answer)[:200]}"
            raise VendorError(msg)
        return str(answer["_id"])

    def status(self, job_id: str, partition: Partition) -> JobStatus:  # noqa: D102
        spec = RequestSpec("GET", f"{self.url}/{job_id}")
        try:
            response = self.policy.request(spec, what=f"{self.stream}: extraction {job_id}")
        except VendorError as exc:
            if exc.status == 404:
                return JobStatus(Phase.EXPIRED, message="extraction not found")
            raise
        body = json_body(response) or {}
        state = str(body.get("status", ""))
        if state == "complete" and body.get("results_url"):
            return JobStatus(Phase.DONE, files=[RequestSpec("GET", body["results_url"])])
        if state in {"error", "failed"}:
            return JobStatus(Phase.FAILED, message=str(body.get("message") or state))
        return JobStatus(Phase.RUNNING, progress=state)


class Keen:
    """The Keen IO provider."""

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

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """One stream per collection."""
        self.check(block)
        policy = runtime.http(KeenDialect(block["api_key"]), block["base_url"])
        limits = Limits(f"keen:{block['project_id']}", block["max_concurrent_jobs"])
        project = f"{block['base_url'].rstrip('/')}/{{v}}/projects/{block['project_id']}"
        filters = [
            {k: v for k, v in f.items() if k != "property_value" or v is not None}
            for f in block["filters"] or []
        ]
        granularity = SecondGranularity()

        def describe(window: Window) -> str:
            return f"timeframe={rfc3339(window.start)}..{rfc3339(window.end)}"

        windowing = Windowing(
            granularity=granularity,
            step=block["window"],
            lookback=block["lookback"],
            describe=describe,
        )
        streams = []
        for collection in block["collections"]:
            name = f"keen_{snake_case(collection)}"
            quoted = urllib.parse.quote(collection, safe="")
            source: JobExports | WindowRequests
            if block["api"] == "extract":
                jobs = KeenExtractions(
                    policy, f"{project.format(v='2.0')}/{quoted}/_extract", filters, name
                )
                source = JobExports(jobs, policy)
            else:
                url = f"{project.format(v='3.0')}/queries/extraction"
                source = _query_source(
                    policy,
                    url=url,
                    collection=collection,
                    filters=filters,
                    stream=name,
                    describe=describe,
                )
            streams.append(
                ExportSpec(
                    name=name,
                    vendor="keen",
                    columns=COLUMNS,
                    primary_keys=("keen.id",),
                    source=source,
                    limits=limits,
                    timezone="UTC",
                    windowing=windowing,
                    replication_key="keen.timestamp",
                    key_fallback=True,
                    column_types=block["column_types"] or {},
                )
            )
        return streams


def _query_source(
    policy: HttpPolicy,
    *,
    url: str,
    collection: str,
    filters: list[dict],
    stream: str,
    describe: t.Callable[[Window], str],
) -> WindowRequests:
    granularity = SecondGranularity()

    def query(window: Window) -> list[Download]:
        what = f"keen: {stream}: window {describe(window)}"
        params = {
            "event_collection": collection,
            "timeframe": json.dumps(timeframe(window)),
            "filters": json.dumps(filters),
        }
        started = time.monotonic()
        raw = download(policy, RequestSpec("GET", url, params=params), what=what)
        try:
            path, _count = events_to_csv(
                raw.path, prefix="result.item", cap=QUERY_RESULT_CAP, what=what
            )
        except ResultCapped as capped:
            halves = window.halves(granularity)
            if halves is None:
                msg = f"{what}: {capped} within one second; add filters to narrow it"
                raise DataError(msg) from None
            logger.info("%s: %s; splitting in two", what, capped)
            return query(halves[0]) + query(halves[1])
        finally:
            raw.discard()
        size = raw.bytes_received
        return [Download(path, size, size, time.monotonic() - started)]

    return WindowRequests(lambda window, _partition: query(window))
