"""Keen IO extractions: the asynchronous extraction to a CSV file, or the synchronous query.

``api: extract`` (default) creates ``POST /2.0/projects/<id>/<collection>/_extract`` jobs and
polls them until ``complete`` with a ``results_url`` (pre-signed storage: no key sent there).
``api: query`` reads ``GET /3.0/projects/<id>/queries/extraction`` as a stream; a window that
comes back at the API's cap, that Keen stops at its query time limit (any 504), or that gets no
answer within ``request_timeout`` (300 s by default, Keen's own limit) is split and queried
again. Both give the same flat records: nested properties keep their dotted path as column
name. Filters name properties by dotted path or by 2.0's colon path; each API is sent the
spelling it documents. Over its rate limit Keen answers 429 and blocks the rest of the minute.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import shutil
import tempfile
import time
import typing as t
import urllib.parse

import requests

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
from tap_event_exports.engine.csv_blocks import first_line_break
from tap_event_exports.engine.download import Download, download
from tap_event_exports.engine.errors import DataError, RetriableError, VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec, json_body, retry_after
from tap_event_exports.engine.jsonrows import ResultCapped, events_to_csv
from tap_event_exports.engine.windows import SecondGranularity, Window, rfc3339
from tap_event_exports.vendors.keen_streams import KeenBlock

if t.TYPE_CHECKING:
    from tap_event_exports.engine.runtime import Runtime

logger = logging.getLogger("tap_event_exports.keen")

HEADER_LIMIT = 1 << 20
"""Bytes read to find an extraction file's header line (a longer one is left as it is)."""
COPY_CHUNK = 1 << 20
QUERY_RESULT_CAP = 100_000
"""Keen's synchronous extraction returns at most this many events."""
QUERY_ROUTE = "/queries/extraction"
QUERY_TIMEOUT = 504
"""Keen's answer to a query stopped at its time limit (300 s)."""
OUTSIDE_BODY = ("keen", "header")
"""2.0 properties that are not the user's (``body:``): Keen's own and the 2.0 header's."""
HEADER_TIME = "header:timestamp"
"""The 2.0 header's only property, the event's time: 3.0's ``keen.timestamp``."""
RATE_LIMIT_PERIOD_SECONDS = 60.0
"""Keen blocks a project's queries for the rest of the minute once it is over its rate limit."""
RATE_LIMIT_MARGIN_SECONDS = 1.0
"""Added to the wait for the next minute: Keen's clock and ours are not quite the same."""


def rest_of_minute(now: float) -> float:
    """Seconds from ``now`` (unix time) to the next minute boundary, plus the margin."""
    period = RATE_LIMIT_PERIOD_SECONDS
    return period - now % period + RATE_LIMIT_MARGIN_SECONDS


class KeenDialect(VendorDialect):
    """How Keen authenticates, words its errors and asks to wait."""

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

    def final(self, response: requests.Response, message: str) -> bool:
        """Any 504 to a query is too much for one request: its window is split, not retried.

        Keen stops a query at 300 s with a 504, and a gateway in front of it gives up the same
        way, whatever the body (Keen's, a bare message, a page, none): every retry of the same
        window would run into the limit again, minutes each, before it could be split.
        """
        return response.status_code == QUERY_TIMEOUT and QUERY_ROUTE in (response.url or "")

    def wait_hint(self, response: requests.Response) -> float | None:
        """``Retry-After`` where a 429 has one; otherwise until the minute Keen blocks is over.

        Keen documents no wait header, and the retry backoff alone (about half a minute over
        all attempts) often gives up before the blocked minute ends.
        """
        wait = retry_after(response)
        return wait if wait is not None else rest_of_minute(time.time())

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

    def status(self, job_id: str, partition: Partition) -> JobStatus:
        """The extraction's status; an unknown status word is still running (polled again)."""
        spec = RequestSpec("GET", f"{self.url}/{job_id}")
        what = f"{self.stream}: extraction {job_id}"
        try:
            body = self.policy.retrying(lambda: self._status_body(spec, what), what=what)
        except VendorError as exc:
            if exc.status == 404:
                return JobStatus(Phase.EXPIRED, message="extraction not found")
            raise
        state = str(body.get("status", ""))
        if state == "complete" and body.get("results_url"):
            return JobStatus(Phase.DONE, files=[RequestSpec("GET", body["results_url"])])
        if state in {"error", "failed"}:
            return JobStatus(Phase.FAILED, message=str(body.get("message") or state))
        return JobStatus(Phase.RUNNING, progress=state)

    def _status_body(self, spec: RequestSpec, what: str) -> dict[str, t.Any]:
        """One status answer, which must be a JSON object.

        Anything else (a proxy's page, a body cut short) is retried like any failed request,
        then fails in one line: read as "still running", it would be polled for hours.
        """
        response = self.policy.send_once(spec, what=what)
        try:
            raw = response.content
        finally:
            response.close()
        body = json_body(response)
        if not isinstance(body, dict):
            shown = " ".join(raw[:100].decode("utf-8", "replace").split())
            kind = response.headers.get("Content-Type") or "no Content-Type"
            msg = f"the status answer is not a JSON object ({kind}): {shown!r}"
            raise RetriableError(msg)
        self.policy.check_body(body, what=what)
        return body

    def prepare(self, downloads: list[Download]) -> list[Download]:
        """Files whose columns are named by 2.0's colon paths get the dotted ones instead."""
        ready: list[Download] = []
        try:
            for file in downloads:
                ready.append(dotted_header(file))
        except BaseException:
            for file in ready:
                file.discard()
            raise
        return ready


def dotted_name(name: str) -> str:
    """A 2.0 colon path as the dotted column name of the 3.0 API and of every record.

    ``keen:timestamp`` is ``keen.timestamp``; user properties, which 2.0 keeps under
    ``body:``, are at the top as in 3.0 (``body:user:email`` is ``user.email``).
    """
    parts = name.split(":")
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def colon_name(name: str) -> str:
    """A filter's property as the 2.0 API names it: the inverse of :func:`dotted_name`.

    ``user.email`` is ``body:user:email``, ``keen.timestamp`` is ``keen:timestamp`` and
    ``header.timestamp`` is ``header:timestamp`` (the header's only property); any other
    ``header.…`` is a user property, as the column :func:`dotted_name` gives ``body:header:…``.
    A name with a colon is 2.0's already.
    """
    if ":" in name:
        return name
    parts = name.split(".")
    if name == "header.timestamp" or (len(parts) > 1 and parts[0] == "keen"):
        return ":".join(parts)
    return ":".join(["body", *parts])


def query_name(name: str) -> str:
    """A filter's property as the 3.0 API names it: a dotted path (2.0's colon paths turned).

    ``body:user:email`` is ``user.email``, ``keen:timestamp`` and ``header:timestamp`` (the
    2.0 header's event time) are ``keen.timestamp``. Other names are sent as they are.
    """
    if name == HEADER_TIME:
        return "keen.timestamp"
    root, colon, _rest = name.partition(":")
    return dotted_name(name) if colon and root in {"body", *OUTSIDE_BODY} else name


def renamed(filters: list[dict], name: t.Callable[[str], str]) -> list[dict]:
    """The filters with each ``property_name`` spelled as one API documents it."""
    return [{**rule, "property_name": name(rule["property_name"])} for rule in filters]


def dotted_header(file: Download) -> Download:
    """The file with its header's colon paths renamed (see :func:`dotted_name`).

    A header without a colon (3.0-style names) leaves the file as it is. Otherwise the file
    is written again with the new header line and the same rows, and the old one deleted. A
    renaming that would give two columns one name keeps the names as they came. The 2.0
    header's ``header:timestamp`` (its only property, the event's time) is ``keen.timestamp``
    unless the file has ``keen:timestamp`` too.
    """
    with open(file.path, "rb") as source:
        head = source.read(HEADER_LIMIT)
        bom = codecs.BOM_UTF8 if head.startswith(codecs.BOM_UTF8) else b""
        end = header_end(head, whole=len(head) < HEADER_LIMIT)
        if end is None:
            if b":" in head:
                logger.warning("keen: a header over %d bytes keeps its colon names", HEADER_LIMIT)
            return file
        if b":" not in head[:end]:
            return file
        try:
            line = head[len(bom) : end].decode("utf-8")
            names = next(csv.reader([line.rstrip("\r\n")]))
        except (UnicodeDecodeError, csv.Error):  # the reader says what is wrong, in one line
            return file
        renamed = [dotted_name(name) for name in names]
        if HEADER_TIME in names and "keen.timestamp" not in renamed:
            # 2.0's header holds the event's time: the records' keen.timestamp, as in 3.0
            renamed[names.index(HEADER_TIME)] = "keen.timestamp"
        if len(set(renamed)) < len(renamed):
            logger.warning("keen: columns %s keep their names: renamed, two would clash", names)
            return file
        out = io.StringIO()
        csv.writer(out, lineterminator=line[len(line.rstrip("\r\n")) :]).writerow(renamed)
        directory = os.path.dirname(file.path)
        handle, path = tempfile.mkstemp(prefix="tap-event-exports-", suffix=".csv", dir=directory)
        try:
            with os.fdopen(handle, "wb") as target:
                target.write(bom + out.getvalue().encode("utf-8"))
                source.seek(end)
                shutil.copyfileobj(source, target, COPY_CHUNK)
                size = target.tell()
        except BaseException:
            os.unlink(path)
            raise
    file.discard()
    return Download(path, file.bytes_received, size, file.seconds)


def header_end(head: bytes, *, whole: bool) -> int | None:
    """Where the CSV header line in ``head`` ends (after its line break), if it ends there.

    ``whole`` says ``head`` is the whole file: a header without a line break then ends with it.
    """
    end = first_line_break(head)
    if end is None:
        return len(head) if whole and head else None
    return end


class Keen(KeenBlock):
    """The Keen IO provider: its declaration, fetched by extraction jobs or queries."""

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """One stream per collection."""
        shapes = self.streams(block)
        dialect = KeenDialect(block["api_key"])
        kind = HttpPolicy if block["api"] == "extract" else KeenQueryPolicy
        policy = runtime.http(dialect, block["base_url"], policy=kind)
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
        for collection, shape in zip(block["collections"], shapes, strict=True):
            name = shape.name
            quoted = urllib.parse.quote(collection, safe="")
            source: JobExports | WindowRequests
            if block["api"] == "extract":
                jobs = KeenExtractions(
                    policy,
                    f"{project.format(v='2.0')}/{quoted}/_extract",
                    renamed(filters, colon_name),
                    name,
                )
                source = JobExports(jobs, policy)
            else:
                url = f"{project.format(v='3.0')}/queries/extraction"
                source = _query_source(
                    policy,
                    url=url,
                    collection=collection,
                    filters=renamed(filters, query_name),
                    stream=name,
                    describe=describe,
                )
            streams.append(
                ExportSpec.of(
                    shape,
                    vendor="keen",
                    source=source,
                    limits=limits,
                    timezone="UTC",
                    windowing=windowing,
                    key_fallback=True,
                    keys_by_name=True,
                )
            )
        return streams


class QueryTimedOut(VendorError):
    """A query got no answer within ``request_timeout``: taken as Keen's query time limit."""


class KeenQueryPolicy(HttpPolicy):
    """The HTTP policy of ``api: query``: a query still unanswered at the read timeout is split.

    ``request_timeout`` defaults to Keen's own 300 s limit, so the tap's timeout often fires
    before Keen's 504 would come: retried, the window would time out again (``max_retries``
    times 300 s) and never be split. A timeout once the answer has begun is retried as usual.
    """

    def send_once(self, spec: RequestSpec, *, what: str) -> requests.Response:  # noqa: D102
        try:
            return super().send_once(spec, what=what)
        except RetriableError as exc:
            if not isinstance(exc.__cause__, requests.ReadTimeout) or QUERY_ROUTE not in spec.url:
                raise
            msg = f"keen: {what}: no answer within request_timeout ({self.timeout:g}s)"
            raise QueryTimedOut(msg) from None


def _query_source(
    policy: HttpPolicy,
    *,
    url: str,
    collection: str,
    filters: list[dict],
    stream: str,
    describe: t.Callable[[Window], str],
) -> WindowRequests:
    """Windows read with the synchronous query, halved while Keen cannot answer them whole.

    Halved are windows that come back at the result cap (events may be missing) and windows
    Keen stops at its query time limit (a 504, or no answer within ``request_timeout``; split
    at the first one: retrying the same query would only time out again, minutes later).
    Other failures are retried.
    """
    granularity = SecondGranularity()

    def fetch(window: Window, place: str) -> Download:
        params = {
            "event_collection": collection,
            "timeframe": json.dumps(timeframe(window)),
            "filters": json.dumps(filters),
        }
        started = time.monotonic()
        raw = download(policy, RequestSpec("GET", url, params=params), what=place)
        try:
            path, _count = events_to_csv(
                raw.path, prefix="result.item", cap=QUERY_RESULT_CAP, what=f"keen: {place}"
            )
        finally:
            raw.discard()
        size = raw.bytes_received
        return Download(path, size, size, time.monotonic() - started)

    def query(window: Window) -> list[Download]:
        place = f"{stream}: window {describe(window)}"
        try:
            return [fetch(window, place)]
        except (ResultCapped, VendorError) as error:
            timed_out = isinstance(error, QueryTimedOut) or (
                isinstance(error, VendorError) and error.status == QUERY_TIMEOUT
            )
            if isinstance(error, VendorError) and not timed_out:
                raise
            halves = window.halves(granularity)
            if halves is None:
                raise _unsplittable(place, error) from None
            reason: object = error
            if isinstance(error, QueryTimedOut):
                reason = f"no answer within request_timeout ({policy.timeout:g}s)"
            elif timed_out:
                reason = "the query time limit (HTTP 504)"
            logger.info("keen: %s: %s; splitting in two", place, reason)
            return query(halves[0]) + query(halves[1])

    return WindowRequests(lambda window, _partition: query(window))


def _unsplittable(place: str, error: ResultCapped | VendorError) -> DataError | VendorError:
    """The error of a one-second window Keen still cannot answer whole."""
    advice = "within one second; add filters to narrow it"
    if isinstance(error, VendorError):  # its message names the vendor and the window
        return VendorError(f"{error} {advice}", status=error.status)
    return DataError(f"keen: {place}: {error} {advice}")
