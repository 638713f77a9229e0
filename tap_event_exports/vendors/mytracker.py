"""myTracker Raw Data Export API: signed asynchronous exports delivered as gzipped CSV parts.

``POST /api/raw/v1/export/create.json`` (parameters in the query string, every request signed
with AuthHMAC) returns ``idRawExport``; ``GET get.json?idRawExport=`` walks ``In progress`` to
``Success!`` with ``files: [{link, timestampExpires}]``, one ``*.N.csv.gz`` part per link.
``User error occurred`` ("Too many lines in export") means the window must be smaller.

Every answer is an envelope ``{"code", "message", "data"}``. Clients read its ``code`` (whether
the HTTP status always mirrors it is not documented), so a failure code in a 2xx answer counts as
that HTTP status. A create refused because the account's export queue is full waits for room.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from tap_event_exports.connection import PROBE_AGE
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
from tap_event_exports.engine.errors import RetriableError, RetriesExhaustedError, VendorError
from tap_event_exports.engine.http import RETRIABLE_STATUSES, HttpPolicy, RequestSpec, json_body
from tap_event_exports.engine.windows import SecondGranularity, Window, utc
from tap_event_exports.vendors.mytracker_streams import (  # noqa: F401 - names callers import
    MyTrackerBlock,
    selector_type,
    stream_name,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

    from tap_event_exports.engine.runtime import Runtime

logger = logging.getLogger("tap_event_exports.mytracker")

API = "/api/raw/v1/export"
MIN_SPLIT = dt.timedelta(minutes=1)
"""Windows are halved on "Too many lines" down to this size; below, the export fails clearly.
``tsFrom``/``tsTo`` are unix seconds, so an hour holding more rows than an export may is split
too."""
ANSWER_LIMIT = 16 << 20
"""Most bytes of an API answer read. A status answer lists one link per part: an export of
hundreds of parts answers far more than the 64 KiB an error body is read to."""
RATE_LIMITS = ((10, 1.0), (100, 60.0), (1000, 3600.0))
"""Requests per API user: 10 a second, 100 a minute, 1000 an hour (documented quotas)."""
ARRAY_ONLY = frozenset({"eventName"})
"""Parameters the API takes only array-based (``eventName[]=a&eventName[]=b``)."""
SERVER_ERRORS = frozenset(range(500, 600))
QUEUE_FULL = "Maximum number of simultaneous requests reached"
"""The documented detail of a create refused because the account's export queue is full."""
QUEUE_PAUSE_GROWTH = 1.5
TURN_CHECK_SECONDS = 0.5
"""How often a create waiting for its turn to ask a full queue checks for a stopped run."""
QUEUE_PAUSE_FLOOR = 5.0
"""The shortest pause before a create refused by a full queue is sent again: each refusal is
an error, and past 60 errors a minute the API blocks the user (four exports in flight asking
every 5 s make 48 a minute)."""
QUEUE_PAUSE_CAP = 60.0
"""The longest pause between creates refused by a full queue: raw exports take minutes, and
every refusal counts toward the 60 errors a minute after which the API blocks the user."""


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
    retry_statuses = SERVER_ERRORS
    """Every 5xx is retried, as a 5xx ``code`` in a 2xx envelope is."""

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
        return envelope_message(body) if isinstance(body, dict) else response.reason or ""

    def rate_limited(self, response: requests.Response, message: str) -> bool:
        """A 429, or a 429 envelope (``{"code": 429, …}``) whatever the HTTP status."""
        body = json_body(response)
        return super().rate_limited(response, message) or (
            isinstance(body, dict) and body.get("code") == 429
        )

    def wait_hint(self, response: requests.Response) -> float | None:
        """The longest ``resetInSecond`` among the exceeded quotas of a 429 body."""
        return quota_wait(json_body(response))

    def body_failure(self, body: t.Any) -> BodyFailure | None:
        """A failure ``code`` in a 2xx envelope: retried or final as that HTTP status would be."""
        code = failure_code(body)
        if code is None:
            return None
        message = f"code {code} {envelope_message(body)}".strip()
        if code == 429:
            return BodyFailure(True, message, wait=quota_wait(body), rate_limited=True)
        retriable = code in RETRIABLE_STATUSES or code in SERVER_ERRORS
        return BodyFailure(retriable, message, status=code)


def failure_code(body: t.Any) -> int | None:
    """The ``code`` of an envelope that reports a failure (400 and up), else ``None``."""
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        return code
    return None


def envelope_message(body: dict[str, t.Any]) -> str:
    """The vendor's words in an envelope: message, ``data.error.detail``, listed export ids."""
    error = _mapping(_mapping(body.get("data")).get("error"))
    message = str(body.get("message") or "")
    detail = error.get("detail")
    if detail:
        message = f"{message}: {detail}" if message else str(detail)
    listed = listed_exports(error)
    if listed:
        message += f" (idRawExport {', '.join(listed)})"
    return message


def listed_exports(error: dict[str, t.Any]) -> list[str]:
    """The ids in ``info.exports`` of an error: the exports that fill a full queue."""
    exports = _mapping(error.get("info")).get("exports")
    if not isinstance(exports, list):
        return []
    return [str(e["idRawExport"]) for e in exports if isinstance(e, dict) and "idRawExport" in e]


def _mapping(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def queue_full(exc: VendorError) -> bool:
    """Whether a refusal is the documented "Maximum number of simultaneous requests" 400."""
    return exc.status == 400 and QUEUE_FULL in str(exc)


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


@dataclass(frozen=True)
class QueueWait:
    """How long a create refused by a full export queue keeps asking for room, and how often."""

    first: float
    """The first pause (``poll_interval``); pauses grow up to :attr:`cap`."""
    limit: float
    """Most seconds to wait in all (``max_poll_time``, as for the export itself)."""
    gate: threading.Lock = field(default_factory=threading.Lock, compare=False)
    """Held by the one refused create that asks again (see ``MyTrackerJobs._create_when_room``)."""

    @property
    def start(self) -> float:
        """The first pause: ``poll_interval``, at least :data:`QUEUE_PAUSE_FLOOR`."""
        return max(QUEUE_PAUSE_FLOOR, self.first)

    @property
    def cap(self) -> float:
        """The longest pause: a minute, or ``poll_interval`` where that is longer."""
        return max(QUEUE_PAUSE_CAP, self.start)

    @contextlib.contextmanager
    def turn(self, stop: threading.Event, *, what: str) -> Iterator[None]:
        """Hold the one turn to ask a full queue again (a stopped run stops waiting for it)."""
        while not self.gate.acquire(timeout=TURN_CHECK_SECONDS):
            if stop.is_set():
                raise RetriesExhaustedError(f"mytracker: {what}: run stopped")
        try:
            yield
        finally:
            self.gate.release()

    def pauses(self) -> Iterator[float]:
        """Pauses between creates, growing: exports take minutes to leave the queue."""
        pause = self.start
        while True:
            yield pause
            pause = min(pause * QUEUE_PAUSE_GROWTH, self.cap)


def announce_full_queue(exc: VendorError, queue: QueueWait) -> None:
    """Say once per create that it waits for queue room (naming the exports that fill it).

    The wait may last minutes; its retries are not logged one by one.
    """
    logger.warning(
        "%s; waiting for room: asking again every %gs to %gs, for at most %gs (max_poll_time)",
        exc,
        queue.start,
        queue.cap,
        queue.limit,
    )


class MyTrackerJobs(ExportJobs):
    """Raw data export requests as export jobs."""

    vendor = "mytracker"

    def __init__(
        self,
        policy: HttpPolicy,
        base: str,
        stream: str,
        parameters: t.Callable[[Window], list],
        *,
        queue: QueueWait,
        describe: t.Callable[[Window], str] = str,
    ) -> None:
        """``parameters`` gives the create call's query of a window, ``describe`` its label."""
        self.policy = policy
        self.base = base
        self.stream = stream
        self.parameters = parameters
        self.queue = queue
        self.describe = describe

    def call(self, spec: RequestSpec, *, what: str) -> t.Any:
        """Send an API request (with retries) and return its JSON envelope.

        Clients read the envelope's ``code``, and whether the HTTP status always mirrors it is
        not documented: a failure code in a 2xx answer is retried, or raised with the code as
        ``VendorError.status``, exactly as that HTTP status would be.
        """

        def attempt() -> t.Any:
            response = self.policy.send_once(spec, what=what)
            try:
                body = answer_body(response, what=what)
            finally:
                response.close()
            if not isinstance(body, dict):
                msg = "an answer that is not a JSON envelope (a proxy or gateway answering?)"
                raise RetriableError(msg)
            self.policy.check_body(body, what=what)  # a final code is the error's status
            return body

        return self.policy.retrying(attempt, what=what)

    def create(self, window: Window, partition: Partition) -> str:
        """Create a window's export, waiting for room while the account's queue is full."""
        return self._create(window, self.queue)

    def _create(self, window: Window, queue: QueueWait | None) -> str:
        spec = RequestSpec("POST", f"{self.base}{API}/create.json", params=self.parameters(window))
        what = f"{self.stream}: create raw export {self.describe(window)}"
        body = self._create_when_room(spec, what, queue)
        try:
            return str(body["data"]["idRawExport"])
        except (KeyError, TypeError):
            msg = f"mytracker: {self.stream}: no idRawExport in the answer: {str(body)[:200]}"
            raise VendorError(msg) from None

    def _create_when_room(self, spec: RequestSpec, what: str, queue: QueueWait | None) -> t.Any:
        """Send a create again and again while the vendor's export queue is full.

        The account's queue may be smaller than the exports a run keeps in flight, and raw
        exports take minutes to leave it: a refused create waits for room (``queue``; ``None``:
        not at all) rather than giving up after a few quick retries. One refused create at a
        time asks again (the others wait for their turn): each refusal is an error, and past
        60 a minute the API blocks the user, however many exports are in flight.
        """
        started = time.monotonic()
        try:
            return self.call(spec, what=what)
        except VendorError as exc:
            if queue is None or not queue_full(exc):
                raise
            refusal = exc
        with queue.turn(self.policy.stop, what=what):
            return self._ask_until_room(spec, what, queue, refusal, started)

    def _ask_until_room(
        self, spec: RequestSpec, what: str, queue: QueueWait, refusal: VendorError, started: float
    ) -> t.Any:
        """Send the create after growing pauses until it is taken (see ``_create_when_room``)."""
        announce_full_queue(refusal, queue)
        pauses = queue.pauses()
        while True:
            pause = next(pauses)
            waited = time.monotonic() - started
            if waited >= queue.limit:
                msg = f"{refusal}; still full after {waited:.0f}s (max_poll_time {queue.limit:g}s)"
                raise VendorError(msg, status=refusal.status) from refusal
            try:
                self.policy.sleep(min(pause, queue.limit - waited))
            except RetriableError as exc:  # the run is being stopped
                raise RetriesExhaustedError(f"mytracker: {what}: {exc}") from exc
            try:
                return self.call(spec, what=what)
            except VendorError as exc:
                if not queue_full(exc):
                    raise
                refusal = exc

    def status(self, job_id: str, partition: Partition) -> JobStatus:  # noqa: D102
        spec = RequestSpec("GET", f"{self.base}{API}/get.json", params={"idRawExport": job_id})
        try:
            body = self.call(spec, what=f"{self.stream}: raw export {job_id}")
        except VendorError as exc:
            if exc.status == 404:
                return JobStatus(Phase.EXPIRED, message="raw export not found")
            raise
        data = _mapping(body.get("data"))
        state = str(data.get("status", ""))
        if state == "In progress":
            return JobStatus(Phase.RUNNING, progress=str(data.get("progress", "")))
        if state.startswith("Success"):
            files = sorted(data.get("files") or [], key=_part_number)
            now = time.time()
            if any(float(f.get("timestampExpires") or now + 1) <= now for f in files):
                return JobStatus(Phase.EXPIRED, message="the export's file links expired")
            links = [urllib.parse.urljoin(f"{self.base}/", str(f["link"])) for f in files]
            return JobStatus(Phase.DONE, files=[RequestSpec("GET", link) for link in links])
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
        self.call(spec, what=f"{self.stream}: cancel raw export {job_id}")
        return True

    def probe(self, window: Window, partition: Partition) -> None:
        """``--test``: create one tiny export and cancel it, in seconds.

        A connection check does not wait for room in a full queue: it reports the vendor's
        refusal, which names the exports filling the queue.
        """
        job_id = self._create(window, None)
        with contextlib.suppress(VendorError):  # an export that cannot be canceled any more
            self.cancel(job_id)


def answer_body(response: requests.Response, *, what: str) -> t.Any:
    """An API answer's JSON (``None`` if it is not JSON), read whole up to :data:`ANSWER_LIMIT`.

    A longer answer stops the run with one line rather than be cut into invalid JSON.
    """
    raw = bytearray()
    for chunk in response.iter_content(1 << 16):
        raw += chunk
        if len(raw) > ANSWER_LIMIT:
            msg = f"mytracker: {what}: an answer longer than {ANSWER_LIMIT} bytes (not read)"
            raise VendorError(msg)
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _part_number(file: dict) -> int:
    match = re.search(r"\.(\d+)\.csv(\.gz)?$", urllib.parse.urlsplit(file.get("link", "")).path)
    return int(match.group(1)) if match else 0


def _list_value(value: t.Any) -> list[str]:
    if isinstance(value, list):
        return [parameter_text(v) for v in value]
    return [v.strip() for v in parameter_text(value).split(",") if v.strip()]


def parameter_text(value: t.Any) -> str:
    """A create parameter's text: a boolean as ``1`` or ``0``.

    Flags take "0 — off (by default) 1 — on" (``eventNameInvert``), ``isVerified`` "For
    example: 1"; Python's ``True`` would go out as ``True``.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


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
        queue = QueueWait(runtime.settings.poll_interval, runtime.settings.max_poll_time)
        probe_start = granularity.floor(runtime.now - PROBE_AGE)
        probe_window = Window(probe_start, probe_start + granularity.unit)

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
                        query.append((key, ",".join(parameter_text(v) for v in value)))
                    else:
                        query.append((key, parameter_text(value)))
                return query

            jobs = MyTrackerJobs(policy, base, name, parameters, queue=queue, describe=describe)
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
                    probe=functools.partial(jobs.probe, probe_window),
                )
            )
        return streams
