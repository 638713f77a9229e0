"""A fake of Keen IO's extraction APIs, as documented.

2.0: ``POST /2.0/projects/<id>/<collection>/_extract`` → ``{"_id", "status": "not started"}``;
``GET …/_extract/<id>`` until ``complete`` with a ``results_url`` on another host name (the
key must not go there). 3.0: ``GET /3.0/projects/<id>/queries/extraction`` → ``{"result": [...]}``
capped at ``result_cap`` events. Filters and absolute timeframes apply as Keen documents them;
errors are ``{"message", "error_code"}``.

Sources: ``seeds/002`` (Data Extraction to File, API 2.0) and ``providers.md`` section 2
(2012 Keen-Docs, KeenClient-Python, third-party limit catalogs). Tests:
``tests/test_sandbox_fidelity.py`` (``fid``), ``tests/test_keen.py``,
``tests/test_fault_matrix.py``. UNCONFIRMED marks the fake's position where the documents are
silent.

Documented behaviour, where it comes from and where it is exercised:

- Auth: the raw key in ``Authorization`` (no ``Bearer``) [seeds/002], or ``api_key=`` in the
  query [providers 2.3]. A wrong key: ``401 InvalidApiKeyError`` (the status and error_code
  name are UNCONFIRMED) (fid ``test_keen_errors_are_message_and_error_code[401]``).
- Error bodies on every non-2xx: JSON ``{"message": ..., "error_code": "<ErrorClassName>"}``
  [providers 2.6, KeenClient-Python]. The error_code names used here (InvalidApiKeyError,
  ResourceNotFoundError, MissingRequiredPropertyError, InvalidFilterError,
  TimeframeDefinitionError, TooManyRequestsError, InternalServerError) are UNCONFIRMED, only
  the shape is documented (fid ``test_keen_errors_are_message_and_error_code``).
- 2.0 create: ``POST …/<collection>/_extract`` (also ``_extracts``, the contemporaneous
  reference's spelling [providers 2.2]) with ``filters`` required (``[]`` for none),
  ``timeframe`` optional (all events without it), ``email`` optional [seeds/002]; answer
  ``{"_id": "<extraction_id>", "status": "not started"}`` [seeds/002]
  (fid ``test_keen_extraction_walks_documented_statuses``). Missing ``filters``:
  ``400 MissingRequiredPropertyError`` (UNCONFIRMED).
- 2.0 status: ``GET …/_extract/<id>``; ``{"status": "complete", "_id", "results_url"}``;
  "If the status is not complete, the results_url parameter will not be present"
  [seeds/002] (fid ``test_keen_extraction_walks_documented_statuses``). Intermediate status
  ``in progress`` and the opt-in failure ``error`` with a ``message``: UNCONFIRMED (no other
  status is documented) (``test_keen.py::test_extraction_error_status_fails_clearly``).
  Opt-in faults of the status answer, not Keen's documented behaviour: ``status-text`` (a
  plain-text 200), ``status-array`` (the job in a JSON array), ``status-unknown`` (a status
  word no document names) (``test_keen.py``
  ``test_a_status_answer_that_is_not_a_json_object_fails_in_one_line``).
- ``GET …/_extracts`` lists ``[{_id, status, results_url?}, ...]`` [providers 2.2, 2012
  reference] (fid ``test_keen_extraction_walks_documented_statuses``).
- Results: a CSV at ``results_url`` (S3 in the docs [seeds/002]); here on another host name,
  signed-URL style, so the key must not be sent there. Column layout UNCONFIRMED: the fake
  writes 3.0-style dotted paths (``keen.timestamp``, ``user.email``) sorted, lists as JSON,
  ``true``/``false``, CRLF (``to_csv``; written here, not borrowed from the tap). Knob
  ``colon_names``: 2.0's own addressing instead, ``keen:timestamp`` (every extracted event
  has one [providers 2.2, 2012 extractions]) and user properties under ``body:`` with ``:``
  nesting (``body:user:email`` [providers 2.2, 2.0 event model])
  (``test_keen.py::test_colon_paths_of_a_2_0_file_read_as_the_dotted_columns``). Knob
  ``column_seed``: the columns in another order, since "column order in the file is not
  guaranteed" [providers 2.2, Oct-2012 extractions] (``test_keen_properties.py``).
- 3.0: ``GET /3.0/projects/<id>/queries/extraction?event_collection=&timeframe=&filters=``
  → ``{"result": [event, ...]}``; ``property_names`` (JSON array) keeps those properties;
  ``latest`` keeps the N most recent; with ``email`` the answer is ``{"result": "Processing.
  Check the specified email for the extraction results."}`` [providers 2.3]
  (fid ``test_keen_query_extraction_documented_parameters``). Synchronous results are capped
  (100,000 events, SECONDARY [providers 2.7]): knob ``result_cap``.
- Filters ``{"property_name", "operator", "property_value"}`` with eq, ne, lt, lte, gt, gte,
  exists, in, contains, not_contains, within [providers 2.4] (``test_keen.py``). Property
  names as each API documents them: 2.0 (``_extract``) names user properties ``body:`` with
  ``:`` nesting (``body:amount`` [seeds/002]; ``body:customer:name`` [providers 2.2]), its
  header's only property ``header:timestamp`` (the event's time, 3.0's ``keen.timestamp``)
  [providers 2.2], and Keen's own ``keen:timestamp`` [providers 2.2, Oct-2012 extractions];
  3.0 names them by dotted path (``user.id`` [providers 2.3]). A name the API cannot read (a
  dotted name in 2.0, a 2.0 colon path in 3.0) is refused with ``400 InvalidFilterError``
  (what real Keen does with one is UNCONFIRMED)
  (``test_keen.py::test_filter_names_in_either_spelling_select_the_same_rows``). Absolute
  timeframes ``{"start", "end"}`` in UTC [providers 2.5], read as ``[start, end)``
  (UNCONFIRMED); relative timeframes are refused with ``400 TimeframeDefinitionError`` (the
  fake does not implement them). "All times UTC" [providers 2.5]: an event's
  ``keen.timestamp`` without an offset (2.0's ``2012-06-06T19:10:39.205000`` [providers 2.2])
  and a timeframe bound without one are read as UTC (``instant``)
  (``test_keen_properties.py``).
- 429 when over the rate limit, blocked "for the rest of the minute" (SECONDARY [providers
  2.7]): after a 429 every API request is refused until the clock's next minute (knob
  ``minute_seconds`` shortens the fake's minute for tests). No ``Retry-After`` is documented
  and none is sent, unless a test asks for one with the knob ``retry_after`` (then the block
  lasts that long) (fid ``test_keen_429_with_retry_after_knob``; ``test_keen.py``
  ``test_429_without_retry_after_waits_out_the_minute``; matrix "vendor's own 429").
- 504 when a query runs past Keen's 300 s limit (SECONDARY [providers 2.7]), with the usual
  error body (the error_code ``QueryTimeoutError`` is UNCONFIRMED). Knob ``timeout_over``:
  queries that would return more events than that answer 504
  (``test_keen.py::test_any_504_to_a_query_splits_the_window_at_once``). Knob
  ``timeout_body``: the 504 as something in front of Keen would give it, ``message`` (no
  error_code), ``text`` (a plain-text page) or ``empty`` (no body); ``keen``, the default, is
  Keen's own body (same test). Knob ``timeout_seconds``: how long such a query runs before its
  504 (Keen's is 300 s; the tap's ``request_timeout`` may end the wait first) (``test_keen.py``
  ``test_a_query_unanswered_at_the_read_timeout_splits_the_window``).
- 500: plain ``{"message", "error_code"}`` with no wait header (none documented)
  (fid ``[500]``, matrix "5xx with the vendor's routine headers").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import threading
import time
import typing as t
import urllib.parse
from collections import deque
from dataclasses import dataclass

from tap_event_exports.sandbox.server import FakeRequest, FakeResponse, FakeServer

UTC = dt.timezone.utc
MISSING = object()
PROCESSING = "Processing. Check the specified email for the extraction results."
"""The 3.0 extraction's answer when an ``email`` is given [providers 2.3]."""


def keen_error(status: int, code: str, message: str, **headers: str) -> FakeResponse:
    """A Keen error answer."""
    return FakeResponse.json(status, {"message": message, "error_code": code}, **headers)


def generate_events(
    collection: str, *, start: dt.datetime, days: int, per_day: int, seed: int = 9
) -> list[dict]:
    """Nested events as Keen stores them, with ``keen.id``, ``keen.timestamp`` and friends."""
    rng = random.Random(f"{seed}-{collection}")
    events = []
    for day in range(days):
        for _ in range(per_day):
            moment = start + dt.timedelta(days=day, seconds=rng.randrange(86400))
            moment = moment.replace(microsecond=rng.randrange(1000) * 1000)
            stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            event: dict[str, t.Any] = {
                "keen": {
                    "id": f"{rng.getrandbits(96):024x}",
                    "timestamp": stamp,
                    "created_at": stamp,
                },
                "user": {
                    "email": f"user{rng.randrange(50)}@example.com",
                    "id": rng.randrange(1000),
                },
                "item": {
                    "price": rng.choice([3.5, 10, 99.99, 0.1]),
                    "name": rng.choice(["Tea", "Café", 'A "quoted", item']),
                },
                "premium": rng.choice([True, False]),
                "tags": rng.choice([[], ["a"], ["a", "b"]]),
                "geo": {"coordinates": [rng.uniform(-0.2, 0.2), 51.5 + rng.uniform(-0.2, 0.2)]},
            }
            if rng.random() < 0.2:
                del event["premium"]
            if rng.random() < 0.1:
                event["item"]["note"] = "line one\nline two"
            events.append(event)
    events.sort(key=lambda e: e["keen"]["timestamp"])
    return events


def instant(text: str) -> dt.datetime:
    """An ISO-8601 time as Keen reads it, a time without an offset as UTC.

    "All times UTC" [providers 2.5]; 2.0's event timestamp has none
    (``2012-06-06T19:10:39.205000`` [providers 2.2]).
    """
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lookup(event: dict, path: str) -> t.Any:
    """The value at a dotted property path (3.0's names), or ``MISSING``."""
    return lookup_parts(event, path.split("."))


def lookup_parts(value: t.Any, parts: list[str]) -> t.Any:
    """The value at a path of property names, or ``MISSING``."""
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


COLON_ROOTS = ("body", "keen", "header")
HEADER_TIME = "header:timestamp"


def readable_2_0(name: str) -> bool:
    """Whether a 2.0 filter names a property 2.0 has.

    That is ``body:<path>``, ``keen:<path>``, or ``header:timestamp``, the header's only
    property [providers 2.2].
    """
    root, colon, rest = name.partition(":")
    return name == HEADER_TIME or (
        colon == ":" and root in {"body", "keen"} and all(rest.split(":"))
    )


def readable_3_0(name: str) -> bool:
    """Whether a 3.0 filter names a property by dotted path, not by a 2.0 colon path."""
    root, colon, _rest = name.partition(":")
    return bool(name) and not (colon and root in COLON_ROOTS)


def lookup_2_0(event: dict, name: str) -> t.Any:
    """The value a 2.0 property name (see :func:`readable_2_0`) points at, or ``MISSING``.

    User properties are ``body:`` paths (``keen`` is not one of them), ``keen:`` paths are
    Keen's own, and ``header:timestamp`` is the event's time.
    """
    if name == HEADER_TIME:
        return lookup_parts(event, ["keen", "timestamp"])
    root, _, rest = name.partition(":")
    parts = rest.split(":")
    if root == "body":
        return MISSING if parts[0] == "keen" else lookup_parts(event, parts)
    return lookup_parts(event, ["keen", *parts])


def _miles(a: list[float], b: list[float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 3958.8 * 2 * math.asin(math.sqrt(h))


def matches(event: dict, rule: dict) -> bool:
    """Whether an event passes one filter naming its property by dotted path (3.0)."""
    return passes(lookup(event, rule["property_name"]), rule)


def passes(value: t.Any, rule: dict) -> bool:
    """Whether a property's value (``MISSING`` if absent) passes a filter's operator."""
    operator = rule["operator"]
    target: t.Any = rule.get("property_value")  # any JSON value, compared as Keen compares
    if operator == "exists":
        return (value is not MISSING) == bool(target)
    if value is MISSING:
        return operator == "ne"
    try:
        if operator == "eq":
            return value == target
        if operator == "ne":
            return value != target
        if operator == "lt":
            return value < target
        if operator == "lte":
            return value <= target
        if operator == "gt":
            return value > target
        if operator == "gte":
            return value >= target
        if operator == "in":
            return value in target
        if operator == "contains":
            return isinstance(value, str) and target in value
        if operator == "not_contains":
            return isinstance(value, str) and target not in value
        if operator == "within":
            point: t.Any = value.get("coordinates") if isinstance(value, dict) else value
            return _miles(point, target["coordinates"]) <= target["max_distance_miles"]
    except TypeError:
        return False
    raise ValueError(operator)


def flatten(event: dict, prefix: str = "", out: dict | None = None) -> dict[str, object]:
    """``{"user": {"email": x}}`` → ``{"user.email": x}``; lists stay values."""
    out = {} if out is None else out
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, f"{name}.", out)
        else:
            out[name] = value
    return out


def render(value: object) -> str:
    """A value as the fake's extraction file writes it: empty null, JSON lists, true/false."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def colon_path(name: str) -> str:
    """A dotted column name as Keen 2.0 addresses it: ``keen:timestamp``, ``body:user:email``."""
    parts = name.split(".")
    return ":".join(parts if parts[0] == "keen" else ["body", *parts])


def to_csv(
    events: list[dict], *, colon_names: bool = False, column_seed: int | None = None
) -> bytes:
    """Events as an extraction file: flat dotted columns (or 2.0's colon paths), sorted.

    With ``column_seed`` the columns come in an order drawn from it ("column order in the file
    is not guaranteed" [providers 2.2]).
    """
    rows = [flatten(e) for e in events]
    if colon_names:
        rows = [{colon_path(name): value for name, value in row.items()} for row in rows]
    header = sorted({k for row in rows for k in row})
    if column_seed is not None:
        random.Random(column_seed).shuffle(header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([render(row.get(name)) for name in header])
    return out.getvalue().encode()


@dataclass
class Extraction:
    """A 2.0 extraction job."""

    id: str
    events: list[dict]
    created: float
    duration: float
    failed: bool = False


class KeenFake(FakeServer):
    """Keen IO's extraction APIs on 127.0.0.1, with switches for its failure modes."""

    def __init__(
        self,
        collections: dict[str, list[dict]],
        *,
        project_id: str = "5f0c0ffee0000000000000aa",
        api_key: str = "keen-read-key-0123456789",
        job_seconds: float = 0.2,
        result_cap: int = 100_000,
        retry_after: str | None = None,
        minute_seconds: float = 60.0,
        timeout_over: int | None = None,
        timeout_seconds: float = 0.0,
        timeout_body: str = "keen",
        colon_names: bool = False,
        column_seed: int | None = None,
        port: int = 0,
    ) -> None:
        """Serve ``collections``; queries return at most ``result_cap`` events.

        ``retry_after`` is a ``Retry-After`` for 429s (undocumented: ``None``, the default,
        sends none); ``minute_seconds`` is how long the fake's minute lasts; queries over
        ``timeout_over`` events time out (504) after ``timeout_seconds``, answering
        ``timeout_body`` (``keen``, ``message``, ``text`` or ``empty``). ``colon_names``
        names the extraction files' columns by 2.0's colon paths (``keen:timestamp``,
        ``body:user:email``). ``column_seed`` puts the files' columns in an order drawn from
        it (``None``: sorted).
        """
        super().__init__(port=port)
        self.collections = collections
        self.project_id = project_id
        self.api_key = api_key
        self.job_seconds = job_seconds
        self.result_cap = result_cap
        self.retry_after = retry_after
        self.minute_seconds = minute_seconds
        self.timeout_over = timeout_over
        self.timeout_seconds = timeout_seconds
        self.timeout_body = timeout_body
        self.colon_names = colon_names
        self.column_seed = column_seed
        self.refused = 0
        """429s answered (the first one and those during the block)."""
        self.timed_out: list[dict] = []
        """Timeframes of the queries answered with 504."""
        self._blocked_until = 0.0
        self.extractions: dict[str, Extraction] = {}
        self.faults: deque[str] = deque()
        self.key_leaks: list[str] = []
        self.timeframes: list[dict] = []
        self._serial = 0
        self._lock2 = threading.Lock()

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next matching step fail.

        Kinds: ``429`` (over the rate limit: blocked for the rest of the minute), ``500``,
        ``cut`` (results file cut mid-body), ``error`` (next extraction ends in status
        ``error``), ``status-text``, ``status-array``, ``status-unknown`` (the next status
        answer is plain text, a JSON array, or an undocumented status word).
        """
        for _ in range(times):
            self.faults.append(kind)

    def _take(self, kind: str) -> bool:
        with self._lock2:
            if kind in self.faults:
                self.faults.remove(kind)
                return True
        return False

    # --- rate limit --------------------------------------------------------------------------

    def _block(self) -> None:
        """Refuse every API request until the minute ends (or for the asked ``Retry-After``)."""
        now = time.time()
        if self.retry_after is not None:
            until = now + float(self.retry_after)
        else:
            until = (now // self.minute_seconds + 1) * self.minute_seconds
        with self._lock2:
            self._blocked_until = max(self._blocked_until, until)

    def _blocked(self) -> bool:
        return time.time() < self._blocked_until

    def _too_many(self) -> FakeResponse:
        """The 429 of a blocked minute."""
        with self._lock2:
            self.refused += 1
        wait = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        return keen_error(429, "TooManyRequestsError", "Rate limit exceeded", **wait)

    # --- filtering ---------------------------------------------------------------------------

    def select(
        self, collection: str, filters: list[dict], frame: dict | None, *, api: str = "3.0"
    ) -> list[dict]:
        """The events of a collection that pass ``filters`` within an absolute timeframe.

        ``api`` says how the filters name properties: ``3.0`` dotted paths, ``2.0`` colon paths.
        """
        events = self.collections.get(collection, [])
        if frame is not None:
            start, end = instant(frame["start"]), instant(frame["end"])
            events = [e for e in events if start <= instant(e["keen"]["timestamp"]) < end]
        look = lookup_2_0 if api == "2.0" else lookup
        return [
            e
            for e in events
            if all(passes(look(e, rule["property_name"]), rule) for rule in filters)
        ]

    def _arguments(
        self, filters: object, frame: object, api: str
    ) -> tuple[list[dict], dict | None] | FakeResponse:
        if not isinstance(filters, list) or not all(
            isinstance(f, dict)
            and {"property_name", "operator"} <= set(f)
            and isinstance(f["property_name"], str)
            for f in filters
        ):
            return keen_error(400, "InvalidFilterError", "filters must be a list of filter objects")
        readable = readable_2_0 if api == "2.0" else readable_3_0
        for rule in filters:
            if not readable(rule["property_name"]):
                spelling = (
                    "body:<path>, keen:<path> or header:timestamp"
                    if api == "2.0"
                    else "a dotted path"
                )
                message = (
                    f"{rule['property_name']!r} is not an API {api} property name ({spelling})"
                )
                return keen_error(400, "InvalidFilterError", message)
            if rule["operator"] not in {
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
            }:
                return keen_error(400, "InvalidFilterError", f"unknown operator {rule['operator']}")
        if frame is None:
            return filters, None
        if not isinstance(frame, dict) or not {"start", "end"} <= set(frame):
            return keen_error(
                400, "TimeframeDefinitionError", "timeframe must be an absolute {start, end}"
            )
        self.timeframes.append(frame)
        return filters, frame

    # --- routing -----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse | None:  # noqa: D102
        if request.path.startswith("/keen-results/"):
            return self._results(request)
        if self._take("429"):
            self._block()
            return self._too_many()
        if self._blocked():
            return self._too_many()
        if self._take("500"):
            return keen_error(500, "InternalServerError", "An unknown error occurred")
        key = request.headers.get("authorization") or request.arg("api_key")
        if key != self.api_key:
            return keen_error(
                401, "InvalidApiKeyError", "The API key is not valid for this project"
            )
        prefix2 = f"/2.0/projects/{self.project_id}/"
        if request.path.startswith(prefix2):
            return self._extract(request, request.path[len(prefix2) :])
        if request.path == f"/3.0/projects/{self.project_id}/queries/extraction":
            return self._query(request)
        return keen_error(404, "ResourceNotFoundError", f"no resource at {request.path}")

    def _extract(self, request: FakeRequest, route: str) -> FakeResponse:
        collection_part, _, rest = route.partition("/")
        collection = urllib.parse.unquote(collection_part)
        if request.method == "POST" and rest in {"_extract", "_extracts"}:
            try:
                body = request.json()
            except ValueError:
                return keen_error(400, "InvalidJsonError", "the body is not JSON")
            if not isinstance(body, dict) or "filters" not in body:
                return keen_error(400, "MissingRequiredPropertyError", "filters is required")
            parsed = self._arguments(body["filters"], body.get("timeframe"), "2.0")
            if isinstance(parsed, FakeResponse):
                return parsed
            failed = self._take("error")
            with self._lock2:
                self._serial += 1
                job = Extraction(
                    id=f"{self._serial:024x}",
                    events=self.select(collection, *parsed, api="2.0"),
                    created=time.monotonic(),
                    duration=self.job_seconds,
                    failed=failed,
                )
                self.extractions[job.id] = job
            return FakeResponse.json(200, {"_id": job.id, "status": "not started"})
        if request.method == "GET" and rest.startswith(("_extract/", "_extracts/")):
            found = self.extractions.get(rest.split("/", 1)[1])
            if found is None:
                return keen_error(404, "ResourceNotFoundError", "no such extraction")
            if self._take("status-text"):
                return FakeResponse(200, b"Service busy", {"Content-Type": "text/plain"})
            if self._take("status-array"):
                return FakeResponse.json(200, [self.describe(found)])
            if self._take("status-unknown"):
                return FakeResponse.json(200, {"_id": found.id, "status": "queued"})
            return FakeResponse.json(200, self.describe(found))
        if request.method == "GET" and rest == "_extracts":
            return FakeResponse.json(200, [self.describe(job) for job in self.extractions.values()])
        return keen_error(404, "ResourceNotFoundError", f"no resource at {request.path}")

    def describe(self, job: Extraction) -> dict:
        """A job as the status resource shows it: ``results_url`` only once ``complete``."""
        elapsed = time.monotonic() - job.created
        if elapsed < job.duration:
            status = "not started" if elapsed < job.duration / 3 else "in progress"
            return {"_id": job.id, "status": status}
        if job.failed:
            return {"_id": job.id, "status": "error", "message": "extraction failed"}
        url = f"http://localhost:{self.port}/keen-results/{job.id}.csv?X-Amz-Expires=3600"
        return {"_id": job.id, "status": "complete", "results_url": url}

    def _results(self, request: FakeRequest) -> FakeResponse:
        if "authorization" in request.headers:
            self.key_leaks.append(request.url)
        job = self.extractions.get(request.path.rsplit("/", 1)[-1].removesuffix(".csv"))
        if job is None:
            return FakeResponse(403, b"<Error><Code>AccessDenied</Code></Error>")
        data = to_csv(job.events, colon_names=self.colon_names, column_seed=self.column_seed)
        if self._take("cut"):
            return FakeResponse(200, data, {"Content-Type": "text/csv"}, cut_after=len(data) // 2)
        return FakeResponse(200, data, {"Content-Type": "text/csv"})

    def _query(self, request: FakeRequest) -> FakeResponse:
        collection = request.arg("event_collection")
        if not collection:
            return keen_error(400, "MissingRequiredPropertyError", "event_collection is required")
        try:
            filters = json.loads(request.arg("filters") or "[]")
            timeframe = request.arg("timeframe")
            frame = json.loads(timeframe) if timeframe else None
        except ValueError:
            return keen_error(400, "InvalidParameterError", "filters and timeframe must be JSON")
        parsed = self._arguments(filters, frame, "3.0")
        if isinstance(parsed, FakeResponse):
            return parsed
        try:
            names = json.loads(request.arg("property_names") or "null")
            latest_arg = request.arg("latest")
            latest = int(latest_arg) if latest_arg else None
        except ValueError:
            return keen_error(400, "InvalidParameterError", "property_names or latest is invalid")
        if request.arg("email"):
            return FakeResponse.json(200, {"result": PROCESSING})
        events = self.select(collection, *parsed)
        if self.timeout_over is not None and len(events) > self.timeout_over:
            self.timed_out.append(parsed[1] or {})
            time.sleep(self.timeout_seconds)
            return self._query_timeout()
        if latest is not None:
            events = events[-latest:] if latest > 0 else []
        events = events[: self.result_cap]
        if isinstance(names, list):
            events = [self._only(e, names) for e in events]
        body = json.dumps({"result": events}).encode()
        return FakeResponse(
            200,
            [body[i : i + 65536] for i in range(0, len(body), 65536)],
            {"Content-Type": "application/json"},
        )

    def _query_timeout(self) -> FakeResponse:
        """The 504 of a query stopped at the time limit, worded as ``timeout_body`` says."""
        message = "The query did not finish in 300 seconds"
        if self.timeout_body == "message":
            return FakeResponse.json(504, {"message": message})
        if self.timeout_body == "text":
            return FakeResponse(504, b"Gateway Time-out", {"Content-Type": "text/plain"})
        if self.timeout_body == "empty":
            return FakeResponse(504)
        return keen_error(504, "QueryTimeoutError", message)

    @staticmethod
    def _only(event: dict, names: list[str]) -> dict:
        """An event reduced to the dotted ``names`` it has, nested as stored."""
        out: dict = {}
        for name in names:
            value = lookup(event, name)
            if value is MISSING:
                continue
            parts = name.split(".")
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return out
