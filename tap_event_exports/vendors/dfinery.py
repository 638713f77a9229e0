"""Dfinery (IGAWorks) Export API: synchronous CSV exports of events by date, and user profiles.

``POST /api/v1/export/event?service_id=`` answers with the CSV itself; dates are inclusive
``yyyy-MM-dd`` days read in the service's timezone, at most 30 days back. Errors are JSON
``{"result": "fail", "message": <code>}``, one of them (``client_connection_closed``) on HTTP 200;
the API guide also shows an HTTP 200 envelope ``{"status": false, "code": 40001, "message":
"VALIDATION_FAILURE"}``. Quotas: 100 exports an hour and 5 at once per service.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

from tap_event_exports.engine.contract import (
    BodyFailure,
    ExportSpec,
    Limits,
    Partition,
    SnapshotRequest,
    VendorDialect,
    Windowing,
    WindowRequests,
    quota_remaining,
)
from tap_event_exports.engine.download import Download, download
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import RequestSpec, json_body
from tap_event_exports.engine.windows import DayGranularity, Window
from tap_event_exports.vendors.dfinery_streams import MAX_CONCURRENT_EXPORTS, DfineryBlock

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.runtime import Runtime

logger = logging.getLogger("tap_event_exports.dfinery")

EXPORT_DAYS_BACK = 30
PROBE_EVENT = "tap_event_exports_connection_check"
"""An event name no service has: its export is a header row."""
EXPORT_QUOTA = ((100, 3600.0),)
"""Export requests per hour per service, kept on the client side for the whole run."""

HINTS = {
    "unauthorized_token": "the export API token was refused; check dfinery.api_token",
    "invalid_parameter": "a request parameter is missing or malformed",
    "exceed_date_range_limit": (
        f"from_date is older than the {EXPORT_DAYS_BACK} days Dfinery can export"
    ),
    "too_many_api_requests": "export quota exceeded (100 requests per hour, 5 at once)",
    "unknown_error": "unexpected error on Dfinery's side",
    "query_error": "Dfinery's query failed",
    "client_connection_closed": "Dfinery closed the export before it finished",
}
RETRIABLE_CODES = frozenset(
    {"client_connection_closed", "too_many_api_requests", "unknown_error", "query_error"}
)
TOO_OLD = "exceed_date_range_limit"
OK_CODE = "20000"
"""The envelope's success code."""
ENVELOPE_RATE_LIMITED = "40401"
"""The envelope's ``TOO_MANY_REQUEST``: a 4xxxx code that is a quota, not a refusal."""


def refused_as_busy(response: requests.Response) -> bool:
    """A 429 while the quota still has exports left: too many at once, not too many per hour.

    How Dfinery signals its limit of 5 concurrent exports is not documented; such a refusal
    frees up when an export finishes, long before the quota period resets.
    """
    left = quota_remaining(response)
    return response.status_code == 429 and left is not None and left > 0


def envelope_failure(body: dict[str, t.Any]) -> BodyFailure:
    """The API guide's ``{"status": false, "code", "message"}``: 5xxxx retriable, 4xxxx final."""
    code = str(body.get("code", ""))
    message = f"{body.get('message') or 'status false'} (code {code})"
    limited = code == ENVELOPE_RATE_LIMITED
    return BodyFailure(code.startswith("5") or limited, message, rate_limited=limited)


class DfineryDialect(VendorDialect):
    """How Dfinery authenticates and words its errors."""

    name = "dfinery"

    def __init__(self, token: str) -> None:
        """Sign requests with the export token."""
        self._token = token

    def authenticate(self, request: requests.PreparedRequest) -> None:  # noqa: D102
        request.headers["Authorization"] = f"Bearer {self._token}"

    def error_message(self, response: requests.Response) -> str:  # noqa: D102
        body = json_body(response)
        if isinstance(body, dict) and body.get("message"):
            code = str(body["message"])
            hint = HINTS.get(code)
            if refused_as_busy(response):
                hint = f"more than {MAX_CONCURRENT_EXPORTS} exports at once; quota left"
            return f"{code} ({hint})" if hint else code
        return response.reason or ""

    def rate_limited(self, response: requests.Response, message: str) -> bool:
        """A 429 or ``too_many_api_requests``, with nothing left in the quota period.

        Dfinery sends its ``x-ratelimit-*`` headers on every answer; their reset is the end of
        the quota period (often hours away), a wait only on these answers. Another refusal on
        the period's last request (a 401, 400 or 500 with ``x-ratelimit-remaining: 0``) is that
        refusal, not a rate limit. A 429 with exports left is a concurrency refusal: retried
        with the usual short backoff.
        """
        if refused_as_busy(response):
            return False
        return response.status_code == 429 or message.startswith("too_many_api_requests")

    def no_data(self, body: t.Any) -> bool:
        """The guide's success envelope, ``code`` 20000, with nothing in ``data``."""
        return (
            isinstance(body, dict)
            and body.get("status") is True
            and str(body.get("code")) == OK_CODE
            and not body.get("data")
        )

    def body_failure(self, body: t.Any) -> BodyFailure | None:  # noqa: D102
        if isinstance(body, dict) and body.get("status") is False and "code" in body:
            return envelope_failure(body)
        if not isinstance(body, dict) or body.get("result") != "fail":
            return None
        code = str(body.get("message", "unknown"))
        hint = HINTS.get(code)
        return BodyFailure(
            code in RETRIABLE_CODES,
            f"{code} ({hint})" if hint else code,
            rate_limited=code == "too_many_api_requests",
        )


class Dfinery(DfineryBlock):
    """The Dfinery provider: its declaration, fetched by synchronous exports."""

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """The Dfinery streams a validated block enables."""
        events, *profiles = self.streams(block)
        policy = runtime.http(
            DfineryDialect(block["api_token"]), block["base_url"], pacing=EXPORT_QUOTA
        )
        limits = Limits(f"dfinery:{block['service_id']}", block["max_concurrent_jobs"])
        base = block["base_url"].rstrip("/")
        service = {"service_id": block["service_id"]}
        granularity = DayGranularity(block["timezone"])

        def describe(window: Window) -> str:
            first, last = granularity.inclusive_dates(window)
            return f"from_date={first} to_date={last}"

        def earliest(now: dt.datetime) -> dt.datetime:
            today = granularity.local_date(now)
            return granularity.midnight(today - dt.timedelta(days=EXPORT_DAYS_BACK))

        def export_days(first: dt.date, last: dt.date) -> list[Download]:
            body = event_body(block, first, last)
            spec = RequestSpec("POST", f"{base}/api/v1/export/event", params=service, json=body)
            what = f"dfinery_events: window from_date={first} to_date={last}"
            return [download(policy, spec, what=what, tabular=True)]

        def fetch_events(window: Window, _partition: Partition) -> list[Download]:
            """The window's export; from one day later where Dfinery refuses its oldest day.

            Whether day 30 back itself is still served is not documented: where Dfinery says
            it is too old, that one day is given up (with a warning), not the whole run.
            """
            first, last = granularity.inclusive_dates(window)
            oldest = granularity.local_date(runtime.now) - dt.timedelta(days=EXPORT_DAYS_BACK)
            try:
                return export_days(first, last)
            except VendorError as exc:
                if first != oldest or not refused_as_too_old(exc):
                    raise
            following = first + dt.timedelta(days=1)
            logger.warning(
                "dfinery_events: Dfinery no longer serves %s, the oldest of the %d days back it "
                "exports (%s); exporting from %s: the events of %s are lost to this tap",
                first,
                EXPORT_DAYS_BACK,
                TOO_OLD,
                following,
                first,
            )
            return export_days(following, last) if following <= last else []

        def probe(_partition: Partition) -> None:
            """Today's export of an event no service has: a header row proves token and service."""
            today = granularity.local_date(runtime.now).isoformat()
            body = {
                "events_condition_type": "include",
                "events": [PROBE_EVENT],
                "from_date": today,
                "to_date": today,
            }
            spec = RequestSpec("POST", f"{base}/api/v1/export/event", params=service, json=body)
            download(policy, spec, what="dfinery_events: connection check").discard()

        streams = [
            ExportSpec.of(
                events,
                vendor="dfinery",
                source=WindowRequests(fetch_events),
                limits=limits,
                probe=probe,
                timezone=block["timezone"],
                windowing=Windowing(
                    granularity=granularity,
                    step=block["window"],
                    lookback=block["lookback"],
                    earliest=earliest,
                    describe=describe,
                ),
            )
        ]
        if profiles:
            user_profiles = block["user_profiles"]

            def fetch_profiles(_partition: Partition) -> list[Download]:
                body = {k: v for k, v in user_profiles.items() if v not in (None, [])}
                spec = RequestSpec(
                    "POST", f"{base}/api/v1/export/userprofile", params=service, json=body
                )
                return [
                    download(policy, spec, what="dfinery_user_profiles: snapshot", tabular=True)
                ]

            streams.append(
                ExportSpec.of(
                    profiles[0],
                    vendor="dfinery",
                    source=SnapshotRequest(fetch_profiles),
                    limits=limits,
                    timezone=block["timezone"],
                )
            )
        return streams


def event_body(block: dict[str, t.Any], first: dt.date, last: dt.date) -> dict[str, t.Any]:
    """The event export's request body for the inclusive days ``first``..``last``."""
    body: dict[str, t.Any] = {
        "events_condition_type": block["events_condition_type"],
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
    }
    if block["events"]:
        body["events"] = block["events"]
    if block["properties_condition_type"]:
        body["properties_condition_type"] = block["properties_condition_type"]
    if block["properties"]:
        body["properties"] = block["properties"]
    return body


def refused_as_too_old(exc: VendorError) -> bool:
    """Whether Dfinery refused a ``from_date`` as older than it exports."""
    return exc.status == 400 and f"HTTP 400 {TOO_OLD}" in str(exc)
