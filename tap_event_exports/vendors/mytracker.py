"""myTracker Raw Data Export API: signed asynchronous exports delivered as gzipped CSV parts.

``POST /api/raw/v1/export/create.json`` (parameters in the query string, every request signed
with AuthHMAC) returns ``idRawExport``; ``GET get.json?idRawExport=`` walks ``In progress`` to
``Success!`` with ``files: [{link, timestampExpires}]``, one ``*.N.csv.gz`` part per link.
``User error occurred`` ("Too many lines in export") means the window must be smaller.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
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
)
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec, json_body
from tap_event_exports.engine.windows import SecondGranularity, Window, utc
from tap_event_exports.vendors.mytracker_streams import (  # noqa: F401 - names callers import
    MyTrackerBlock,
    selector_type,
    stream_name,
)

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.runtime import Runtime

API = "/api/raw/v1/export"
MIN_SPLIT = dt.timedelta(hours=1)
"""Windows are halved on "Too many lines" down to this size; below, the export fails clearly."""
RATE_LIMITS = ((10, 1.0), (100, 60.0), (1000, 3600.0))
"""Requests per API user: 10 a second, 100 a minute, 1000 an hour (documented quotas)."""
ARRAY_ONLY = frozenset({"eventName"})
"""Parameters the API takes only array-based (``eventName[]=a&eventName[]=b``)."""


def sign(method: str, url: str, body: bytes | str | None, user_id: str, secret: str) -> str:
    """The ``Authorization`` header of a request, as myTracker's documentation computes it."""
    if isinstance(body, bytes):
        body = body.decode()
    baseline = "&".join(
        (
            method.upper(),
            urllib.parse.quote(url, safe="~"),
            urllib.parse.quote(body or "", safe="~"),
        )
    )
    digest = hmac.new(secret.encode(), baseline.encode(), hashlib.sha1).digest()
    return f"AuthHMAC {user_id}:{base64.b64encode(digest).decode()}"


class MyTrackerDialect(VendorDialect):
    """How myTracker signs requests and words its errors."""

    name = "mytracker"

    def __init__(self, user_id: str, secret: str) -> None:
        """Sign with the API user id and secret key."""
        self._user_id = user_id
        self._secret = secret

    def authenticate(self, request: requests.PreparedRequest) -> None:  # noqa: D102
        body = request.body
        if body is not None and not isinstance(body, (bytes, str)):
            msg = "myTracker signs a request's whole body: a streamed body cannot be signed"
            raise TypeError(msg)
        request.headers["Authorization"] = sign(
            request.method or "GET", request.url or "", body, self._user_id, self._secret
        )

    def error_message(self, response: requests.Response) -> str:  # noqa: D102
        body = json_body(response)
        if isinstance(body, dict):
            data = body.get("data")
            if not isinstance(data, dict):
                data = {}
            error = data.get("error")
            if not isinstance(error, dict):
                error = {}
            detail = error.get("detail")
            message = body.get("message") or ""
            return f"{message}: {detail}" if detail else str(message)
        return response.reason or ""

    def rate_limited(self, response: requests.Response, message: str) -> bool:
        """A 429, or a 429 envelope (``{"code": 429, …}``) whatever the HTTP status."""
        body = json_body(response)
        return super().rate_limited(response, message) or (
            isinstance(body, dict) and body.get("code") == 429
        )

    def wait_hint(self, response: requests.Response) -> float | None:
        """The longest ``resetInSecond`` among the exceeded quotas of a 429 body."""
        return quota_wait(json_body(response))

    def retriable(self, response: requests.Response, message: str) -> bool:
        """The export queue is full: wait for room rather than fail."""
        return "Maximum number of simultaneous requests" in message

    def body_failure(self, body: t.Any) -> BodyFailure | None:  # noqa: D102
        if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] >= 400:
            code = body["code"]
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            detail = (data.get("error") or {}).get("detail") if data else None
            message = f"{code} {body.get('message', '')} {detail or ''}".strip()
            if code == 429:
                return BodyFailure(True, message, wait=quota_wait(body), rate_limited=True)
            return BodyFailure(code >= 500, message)
        return None


def quota_wait(body: t.Any) -> float | None:
    """The longest ``resetInSecond`` among the exceeded quotas of a 429 envelope."""
    try:
        quotas = body["data"]["error"]["info"]["quotas"]
    except (KeyError, TypeError):
        return None
    if not isinstance(quotas, list):
        return None
    waits = []
    for quota in quotas:
        if isinstance(quota, dict) and quota.get("exceeded"):
            try:
                waits.append(float(quota.get("resetInSecond", 0)))
            except (TypeError, ValueError):
                continue
    return max(waits) if waits else None


class MyTrackerJobs(ExportJobs):
    """Raw data export requests as export jobs."""

    vendor = "mytracker"

    def __init__(
        self, policy: HttpPolicy, base: str, stream: str, parameters: t.Callable[[Window], list]
    ) -> None:
        """``parameters`` gives the create call's query of a window."""
        self.policy = policy
        self.base = base
        self.stream = stream
        self.parameters = parameters

    def create(self, window: Window, partition: Partition) -> str:  # noqa: D102
        spec = RequestSpec("POST", f"{self.base}{API}/create.json", params=self.parameters(window))
        body = json_body(self.policy.request(spec, what=f"{self.stream}: create raw export"))
        try:
            return str(body["data"]["idRawExport"])
        except (KeyError, TypeError):
            msg = f"mytracker: {self.stream}: no idRawExport in the answer: {str(body)[:200]}"
            raise VendorError(msg) from None

    def status(self, job_id: str, partition: Partition) -> JobStatus:  # noqa: D102
        spec = RequestSpec("GET", f"{self.base}{API}/get.json", params={"idRawExport": job_id})
        try:
            response = self.policy.request(spec, what=f"{self.stream}: raw export {job_id}")
        except VendorError as exc:
            if exc.status == 404:
                return JobStatus(Phase.EXPIRED, message="raw export not found")
            raise
        data = (json_body(response) or {}).get("data") or {}
        state = str(data.get("status", ""))
        if state == "In progress":
            return JobStatus(Phase.RUNNING, progress=str(data.get("progress", "")))
        if state.startswith("Success"):
            files = sorted(data.get("files") or [], key=_part_number)
            now = time.time()
            if any(float(f.get("timestampExpires") or now + 1) <= now for f in files):
                return JobStatus(Phase.EXPIRED, message="the export's file links expired")
            return JobStatus(Phase.DONE, files=[RequestSpec("GET", f["link"]) for f in files])
        detail = str(data.get("errorMessage") or data.get("error") or state)
        if state == "Error occurred":
            return JobStatus(Phase.RETRY, message=detail)
        if state == "User error occurred" and re.search(r"too (many lines|much)", detail, re.I):
            return JobStatus(Phase.TOO_LARGE, message=detail)
        if state == "Canceled by user":
            return JobStatus(Phase.FAILED, message="the export was canceled by a user")
        return JobStatus(Phase.FAILED, message=f"{state}: {detail}")

    def cancel(self, job_id: str) -> bool:
        """Cancel an export that no later run will resume."""
        spec = RequestSpec("GET", f"{self.base}{API}/cancel.json", params={"idRawExport": job_id})
        self.policy.request(spec, what=f"{self.stream}: cancel raw export {job_id}")
        return True


def _part_number(file: dict) -> int:
    match = re.search(r"\.(\d+)\.csv(\.gz)?$", urllib.parse.urlsplit(file.get("link", "")).path)
    return int(match.group(1)) if match else 0


def _list_value(value: t.Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


class MyTracker(MyTrackerBlock):
    """The myTracker provider: its declaration, fetched by signed raw-data export jobs."""

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """One stream per export."""
        shapes = self.streams(block)
        policy = runtime.http(
            MyTrackerDialect(block["api_user_id"], block["api_secret_key"]),
            block["base_url"],
            pacing=RATE_LIMITS,
        )
        limits = Limits(f"mytracker:{block['api_user_id']}", block["max_concurrent_jobs"])
        base = block["base_url"].rstrip("/")
        granularity = SecondGranularity()
        timezone = block["timezone"]

        def describe(window: Window) -> str:
            last = window.end - granularity.unit
            return f"tsFrom={int(window.start.timestamp())} tsTo={int(last.timestamp())}"

        streams = []
        for export, shape in zip(block["exports"], shapes, strict=True):
            name = shape.name
            filters = export["filters"] or {}

            def parameters(window: Window, export: dict = export, filters: dict = filters) -> list:
                query: list[tuple[str, str]] = [
                    ("event", export["event"]),
                    ("selectors", ",".join(export["selectors"])),
                    ("tsFrom", str(int(utc(window.start).timestamp()))),
                    ("tsTo", str(int(utc(window.end - granularity.unit).timestamp()))),
                    ("timezone", timezone),
                ]
                for key, value in filters.items():
                    if key in ARRAY_ONLY:
                        query.extend((f"{key}[]", v) for v in _list_value(value))
                    elif isinstance(value, list):
                        query.append((key, ",".join(str(v) for v in value)))
                    else:
                        query.append((key, str(value)))
                return query

            jobs = MyTrackerJobs(policy, base, name, parameters)
            streams.append(
                ExportSpec.of(
                    shape,
                    vendor="mytracker",
                    source=JobExports(jobs, policy, split=granularity, min_split=MIN_SPLIT),
                    limits=limits,
                    timezone=timezone,
                    lists="quoted",
                    windowing=Windowing(
                        granularity=granularity,
                        step=block["window"],
                        lookback=block["lookback"],
                        describe=describe,
                    ),
                )
            )
        return streams
