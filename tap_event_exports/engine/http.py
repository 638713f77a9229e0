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

from tap_event_exports.engine.errors import (
    RateLimitedError,
    RetriableError,
    RetriesExhaustedError,
    VendorError,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("tap_event_exports.http")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
MAX_REDIRECTS = 5
MAX_SENSIBLE_WAIT_SECONDS = 600.0
"""A vendor wait longer than this stops the run cleanly (with its state) instead of sleeping."""

RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
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


class VendorDialect(t.Protocol):
    """What a vendor module tells the policy about its API."""

    name: str

    def authenticate(self, request: requests.PreparedRequest) -> None:
        """Attach credentials to a request bound for the vendor's API."""

    def error_message(self, response: requests.Response) -> str:
        """The vendor's own words for a failed response."""

    def wait_hint(self, response: requests.Response) -> float | None:
        """Seconds the vendor asks us to wait before retrying, if it says."""

    def body_failure(self, body: t.Any) -> tuple[bool, str] | None:
        """Whether a JSON body received with a 2xx status is really an error.

        Returns ``(retriable, message)`` for an error, ``None`` for a genuine success.
        """


def header_wait(response: requests.Response, *, now: float | None = None) -> float | None:
    """Seconds to wait according to standard headers.

    Reads ``Retry-After`` (seconds or an HTTP date) and the reset headers in both spellings
    vendors use, ``X-Rate-Limit-Reset`` and ``x-ratelimit-reset``: an absolute unix time in
    seconds or milliseconds, or (when small) a number of seconds from now.
    """
    now = time.time() if now is None else now
    headers = response.headers
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(retry_after)
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now)
    for name in ("X-Rate-Limit-Reset", "X-RateLimit-Reset", "RateLimit-Reset"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value > 1e12:  # unix milliseconds
            return max(0.0, value / 1000.0 - now)
        if value > 1e9:  # unix seconds
            return max(0.0, value - now)
        return max(0.0, value)  # delta seconds
    return None


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
    ) -> None:
        """Configure from the global settings; ``stop`` interrupts any wait at once.

        ``base_url`` is the vendor's API: only requests to its host carry credentials.
        """
        self.dialect = dialect
        self.api_host = urllib.parse.urlsplit(base_url).netloc.lower()
        self.timeout = timeout
        self.max_retries = max(1, max_retries)
        self.stop = stop or threading.Event()
        self.user_agent = user_agent
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """One session per thread: requests' sessions are not shared across threads safely."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
        return session

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run is being stopped."""
        if self.stop.wait(max(0.0, seconds)):
            msg = f"{self.dialect.name}: run stopped"
            raise RetriableError(msg)

    def send_once(self, spec: RequestSpec, *, what: str) -> requests.Response:
        """Send one request and classify the answer; the body is left unread (streamed).

        Redirects are followed here, not by requests: credentials go only to the vendor's API
        host, never to a result-file link on another host (pre-signed storage URLs). A refusal
        from such a link (an expired link, say) is retriable: the retry asks the API again.

        Raises:
            RetriableError: for answers worth retrying (with the vendor's wait hint).
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
            if not on_api and response.status_code in {401, 403, 404, 410}:
                response.close()
                host = urllib.parse.urlsplit(url).hostname
                msg = f"HTTP {response.status_code} from result link on {host} (expired link?)"
                raise RetriableError(msg)
            self.check(response, what=what)
            return response
        msg = f"{self.dialect.name}: {what}: more than {MAX_REDIRECTS} redirects"
        raise VendorError(msg)

    def _on_api_host(self, url: str) -> bool:
        return urllib.parse.urlsplit(url).netloc.lower() == self.api_host

    def check(self, response: requests.Response, *, what: str) -> None:
        """Map a response's status to success, a retriable failure or a vendor error."""
        status = response.status_code
        if 200 <= status < 300:
            return  # bodies are checked by whoever reads them: request() or download()
        message = self.dialect.error_message(response)
        response.close()
        vendor_says = getattr(self.dialect, "retriable", None)
        if (
            status in RETRIABLE_STATUSES
            or status in getattr(self.dialect, "retry_statuses", ())
            or (vendor_says is not None and vendor_says(response, message))
        ):
            wait = self.dialect.wait_hint(response)
            if wait is None:
                wait = header_wait(response)
            raise RetriableError(f"HTTP {status} {message}".strip(), wait=wait)
        msg = f"{self.dialect.name}: {what}: HTTP {status} {message}".strip()
        raise VendorError(msg)

    def check_body(self, body: t.Any, *, what: str) -> None:
        """Raise the error a 2xx JSON body stands for, if it is one."""
        failure = self.dialect.body_failure(body)
        if failure is None:
            return
        retriable, message = failure
        if retriable:
            raise RetriableError(message)
        raise VendorError(f"{self.dialect.name}: {what}: {message}")

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
                failure, hint = str(exc), exc.wait
            except TRANSPORT_ERRORS as exc:
                failure, hint = f"{type(exc).__name__}: {_short(exc)}", None
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
                resume_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + wait))
                msg = (
                    f"{self.dialect.name}: {what}: rate limited ({failure}); the vendor asks to "
                    f"wait {wait:.0f}s, retry after {resume_at}"
                )
                raise RateLimitedError(msg)
            logger.warning(
                "%s: %s: attempt %d/%d failed (%s); retrying in %.1fs",
                self.dialect.name,
                what,
                number,
                self.max_retries,
                failure,
                wait,
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
