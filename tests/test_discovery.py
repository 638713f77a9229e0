"""Discovery without singer-sdk: the same catalog as the SDK path, byte for byte, or the SDK.

In process, hypothesis draws configs of every vendor (valid ones mostly, and each kind of
mistake) and compares ``discovery.catalog_text`` with the SDK's own catalog text; as processes,
a sample of them and the configs that must fall back are run both ways through ``main()``:
stdout bytes, stderr lines (time stamps aside) and exit codes must be the same.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import simplejson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_event_exports import discover_command, discovery
from tap_event_exports.tap import PROVIDERS, TapEventExports

# --- configs ---------------------------------------------------------------------------------

NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
TYPES = ["string", "integer", "number", "boolean", "date-time", "array"]


def pick(valid: bool, good: list, bad: list):
    """One of the good values, or (for ``valid=False``) one of the bad ones too."""
    return st.sampled_from(good if valid else good + bad)


def block(required, **fields):
    """A dict strategy with these keys always and the others maybe."""
    return st.fixed_dictionaries(required, optional=fields)


def configs(valid: bool):
    """Every vendor alone and together; with ``valid=False``, each setting wrong as users get it.

    Valid configs are ones the tap accepts and the SDK's schema check passes (no warning).
    """
    names = (
        NAMES if not valid else st.from_regex(r"[A-Za-z][A-Za-z0-9 _.é☃-]{0,10}", fullmatch=True)
    )
    column_types = st.dictionaries(
        st.one_of(names, st.sampled_from(["df_event_name", "keen.id", "tsEvent", "event_date"])),
        pick(valid, TYPES, ["float"]),
        max_size=3,
    )
    stamps = pick(
        valid,
        ["2025-01-01T00:00:00Z", "2025-06-01T12:30:00+09:00"],
        ["2024-12-31", "yesterday", 20250101],
    )
    common = {
        "base_url": pick(valid, ["http://127.0.0.1:9", "https://example.test/"], ["http://[bad"]),
        "lookback": pick(valid, ["P1D", "PT2H"], ["P1M"]),
        "max_concurrent_jobs": pick(valid, [1, 3], [0, "2", 2.5, None]),
        "column_types": column_types,
    }
    tokens = st.lists(st.text("abc123-_ é", min_size=1, max_size=6), max_size=3)
    selectors = st.lists(
        st.sampled_from(
            ["tsEvent", "tsInstall", "idApp", "idfa", "SDKKey", "params.name", "countEvents"]
        )
        | names,
        min_size=1,
        max_size=5,
    )
    dfinery = block(
        {"service_id": st.just("svc"), "api_token": st.just("dfn-export-token")},
        **common,
        window=pick(valid, ["P1D", "P2D"], ["PT6H", "1 day"]),
        events=st.lists(names, min_size=1, max_size=2),
        events_condition_type=pick(valid, ["all", "include", "exclude"], [None, "some"]),
        timezone=pick(valid, ["Asia/Seoul", "UTC", "Europe/Paris"], ["Mars/Base"]),
        user_profiles=st.one_of(
            *([] if valid else [st.none()]),  # null: the SDK's default filling fails on it
            block(
                {},
                audience=st.just("vip"),
                properties=st.lists(names, max_size=2),
                properties_condition_type=pick(valid, ["all", "include"], ["x"]),
                identities=st.just(["df_external_id"]),
            ),
            *([] if valid else [st.just({"audince": "a"})]),
        ),
    )
    if valid:  # a condition other than all needs events to apply to
        dfinery = dfinery.filter(
            lambda b: b.get("events_condition_type", "all") == "all" or b.get("events")
        )
    keen = block(
        {
            "project_id": st.just("p1"),
            "api_key": st.just("keen-read-key-0123456789"),
            "collections": st.lists(
                names,
                min_size=1 if valid else 0,
                max_size=4,
                unique_by=(
                    lambda c: re.sub(r"[^a-z0-9]+", "_", c.lower()).strip("_") if valid else c
                ),
            ).filter(lambda cs: not valid or all(re.search(r"[A-Za-z0-9]", c) for c in cs)),
        },
        **common,
        window=pick(valid, ["P1D", "PT6H"], ["1 day"]),
        api=pick(valid, ["extract", "query"], ["both"]),
        filters=st.lists(
            block(
                {"property_name": st.just("user.id"), "operator": pick(valid, ["eq"], ["near"])},
                property_value=st.one_of(st.none(), st.integers(), names),
            ),
            min_size=1 if valid else 0,
            max_size=2,
        ),
    )
    events = st.sampled_from(["installs", "customEvents", "revenue"])
    mytracker = block(
        {
            "api_user_id": st.just("u1"),
            "api_secret_key": st.just("mytracker-secret-key"),
            "exports": st.lists(
                block(
                    {"event": events if valid else events | names, "selectors": selectors},
                    filters=pick(valid, [{}, {"idApp": 1}, {"idApp": [1, 2]}], [{"idAp": 1}, []]),
                ),
                min_size=1,
                max_size=3,
                unique_by=lambda e: e["event"],
            ),
        },
        **common,
        window=pick(valid, ["P1D", "PT12H"], ["1 day"]),
        timezone=st.sampled_from(["UTC", "Europe/Moscow"]),
    )
    batch = block(
        {"api_key": st.just("app"), "rest_api_key": st.just("batch-rest-key")},
        **common,
        window=pick(valid, ["P1D", "PT1H"], ["1 day"]),
        push_campaigns=tokens,
        transactional_groups=tokens,
        in_app_campaigns=tokens,
        events=block({}, push_campaigns=st.just(["push_open"]), in_app_campaigns=st.just([])),
        ids=pick(valid, [["install_id"], ["custom_id", "advertising_id"]], ["install_id,custom"]),
        reachability=pick(valid, [True, False], ["true"]),
        userbase=st.booleans(),
    )
    required = {"start_date": stamps} if valid else {}
    return st.fixed_dictionaries(
        required,
        optional={
            **({} if valid else {"start_date": stamps}),
            "end_date": st.just("2030-01-01T00:00:00Z") if valid else stamps,
            "request_timeout": pick(valid, [30, 12.5], ["soon", -1]),
            "max_retries": pick(valid, [3], [0, "5"]),
            "poll_interval": pick(valid, [0, 1.5], []),
            "max_prefetch_mb": st.just(64),
            "temp_dir": st.just("scratch"),
            "dfinery": dfinery,
            "keen": keen,
            "mytracker": mytracker,
            "batch": batch,
        },
    ).filter(lambda c: set(c) & {"dfinery", "keen", "mytracker", "batch"})


VALID = configs(valid=True)
ANY = configs(valid=False)

ALL_FOUR = {
    "start_date": "2025-01-01T00:00:00Z",
    "dfinery": {
        "service_id": "svc",
        "api_token": "dfn-export-token",
        "user_profiles": {},
        "column_types": {"df_custom": "integer", "Größe ☃": "number"},
    },
    "keen": {
        "project_id": "p1",
        "api_key": "keen-read-key-0123456789",
        "collections": ["purchases", "Page Views", "Ümlaut ☃"],
    },
    "mytracker": {
        "api_user_id": "u1",
        "api_secret_key": "mytracker-secret-key",
        "exports": [
            {"event": "installs", "selectors": ["tsEvent", "idApp", "SDKKey"]},
            {"event": "customEvents", "selectors": ["idApp", "params.name", "params.value"]},
        ],
    },
    "batch": {
        "api_key": "app",
        "rest_api_key": "batch-rest-key",
        "push_campaigns": ["c1", "c2"],
        "transactional_groups": ["g1"],
        "in_app_campaigns": ["i1"],
        "reachability": True,
        "userbase": True,
    },
}


def as_read(config: dict) -> dict:
    """A config as the SDK reads it from its file (decimals as ``Decimal``)."""
    return simplejson.loads(json.dumps(config), parse_float=Decimal)


def sdk_catalog(config: dict) -> str | None:
    """What the SDK's ``--discover`` prints (without the newline), or ``None`` if it fails."""
    try:
        tap = TapEventExports(config=config, validate_config=False, setup_mapper=False)
        return tap.catalog_json_text
    except Exception:
        return None


def schema_errors(config: dict) -> list[str]:
    schema = copy.deepcopy(TapEventExports.config_jsonschema)
    TapEventExports.append_builtin_config(schema)
    from singer_sdk.plugin_base import JSONSchemaValidator

    return [e.message for e in JSONSchemaValidator(schema).iter_errors(config)]


def fast_catalog(config: dict) -> str | None:
    """What the fast path prints, or ``None`` where it leaves the config to the SDK."""
    if not discovery.conforms(config):
        return None
    try:
        return discovery.catalog_text(config)
    except Exception:
        return None


# --- in process: the catalog text --------------------------------------------------------------


def test_all_four_vendors_give_the_sdk_catalog():
    config = as_read(ALL_FOUR)
    text = fast_catalog(copy.deepcopy(config))
    assert text is not None
    assert text == sdk_catalog(copy.deepcopy(config))
    assert "\\u00f6" in text  # non-ASCII names escaped as the SDK's encoder does
    streams = [s["tap_stream_id"] for s in json.loads(text)["streams"]]
    assert streams == sorted(streams)
    assert len(streams) == 15


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID)
def test_valid_configs_take_the_fast_path_to_the_sdk_catalog(config):
    config = as_read(config)
    fast = fast_catalog(copy.deepcopy(config))
    assert fast is not None, "a valid config fell back"
    sdk = sdk_catalog(copy.deepcopy(config))
    assert sdk is not None
    assert fast.encode() == sdk.encode()
    assert json.loads(fast) == json.loads(sdk)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY)
def test_any_config_gives_the_sdk_catalog_or_falls_back(config):
    config = as_read(config)
    fast = fast_catalog(copy.deepcopy(config))
    if fast is not None:
        assert fast == sdk_catalog(copy.deepcopy(config))
        assert schema_errors(copy.deepcopy(config)) == [], "the SDK would have warned"


@settings(max_examples=150, deadline=None)
@given(ANY)
def test_what_conforms_passes_the_sdk_schema_check(config):
    config = as_read(config)
    if discovery.conforms(config):
        assert schema_errors(config) == []


def test_the_declarations_are_the_providers():
    assert [d.key for d in discovery.DECLARATIONS] == [p.key for p in PROVIDERS]
    for declaration, provider in zip(discovery.DECLARATIONS, PROVIDERS, strict=True):
        assert isinstance(provider, type(declaration))
        assert declaration.settings == provider.settings


def test_mirrored_sdk_constants():
    from singer_sdk.helpers import _compat
    from singer_sdk.logging import DEFAULT_FORMAT
    from singer_sdk.singerlib import schema

    assert tuple(schema.STANDARD_KEYS) == discovery.SCHEMA_KEYS
    assert discover_command.LOG_FORMAT == DEFAULT_FORMAT
    assert discover_command.PYTHON_EOL == _compat._PYTHON_EOL_DATES
    assert discover_command.EOL_WARNING == _compat._PYTHON_EOL_WARNING_PERIOD
    full = copy.deepcopy(TapEventExports.config_jsonschema)
    TapEventExports.append_builtin_config(full)
    tap_names = {s.name for s in discover_command.GLOBAL_SETTINGS} | {
        d.key for d in discovery.DECLARATIONS
    }
    builtin = [name for name in full["properties"] if name not in tap_names]
    assert tuple(builtin) == discover_command.SDK_SETTINGS


def test_environment_kinds_are_the_sdks():
    from singer_sdk.helpers import _typing

    properties = TapEventExports.config_jsonschema["properties"]
    for setting in discover_command.GLOBAL_SETTINGS:
        schema = properties[setting.name]
        assert setting.kind in {"string", "number", "integer", "date-time"}
        assert bool(_typing.is_integer_type(schema)) == (setting.kind == "integer")
        assert not _typing.is_boolean_type(schema)
        assert not _typing.is_array_type(schema)
        assert not _typing.is_object_type(schema)
    for declaration in discovery.DECLARATIONS:
        schema = properties[declaration.key]
        assert _typing.is_object_type(schema)
        assert not _typing.is_integer_type(schema)
        assert not _typing.is_boolean_type(schema)
        assert not _typing.is_array_type(schema)


def test_sdk_schema_rewrites_as_the_sdk():
    from singer_sdk.singerlib import Schema

    sample = {
        "type": "object",
        "$schema": "x",
        "required": ["a"],
        "properties": {
            "a": {"type": ["array", "null"], "items": {"type": "string", "title": "t"}},
            "b": {"description": None, "format": "date-time", "type": ["string", "null"]},
            "c": {"x-sql-datatype": "int", "unknown": 1, "properties": {"d": {"type": "integer"}}},
        },
    }
    assert json.dumps(discovery.sdk_schema(sample)) == json.dumps(
        Schema.from_dict(sample).to_dict()
    )


# --- as processes: main() with and without the fast path --------------------------------------

SDK_MAIN = (
    "import sys; from tap_event_exports import __main__ as m; "
    "m._discover_without_sdk = lambda: None; sys.argv[0] = 'tap-event-exports'; m.main()"
)
FAST_MAIN = """
import json, os, sys
from tap_event_exports import __main__ as m
def report():
    sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n')
    sys.stderr.flush()
leave = m._leave
m._leave = lambda code: (report(), leave(code))
sys.argv[0] = 'tap-event-exports'
try:
    m.main()
except BaseException:
    report()
    raise
"""
NOISE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |File "<string>", line \d+', re.M)
HEAVY = ("singer_sdk", "pyarrow", "requests", "urllib3", "jsonschema", "click", "simplejson")


def run(code: str, args: list[str], cwd: Path, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TAP_EVENT_EXPORTS_")}
    environ.pop("LOGLEVEL", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        cwd=cwd,
        env={**environ, **(env or {})},
        timeout=120,
        check=False,
    )


def both_ways(args: list[str], cwd: Path, env: dict | None = None):
    """Run the command line through the SDK and through ``main()``; return (sdk, new, modules)."""
    sdk = run(SDK_MAIN, args, cwd, env)
    new = run(FAST_MAIN, args, cwd, env)
    lines = new.stderr.decode().splitlines()
    reports = [line for line in lines if line.startswith("MODULES ")]
    assert len(reports) == 1, new.stderr.decode()
    modules = json.loads(reports[0].removeprefix("MODULES "))
    new_stderr = "\n".join(line for line in lines if not line.startswith("MODULES "))
    assert new.stdout == sdk.stdout
    assert new.returncode == sdk.returncode
    assert NOISE.sub("", new_stderr).strip() == NOISE.sub("", sdk.stderr.decode()).strip()
    return sdk, new, modules


def fast(modules: list[str]) -> bool:
    return not any(m.split(".")[0] in HEAVY for m in modules)


def write(tmp_path: Path, name: str, config) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def test_all_four_vendors_without_the_sdk(tmp_path):
    sdk, _new, modules = both_ways(
        ["--config", write(tmp_path, "c.json", ALL_FOUR), "--discover"], tmp_path
    )
    assert sdk.returncode == 0
    assert fast(modules), [m for m in modules if m.split(".")[0] in HEAVY]
    assert b'"tap_stream_id":"keen_page_views"' in sdk.stdout


def test_several_config_files_and_equals_form(tmp_path):
    first = write(tmp_path, "a.json", {k: v for k, v in ALL_FOUR.items() if k != "batch"})
    second = write(tmp_path, "b.json", {"batch": ALL_FOUR["batch"], "keen": ALL_FOUR["keen"]})
    _, _, modules = both_ways(["--discover", f"--config={first}", "--config", second], tmp_path)
    assert fast(modules)


def test_config_from_the_environment(tmp_path):
    env = {
        "TAP_EVENT_EXPORTS_START_DATE": "2025-01-01T00:00:00Z",
        "TAP_EVENT_EXPORTS_MAX_RETRIES": "3",
        "TAP_EVENT_EXPORTS_KEEN": json.dumps(ALL_FOUR["keen"]),
    }
    path = write(tmp_path, "c.json", {"dfinery": ALL_FOUR["dfinery"]})
    sdk, _, modules = both_ways(["--config", path, "--config", "ENV", "--discover"], tmp_path, env)
    assert fast(modules)
    assert b"keen_purchases" in sdk.stdout
    assert b"Parsing 'keen' config from env variable" in sdk.stderr


def test_quiet_log_level_without_the_sdk(tmp_path):
    path = write(tmp_path, "c.json", ALL_FOUR)
    sdk, _, modules = both_ways(["--config", path, "--discover"], tmp_path, {"LOGLEVEL": "warning"})
    assert fast(modules)
    assert sdk.stderr == b""


FALLBACKS = {
    "no start_date (the SDK's schema check warns)": (
        {"dfinery": ALL_FOUR["dfinery"]},
        [],
        {},
    ),
    "a bad provider block": (
        {**ALL_FOUR, "dfinery": {**ALL_FOUR["dfinery"], "window": "PT6H"}},
        [],
        {},
    ),
    "a string for a number": ({**ALL_FOUR, "request_timeout": "30"}, [], {}),
    "stream maps": ({**ALL_FOUR, "stream_maps": {"keen_purchases": None}}, [], {}),
    "flattening": ({**ALL_FOUR, "flattening_enabled": True, "flattening_max_depth": 1}, [], {}),
    "an unknown top-level setting": ({**ALL_FOUR, "colour": "blue"}, [], {}),
    "a broken base URL": (
        {**ALL_FOUR, "keen": {**ALL_FOUR["keen"], "base_url": "http://[x"}},
        [],
        {},
    ),
    "another option": (ALL_FOUR, ["--about"], {}),
    "--test": (ALL_FOUR, ["--test=schema"], {}),
    "a state file": (ALL_FOUR, ["--state", "missing.json"], {}),
    "twice --discover": (ALL_FOUR, ["--discover"], {}),
    "debug logging": (ALL_FOUR, [], {"TAP_EVENT_EXPORTS_LOGLEVEL": "debug"}),
    "warnings shown": (ALL_FOUR, [], {"PYTHONWARNINGS": "always"}),
    "SDK settings in ENV": (
        ALL_FOUR,
        ["--config", "ENV"],
        {"TAP_EVENT_EXPORTS_BATCH_CONFIG": "{}"},
    ),
    "a number in ENV": (ALL_FOUR, ["--config", "ENV"], {"TAP_EVENT_EXPORTS_POLL_INTERVAL": "1"}),
    "a bad integer in ENV": (ALL_FOUR, ["--config", "ENV"], {"TAP_EVENT_EXPORTS_MAX_RETRIES": "x"}),
    "not an object": ([1, 2], [], {}),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_what_falls_back_to_the_sdk(tmp_path, case):
    config, extra, env = FALLBACKS[case]
    args = ["--config", write(tmp_path, "c.json", config), "--discover", *extra]
    _, _, modules = both_ways(args, tmp_path, env)
    assert not fast(modules)


def test_missing_config_file_falls_back(tmp_path):
    sdk, _, modules = both_ways(["--config", str(tmp_path / "none.json"), "--discover"], tmp_path)
    assert sdk.returncode != 0
    assert not fast(modules)


def test_a_dotenv_file_falls_back_with_env(tmp_path):
    (tmp_path / ".env").write_text("TAP_EVENT_EXPORTS_START_DATE=2025-01-01T00:00:00Z\n")
    path = write(tmp_path, "c.json", {"keen": ALL_FOUR["keen"]})
    # the SDK looks for .env from its own folder (not this one): the fast path stays out anyway
    _, _, modules = both_ways(["--config", path, "--config", "ENV", "--discover"], tmp_path)
    assert not fast(modules)


@settings(max_examples=8, deadline=None)
@given(ANY)
def test_sampled_configs_as_processes(tmp_path_factory, config):
    tmp_path = tmp_path_factory.mktemp("sampled")
    both_ways(["--config", write(tmp_path, "c.json", config), "--discover"], tmp_path)


def test_python_eol_warning_falls_back(monkeypatch):
    version = sys.version_info[:2]
    monkeypatch.setitem(discover_command.PYTHON_EOL, version, dt.date.today())
    assert not discover_command.quiet_interpreter({})
