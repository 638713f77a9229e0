"""A fake of myTracker's Raw Data Export API, as documented.

Every request must carry a valid ``AuthHMAC`` signature over method, URL and body (403
otherwise), downloads included. ``create.json`` takes its parameters in the query string or as a
form body, lists comma-separated or array-based; ``get.json`` walks ``In progress`` to
``Success!`` with gzipped CSV parts ``<id>.<event>.<hash>.<n>.csv.gz`` that expire.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import random
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

from tap_event_exports.sandbox.server import FakeRequest, FakeResponse, FakeServer
from tap_event_exports.vendors.mytracker import sign

EVENTS = (
    "installs",
    "customEvents",
    "payments",
    "sessions",
    "reinstalls",
    "reengagements",
)
FORBIDDEN = {"code": 403, "message": "Access denied", "data": None}
LINK_SECONDS = 3600


def bad_request(detail: str) -> FakeResponse:
    """A 400 with myTracker's envelope."""
    body = {"code": 400, "message": "Bad Request", "data": {"error": {"detail": detail}}}
    return FakeResponse.json(400, body)


def generate_rows(
    event: str, *, start: dt.datetime, days: int, per_day: int, seed: int = 5
) -> list[dict[str, str]]:
    """Raw events of one kind: unix timestamps, ids, titles, SDK keys and list parameters."""
    rng = random.Random(f"{seed}-{event}")
    rows = []
    for day in range(days):
        base = int(start.timestamp()) + day * 86400
        for _ in range(per_day):
            ts = base + rng.randrange(86400)
            app = rng.choice([1, 454, 23])
            names = [f"param{n}" for n in range(rng.randrange(3))]
            if names and rng.random() < 0.3:
                names[-1] = "param with\n line break"
            rows.append(
                {
                    "tsEvent": str(ts),
                    "tsInstall": str(ts - rng.randrange(86400 * 30)),
                    "dtEvent": dt.datetime.fromtimestamp(ts, dt.timezone.utc).date().isoformat(),
                    "idApp": str(app),
                    "idAppTitle": {1: "Game", 454: "Shop", 23: "Чат"}[app],
                    "idCountry": str(rng.choice([188, 200, 14])),
                    "idCampaign": str(rng.randrange(60, 70)),
                    "SDKKey": f"{rng.randrange(10**19):020d}",
                    "idDevice": str(rng.randrange(10**9)),
                    "eventName": rng.choice(["level_up", "purchase_click", "tutorial"]),
                    "params.name": repr(names),
                    "params.value": repr([str(rng.randrange(100)) for _ in names]),
                    "revenue": f"{rng.randrange(100000) / 100:.2f}",
                }
            )
            if rng.random() < 0.03:
                rows.append(dict(rows[-1]))  # the same event twice
    return rows


@dataclass
class RawExport:
    """One raw export request."""

    id: str
    event: str
    selectors: list[str]
    rows: list[dict[str, str]]
    created: float
    duration: float
    outcome: str = "Success!"
    error: str = ""
    canceled: bool = False
    expires: float = 0.0
    parts: list[bytes] = field(default_factory=list)
    request: tuple = ()
    """What was asked for (event, range, selectors, filters): equal requests, equal files."""


class MyTrackerFake(FakeServer):
    """myTracker's Raw Data Export API on 127.0.0.1, with switches for its failure modes."""

    def __init__(
        self,
        rows: dict[str, list[dict[str, str]]],
        *,
        user_id: str = "77658",
        secret: str = "mytracker-secret-key",
        job_seconds: float = 0.2,
        part_rows: int = 40,
        row_limit: int | None = None,
        per_second: int = 10,
        per_minute: int = 100,
        port: int = 0,
        memoize: bool = False,
    ) -> None:
        """Serve ``rows`` per event; exports above ``row_limit`` rows fail as too large.

        ``memoize`` keeps the rows and gzip parts of each distinct request, so a repeated
        request is served without selecting or rendering again (benchmarks measure the tap,
        not this server).
        """
        super().__init__(port=port)
        self.rows = rows
        self.user_id = user_id
        self.secret = secret
        self.job_seconds = job_seconds
        self.part_rows = part_rows
        self.row_limit = row_limit
        self.limits = ((per_second, 1.0), (per_minute, 60.0))
        self.exports: dict[str, RawExport] = {}
        self.faults: deque[str] = deque()
        self.bad_signatures = 0
        self.quota_refusals = 0
        self._stamps: list[float] = []
        self._lock2 = threading.Lock()
        self._rendered: dict[tuple, list[bytes]] | None = {} if memoize else None
        self._selected: dict[tuple, list[dict[str, str]]] | None = {} if memoize else None

    # --- switches ----------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next matching step fail.

        Kinds: ``Error occurred`` (next export fails, retryable), ``Canceled by user``,
        ``truncated`` (next part download is cut), ``429`` (next request over quota), ``500``.
        """
        for _ in range(times):
            self.faults.append(kind)

    def _take(self, kind: str) -> bool:
        with self._lock2:
            if kind in self.faults:
                self.faults.remove(kind)
                return True
        return False

    # --- checks ------------------------------------------------------------------------------

    def _signed(self, request: FakeRequest) -> bool:
        body = request.body.decode() if request.body else None
        expected = sign(request.method, request.url, body, self.user_id, self.secret)
        return request.headers.get("authorization") == expected

    def _quota(self) -> FakeResponse | None:
        now = time.time()
        with self._lock2:
            self._stamps = [s for s in self._stamps if now - s < 3600]
            forced = "429" in self.faults
            if forced:
                self.faults.remove("429")
            quotas = []
            exceeded = forced
            for (limit, seconds), name in zip(
                self.limits, ("RequestsByUserPerSecond", "RequestsByUserPerMinute"), strict=True
            ):
                count = sum(1 for s in self._stamps if now - s < seconds)
                over = count >= limit
                exceeded = exceeded or over
                reset = 1 if forced else int(seconds - (now % seconds)) or 1
                quotas.append(
                    {
                        "name": name,
                        "count": count,
                        "limit": limit,
                        "resetTime": int(now) + reset,
                        "resetInSecond": reset,
                        "exceeded": over or forced,
                    }
                )
            if not exceeded:
                self._stamps.append(now)
                return None
            self.quota_refusals += 1
        body = {
            "code": 429,
            "message": "Too Many Requests",
            "data": {"error": {"info": {"quotas": quotas}}},
        }
        return FakeResponse.json(429, body)

    # --- routing -----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse | None:  # noqa: D102
        if not self._signed(request):
            self.bad_signatures += 1
            return FakeResponse.json(403, FORBIDDEN)
        refused = self._quota()
        if refused is not None:
            return refused
        if self._take("500"):
            return FakeResponse.json(
                500, {"code": 500, "message": "Internal Server Error", "data": None}
            )
        if request.path.startswith("/storage/download/raw/"):
            return self._download(request)
        params = dict(request.query)
        if request.body and "form-urlencoded" in request.headers.get("content-type", ""):
            params.update(urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True))
        route = request.path.removeprefix("/api/raw/v1/export/")
        if route == "create.json" and request.method == "POST":
            return self._create(params)
        if route == "get.json":
            return self._get(params)
        if route == "cancel.json":
            return self._cancel(params)
        return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})

    @staticmethod
    def _list(params: dict[str, list[str]], name: str) -> list[str] | None:
        values = params.get(name) or params.get(f"{name}[]")
        if values is None:
            return None
        out: list[str] = []
        for value in values:
            out.extend(v for v in value.split(",") if v)
        return out

    def _create(self, params: dict[str, list[str]]) -> FakeResponse:
        event = (params.get("event") or [None])[0]
        if event is None:
            return bad_request("Argument 'event' is expected but not set")
        if event not in self.rows and event not in EVENTS:
            return bad_request("Argument 'event' must be in set of allowed tables.")
        selectors = self._list(params, "selectors")
        if not selectors:
            return bad_request("Argument 'selectors' is invalid")
        try:
            ts_from = int(params["tsFrom"][0])
            ts_to = int(params["tsTo"][0])
        except (KeyError, ValueError):
            return bad_request("Arguments tsFrom and tsTo are expected")
        if ts_from > ts_to or ts_to > time.time():
            return bad_request("Argument 'tsTo' is invalid")
        apps = self._list(params, "idApp")
        names = self._list(params, "eventName")
        invert = (params.get("eventNameInvert") or ["0"])[0] == "1"
        request = (event, ts_from, ts_to, tuple(selectors), tuple(apps or ()), *(names or ()))
        request += (invert,)
        rows = self._selected.get(request) if self._selected is not None else None
        if rows is None:
            rows = [r for r in self.rows.get(event, []) if ts_from <= int(r["tsEvent"]) <= ts_to]
            if apps:
                rows = [r for r in rows if r["idApp"] in apps]
            if names:
                rows = [r for r in rows if (r["eventName"] in names) != invert]
            if self._selected is not None:
                self._selected[request] = rows
        export = RawExport(
            id=str(len(self.exports) + 1),
            event=event,
            selectors=selectors,
            rows=rows,
            created=time.monotonic(),
            duration=self.job_seconds,
            request=request,
        )
        if self.row_limit is not None and len(rows) > self.row_limit:
            export.outcome, export.error = "User error occurred", "Too many lines in export"
        elif self._take("Error occurred"):
            export.outcome, export.error = "Error occurred", "Export interrupted"
        elif self._take("Canceled by user"):
            export.outcome = "Canceled by user"
        self.exports[export.id] = export
        return FakeResponse.json(
            200, {"code": 200, "message": "Ok", "data": {"idRawExport": export.id}}
        )

    def _find(self, params: dict[str, list[str]]) -> RawExport | None:
        return self.exports.get((params.get("idRawExport") or [""])[0])

    def _get(self, params: dict[str, list[str]]) -> FakeResponse:
        export = self._find(params)
        if export is None:
            body = {
                "code": 404,
                "message": "Not Found",
                "data": {"error": {"detail": "Raw export request not found"}},
            }
            return FakeResponse.json(404, body)
        elapsed = time.monotonic() - export.created
        data: dict = {"idRawExport": export.id, "isCancellable": False}
        if export.canceled:
            data["status"] = "Canceled by user"
        elif elapsed < export.duration:
            data["status"] = "In progress"
            data["progress"] = f"{min(99, int(100 * elapsed / export.duration))}%"
            data["isCancellable"] = True
        elif export.outcome != "Success!":
            data["status"] = export.outcome
            if export.error:
                data["errorMessage"] = export.error
        else:
            data["status"] = "Success!"
            data["files"] = self._files(export)
        return FakeResponse.json(200, {"code": 200, "message": "Ok", "data": data})

    def _files(self, export: RawExport) -> list[dict[str, str]]:
        if not export.parts and self._rendered is not None:
            export.parts = self._rendered.get(export.request, [])
            export.expires = time.time() + LINK_SECONDS
        if not export.parts:
            export.expires = time.time() + LINK_SECONDS
            chunks = [
                export.rows[i : i + self.part_rows]
                for i in range(0, len(export.rows), self.part_rows)
            ] or [[]]
            for chunk in chunks:
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(export.selectors)
                for row in chunk:
                    writer.writerow([row.get(s, "") for s in export.selectors])
                export.parts.append(gzip.compress(out.getvalue().encode()))
            if self._rendered is not None:
                self._rendered[export.request] = export.parts
        digest = hashlib.md5(export.id.encode()).hexdigest()  # noqa: S324 - a file name
        return [
            {
                "link": f"{self.base_url}/storage/download/raw/{export.id}.{export.event}.{digest}.{n}.csv.gz",
                "timestampExpires": str(int(export.expires)),
            }
            for n in range(len(export.parts))
        ]

    def _cancel(self, params: dict[str, list[str]]) -> FakeResponse:
        export = self._find(params)
        if export is None:
            body = {
                "code": 404,
                "message": "Not Found",
                "data": {"error": {"detail": "Raw export request not found"}},
            }
            return FakeResponse.json(404, body)
        if export.parts:
            return bad_request("This RawExport can not be cancel (it's completed)")
        export.canceled = True
        return FakeResponse.json(
            200,
            {"code": 200, "message": "Ok", "data": {"idRawExport": export.id, "info": "Canceled"}},
        )

    def _download(self, request: FakeRequest) -> FakeResponse:
        name = request.path.rsplit("/", 1)[-1]
        export_id, _, rest = name.partition(".")
        export = self.exports.get(export_id)
        try:
            number = int(rest.split(".")[-3])
        except (ValueError, IndexError):
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        if export is None or number >= len(export.parts):
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        if time.time() > export.expires:
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        data = export.parts[number]
        headers = {"Content-Type": "application/gzip"}
        if self._take("truncated"):
            return FakeResponse(200, [data[: len(data) - 30]], headers)  # chunked, cut short
        return FakeResponse(200, data, headers)
