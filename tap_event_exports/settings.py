"""Declarative settings: one description drives the JSON schema, validation and meltano.yml.

Validation errors are one line that names the setting with its dotted path
(``dfinery.api_token``) and says what is wrong.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_event_exports.engine.converters import COLUMN_TYPES
from tap_event_exports.engine.durations import parse_duration
from tap_event_exports.engine.errors import ConfigError
from tap_event_exports.engine.windows import utc

if t.TYPE_CHECKING:
    from tap_event_exports.engine.contract import Declaration


@dataclass(frozen=True)
class Setting:
    """One setting: its name, kind, default and documentation."""

    name: str
    kind: str
    """string, secret, integer, number, boolean, duration, date-time, timezone, enum,
    string-list, integer-list, column-types, object, object-list, any."""
    description: str
    required: bool = False
    default: t.Any = None
    choices: tuple[str, ...] = ()
    fields: tuple[Setting, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def secret(self) -> bool:
        """Whether the value must never be shown."""
        return self.kind == "secret"


# --- validation --------------------------------------------------------------------------


def fail(path: str, problem: str) -> t.NoReturn:
    """Refuse a setting with a one-line message naming it."""
    raise ConfigError(f"config: {path}: {problem}")


def _parse_datetime(path: str, value: t.Any) -> dt.datetime:
    if not isinstance(value, str):
        fail(path, f"must be an RFC 3339 date-time string, got {type(value).__name__}")
    try:
        return utc(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        fail(path, f"{value!r} is not an RFC 3339 date-time such as 2025-01-01T00:00:00Z")


def _check(setting: Setting, value: t.Any, path: str) -> t.Any:
    kind = setting.kind
    if kind in {"string", "secret"}:
        if not isinstance(value, str) or not value.strip():
            shown = "a non-empty string" if kind == "string" else "a non-empty string (secret)"
            got = type(value).__name__ if not isinstance(value, str) else "an empty string"
            fail(path, f"must be {shown}, got {got}")
        return value.strip()
    if kind == "enum":
        if value not in setting.choices:
            fail(path, f"must be one of {', '.join(setting.choices)}, got {value!r}")
        return value
    if kind == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            fail(path, f"must be an integer, got {value!r}")
        if setting.minimum is not None and value < setting.minimum:
            fail(path, f"must be at least {setting.minimum:g}, got {value}")
        if setting.maximum is not None and value > setting.maximum:
            fail(path, f"must be at most {setting.maximum:g}, got {value}")
        return value
    if kind == "number":
        if isinstance(value, Decimal):  # singer-sdk reads JSON decimals as Decimal
            value = float(value)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                fail(path, f"must be a number of seconds, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(path, f"must be a number of seconds, got {value!r}")
        if setting.minimum is not None and value < setting.minimum:
            fail(path, f"must be at least {setting.minimum:g}, got {value}")
        return value
    if kind == "boolean":
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        if not isinstance(value, bool):
            fail(path, f"must be true or false, got {value!r}")
        return value
    if kind == "date-time":
        return _parse_datetime(path, value)
    if kind == "duration":
        try:
            return parse_duration(value)
        except ValueError as exc:
            fail(path, str(exc))
    if kind == "timezone":
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            fail(path, f"{value!r} is not an IANA timezone name such as Asia/Seoul or UTC")
        return str(value)
    if kind in {"string-list", "integer-list"}:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        item_type = str if kind == "string-list" else int
        if not isinstance(value, list) or not all(
            isinstance(v, item_type) and not isinstance(v, bool) for v in value
        ):
            fail(path, f"must be a list of {'strings' if item_type is str else 'integers'}")
        return value
    if kind == "column-types":
        if not isinstance(value, dict):
            fail(path, "must be an object mapping column names to types")
        for column, kind_name in value.items():
            if kind_name not in COLUMN_TYPES:
                fail(f"{path}.{column}", f"must be one of {', '.join(COLUMN_TYPES)}")
        return dict(value)
    if kind == "object":
        return validate_block(value, setting.fields, path)
    if kind == "object-list":
        if not isinstance(value, list) or not value:
            fail(path, "must be a non-empty list of objects")
        return [validate_block(v, setting.fields, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def validate_block(block: t.Any, settings: t.Sequence[Setting], path: str) -> dict[str, t.Any]:
    """Validate one object of settings; fill defaults; convert durations and date-times."""
    where = path or "config"
    if not isinstance(block, dict):
        fail(where, f"must be an object, got {type(block).__name__}")
    known = {s.name for s in settings}
    unknown = sorted(set(block) - known)
    if unknown and path:
        fail(f"{path}.{unknown[0]}", f"unknown setting (known: {', '.join(sorted(known))})")
    out: dict[str, t.Any] = {}
    for setting in settings:
        name = f"{path}.{setting.name}" if path else setting.name
        value = block.get(setting.name)
        if value is None:
            if setting.required:
                fail(name, "is required")
            if setting.default is None:
                out[setting.name] = None
                continue
            value = setting.default
        out[setting.name] = _check(setting, value, name)
    return out


def validate_config(
    config: t.Mapping[str, t.Any], providers: t.Sequence[Declaration], *, strict: bool = True
) -> tuple[GlobalSettings, dict[str, dict[str, t.Any]]]:
    """Validate the whole config; return the global settings and each enabled provider block.

    ``strict=False`` (discovery) tolerates a missing ``start_date``: a catalog does not need it.
    """
    top = {s.name: config.get(s.name) for s in GLOBAL_SETTINGS}
    if not strict and top.get("start_date") is None:
        top["start_date"] = "1970-01-01T00:00:00Z"
    values = validate_block(top, GLOBAL_SETTINGS, "")
    if values["end_date"] is not None and values["end_date"] <= values["start_date"]:
        msg = "config: end_date: must be later than start_date"
        raise ConfigError(msg)
    blocks: dict[str, dict[str, t.Any]] = {}
    secrets: list[str] = []
    for provider in providers:
        raw = config.get(provider.key)
        if raw is None:
            continue
        block = validate_block(raw, provider.settings, provider.key)
        blocks[provider.key] = block
        secrets.extend(secrets_of(block, provider.settings))
    if strict and not blocks:
        names = ", ".join(p.key for p in providers)
        msg = f"config: no provider is configured: add a block for one of {names}"
        raise ConfigError(msg)
    settings = GlobalSettings(**values, secrets=tuple(secrets))
    return settings, blocks


@dataclass(frozen=True)
class GlobalSettings:
    """The settings shared by every provider."""

    start_date: dt.datetime
    end_date: dt.datetime | None
    request_timeout: float
    max_retries: int
    poll_interval: float
    max_poll_time: float
    max_concurrent_jobs: int
    max_prefetch_mb: float = 512
    temp_dir: str | None = None
    secrets: tuple[str, ...] = field(default=())


GLOBAL_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "start_date",
        "date-time",
        "Earliest event time to extract when a stream has no bookmark (RFC 3339).",
        required=True,
    ),
    Setting(
        "end_date",
        "date-time",
        "Extract up to this time (exclusive); default: now. For bounded and sharded backfills.",
    ),
    Setting(
        "request_timeout",
        "number",
        "Connect/read inactivity timeout of one HTTP request, in seconds.",
        default=300,
        minimum=1,
    ),
    Setting(
        "max_retries",
        "integer",
        "Attempts for one retriable HTTP call (429, 5xx, resets, timeouts, cut downloads).",
        default=8,
        minimum=1,
    ),
    Setting(
        "poll_interval",
        "number",
        "Wait before a new export job's first status check, then between checks, in seconds "
        "(grows).",
        default=10,
        minimum=0,
    ),
    Setting(
        "max_poll_time",
        "number",
        "Give up on one export job after this many seconds, naming the job id.",
        default=21600,
        minimum=1,
    ),
    Setting(
        "max_concurrent_jobs",
        "integer",
        "Export jobs (or synchronous window requests) in flight at once in the whole run, "
        "across every stream and partition (each provider's own limit applies too).",
        default=8,
        minimum=1,
    ),
    Setting(
        "max_prefetch_mb",
        "number",
        "Export files downloaded ahead of their turn and not yet emitted, in MB, at most "
        "(keeps temp disk flat; the export a stream waits for is always fetched).",
        default=512,
        minimum=0,
    ),
    Setting(
        "temp_dir",
        "string",
        "Folder for the run's temporary export files (default: the system temp folder); "
        "removed at the end of the run, and what killed runs left there is removed next run.",
    ),
)


def provider_common(
    *,
    base_url: str,
    window: str,
    lookback: str,
    max_jobs: int,
    max_jobs_why: str,
    max_jobs_limit: int | None = None,
) -> tuple[Setting, ...]:
    """The settings every provider block accepts.

    ``max_jobs`` is the provider's own default; ``max_jobs_limit`` the most its documentation
    allows at once (more would only be refused by the vendor).
    """
    return (
        Setting("base_url", "string", "API base URL (default: the vendor's).", default=base_url),
        Setting(
            "window",
            "duration",
            f"How much event time one export request covers (ISO-8601, default {window}).",
            default=window,
        ),
        Setting(
            "lookback",
            "duration",
            f"How far before the bookmark an incremental run restarts (default {lookback}).",
            default=lookback,
        ),
        Setting(
            "max_concurrent_jobs",
            "integer",
            f"Exports in flight at once for this provider's credentials ({max_jobs_why}).",
            default=max_jobs,
            minimum=1,
            maximum=max_jobs_limit,
        ),
    )


def secrets_of(block: dict, settings: t.Sequence[Setting]) -> list[str]:
    """Every secret value in a validated block (for redaction)."""
    found: list[str] = []
    for setting in settings:
        value = block.get(setting.name)
        if setting.secret and isinstance(value, str) and value:
            found.append(value)
        elif setting.kind == "object" and isinstance(value, dict):
            found.extend(secrets_of(value, setting.fields))
    return found
