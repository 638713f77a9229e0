"""A fake of Batch's Export API v1.0, as documented.

Export requests are created with ``POST /1.0/<api_key>/export/...`` (202 ``{"requestId"}``),
walk ``CREATED`` → ``PENDING`` → ``SUCCESS`` on ``GET /1.0/<api_key>/export/request/<id>``,
and their ``file_url`` answers 302 to a short-lived storage link on another host name
(``localhost`` instead of ``127.0.0.1``) that must not receive the REST key. Files are
``;``-separated CSV. Raw events older than 90 days are silently missing.

Sources: ``seeds/004`` (create request: kinds, payload, output samples, errors) and
``providers.md`` section 4 (get-status, list, older pages). Tests:
``tests/test_sandbox_fidelity.py`` (``fid``), ``tests/test_batch.py``,
``tests/test_fault_matrix.py``. UNCONFIRMED marks the fake's position where the documents are
silent.

Documented behaviour, where it comes from and where it is exercised:

- Auth: ``X-Authorization: <company REST API key>``, the API key in the path [seeds/004
  Headers]. A wrong REST key: ``AUTHENTICATION_INVALID`` (401, code 10) [seeds/004 Failure]
  (fid ``test_batch_errors_have_documented_status_and_code[401]``).
- Routes [seeds/004]: ``export/campaign/<token>/{ids,events}``,
  ``export/transactional/<group>/{ids,events}``, ``export/in-app-campaign/<token>/{ids,events}``
  (``inapp-campaign`` accepted too: get-status's example spells it so [providers 4.2]),
  ``export/reachability/events``, ``export/userbase``; anything else ``ROUTE_NOT_FOUND``
  (404, code 20) (fid ``[404]``).
- Payload (JSON, all required): ``from``/``to`` = ``'now'`` or UTC ``YYYY-MM-ddTHH:mm:ss``;
  ``events`` (not for reachability and userbase); ``ids`` e.g. ``install_id``, ``custom_id``,
  ``advertising_id`` [seeds/004]. Missing: ``MISSING_PARAMETER`` (400, 30); malformed:
  ``MALFORMED_PARAMETER`` (400, 31); not JSON: ``MALFORMED_JSON_BODY`` (400, 32) [seeds/004]
  (fid ``[400 missing]``, ``[400 malformed]``, ``[400 json]``). from > to is malformed
  (UNCONFIRMED).
- Errors also documented: ``API_MISUSE`` (403, 12), ``SERVER_ERROR`` (500, 1),
  ``MAINTENANCE_ERROR`` (503, 2) [seeds/004] (fid ``[500]``, ``[503]``; matrix "5xx with the
  vendor's routine headers"). The error body's shape is UNCONFIRMED: the fake answers
  ``{"error_code": "<NAME>", "code": <number>, "message": "..."}`` (knob ``error_style`` for
  other shapes: ``errorCode``/``errorMessage``, or nested in ``error``). No wait header and no rate
  limit are documented for v1.0: none is sent.
- 409 Conflict when "the user in the POST data is currently being processed" [seeds/004]
  (body UNCONFIRMED: ``{"message": "Conflict"}``) (fid ``test_batch_conflict_is_409``).
- Create answers ``202 {"requestId": "<uuid>"}`` [seeds/004 Success; its prose says
  "request_id": knob ``request_id_field``]
  (fid ``test_batch_export_walks_the_documented_status_machine``).
- Status ``GET …/export/request/<id>``: ``{"id", "uri", "request_date", "status", "request",
  "file_url", "completion_date"}``; status ``CREATED`` → ``PENDING`` → ``SUCCESS`` | ``ERROR``
  (with ``error_msg``), ``SUCCESS`` → ``EXPIRED`` after the files' TTL of one month (knob
  ``file_ttl``) [providers 4.4; seeds/004 "TTL of one month"]. ``file_url`` and
  ``completion_date`` only once finished (UNCONFIRMED); ``request_date`` is the creation time
  (fid ``test_batch_export_walks_the_documented_status_machine``,
  ``test_batch_error_and_expired_states``).
- List ``GET …/export/requests``: a JSON array of the same objects, newest first [providers
  4.5] (fid ``test_batch_export_walks_the_documented_status_machine``).
- ``file_url`` with ``X-Authorization`` → ``302`` with the real link in ``Location``, valid 20
  minutes [providers 4.4] (fid ``test_batch_export_walks_the_documented_status_machine``;
  ``test_batch.py``). The storage host refusing an expired link with an S3-style 403 is
  UNCONFIRMED.
- Files: ``;``-separated CSV, header first, columns = requested ``ids`` (in request order,
  UNCONFIRMED) then the kind's columns [seeds/004 output examples]: ``ids`` exports add
  ``event_type``; ``events`` add ``event_date;event_type`` (+ ``transactional_token`` for
  transactional, + ``cta;cta_position`` for in-app, empty unless clicked); reachability adds
  ``event_date;event_type;is_reachable;is_optin;has_custom_id``; userbase
  ``is_optin_push;install_date;last_start_date;smart_segment`` (the doc's userbase sample row
  has one value more than its header; the fake writes consistent rows). Values are quoted
  where CSV needs it (``;``, quotes, CR, LF); rows end in LF (line end and quoting style
  UNCONFIRMED). A requested
  ``push_open`` is written ``push_opened`` [seeds/004 samples]
  (fid ``test_batch_export_walks_the_documented_status_machine``; ``test_batch.py``).
- Lookback 90 days for the event kinds: older data silently missing even if ``from`` asks
  for it; userbase has none [seeds/004 Lookback] (``test_batch.py``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
import re
import threading
import time
import typing as t
import uuid
from collections import deque
from dataclasses import dataclass, field

from tap_event_exports.sandbox.server import FakeRequest, FakeResponse, FakeServer

UTC = dt.timezone.utc
LOOKBACK = dt.timedelta(days=90)
LINK_SECONDS = 20 * 60
FILE_TTL_SECONDS = 30 * 86400
"""Generated files live one month; then the request is ``EXPIRED``."""
IDS = ("install_id", "custom_id", "advertising_id")
PUSH_EVENTS = ("push_sent", "push_open", "push_error")
IN_APP_EVENTS = ("inapp_shown", "inapp_clicked", "inapp_closed")
OUTPUT_NAMES = {"push_open": "push_opened"}
"""The documented quirk: a requested ``push_open`` is written ``push_opened``."""

ERRORS = {
    "AUTHENTICATION_INVALID": (401, 10),
    "API_MISUSE": (403, 12),
    "ROUTE_NOT_FOUND": (404, 20),
    "MISSING_PARAMETER": (400, 30),
    "MALFORMED_PARAMETER": (400, 31),
    "MALFORMED_JSON_BODY": (400, 32),
    "SERVER_ERROR": (500, 1),
    "MAINTENANCE_ERROR": (503, 2),
}


def error(name: str, message: str = "") -> FakeResponse:
    """A Batch error answer."""
    status, code = ERRORS[name]
    return FakeResponse.json(status, {"error_code": name, "code": code, "message": message or name})


ERROR_STYLES: dict[str, t.Callable[[dict], dict]] = {
    "flat": lambda body: body,
    "camel": lambda body: {
        "errorCode": body["code"],
        "errorMessage": f"{body['error_code']}: {body['message']}",
    },
    "nested": lambda body: {"error": body},
}
"""Error bodies in the shapes an API may use (v1.0's is not documented; the name, HTTP status
and code of each error are): ``flat`` ``{"error_code", "code", "message"}``, ``camel``
``{"errorCode", "errorMessage"}``, ``nested`` ``{"error": {...}}``."""


@dataclass
class BatchData:
    """The events the fake serves, per export kind."""

    campaigns: dict[str, list[dict]] = field(default_factory=dict)
    transactional: dict[str, list[dict]] = field(default_factory=dict)
    in_app: dict[str, list[dict]] = field(default_factory=dict)
    reachability: list[dict] = field(default_factory=list)
    userbase: list[dict] = field(default_factory=list)


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def generate_data(
    *,
    start: dt.datetime,
    days: int,
    per_day: int,
    campaigns: tuple[str, ...] = ("CAMPAIGN_A", "CAMPAIGN_B"),
    groups: tuple[str, ...] = ("welcome",),
    in_app: tuple[str, ...] = ("INAPP_1",),
    users: int = 50,
    seed: int = 11,
) -> BatchData:
    """Realistic events over ``days`` days from ``start`` (UTC), with repeated identical rows."""
    rng = random.Random(seed)
    installs = [
        {
            "install_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "custom_id": f"user-{n}" if rng.random() < 0.7 else "",
            "advertising_id": str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if rng.random() < 0.5
            else "",
        }
        for n in range(users)
    ]

    def moments() -> list[dt.datetime]:
        out = []
        for day in range(days):
            base = start + dt.timedelta(days=day)
            for _ in range(per_day):
                out.append(base + dt.timedelta(seconds=rng.randrange(86400)))
        return sorted(out)

    def events(names: tuple[str, ...], extra: dict | None = None) -> list[dict]:
        rows = []
        for moment in moments():
            user = rng.choice(installs)
            name = rng.choice(names)
            row = {**user, "event_date": _stamp(moment), "event_type": OUTPUT_NAMES.get(name, name)}
            for key, choices in (extra or {}).items():
                row[key] = rng.choice(choices)
            rows.append(row)
            if rng.random() < 0.05:
                rows.append(dict(row))  # the same event twice in one export
        return rows

    data = BatchData()
    for token in campaigns:
        data.campaigns[token] = events(PUSH_EVENTS)
    for group in groups:
        data.transactional[group] = events(
            PUSH_EVENTS, {"transactional_token": [f"{rng.getrandbits(100):x}" for _ in range(5)]}
        )
    for token in in_app:
        rows = events(IN_APP_EVENTS)
        for row in rows:
            clicked = row["event_type"] == "inapp_clicked"
            row["cta"] = rng.choice(["batch.dismiss", "batch.deeplink"]) if clicked else ""
            row["cta_position"] = str(rng.randrange(2)) if clicked else ""
        data.in_app[token] = rows
    for moment in moments()[: max(1, per_day // 2) * days]:
        user = rng.choice(installs)
        data.reachability.append(
            {
                **user,
                "event_date": _stamp(moment),
                "event_type": "reachability",
                "is_reachable": rng.choice(["true", "false"]),
                "is_optin": rng.choice(["true", "false"]),
                "has_custom_id": "true" if user["custom_id"] else "false",
            }
        )
    for user in installs:
        installed = start + dt.timedelta(seconds=rng.randrange(days * 86400))
        data.userbase.append(
            {
                **user,
                "is_optin_push": rng.choice(["true", "false"]),
                "install_date": _stamp(installed),
                "last_start_date": _stamp(installed + dt.timedelta(hours=rng.randrange(48))),
                "smart_segment": rng.choice(["Engaged", "New", "Dormant"]),
            }
        )
    return data


@dataclass
class Job:
    """One export request."""

    id: str
    uri: str
    body: dict
    columns: list[str]
    rows: list[dict]
    created: float
    duration: float
    outcome: str = "SUCCESS"
    error_msg: str = ""
    polls: int = 0
    requested: dt.datetime | None = None
    """When the request was created (``request_date``; ``completion_date`` is this + duration)."""
    ttl: float = FILE_TTL_SECONDS

    def status(self, now: float) -> str:
        """The status Batch would report at monotonic time ``now``."""
        if now - self.created < self.duration:
            return "CREATED" if self.polls <= 1 else "PENDING"
        if self.outcome == "SUCCESS" and now - self.created - self.duration >= self.ttl:
            return "EXPIRED"
        return self.outcome


class BatchFake(FakeServer):
    """Batch's Export API on 127.0.0.1, with switches for its failure modes."""

    def __init__(
        self,
        data: BatchData,
        *,
        api_key: str = "BATCH_API_KEY",
        rest_key: str = "batch-rest-key",
        job_seconds: float = 0.2,
        now: dt.datetime | None = None,
        file_ttl: float = FILE_TTL_SECONDS,
        port: int = 0,
        request_id_field: str = "requestId",
        error_style: str = "flat",
    ) -> None:
        """Serve ``data``; jobs take ``job_seconds`` to finish, their files live ``file_ttl``.

        The documents leave two spellings open, so both are knobs: ``request_id_field`` names
        the create answer's id (the example's ``requestId``, the prose's ``request_id``), and
        ``error_style`` shapes error bodies (see :data:`ERROR_STYLES`).
        """
        super().__init__(port=port)
        if error_style not in ERROR_STYLES:
            msg = f"error_style: one of {sorted(ERROR_STYLES)}"
            raise ValueError(msg)
        self.request_id_field = request_id_field
        self.error_style = error_style
        self.data = data
        self.api_key = api_key
        self.rest_key = rest_key
        self.job_seconds = job_seconds
        self.now = now
        self.file_ttl = file_ttl
        self.jobs: dict[str, Job] = {}
        self.faults: deque[tuple[str, str]] = deque()
        """(kind, path fragment) switches, each used once: see :meth:`fail_next`."""
        self.auth_leaks: list[str] = []
        """Storage requests that carried the REST key (must stay empty)."""
        self.max_jobs_in_flight = 0
        self._jobs_lock = threading.Lock()

    # --- switches ----------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1, path: str = "") -> None:
        """Make the next ``times`` matching requests fail.

        Kinds: ``500``, ``503``, ``401``, ``409`` (create), ``reset`` (no answer),
        ``cut`` (a file cut mid-body), ``expired_link`` (storage refuses the link),
        ``ERROR``/``EXPIRED`` (the next created job ends in that state), ``vanish``
        (the request is unknown, 404, on its next status check).
        """
        for _ in range(times):
            self.faults.append((kind, path))

    def _take(self, kinds: set[str], path: str) -> str | None:
        with self._jobs_lock:
            for index, (kind, where) in enumerate(self.faults):
                if kind in kinds and where in path:
                    del self.faults[index]
                    return kind
        return None

    # --- time ------------------------------------------------------------------------------

    def clock(self) -> dt.datetime:
        """The fake's notion of now (UTC)."""
        return self.now or dt.datetime.now(UTC)

    def jobs_in_flight(self) -> int:
        """Jobs created and not finished yet."""
        now = time.monotonic()
        return sum(1 for job in self.jobs.values() if now - job.created < job.duration)

    # --- routing -----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse | None:  # noqa: D102
        response = self._answer(request)
        if response is not None and response.status >= 400 and self.error_style != "flat":
            flat = json.loads(t.cast("bytes", response.body))
            return FakeResponse.json(response.status, ERROR_STYLES[self.error_style](flat))
        return response

    def _answer(self, request: FakeRequest) -> FakeResponse | None:
        if request.path.startswith("/storage/"):
            return self._storage(request)
        fault = self._take({"500", "503", "reset"}, request.path)
        if fault == "reset":
            return FakeResponse(close_before_response=True)
        if fault == "500":
            return error("SERVER_ERROR")
        if fault == "503":
            return error("MAINTENANCE_ERROR")
        prefix = f"/1.0/{self.api_key}/export/"
        if self._take({"401"}, request.path) or request.headers.get("x-authorization") != (
            self.rest_key
        ):
            return error("AUTHENTICATION_INVALID", "Invalid REST API key")
        if not request.path.startswith(prefix):
            return error("ROUTE_NOT_FOUND")
        route = request.path[len(prefix) :]
        if request.method == "GET":
            if route == "requests":  # newest first
                jobs = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
                return FakeResponse.json(200, [self._describe(j) for j in jobs])
            match = re.fullmatch(r"request/([^/]+)", route)
            if match:
                return self._status(match.group(1))
            match = re.fullmatch(r"request/([^/]+)/results/([^/]+)\.csv", route)
            if match:
                return self._result_link(request, match.group(1))
            return error("ROUTE_NOT_FOUND")
        if request.method == "POST":
            return self._create(request, route)
        return error("ROUTE_NOT_FOUND")

    # --- create ------------------------------------------------------------------------------

    def _create(self, request: FakeRequest, route: str) -> FakeResponse:
        if self._take({"409"}, request.path):
            return FakeResponse.json(409, {"message": "Conflict"})
        try:
            body = request.json()
        except ValueError:
            return error("MALFORMED_JSON_BODY", "Invalid JSON body")
        if not isinstance(body, dict):
            return error("MALFORMED_JSON_BODY", "Invalid JSON body")
        parts = route.split("/")
        kind = parts[0]
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            return error("MISSING_PARAMETER", "Missing ids")
        if any(i not in IDS for i in ids):
            return error("MALFORMED_PARAMETER", f"Unknown id in {ids}")
        if kind == "userbase" and len(parts) == 1:
            columns = [*ids, "is_optin_push", "install_date", "last_start_date", "smart_segment"]
            return self._accept(request, body, columns, self.data.userbase)
        span = self._span(body)
        if isinstance(span, FakeResponse):
            return span
        if kind == "reachability" and parts[1:] == ["events"]:
            columns = [
                *ids,
                "event_date",
                "event_type",
                "is_reachable",
                "is_optin",
                "has_custom_id",
            ]
            return self._accept(request, body, columns, self._within(self.data.reachability, span))
        sources = {
            "campaign": (self.data.campaigns, PUSH_EVENTS, []),
            "transactional": (self.data.transactional, PUSH_EVENTS, ["transactional_token"]),
            "in-app-campaign": (self.data.in_app, IN_APP_EVENTS, ["cta", "cta_position"]),
            "inapp-campaign": (self.data.in_app, IN_APP_EVENTS, ["cta", "cta_position"]),
        }
        if kind not in sources or len(parts) != 3 or parts[2] not in {"events", "ids"}:
            return error("ROUTE_NOT_FOUND")
        store, allowed, extra = sources[kind]
        if parts[1] not in store:
            return error("ROUTE_NOT_FOUND", f"Unknown {kind} {parts[1]}")
        events = body.get("events")
        if not isinstance(events, list) or not events:
            return error("MISSING_PARAMETER", "Missing events")
        if any(e not in allowed for e in events):
            return error("MALFORMED_PARAMETER", f"Unknown event in {events}")
        wanted = {OUTPUT_NAMES.get(e, e) for e in events}
        rows = [r for r in self._within(store[parts[1]], span) if r["event_type"] in wanted]
        if parts[2] == "ids":
            columns = [*ids, "event_type"]
        else:
            columns = [*ids, "event_date", "event_type", *extra]
        return self._accept(request, body, columns, rows)

    def _span(self, body: dict) -> tuple[dt.datetime, dt.datetime] | FakeResponse:
        bounds = []
        for name in ("from", "to"):
            value = body.get(name)
            if value is None:
                return error("MISSING_PARAMETER", f"Missing {name}")
            if value == "now":
                bounds.append(self.clock())
                continue
            if not isinstance(value, str) or not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", value
            ):
                return error("MALFORMED_PARAMETER", f"{name} must be 'now' or YYYY-MM-ddTHH:mm:ss")
            bounds.append(dt.datetime.fromisoformat(value).replace(tzinfo=UTC))
        if bounds[0] > bounds[1]:
            return error("MALFORMED_PARAMETER", "from is after to")
        return bounds[0], bounds[1]

    def _within(self, rows: list[dict], span: tuple[dt.datetime, dt.datetime]) -> list[dict]:
        oldest = self.clock() - LOOKBACK
        low, high = max(span[0], oldest), span[1]
        out = []
        for row in rows:
            moment = dt.datetime.fromisoformat(row["event_date"]).replace(tzinfo=UTC)
            if low <= moment <= high:  # both bounds inclusive, to the second
                out.append(row)
        return out

    def _accept(
        self, request: FakeRequest, body: dict, columns: list[str], rows: list[dict]
    ) -> FakeResponse:
        outcome = self._take({"ERROR", "EXPIRED"}, request.path) or "SUCCESS"
        job = Job(
            id=str(uuid.uuid4()),
            uri=request.path,
            body=body,
            columns=columns,
            rows=rows,
            created=time.monotonic(),
            duration=self.job_seconds,
            outcome=outcome,
            error_msg="Export failed: internal error" if outcome == "ERROR" else "",
            requested=self.clock(),
            ttl=self.file_ttl,
        )
        with self._jobs_lock:
            self.jobs[job.id] = job
            self.max_jobs_in_flight = max(self.max_jobs_in_flight, self.jobs_in_flight())
        return FakeResponse.json(202, {self.request_id_field: job.id})

    # --- status and files --------------------------------------------------------------------

    def _describe(self, job: Job) -> dict:
        status = job.status(time.monotonic())
        requested = job.requested or self.clock()
        out = {
            "id": job.id,
            "uri": job.uri,
            "request_date": _stamp(requested),
            "status": status,
            "request": job.body,
        }
        if status == "SUCCESS":
            out["file_url"] = (
                f"{self.base_url}/1.0/{self.api_key}/export/request/{job.id}/results/export.csv"
            )
        if status not in {"CREATED", "PENDING"}:
            out["completion_date"] = _stamp(requested + dt.timedelta(seconds=job.duration))
        if status == "ERROR":
            out["error_msg"] = job.error_msg
        return out

    def _status(self, job_id: str) -> FakeResponse:
        job = self.jobs.get(job_id)
        if job is None or self._take({"vanish"}, job_id):
            return error("ROUTE_NOT_FOUND", "Unknown request")
        job.polls += 1
        return FakeResponse.json(200, self._describe(job))

    def _result_link(self, request: FakeRequest, job_id: str) -> FakeResponse:
        job = self.jobs.get(job_id)
        if job is None or job.status(time.monotonic()) != "SUCCESS":
            return error("ROUTE_NOT_FOUND", "No result")
        expires = int(time.time()) + LINK_SECONDS
        signature = hashlib.sha256(f"{job_id}:{expires}".encode()).hexdigest()[:16]
        location = (
            f"http://localhost:{self.port}/storage/{job_id}.csv?expires={expires}&sig={signature}"
        )
        return FakeResponse(302, b"", {"Location": location})

    def _storage(self, request: FakeRequest) -> FakeResponse:
        if "x-authorization" in request.headers or "authorization" in request.headers:
            self.auth_leaks.append(request.url)
        job_id = request.path.rsplit("/", 1)[-1].removesuffix(".csv")
        job = self.jobs.get(job_id)
        expires = int(request.arg("expires") or 0)
        signature = hashlib.sha256(f"{job_id}:{expires}".encode()).hexdigest()[:16]
        if job is None or request.arg("sig") != signature:
            return FakeResponse(403, b"<Error><Code>AccessDenied</Code></Error>")
        if expires < time.time() or self._take({"expired_link"}, "storage"):
            return FakeResponse(
                403,
                b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            )
        data = self.csv(job)
        if self._take({"cut"}, "storage"):
            return FakeResponse(200, data, {"Content-Type": "text/csv"}, cut_after=len(data) // 2)
        return FakeResponse(200, data, {"Content-Type": "text/csv"})

    @staticmethod
    def csv(job: Job) -> bytes:
        """The export file of a job: ``;``-separated, header first, rows ending in LF.

        A value holding a line break of any kind (CR, LF, CRLF) is quoted, as CSV requires
        (Python's csv would leave a lone CR unquoted with an LF line end: rows are written
        with CRLF, which quotes both, and then given their LF).
        """
        out = io.StringIO()
        line = io.StringIO()
        writer = csv.writer(line, delimiter=";", lineterminator="\r\n")
        for values in [job.columns, *([row.get(c, "") for c in job.columns] for row in job.rows)]:
            line.seek(0)
            line.truncate()
            writer.writerow(values)
            out.write(line.getvalue()[:-2] + "\n")
        return out.getvalue().encode()

    # --- what tests compare against ------------------------------------------------------------

    def expected(
        self, rows: list[dict], columns: list[str], start: dt.datetime, end: dt.datetime
    ) -> list[dict]:
        """Rows of ``[start, end)`` restricted to ``columns``, as the tap should deliver them."""
        oldest = self.clock() - LOOKBACK
        out = []
        for row in rows:
            moment = dt.datetime.fromisoformat(row["event_date"]).replace(tzinfo=UTC)
            if max(start, oldest) <= moment < end:
                out.append({c: row.get(c, "") for c in columns})
        return out
