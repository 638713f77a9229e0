"""The tap: settings assembled from the vendor blocks, and streams built from them."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import logging
import sys
import threading
import typing as t

import click
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue

from tap_event_exports import package_version
from tap_event_exports.connection import PROBE_RETRIES, run_check
from tap_event_exports.engine.errors import ConfigError, TapError
from tap_event_exports.engine.runtime import Runtime
from tap_event_exports.engine.state import StateError
from tap_event_exports.engine.stats import RunStats
from tap_event_exports.engine.workspace import Workspace
from tap_event_exports.redaction import protect, redact
from tap_event_exports.sdk import SdkTap
from tap_event_exports.setting_schemas import to_property
from tap_event_exports.settings import GLOBAL_SETTINGS, GlobalSettings, validate_config
from tap_event_exports.streams import ExportStream, scheduler_for
from tap_event_exports.vendors.batch import Batch
from tap_event_exports.vendors.dfinery import Dfinery
from tap_event_exports.vendors.keen import Keen
from tap_event_exports.vendors.mytracker import MyTracker

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_event_exports.engine.contract import Provider

PROVIDERS: tuple[Provider, ...] = (Dfinery(), Keen(), MyTracker(), Batch())


def config_schema() -> dict:
    """The config JSON schema: the global settings and one object per provider block."""
    properties = [to_property(s) for s in GLOBAL_SETTINGS]
    for provider in PROVIDERS:
        properties.append(
            th.Property(
                provider.key,
                th.ObjectType(
                    *(to_property(s) for s in provider.settings), additional_properties=False
                ),
                description=f"{provider.description} Present = enabled.",
            )
        )
    return th.PropertiesList(*properties).to_dict()


def parse_config(
    config: t.Mapping[str, t.Any], *, strict: bool = True
) -> tuple[GlobalSettings, dict[str, dict[str, t.Any]]]:
    """Validate the whole config; return the global settings and each enabled provider block.

    ``strict=False`` (discovery) tolerates a missing ``start_date``: a catalog does not need it.
    """
    return validate_config(config, PROVIDERS, strict=strict)


def _json_file(handle: t.IO[str] | None, what: str) -> t.IO[str] | None:
    """Read a state or catalog file, refusing one that is not JSON with a one-line error."""
    if handle is None:
        return None
    text = handle.read()
    try:
        json.loads(text)
    except ValueError as exc:
        name = getattr(handle, "name", what)
        msg = f"{what}: {name} is not valid JSON ({exc})"
        raise ConfigError(msg) from None
    return io.StringIO(text)


def one_line_errors(func: Callable[..., t.Any]) -> Callable[..., t.Any]:
    """Report the tap's own errors as one line on stderr and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return func(*args, **kwargs)
        except TapError as exc:
            message = redact(str(exc))
        except ConfigValidationError as exc:
            first = exc.errors[0] if exc.errors else str(exc)
            message = redact(f"config: {first}")
        sys.stdout.flush()
        print(f"tap-event-exports: error: {message}", file=sys.stderr, flush=True)
        sys.exit(1)

    return wrapper


def log_summary(stats: RunStats, summary: dict[str, t.Any]) -> None:
    """The run's totals: a table to read, and one JSON line to alert on."""
    logger = logging.getLogger("tap_event_exports.summary")
    logger.info("Run summary:\n%s", stats.table(summary))
    logger.info("RUN_SUMMARY %s", stats.json_line(summary))


@one_line_errors
def _connection_check(cls: type[TapEventExports], settings: t.Any) -> int:
    config = dict(settings.config if settings is not None else {})
    config["max_retries"] = min(int(config.get("max_retries") or 8), PROBE_RETRIES)
    parse_env = settings.parse_env if settings is not None else False
    tap = cls(config=config, parse_env_config=parse_env, validate_config=True)
    streams = [s for s in tap.streams.values() if isinstance(s, ExportStream)]
    return run_check(streams, tap.runtime.now)


class TapEventExports(SdkTap):
    """Raw event exports from Dfinery, Keen IO, myTracker and Batch, as Singer records."""

    name = "tap-event-exports"
    message_writer_class = MsgSpecWriter
    config_jsonschema = config_schema()

    @classmethod
    def get_plugin_version(cls) -> str:
        """The package version (``--version``, ``--about``), read from the installed metadata."""
        return package_version()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Set up the run-wide stop signal before streams are built."""
        self.stop = threading.Event()
        self._runtime: Runtime | None = None
        super().__init__(*args, **kwargs)
        self._check_catalog()

    def check_config(self) -> None:
        """One-line messages for a bad config, before the SDK's JSON-schema check."""
        settings, _ = parse_config(self.config)
        protect(settings.secrets)

    @property
    def runtime(self) -> Runtime:
        """Settings, stop signal and the run's fixed notion of now."""
        if self._runtime is None:
            settings, _ = parse_config(self.config, strict=False)
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            self._runtime = Runtime(settings=settings, stop=self.stop, now=now)
        return self._runtime

    def discover_streams(self) -> list[ExportStream]:
        """One stream per vendor endpoint (and per configured collection/export)."""
        _, blocks = parse_config(self.config, strict=False)
        streams: list[ExportStream] = []
        for provider in PROVIDERS:
            if provider.key in blocks:
                for spec in provider.build(blocks[provider.key], self.runtime):
                    streams.append(ExportStream(self, spec, self.runtime))
        return streams

    @contextlib.contextmanager
    def sync_scope(self) -> Iterator[None]:
        """Every selected stream's exports scheduled ahead at once, files in the run's folder.

        The folder is removed when the sync ends, whatever the way.
        """
        runtime = self.runtime
        with Workspace(runtime.settings.temp_dir):
            streams = [s for s in self.streams.values() if isinstance(s, ExportStream)]
            scheduler = scheduler_for(runtime, [s for s in streams if s.selected])
            runtime.scheduler = scheduler
            try:
                yield
            finally:
                runtime.scheduler = None
                scheduler.close()
                summary = runtime.stats.summary()
                summary["peak_exports_in_flight"] = scheduler.peak_in_flight
                log_summary(runtime.stats, summary)

    def on_termination(self, signum: int) -> None:
        """Stop workers, write the last STATE (complete windows only) and exit 128 + signal.

        The exit code says the run did not finish, so schedulers do not take it for a success.
        """
        self.stop.set()
        self.logger.warning("Stopped by signal %d; the last STATE resumes this run", signum)
        self.write_state_now()
        sys.exit(128 + signum)

    def load_state(self, state: dict[str, t.Any]) -> None:
        """Load a STATE, converting the flat layout of older taps and refusing what is not one.

        ``{"stream": "2025-01-01T00:00:00Z"}`` (no ``bookmarks`` object) becomes that stream's
        bookmark; anything else without ``bookmarks`` is an error, not a silent full re-sync.
        """
        if not isinstance(state, dict):
            msg = f"state: must be a JSON object, got {type(state).__name__}"
            raise StateError(msg)
        if state and "bookmarks" not in state:
            if all(isinstance(v, str) for v in state.values()):
                state = {"bookmarks": {k: {"replication_key_value": v} for k, v in state.items()}}
                self.logger.warning("state: converted a flat (older) layout to bookmarks")
            else:
                msg = "state: no 'bookmarks' object; this is not a STATE this tap wrote"
                raise StateError(msg)
        bookmarks = state.get("bookmarks", {})
        if not isinstance(bookmarks, dict):
            msg = "state: 'bookmarks' must be an object of streams"
            raise StateError(msg)
        for stream, value in bookmarks.items():
            if not isinstance(value, dict):
                msg = f"state: bookmarks of stream '{stream}' must be an object"
                raise StateError(msg)
        super().load_state(state)

    def _check_catalog(self) -> None:
        """Every stream a catalog names must be one this config has."""
        if self.input_catalog is None:
            return
        unknown = sorted(
            entry.tap_stream_id
            for entry in self.input_catalog.streams
            if entry.tap_stream_id not in self.streams
        )
        if unknown:
            known = ", ".join(sorted(self.streams)) or "none"
            msg = f"catalog: stream {unknown[0]!r} is not one this config has (streams: {known})"
            raise ConfigError(msg)

    @classmethod
    @one_line_errors
    def invoke(
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run the tap, with state and catalog files checked first (one-line errors)."""
        super().invoke(
            about=about,
            about_format=about_format,
            config=config,
            state=_json_file(state, "state"),
            catalog=_json_file(catalog, "catalog"),
        )

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: a connection check of every enabled provider (``--test=schema`` as usual).

        One line per provider, exit 0 when all pass and 1 with the vendor's message when one
        does not; retries are few, so a check answers within seconds.
        """
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        settings = ctx.params.get("config")
        code = _connection_check(cls, settings)
        ctx.exit(code)

    @classmethod
    @one_line_errors
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """``--discover``: the SDK's discovery, with the tap's own errors as one line."""
        super().cb_discover(ctx, param, value)
