"""The vendor contract: everything a vendor module declares, and nothing it must implement twice.

A vendor module (``vendors/<name>.py``) turns its validated settings block into
:class:`ExportSpec` values. Each spec says how the vendor's API talks (a :class:`VendorDialect`
for the HTTP policy), how it cuts time (:class:`Windowing`), how one export is fetched (one of the
three :data:`Source` shapes) and what limits its credential has (:class:`Limits`). The engine
does the rest: planning, scheduling, retries, jobs, downloads, reading and state.
"""

from __future__ import annotations

import datetime as dt
import enum
import typing as t
from dataclasses import dataclass, field

from tap_event_exports.engine.converters import property_schema

if t.TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from tap_event_exports.engine.download import Download
    from tap_event_exports.engine.http import HttpPolicy, RequestSpec
    from tap_event_exports.engine.runtime import Runtime
    from tap_event_exports.engine.windows import Granularity, Window
    from tap_event_exports.settings import Setting

Partition = dict[str, str]
"""The values that pick one vendor object of a stream (``{"campaign_token": "c1"}``); ``{}``
for streams without partitions. They are also columns of the stream's records."""

SYNTHETIC_KEY = "_record_id"

# --- HTTP dialect --------------------------------------------------------------------------


class BodyFailure(t.NamedTuple):
    """A 2xx JSON body that is really an error."""

    retriable: bool
    message: str
    wait: float | None = None
    """Seconds the vendor asks to wait (a quota body), if it says."""
    rate_limited: bool = False
    status: int | None = None
    """The HTTP status the body's own code stands for, where the vendor gives one (a 404 in
    myTracker's envelope is a 404), so callers decide on it as on a real status."""


REMAINING_HEADERS = ("X-Rate-Limit-Remaining", "X-RateLimit-Remaining", "RateLimit-Remaining")


def quota_remaining(response: requests.Response) -> float | None:
    """What the response's rate-limit headers say is left in the period, if they say."""
    for name in REMAINING_HEADERS:
        raw = response.headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw)
        except ValueError:
            continue
    return None


def quota_exhausted(response: requests.Response) -> bool:
    """Whether the response's rate-limit headers say no request is left in the period."""
    return quota_remaining(response) == 0


class VendorDialect:
    """What a vendor module tells the HTTP policy about its API.

    Vendor dialects subclass this and override what their API does differently; every hook has
    the default that fits a plain JSON API.
    """

    name: str = "vendor"
    retry_statuses: frozenset[int] = frozenset()
    """Statuses beyond the usual 429/5xx that this vendor means as "try again"."""

    def authenticate(self, request: requests.PreparedRequest) -> None:
        """Attach credentials to a request bound for the vendor's API."""

    def error_message(self, response: requests.Response) -> str:
        """The vendor's own words for a failed response."""
        return response.reason or ""

    def rate_limited(self, response: requests.Response, message: str) -> bool:
        """Whether a failed answer is a rate limit or quota (and not, say, a 500).

        Only such answers make reset headers a wait: vendors send them on every response.
        """
        return response.status_code == 429 or quota_exhausted(response)

    def wait_hint(self, response: requests.Response) -> float | None:
        """Seconds a rate-limit answer asks us to wait, where the vendor says it its own way."""
        return None

    def retriable(self, response: requests.Response, message: str) -> bool:
        """Whether a status that is normally final means "try again" here."""
        return False

    def final(self, response: requests.Response, message: str) -> bool:
        """Whether a status that is normally retried (429, 5xx) will not change on retry here.

        The caller then gets a :class:`VendorError` with that status at once, and decides (a
        query the vendor stops at its time limit is split rather than run again).
        """
        return False

    def body_failure(self, body: t.Any) -> BodyFailure | None:
        """Whether a JSON body received with a 2xx status is really an error."""
        return None

    def no_data(self, body: t.Any) -> bool:
        """Whether a JSON body where a file was asked says there is nothing to export."""
        return False


# --- export jobs ---------------------------------------------------------------------------


class Phase(enum.Enum):
    """Where a job is, in vendor-neutral terms."""

    RUNNING = "running"
    DONE = "done"
    RETRY = "retry"
    """The job failed in a way the vendor says can be repeated: create it again."""
    EXPIRED = "expired"
    """The job or its results are gone: create it again."""
    TOO_LARGE = "too_large"
    """The vendor will never finish this window: split it."""
    FAILED = "failed"


@dataclass
class JobStatus:
    """A job's state as read from the vendor."""

    phase: Phase
    files: list[RequestSpec] = field(default_factory=list)
    message: str = ""
    progress: str = ""


class ExportJobs:
    """A vendor's asynchronous exports: how to create one, read its status, cancel it."""

    vendor: str = "vendor"

    def create(self, window: Window, partition: Partition) -> str:
        """Create the export job of one window of one partition; return its id."""
        raise NotImplementedError

    def create_snapshot(self, partition: Partition) -> str:
        """Create the export job of a full-table snapshot; return its id."""
        msg = f"{self.vendor}: this export has no snapshot"
        raise NotImplementedError(msg)

    def status(self, job_id: str, partition: Partition) -> JobStatus:
        """Read a job's status (a job the vendor no longer knows is ``EXPIRED``)."""
        raise NotImplementedError

    def cancel(self, job_id: str) -> bool:
        """Cancel a job no window will resume; ``False`` where the vendor cannot."""
        return False

    def prepare(self, downloads: list[Download]) -> list[Download]:
        """A job's complete files, made ready to read (where the vendor's need it)."""
        return downloads


# --- sources: how one export is fetched ------------------------------------------------------


@dataclass(frozen=True)
class WindowRequests:
    """Synchronous exports: one request (or a few, split by the vendor module) per window."""

    fetch: Callable[[Window, Partition], list[Download]]


@dataclass(frozen=True)
class SnapshotRequest:
    """A synchronous full-table snapshot."""

    fetch: Callable[[Partition], list[Download]]


@dataclass(frozen=True)
class JobExports:
    """Asynchronous export jobs, run by the engine's job runner (ids kept in state)."""

    jobs: ExportJobs
    policy: HttpPolicy
    split: Granularity | None = None
    """Where windows the vendor refuses as too large may be split (``None``: never)."""
    min_split: dt.timedelta | None = None
    """The smallest window a split may produce."""


Source = WindowRequests | SnapshotRequest | JobExports


@dataclass(frozen=True)
class Limits:
    """What one vendor credential allows at once; every stream of the credential shares it."""

    group: str
    """Names the credential (``dfinery:<service_id>``); streams with the same group share."""
    max_jobs: int
    """Exports (jobs, or synchronous requests) in flight at once for this credential."""


# --- the stream declaration ------------------------------------------------------------------


def stream_schema(
    columns: dict[str, str],
    column_types: dict[str, str],
    *,
    synthetic_key: bool,
    partitions: list[Partition],
) -> dict[str, t.Any]:
    """A stream's JSON schema: built-in columns, user overrides, key and partitions."""
    types = {**columns, **column_types}
    if synthetic_key:
        types[SYNTHETIC_KEY] = "string"
    for partition in partitions:
        for name in partition:
            types.setdefault(name, "string")
    return {
        "type": "object",
        "properties": {name: property_schema(kind) for name, kind in types.items()},
    }


@dataclass(frozen=True)
class StreamShape:
    """What a catalog says of one stream: name, columns and keys, and nothing about fetching.

    Vendor declarations (``vendors/*_streams.py``) give shapes without the HTTP machinery, so
    discovery lists streams without importing it; a vendor's ``build`` adds how to fetch them.
    """

    name: str
    columns: dict[str, str]
    primary_keys: tuple[str, ...]
    windowed: bool = True
    """Exported window by window (incremental); ``False`` for a full-table snapshot."""
    replication_key: str | None = None
    synthetic_key: bool = False
    partitions: list[Partition] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)

    def schema(self) -> dict[str, t.Any]:
        """The stream's JSON schema (the same as its :class:`ExportSpec`'s)."""
        return stream_schema(
            self.columns,
            self.column_types,
            synthetic_key=self.synthetic_key,
            partitions=self.partitions,
        )


@dataclass
class Windowing:
    """How a vendor cuts event time into export requests."""

    granularity: Granularity
    step: dt.timedelta
    lookback: dt.timedelta
    earliest: Callable[[dt.datetime], dt.datetime | None] = lambda _now: None
    """The oldest instant the vendor can still serve, given the current time."""
    describe: Callable[[Window], str] = str
    """How a window is shown in logs and errors (the vendor's own from/to values)."""


@dataclass
class ExportSpec:
    """Everything a vendor module declares about one stream."""

    name: str
    vendor: str
    columns: dict[str, str]
    """Built-in column types (see ``engine.converters.COLUMN_TYPES``)."""
    primary_keys: tuple[str, ...]
    source: Source
    limits: Limits
    timezone: str = "UTC"
    lists: str = "json"
    """How the vendor writes list values (``engine.lists.LIST_SYNTAXES``)."""
    windowing: Windowing | None = None
    """``None`` for a full-table snapshot."""
    replication_key: str | None = None
    """The column holding each row's event time, where rows carry one."""
    delimiter: str = ","
    synthetic_key: bool = False
    partitions: list[Partition] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)
    key_fallback: bool = False
    """Use the synthetic key when an export lacks the primary key column (Keen's ``keen.id``)."""
    keys_by_name: bool = False
    """Synthetic keys hash each row's non-empty values with their column names, in name order:
    for files whose columns come in any order and are those of the events they hold (Keen's)."""
    probe: Callable[[Partition], None] | None = None
    """The vendor's cheapest request that proves credentials and objects (``--test``);
    ``None``: one export of the smallest window."""

    def __post_init__(self) -> None:
        """A snapshot source needs no windows; window requests need them."""
        if isinstance(self.source, SnapshotRequest) and self.windowing is not None:
            msg = f"{self.name}: a snapshot source with windowing"
            raise TypeError(msg)
        if isinstance(self.source, WindowRequests) and self.windowing is None:
            msg = f"{self.name}: window requests without windowing"
            raise TypeError(msg)

    @classmethod
    def of(
        cls,
        shape: StreamShape,
        *,
        vendor: str,
        source: Source,
        limits: Limits,
        windowing: Windowing | None = None,
        timezone: str = "UTC",
        lists: str = "json",
        delimiter: str = ",",
        key_fallback: bool = False,
        keys_by_name: bool = False,
        probe: Callable[[Partition], None] | None = None,
    ) -> ExportSpec:
        """The spec of a declared stream: the shape's name, columns and keys, plus how to fetch.

        Windows must be given exactly when the shape says the stream is windowed, so the
        catalog that discovery builds from shapes alone says what a run does.
        """
        if shape.windowed != (windowing is not None):
            msg = f"{shape.name}: declared {'with' if shape.windowed else 'without'} windows"
            raise TypeError(msg)
        return cls(
            name=shape.name,
            vendor=vendor,
            columns=shape.columns,
            primary_keys=shape.primary_keys,
            source=source,
            limits=limits,
            timezone=timezone,
            lists=lists,
            windowing=windowing,
            replication_key=shape.replication_key,
            delimiter=delimiter,
            synthetic_key=shape.synthetic_key,
            partitions=shape.partitions,
            column_types=shape.column_types,
            key_fallback=key_fallback,
            keys_by_name=keys_by_name,
            probe=probe,
        )

    def schema(self) -> dict[str, t.Any]:
        """The stream's JSON schema: built-in columns, user overrides, key and partitions."""
        return stream_schema(
            self.columns,
            self.column_types,
            synthetic_key=self.synthetic_key,
            partitions=self.partitions,
        )

    @property
    def exact_lookback(self) -> bool:
        """Rows carry their event time: windows may start anywhere, keys need no window.

        Identical rows share their event time, so the count of identical rows within an export
        is the same in any window that covers them, and a key hashed from the row alone is
        stable. Streams without an event time keep windows on a fixed grid instead.
        """
        return self.windowing is not None and self.replication_key is not None


class Declaration(t.Protocol):
    """A vendor's settings block and the streams it enables, as plain data (no HTTP)."""

    key: str
    """The config block that enables the provider (``dfinery``, ``keen``...)."""
    title: str
    description: str
    settings: tuple[Setting, ...]

    def streams(self, block: dict[str, t.Any]) -> list[StreamShape]:
        """The shapes of the streams a validated block enables (cross-field rules checked)."""
        ...


class Provider(Declaration, t.Protocol):
    """A vendor: its declaration, and how the streams it enables are fetched."""

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """Declare the streams of a validated settings block."""
        ...
