r"""A fake of myTracker's Raw Data Export API, as documented.

Every request must carry a valid ``AuthHMAC`` signature over method, URL and body (403
otherwise), downloads included. ``create.json`` takes its parameters in the query string or as a
form body, lists comma-separated or array-based; ``get.json`` walks ``In progress`` to
``Success!`` with gzipped CSV parts ``<id>.<event>.<hash>.<n>.csv.gz`` that expire.

Sources: ``seeds/003`` (create.json: parameters, responses, errors) and ``providers.md``
section 3 (get/cancel/download/auth/quotas pages, the HScokies C# wrapper and the PyPI client).
Tests: ``tests/test_sandbox_fidelity.py`` (``fid``), ``tests/test_mytracker.py``,
``tests/test_fault_matrix.py``. UNCONFIRMED marks the fake's position where the documents are
silent.

Documented behaviour, where it comes from and where it is exercised:

- Envelope ``{"code": <int>, "message": <text>, "data": {...} | null}`` on every answer
  [seeds/003; providers 3.5]; the HTTP status equals ``code`` (UNCONFIRMED: clients read
  ``code``) (fid ``test_mytracker_envelope_on_every_answer``). Knob ``errors_as_http_200``
  sends every failure envelope with HTTP 200, its code only in the body, the other reading
  of the documents (``test_mytracker.py``, tests parametrized over both).
- Auth ``Authorization: AuthHMAC <user id>:<base64 HMAC-SHA1(secret, METHOD&quote(url)&quote(body))>``
  with ``quote(..., safe='~')`` [providers 3.3]; implemented here from the document (not
  borrowed from the tap) and checked against the documented test vector (fid
  ``test_mytracker_signature_matches_the_documented_test_vector``). Downloads are signed too
  ("soon mandatory" [providers 3.6]). Unsigned or badly signed:
  ``403 {"code":403,"message":"Access denied","data":null}`` [seeds/003 Restrictions;
  providers 3.5] (fid ``test_mytracker_envelope_on_every_answer[403 bad signature]``).
- create.json: ``POST``, parameters in the query or a form body, lists comma-separated or
  array-based (``idApp[]=1&idApp[]=454``) [seeds/003; providers 3.3]; ``event`` and
  ``selectors`` required; ``dateFrom``/``dateTo`` (``YYYY-MM-DD`` in ``timezone``, default
  ``Europe/Moscow``) or ``tsFrom``/``tsTo`` (unix seconds) required, not after now, from ≤ to
  [seeds/003] (fid ``test_mytracker_create_reads_dates_in_the_timezone``). Both date bounds
  inclusive whole days (UNCONFIRMED). ``eventName[]`` / ``eventNameInvert`` only for custom
  events [seeds/003] (``test_mytracker.py``).
- create 200 ``{"code":200,"message":"Ok","data":{"idRawExport":"2"}}``: ids are strings
  [seeds/003] (fid ``test_mytracker_export_walks_to_success_with_documented_files``).
- create 400 ``{"code":400,"message":"Bad Request","data":{"error":{"detail": ...}}}`` with the
  documented details: invalid event ("Argument 'event' must be in set of allowed tables.
  Allowed values are: ..."), missing event ("Argument 'event' is expected but not set"),
  invalid selectors ("Argument 'selectors' is invalid"), no export permission ("Export
  permissions required to export raw data from an account", knob ``export_permission``),
  more than 1000 values in one filter ("Argument 'idCampaign' set size expected to be below
  1000"), a full queue ("Maximum number of simultaneous requests reached. Wait until there is
  space available in the queue." with ``info.exports: [{"idRawExport": "2"}]``, knob
  ``queue_limit``; the real queue size is UNCONFIRMED, default: no limit; refused creates are
  kept in ``queue_refused``) [seeds/003] (fid ``test_mytracker_envelope_on_every_answer``,
  ``test_mytracker_full_queue_and_finished_cancel``; ``test_mytracker.py`` full-queue tests).
  Missing date pair, a bound in the future or from > to: a 400 of the same shape (detail
  wording UNCONFIRMED).
- get.json ``data.status``: ``In progress`` with ``progress: "64%"`` and ``isCancellable``;
  ``Success!`` with ``files: [{"link", "timestampExpires"}]`` (``timestampExpires`` a
  **string** of unix seconds); ``Error occurred`` (retryable); ``User error occurred`` with
  ``errorMessage`` ("Too many lines in export", knob ``row_limit``); ``Canceled by user``
  [providers 3.5] (fid ``test_mytracker_export_walks_to_success_with_documented_files``,
  ``test_mytracker.py``). Unknown id: ``404 {"code":404,"message":"Not Found","data":{"error":
  {"detail":"Raw export request not found"}}}`` [providers 3.5] (fid ``[404 get]``).
- cancel.json: 200 ``{"idRawExport", "info": "Canceled"}``; 404 as above; 400 "This RawExport
  can not be cancel (it's completed)" [providers 3.5] (fid ``[404 cancel]``, ``test_mytracker_full_queue_and_finished_cancel``).
- Files: ``<id>.<event>.<hash>.<n>.csv.gz`` gzip CSV parts, one or more links, available
  until ``timestampExpires`` [providers 3.5, 3.6]. Link lifetime (1 h here) UNCONFIRMED;
  CSV delimiter ``,``, header row, LF line ends and RFC 4180 quoting (a field with ``,``,
  ``"``, CR or LF quoted, a lone CR included: ``csv_line``) UNCONFIRMED (clients assume a
  comma CSV with a header); an expired or unknown link answers 404 in the envelope
  (UNCONFIRMED). "Depending on the size of the data, it can be a single file or a GZIP
  archive, one or more links" [download page, providers 3.6]: knob ``plain_files`` serves the
  parts as plain CSV files ``<id>.<event>.<hash>.<n>.csv`` (which sizes get which form is
  UNCONFIRMED; default: gzip, as the raw get page's example links).
- ``params.name`` / ``params.value`` are lists serialized like
  ``['param1','param2\n with line break',…]`` [providers 3.4, from the docs' selector list];
  the selector dictionary's example (as a public client copies it, secondary),
  ``['param1','param2\n with line break','param3 with special characters\'\\"",' ]`` (CSV
  cell text), is ClickHouse's text form of an
  ``Array(String)``: items in single quotes, ``,`` between them, no spaces, ``[]`` for none;
  inside items ``\\`` for a backslash, ``\'`` for a quote and ``\b`` ``\f`` ``\n``
  ``\r`` ``\t`` ``\0`` for those characters (what ClickHouse escapes when it writes; other
  characters raw) (``escape_list``). Generated rows hold a list cell as a ``ListCell``, the
  documented text that keeps its items; a cell may also be given as its items, or as text
  (served as it is). Knob ``escaped_lists=False`` writes the older unescaped style the tap
  also reads: items as they are (real line breaks), an item holding ``'`` in double quotes
  (``write_list`` / ``read_list``); an item holding both quotes has no such form. The
  generated rows carry real line feeds, carriage returns, ``"``, ``'``, ``,``, ``;``,
  backslashes, unicode, empty items and empty lists (fid
  ``test_mytracker_list_values_use_the_documented_format``,
  ``test_mytracker_list_serialization_round_trips``; ``test_mytracker.py`` exact datasets,
  the documented example over HTTP; ``test_mytracker_properties.py``).
- ``dtEvent`` is the event's date in the request's ``timezone`` [providers 3.4], computed
  from ``tsEvent`` when a file is written (``test_mytracker.py``).
- Flags: ``eventNameInvert`` is "0 — off (by default) 1 — on", ``isVerified`` "One value from
  the Verification dictionary. For example: 1" [seeds/003]; any other value is refused with
  the documented 400 shape, detail "Argument '<name>' is invalid" (the wording of the
  documented invalid-selectors detail; the Verification dictionary's values beyond 0/1
  UNCONFIRMED) (``test_mytracker.py``).
- Part links are absolute URLs in the documented example [providers 3.5]; knob
  ``relative_links`` answers them as paths (``/storage/download/raw/...``), the other reading
  of an undocumented detail (``test_mytracker.py``).
- Quotas per API user: 10 a second, 100 a minute, 1000 an hour [providers 3.7]; over any:
  ``429 {"code":429,"message":"Too Many Requests","data":{"error":{"info":{"quotas":[{"name",
  "count", "limit", "resetTime", "resetInSecond", "exceeded"}, ...]}}}}`` listing all three
  (fid ``test_mytracker_envelope_on_every_answer[429 quota]``, matrix "vendor's own 429").
  Knobs ``per_second``, ``per_minute``, ``per_hour`` (or ``limits``)
  (fid ``test_mytracker_quota_defaults_are_the_documented_ones``). Not modelled: the per-IP quotas, the
  60 errors/minute block and the unauthorized callers' 10/s.
- 500: the envelope with ``code`` 500 and ``data: null`` (shape UNCONFIRMED; no 5xx is
  documented) (fid ``[500]``, matrix "5xx with the vendor's routine headers"). No wait header
  is documented on any answer.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import random
import re
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tap_event_exports.sandbox.server import FakeRequest, FakeResponse, FakeServer

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
QUOTA_NAMES = {
    1.0: "RequestsByUserPerSecond",
    60.0: "RequestsByUserPerMinute",
    3600.0: "RequestsByUserPerHour",
}
"""The quota names of the documented 429 body, by period."""
FILTER_VALUES = 1000
"""At most 1000 values in one filter [seeds/003]; its detail says "below 1000": exactly 1000
is allowed here (UNCONFIRMED which)."""
FILTERS = (
    "idApp",
    "SDKKey",
    "idAccount",
    "idAd",
    "idCampaign",
    "idCountry",
    "idProject",
    "idPartner",
    "eventName",
)
ALLOWED_EVENTS = (
    "Argument 'event' must be in set of allowed tables. "
    "Allowed values are: install, payment, launch, customEvent."
)
"""The documented detail, word for word (its list of values is the document's, not the API's)."""
QUEUE_FULL = (
    "Maximum number of simultaneous requests reached. Wait until there is space available in "
    "the queue."
)
SPECIAL_ITEMS = (
    "param with\n line break",
    "cr\ronly",
    "crlf\r\nend",
    'say "hi"',
    "it's",
    "a,b",
    "semi;colon",
    "C:\\new\\table",
    "trailing\\",
    "",
    "Чат 🎉 ü",
    "[nested]",
    " spaced ",
)
"""Items the generated lists carry: what the documented serialization must survive."""


def sign(method: str, url: str, body: bytes | str | None, user_id: str, secret: str) -> str:
    """The ``Authorization`` header myTracker expects, computed as its documentation says.

    ``baseline = METHOD & quote(url, safe='~') & quote(body or '', safe='~')``, then
    ``Base64(HMAC-SHA1(secret, baseline))`` [providers 3.3].
    """
    if isinstance(body, bytes):
        body = body.decode()
    quote = urllib.parse.quote
    baseline = f"{method.upper()}&{quote(url, safe='~')}&{quote(body or '', safe='~')}"
    digest = hmac.new(secret.encode(), baseline.encode(), hashlib.sha1).digest()
    return f"AuthHMAC {user_id}:{base64.b64encode(digest).decode()}"


def csv_line(values: list[str]) -> str:
    """One CSV record, comma separated, ending in a line feed, quoted as RFC 4180 says.

    A field holding a comma, a quote, a CR or an LF is quoted, quotes doubled. Python's
    ``csv.writer`` with a line-feed terminator leaves a lone CR unquoted, which no reader can
    split back; a vendor's file would quote it.
    """
    quoted = (
        '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value
        for value in values
    )
    return ",".join(quoted) + "\n"


Cell = str | list[str]
"""A raw cell: its text, or a list's items (written as the fake's knob says; see
:class:`ListCell`)."""
Row = dict[str, Cell]
FLAGS = ("eventNameInvert", "isVerified")
DEFAULT_TIMEZONE = "Europe/Moscow"
"""``timezone``'s documented default [seeds/003]."""
"""Create parameters that take one of 0 and 1 [seeds/003]."""
_CLICKHOUSE_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\0": "\\0",
}
"""What ClickHouse escapes in a single-quoted string it writes; other characters go raw."""


def escape_list(items: list[str]) -> str:
    r"""A list as the documents show it: ``['param1','param2\n with line break']``.

    ClickHouse's quoted strings: single quotes, no spaces, backslash escapes.
    """
    escaped = ("".join(_CLICKHOUSE_ESCAPES.get(c, c) for c in item) for item in items)
    return "[" + ",".join(f"'{item}'" for item in escaped) + "]"


class ListCell(str):
    """A list cell: the text the documents show (:func:`escape_list`), holding its items.

    The items let the older unescaped style be written too (knob ``escaped_lists``).
    """

    items: list[str]

    def __new__(cls, items: list[str]) -> ListCell:  # noqa: D102
        cell = super().__new__(cls, escape_list(items))
        cell.items = list(items)
        return cell


def write_list(items: list[str]) -> str:
    """A list in the older unescaped style: ``['a','b']``, raw items, no escapes.

    An item containing ``'`` goes in double quotes; one holding both quotes cannot be written.
    """
    out = []
    for item in items:
        if "'" in item and '"' in item:
            msg = f"an item with both quote characters has no escape-free form: {item!r}"
            raise ValueError(msg)
        quote = '"' if "'" in item else "'"
        out.append(f"{quote}{item}{quote}")
    return "[" + ",".join(out) + "]"


def read_list(text: str) -> list[str]:
    """The items of a list written by :func:`write_list` (each ends at its next own quote)."""
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(text)
    items, pos, end = [], 1, len(text) - 1
    while pos < end:
        quote = text[pos]
        if quote not in "'\"":
            raise ValueError(text)
        close = text.index(quote, pos + 1)
        items.append(text[pos + 1 : close])
        pos = close + 1
        if pos < end:
            if text[pos] != ",":
                raise ValueError(text)
            pos += 1
    return items


def bad_request(detail: str) -> FakeResponse:
    """A 400 with myTracker's envelope."""
    body = {"code": 400, "message": "Bad Request", "data": {"error": {"detail": detail}}}
    return FakeResponse.json(400, body)


def generate_rows(
    event: str, *, start: dt.datetime, days: int, per_day: int, seed: int = 5
) -> list[Row]:
    """Raw events of one kind: unix timestamps, ids, titles, SDK keys and list parameters.

    A list parameter's cell is a :class:`ListCell`: the documented text, and its items.
    """
    rng = random.Random(f"{seed}-{event}")
    rows: list[Row] = []
    specials = 0
    for day in range(days):
        base = int(start.timestamp()) + day * 86400
        for _ in range(per_day):
            ts = base + rng.randrange(86400)
            app = rng.choice([1, 454, 23])
            names = [f"param{n}" for n in range(rng.randrange(4))]
            values = [str(rng.randrange(100)) for _ in names]
            if names and rng.random() < 0.3:
                names[-1] = SPECIAL_ITEMS[0]  # the documentation's own example item
            if names and rng.random() < 0.6:
                # every awkward item in turn, in values and (shifted) in names
                values[0] = SPECIAL_ITEMS[specials % len(SPECIAL_ITEMS)]
                if len(names) > 1:
                    names[0] = SPECIAL_ITEMS[(specials + 5) % len(SPECIAL_ITEMS)]
                specials += 1
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
                    "params.name": ListCell(names),
                    "params.value": ListCell(values),
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
    rows: list[Row]
    created: float
    duration: float
    outcome: str = "Success!"
    error: str = ""
    canceled: bool = False
    expires: float = 0.0
    parts: list[bytes] = field(default_factory=list)
    request: tuple = ()
    """What was asked for (event, range, selectors, filters): equal requests, equal files."""
    plain: bool = False
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    """The request's ``timezone``: ``dtEvent`` is the event's date there."""
    """Its parts are plain CSV files (``.csv``), not gzip archives (``.csv.gz``)."""


class MyTrackerFake(FakeServer):
    """myTracker's Raw Data Export API on 127.0.0.1, with switches for its failure modes."""

    def __init__(
        self,
        rows: dict[str, list[Row]],
        *,
        user_id: str = "77658",
        secret: str = "mytracker-secret-key",
        job_seconds: float = 0.2,
        part_rows: int = 40,
        row_limit: int | None = None,
        per_second: int = 10,
        per_minute: int = 100,
        per_hour: int = 1000,
        queue_limit: int | None = None,
        export_permission: bool = True,
        errors_as_http_200: bool = False,
        port: int = 0,
        memoize: bool = False,
        plain_files: bool = False,
        escaped_lists: bool = True,
        relative_links: bool = False,
    ) -> None:
        """Serve ``rows`` per event; exports above ``row_limit`` rows fail as too large.

        ``queue_limit`` refuses a new export while that many are in progress; without
        ``export_permission`` every export is refused, as for a user without the right.
        ``errors_as_http_200`` answers every failure with HTTP 200, its code only in the
        envelope (whether the API mirrors ``code`` in the status is not documented).

        ``memoize`` keeps the rows and gzip parts of each distinct request, so a repeated
        request is served without selecting or rendering again (benchmarks measure the tap,
        not this server).

        ``plain_files`` serves every export's parts as plain CSV files instead of gzip archives
        (the download page allows either).

        ``escaped_lists`` writes list cells as the documents show them (ClickHouse's escaped
        strings, :func:`escape_list`); ``False``: the older unescaped style (:func:`write_list`).
        ``relative_links`` answers part links as paths on the API host, not absolute URLs.
        ``part_rows`` rows go in each part; ``row_limit`` is the most rows an export may hold.
        """
        super().__init__(port=port)
        self.rows = rows
        self.user_id = user_id
        self.secret = secret
        self.job_seconds = job_seconds
        self.part_rows = part_rows
        self.plain_files = plain_files
        self.escaped_lists = escaped_lists
        self.relative_links = relative_links
        self.row_limit = row_limit
        self.limits = ((per_second, 1.0), (per_minute, 60.0), (per_hour, 3600.0))
        self.queue_limit = queue_limit
        self.export_permission = export_permission
        self.errors_as_http_200 = errors_as_http_200
        self.expire_on_download = 0
        """Part downloads still to find their export's links expired just as they arrive (the
        links' ``timestampExpires`` passed between the status check and the download)."""
        self.queue_refused: list[tuple[str, int, int]] = []
        """``(event, tsFrom, tsTo)`` of every create refused because the queue was full."""
        self.exports: dict[str, RawExport] = {}
        self.faults: deque[str] = deque()
        self.bad_signatures = 0
        self.quota_refusals = 0
        self._stamps: list[float] = []
        self._lock2 = threading.Lock()
        self._creating = threading.Lock()
        self._rendered: dict[tuple, list[bytes]] | None = {} if memoize else None
        self._selected: dict[tuple, list[Row]] | None = {} if memoize else None

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
            for limit, seconds in self.limits:
                name = QUOTA_NAMES.get(seconds, f"RequestsByUserPer{int(seconds)}Seconds")
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

    def handle(self, request: FakeRequest) -> FakeResponse | None:
        """Answer a request; with ``errors_as_http_200``, failures carry HTTP 200."""
        response = self._answer(request)
        if self.errors_as_http_200 and response is not None and response.status >= 400:
            response.status = 200
        return response

    def _answer(self, request: FakeRequest) -> FakeResponse | None:
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

    def _span(self, params: dict[str, list[str]]) -> tuple[int, int] | FakeResponse:
        """``tsFrom``/``tsTo``, or ``dateFrom``/``dateTo`` as whole days in ``timezone``."""
        if "tsFrom" in params or "tsTo" in params:
            try:
                ts_from, ts_to = int(params["tsFrom"][0]), int(params["tsTo"][0])
            except (KeyError, ValueError):
                return bad_request("Argument 'tsTo' is expected but not set")
        elif "dateFrom" in params or "dateTo" in params:
            try:
                zone = ZoneInfo((params.get("timezone") or [DEFAULT_TIMEZONE])[0])
            except (KeyError, ValueError):
                return bad_request("Argument 'timezone' is invalid")
            try:
                first = dt.date.fromisoformat(params["dateFrom"][0])
                last = dt.date.fromisoformat(params["dateTo"][0])
            except (KeyError, ValueError):
                return bad_request("Argument 'dateTo' is expected but not set")
            if first < dt.date(1970, 1, 1) or last > dt.datetime.now(zone).date():
                return bad_request("Argument 'dateTo' is invalid")
            start = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
            end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
            ts_from, ts_to = int(start.timestamp()), int(end.timestamp()) - 1
            if ts_from > ts_to:
                return bad_request("Argument 'dateFrom' is invalid")
            return ts_from, ts_to
        else:
            return bad_request("Argument 'tsFrom' is expected but not set")
        if ts_from > ts_to or ts_to > time.time():
            return bad_request("Argument 'tsTo' is invalid")
        return ts_from, ts_to

    def in_progress(self) -> list[RawExport]:
        """Exports still running (what fills the queue)."""
        now = time.monotonic()
        return [e for e in self.exports.values() if not e.canceled and now - e.created < e.duration]

    def _create(self, params: dict[str, list[str]]) -> FakeResponse:
        """One create at a time: the queue check and the new export's id are atomic."""
        with self._creating:
            return self._create_one(params)

    def _create_one(self, params: dict[str, list[str]]) -> FakeResponse:
        events = params.get("event")
        event = events[0] if events else None
        if event is None:
            return bad_request("Argument 'event' is expected but not set")
        if event not in self.rows and event not in EVENTS:
            return bad_request(ALLOWED_EVENTS)
        selectors = self._list(params, "selectors")
        if not selectors:
            return bad_request("Argument 'selectors' is invalid")
        for name in FILTERS:
            if len(self._list(params, name) or ()) > FILTER_VALUES:
                return bad_request(f"Argument '{name}' set size expected to be below 1000")
        if not self.export_permission:
            return bad_request("Export permissions required to export raw data from an account")
        span = self._span(params)
        if isinstance(span, FakeResponse):
            return span
        ts_from, ts_to = span
        running = self.in_progress()
        if self.queue_limit is not None and len(running) >= self.queue_limit:
            self.queue_refused.append((event, ts_from, ts_to))
            body = {
                "code": 400,
                "message": "Bad Request",
                "data": {
                    "error": {
                        "detail": QUEUE_FULL,
                        "info": {"exports": [{"idRawExport": e.id} for e in running]},
                    }
                },
            }
            return FakeResponse.json(400, body)
        for flag in FLAGS:
            if any(value not in {"0", "1"} for value in params.get(flag, ())):
                return bad_request(f"Argument '{flag}' is invalid")
        apps = self._list(params, "idApp")
        names = self._list(params, "eventName")
        invert = (params.get("eventNameInvert") or ["0"])[0] == "1"
        try:
            zone = ZoneInfo((params.get("timezone") or [DEFAULT_TIMEZONE])[0])
        except (KeyError, ValueError):
            return bad_request("Argument 'timezone' is invalid")
        request = (event, ts_from, ts_to, tuple(selectors), tuple(apps or ()), *(names or ()))
        request += (invert, zone.key)
        rows = self._selected.get(request) if self._selected is not None else None
        if rows is None:
            rows = [
                r for r in self.rows.get(event, []) if ts_from <= int(str(r["tsEvent"])) <= ts_to
            ]
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
            zone=zone,
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

    @staticmethod
    def _value(row: Row, selector: str, export: RawExport) -> Cell:
        """A row's value of a selector; ``dtEvent`` is its ``tsEvent``'s date in the timezone."""
        if selector == "dtEvent" and "tsEvent" in row:
            moment = dt.datetime.fromtimestamp(int(str(row["tsEvent"])), export.zone)
            return moment.date().isoformat()
        return row.get(selector, "")

    def _cell(self, value: Cell) -> str:
        """A cell's text: a list's items written as :attr:`escaped_lists` says."""
        if isinstance(value, ListCell):
            return value if self.escaped_lists else write_list(value.items)
        if isinstance(value, str):
            return value
        return escape_list(value) if self.escaped_lists else write_list(value)

    def _files(self, export: RawExport) -> list[dict[str, str]]:
        if not export.parts:
            export.plain = self.plain_files
        if not export.parts and self._rendered is not None:
            export.parts = self._rendered.get((export.request, export.plain), [])
            export.expires = time.time() + LINK_SECONDS
        if not export.parts:
            export.expires = time.time() + LINK_SECONDS
            chunks = [
                export.rows[i : i + self.part_rows]
                for i in range(0, len(export.rows), self.part_rows)
            ] or [[]]
            for chunk in chunks:
                lines = [csv_line(export.selectors)]
                lines.extend(
                    csv_line([self._cell(self._value(row, s, export)) for s in export.selectors])
                    for row in chunk
                )
                text = "".join(lines).encode()
                export.parts.append(text if export.plain else gzip.compress(text))
            if self._rendered is not None:
                self._rendered[export.request, export.plain] = export.parts
        digest = hashlib.md5(export.id.encode()).hexdigest()  # noqa: S324 - a file name
        suffix = "csv" if export.plain else "csv.gz"
        host = "" if self.relative_links else self.base_url
        return [
            {
                "link": f"{host}/storage/download/raw/{export.id}.{export.event}.{digest}.{n}.{suffix}",
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
        match = re.search(r"\.(\d+)\.csv(\.gz)?$", "." + rest)
        if match is None:
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        number = int(match.group(1))
        if export is None or number >= len(export.parts) or export.plain != (not match.group(2)):
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        with self._lock2:
            if self.expire_on_download > 0:
                self.expire_on_download -= 1
                export.expires = 0.0
        if time.time() > export.expires:
            return FakeResponse.json(404, {"code": 404, "message": "Not Found", "data": None})
        data = export.parts[number]
        headers = {"Content-Type": "text/csv" if export.plain else "application/gzip"}
        if self._take("truncated"):
            return FakeResponse(200, [data[: len(data) - 30]], headers)  # chunked, cut short
        return FakeResponse(200, data, headers)
