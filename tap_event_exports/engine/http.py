"""The HTTP policy every vendor shares: retries, rate-limit waits and error mapping.

One :class:`HttpPolicy` per provider. It sends requests with a connect/read timeout, retries what
is worth retrying (429, 5xx, timeouts, connection resets, bodies cut short) with exponential
backoff and full jitter, waits as long as the vendor says where it says so, and turns everything
else into a one-line :class:`~tap_event_exports.engine.errors.VendorError` carrying the vendor's
own message. "Still running" answers of export jobs never come through here as errors.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

import backoff
import requests
import urllib3.exceptions

from tap_event_exports.engine import waits
from tap_event_exports.engine.contract import VendorDialect
from tap_event_exports.engine.errors import (
    LinkGoneError,
    RateLimitedError,
    RetriableError,
    RetriesExhaustedError,
    VendorError,
)
from tap_event_exports.engine.pacing import RateLimiter, VendorPause
from tap_event_exports.engine.stats import RunStats

if t.TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("tap_event_exports.http")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
MAX_REDIRECTS = 5
MAX_SENSIBLE_WAIT_SECONDS = 600.0
"""A vendor wait longer than this stops the run cleanly (with its state) instead of sleeping."""

RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_REFUSALS = frozenset({401, 403})
LINK_REFUSALS = frozenset({401, 403, 404, 410})
"""What a storage host answers for a result link that expired or was deleted."""
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    ConnectionError,
    TimeoutError,
)


@dataclass
class RequestSpec:
    """One HTTP request, described so it can be sent again on retry."""

    method: str
    url: str
    params: dict[str, t.Any] | list[tuple[str, t.Any]] | None = None
    json: t.Any = None
    data: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    allow_redirects: bool = True
    auth: bool = True
    """Whether the provider's credentials are attached (only ever to the API's own host)."""


RESET_HEADERS = ("X-Rate-Limit-Reset", "X-RateLimit-Reset", "RateLimit-Reset")
STALE_RESET_SECONDS = 60.0
"""How far in the past a reset time may lie and still mean "the period just ended"."""


def retry_after(response: requests.Response, *, now: float | None = None) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), the one wait any status may ask."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        now = time.time() if now is None else now
        return max(0.0, parsed.timestamp() - now)


def reset_wait(response: requests.Response, *, now: float | None = None) -> float | None:
    """Seconds until the quota period ends, from the reset headers in every spelling vendors use.

    An absolute unix time in seconds or milliseconds, or (when small) seconds from now. Vendors
    send it on every answer, so it is a wait only where the answer is a rate limit. A reset
    more than :data:`STALE_RESET_SECONDS` past says nothing of when to retry (a clock far off,
    or a copied value): ``None``, so the usual growing backoff applies rather than retries a
    second apart.
    """
    now = time.time() if now is None else now
    for name in RESET_HEADERS:
        raw = response.headers.get(name)
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value > 1e12:  # unix milliseconds
            value = value / 1000.0 - now
        elif value > 1e9:  # unix seconds
            value -= now
        else:  # delta seconds
            return max(0.0, value)
        return None if value < -STALE_RESET_SECONDS else max(0.0, value)
    return None


def header_wait(response: requests.Response, *, now: float | None = None) -> float | None:
    """Seconds a rate-limit answer asks to wait by standard headers (``Retry-After`` first)."""
    wait = retry_after(response, now=now)
    return wait if wait is not None else reset_wait(response, now=now)


def check_status(dialect: VendorDialect, response: requests.Response, *, what: str) -> None:
    """Map a response's status to success, a retriable failure or a vendor error.

    Reset headers count as a wait only on a rate limit (429, or the vendor's quota answer);
    a 5xx is retried with backoff, honouring only ``Retry-After``.
    """
    status = response.status_code
    if 200 <= status < 300:
        return  # bodies are checked by whoever reads them: request() or download()
    message = dialect.error_message(response)
    response.close()
    limited = dialect.rate_limited(response, message)
    if dialect.final(response, message):
        msg = f"{dialect.name}: {what}: HTTP {status} {message}".strip()
        raise VendorError(msg, status=status)
    if (
        limited
        or status in RETRIABLE_STATUSES
        or status in dialect.retry_statuses
        or dialect.retriable(response, message)
    ):
        wait = retry_after(response)
        if limited:
            hint = dialect.wait_hint(response)
            wait = hint if hint is not None else header_wait(response)
        failure = f"HTTP {status} {message}".strip()
        raise RetriableError(failure, wait=wait, rate_limited=limited)
    msg = f"{dialect.name}: {what}: HTTP {status} {message}".strip()
    raise VendorError(msg, status=status)


def json_body(response: requests.Response, limit: int = 65536) -> t.Any:
    """Parse a (small) response body as JSON, or return ``None`` if it is not JSON."""
    try:
        raw = response.content[:limit]
        return json.loads(raw)
    except (ValueError, RuntimeError, requests.RequestException):
        return None


class HttpPolicy:
    """Sends a provider's requests under one retry, wait and error policy."""

    def __init__(
        self,
        dialect: VendorDialect,
        *,
        timeout: float,
        max_retries: int,
        stop: threading.Event | None = None,
        base_url: str,
        user_agent: str = "tap-event-exports",
        pacing: tuple[tuple[int, float], ...] = (),
        stats: RunStats | None = None,
    ) -> None:
        """Configure from the global settings; ``stop`` interrupts any wait at once.

        ``base_url`` is the vendor's API: only requests to its host carry credentials.
        ``pacing`` holds the vendor's documented quotas, ``(count, seconds)`` pairs, kept on
        the client side for every request to the API host.
        """
        self.dialect = dialect
        self.api_host = urllib.parse.urlsplit(base_url).netloc.lower()
        self.timeout = timeout
        self.max_retries = max(1, max_retries)
        self.stop = stop or threading.Event()
        self.user_agent = user_agent
        self._local = threading.local()
        self.pause = VendorPause()
        """A rate limit pauses every request of the run to the vendor, not only one worker's."""
        self.stats = stats if stats is not None else RunStats()
        self.pacing = (
            RateLimiter(pacing, self.stop, vendor=dialect.name, on_wait=self._waited)
            if pacing
            else None
        )
        self._probe = threading.Lock()
        self._accepted = False
        """Whether the vendor has answered a request with credentials with a success."""
        self._refused: VendorError | None = None

    @property
    def session(self) -> requests.Session:
        """One session per thread: requests' sessions are not shared across threads safely."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
        return session

    def _waited(self, seconds: float) -> None:
        self.stats.count_vendor(self.dialect.name, "waits")
        self.stats.count_vendor(self.dialect.name, "wait_seconds", seconds)

    def sleep(self, seconds: float) -> None:
        """Wait (counted in the run's totals), unless the run is being stopped."""
        self._waited(seconds)
        if self.stop.wait(max(0.0, seconds)):
            msg = f"{self.dialect.name}: run stopped"
            raise RetriableError(msg)

    def send_once(self, spec: RequestSpec, *, what: str) -> requests.Response:
        """Send one request and classify the answer; the body is left unread (streamed).

        Until the vendor has accepted the credentials once, requests to its API go one at a
        time: a wrong key is refused once, and every other request of the run fails with that
        refusal without being sent (no burst of 401s from parallel workers).
        """
        if self._accepted or not spec.auth or not self._on_api_host(spec.url):
            return self._send_once(spec, what=what)
        with self._probe:
            if self._refused is not None:
                raise VendorError(str(self._refused), status=self._refused.status)
            if self._accepted:
                return self._send_once(spec, what=what)
            try:
                response = self._send_once(spec, what=what)
            except VendorError as exc:
                if exc.status in AUTH_REFUSALS:
                    self._refused = exc
                raise
            self._accepted = True
            return response

    def _send_once(self, spec: RequestSpec, *, what: str) -> requests.Response:
        """Send one request and classify the answer (see :meth:`send_once`).

        Redirects are followed here, not by requests: credentials go only to the vendor's API
        host, never to a result-file link on another host (pre-signed storage URLs). A refusal
        from a link the API redirected to (an expired link, say) is retriable: the retry asks the
        API again for a fresh one. A refusal from a link the vendor handed out itself is final
        for that link (:class:`LinkGoneError`): the job engine exports the window again.

        Raises:
            RetriableError: for answers worth retrying (with the vendor's wait hint).
            LinkGoneError: for a handed-out result link that refuses the download.
            VendorError: for answers that retrying will not fix.
        """
        method, url, first = spec.method, spec.url, True
        for _ in range(MAX_REDIRECTS + 1):
            request = requests.Request(
                method,
                url,
                params=spec.params if first else None,
                json=spec.json if first else None,
                data=spec.data if first else None,
                headers=spec.headers if first else {},
            )
            prepared = self.session.prepare_request(request)
            on_api = self._on_api_host(prepared.url or "")
            if on_api:
                self.await_pause()
                if self.pacing is not None:
                    self.pacing.acquire()
            if spec.auth and on_api:
                self.dialect.authenticate(prepared)
            try:
                response = self.session.send(
                    prepared, timeout=self.timeout, stream=True, allow_redirects=False
                )
            except TRANSPORT_ERRORS as exc:
                raise RetriableError(f"{type(exc).__name__}: {_short(exc)}") from exc
            location = response.headers.get("Location")
            if response.is_redirect and location and spec.allow_redirects:
                response.close()
                url = requests.compat.urljoin(prepared.url or url, location)
                method = "GET" if response.status_code in {301, 302, 303} else method
                first = False
                continue
            if not on_api and response.status_code in LINK_REFUSALS:
                response.close()
                host = urllib.parse.urlsplit(url).hostname
                msg = f"HTTP {response.status_code} from result link on {host} (expired link?)"
                if first:  # the link itself, not one the API redirected to: asking again is vain
                    raise LinkGoneError(msg)
                raise RetriableError(msg)
            check_status(self.dialect, response, what=what)
            return response
        msg = f"{self.dialect.name}: {what}: more than {MAX_REDIRECTS} redirects"
        raise VendorError(msg)

    def _on_api_host(self, url: str) -> bool:
        return urllib.parse.urlsplit(url).netloc.lower() == self.api_host

    def check_body(self, body: t.Any, *, what: str) -> None:
        """Raise the error a 2xx JSON body stands for, if it is one."""
        failure = self.dialect.body_failure(body)
        if failure is None:
            return
        if failure.retriable or failure.rate_limited:
            raise RetriableError(
                failure.message, wait=failure.wait, rate_limited=failure.rate_limited
            )
        raise VendorError(f"{self.dialect.name}: {what}: {failure.message}", status=failure.status)

    def await_pause(self) -> None:
        """Wait out a pause a rate limit started (whichever worker met it)."""
        while (remaining := self.pause.remaining()) > 0:
            waits.announce(
                self.dialect.name, "rate limited: every request waits for the reset", remaining
            )
            self.sleep(remaining)

    def retrying(self, attempt: Callable[[], T], *, what: str) -> T:
        """Run ``attempt`` until it succeeds, retrying retriable failures with backoff.

        ``attempt`` is the whole unit that must be repeated together, e.g. sending a request and
        reading its body to the end, so a body cut mid-way is fetched again as a whole.
        """
        delays = backoff.expo(base=2, factor=BACKOFF_BASE_SECONDS, max_value=BACKOFF_CAP_SECONDS)
        next(delays)  # the generator's first value is a priming None
        for number in range(1, self.max_retries + 1):
            try:
                return attempt()
            except RetriableError as exc:
                failure, hint, limited = str(exc), exc.wait, exc.rate_limited
            except TRANSPORT_ERRORS as exc:
                failure, hint, limited = f"{type(exc).__name__}: {_short(exc)}", None, False
            if self.stop.is_set():
                msg = f"{self.dialect.name}: {what}: run stopped"
                raise RetriesExhaustedError(msg)
            if number == self.max_retries:
                msg = (
                    f"{self.dialect.name}: {what}: gave up after {number} attempts "
                    f"(max_retries); last error: {failure}"
                )
                raise RetriesExhaustedError(msg)
            backoff_wait = backoff.full_jitter(next(delays))
            wait = backoff_wait if hint is None else hint + min(1.0, backoff_wait)
            if wait > MAX_SENSIBLE_WAIT_SECONDS:
                msg = (
                    f"{self.dialect.name}: {what}: rate limited ({failure}); the vendor asks to "
                    f"wait {wait:.0f}s, retry after {waits.until(wait)}"
                )
                raise RateLimitedError(msg)
            self.stats.count_vendor(self.dialect.name, "requests_retried")
            if limited:
                self.pause.hold(wait)
            logger.warning(
                "%s: %s: attempt %d/%d failed (%s); retrying in %.1fs (at %s)",
                self.dialect.name,
                what,
                number,
                self.max_retries,
                failure,
                wait,
                waits.until(wait),
            )
            self.sleep(wait)
        raise AssertionError  # pragma: no cover - the loop always returns or raises

    def request(self, spec: RequestSpec, *, what: str) -> requests.Response:
        """Send with retries and read the whole (small, JSON) body before returning."""

        def attempt() -> requests.Response:
            response = self.send_once(spec, what=what)
            try:
                _ = response.content
            finally:
                response.close()
            kind = response.headers.get("Content-Type", "").lower()
            if "html" in kind:
                msg = "an HTML page where JSON was expected (a proxy or gateway answering?)"
                raise RetriableError(msg)
            if "json" in kind:
                self.check_body(json_body(response), what=what)
            return response

        return self.retrying(attempt, what=what)


T = t.TypeVar("T")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
