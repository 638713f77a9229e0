"""``tap-event-exports --config ... --discover`` answered without singer-sdk where that is exact.

The SDK path spends about half a second importing the SDK to print a catalog that the tap's
declarations give in milliseconds. :func:`discover` answers a command line that is only a
discovery, with a config and an environment for which it prints what the SDK path prints: the
catalog on stdout byte for byte, the same log lines on stderr, exit 0. Anything else (other
options, a config the tap or the SDK's schema check refuses, settings of the SDK itself, a
``.env`` file, log or warning settings) returns ``None``, and the SDK answers as before.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import json
import logging
import sys
import typing as t
from pathlib import Path

from tap_event_exports.discovery import DECLARATIONS, catalog_text, conforms
from tap_event_exports.settings import GLOBAL_SETTINGS

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

TAP_NAME = "tap-event-exports"
ENV_PREFIX = "TAP_EVENT_EXPORTS_"
LOG_FORMAT = "{asctime:23s} | {levelname:8s} | {name:30s} | {message}"
"""singer-sdk's console log format (``singer_sdk.logging.DEFAULT_FORMAT``)."""
ENV_LOGGER = "singer_sdk.configuration._dict_config"
"""The logger that names each setting read from the environment."""
SDK_SETTINGS = (
    "stream_maps",
    "stream_map_config",
    "faker_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
    "batch_config",
)
"""Settings singer-sdk adds to every tap's schema; the ``ENV`` config may hold them too."""
QUIET_LEVELS = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"})
"""Log levels at which the SDK's discovery logs nothing (for a config its schema accepts)."""
PYTHON_EOL = {
    (3, 10): dt.date(2026, 10, 1),
    (3, 11): dt.date(2027, 10, 1),
    (3, 12): dt.date(2028, 10, 1),
    (3, 13): dt.date(2029, 10, 1),
    (3, 14): dt.date(2030, 10, 1),
    (3, 15): dt.date(2031, 10, 1),
    (3, 16): dt.date(2032, 10, 1),
}
"""End-of-life dates after which (less 180 days) the SDK warns at startup; then it answers."""
EOL_WARNING = dt.timedelta(days=180)


def discover(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Print the catalog and return 0, or return ``None`` for the SDK to answer."""
    sources = config_sources(argv)
    level = log_level(environ)
    if sources is None or level is None or not quiet_interpreter(environ):
        return None
    try:
        config, lines = read_config(sources, environ)
        if not conforms(config):
            return None
        text = catalog_text(config)
    except Exception:  # whatever it is, the SDK path reports it its own way
        return None
    if level == "INFO":
        log(lines)
    print(text)  # as the SDK prints it
    return 0


def config_sources(argv: Sequence[str]) -> list[str] | None:
    """The ``--config`` values of a command line that is one ``--discover`` and nothing else."""
    sources: list[str] = []
    discovers = 0
    args = iter(argv)
    for arg in args:
        if arg == "--discover":
            discovers += 1
        elif arg == "--config":
            value = next(args, None)
            if value is None:
                return None
            sources.append(value)
        elif arg.startswith("--config="):
            sources.append(arg.removeprefix("--config="))
        else:
            return None
    return sources if discovers == 1 else None


def log_level(environ: Mapping[str, str]) -> str | None:
    """The SDK's log level where its discovery logs only INFO lines or nothing, else ``None``."""
    raw = environ.get(f"{ENV_PREFIX}LOGLEVEL") or environ.get("LOGLEVEL")
    level = raw.upper() if raw is not None else "INFO"
    return level if level == "INFO" or level in QUIET_LEVELS else None


def quiet_interpreter(environ: Mapping[str, str]) -> bool:
    """Whether the SDK would print no warning of its own or of Python's at startup."""
    if sys.warnoptions or sys.flags.dev_mode or "SINGER_SDK_LOG_CONFIG" in environ:
        return False
    eol = PYTHON_EOL.get(sys.version_info[:2])
    return eol is None or dt.datetime.now(dt.timezone.utc).date() < eol - EOL_WARNING


def load_json(text: str) -> t.Any:
    """JSON as the SDK reads it: decimals as ``Decimal``; ``NaN`` and friends are refused."""
    return json.loads(text, parse_float=decimal.Decimal, parse_constant=_refuse)


def _refuse(constant: str) -> t.NoReturn:
    msg = f"{constant} is left to the SDK's JSON reader"
    raise ValueError(msg)


def read_config(
    sources: Sequence[str], environ: Mapping[str, str]
) -> tuple[dict[str, t.Any], list[tuple[str, str]]]:
    """The merged config of the ``--config`` files (and ``ENV``), and what the SDK logs of it."""
    config: dict[str, t.Any] = {}
    for source in sources:
        if source != "ENV":
            loaded = load_json(Path(source).read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                msg = f"{source}: not a JSON object"
                raise TypeError(msg)
            config |= loaded
    if "ENV" not in sources:
        return config, [(TAP_NAME, "Skipping parse of env var settings...")]
    values, lines = environment_config(environ)
    config.update(values)
    return config, [(TAP_NAME, "Parsing env var for settings config..."), *lines]


def environment_config(
    environ: Mapping[str, str],
) -> tuple[dict[str, t.Any], list[tuple[str, str]]]:
    """Settings from ``TAP_EVENT_EXPORTS_<NAME>`` variables, read as the SDK reads them."""
    if any(f"{ENV_PREFIX}{name.upper()}" in environ for name in SDK_SETTINGS):
        msg = "settings of the SDK itself"
        raise LookupError(msg)
    if dotenv_nearby():
        msg = "a .env file, which the SDK loads"
        raise LookupError(msg)
    kinds = [(s.name, s.kind) for s in GLOBAL_SETTINGS] + [(d.key, "object") for d in DECLARATIONS]
    values: dict[str, t.Any] = {}
    lines: list[tuple[str, str]] = []
    for name, kind in kinds:
        variable = f"{ENV_PREFIX}{name.upper().replace('-', '_')}"
        if variable not in environ:
            continue
        lines.append((ENV_LOGGER, f"Parsing '{name}' config from env variable '{variable}'."))
        raw = environ[variable]
        if kind == "integer":
            values[name] = int(raw)
        elif kind == "object":
            values[name] = load_json(raw)
        elif kind in {"string", "number", "date-time"}:
            values[name] = raw
        else:
            msg = f"{name}: no reading of a {kind} setting from the environment"
            raise LookupError(msg)
    return values, lines


def dotenv_nearby() -> bool:
    """Whether python-dotenv, as the SDK calls it, could find a ``.env`` file to load.

    It searches from the SDK's own folder (or the working directory, in some interpreters)
    up to the root; either finding one sends discovery to the SDK.
    """
    spec = importlib.util.find_spec("singer_sdk")
    if spec is None or spec.origin is None:
        return True
    starts = (Path(spec.origin).parent / "configuration", Path.cwd())
    return any((folder / ".env").exists() for start in starts for folder in (start, *start.parents))


def log(lines: list[tuple[str, str]]) -> None:
    """Log on stderr as the SDK's console logging does (same format and loggers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt=LOG_FORMAT, style="{"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    for name, message in lines:
        logging.getLogger(name).info(message)
