"""plugin.yml, the Meltano Hub definition, stays in step with `tap-event-exports --about`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin.yml"

# Meltano's setting kinds (meltano.schema.json; `password` and `hidden` are deprecated in favour
# of `sensitive: true` and `hidden: true`).
MELTANO_KINDS = {
    "string",
    "integer",
    "decimal",
    "boolean",
    "date_iso8601",
    "options",
    "array",
    "object",
    "email",
    "file",
    "oauth",
}


@pytest.fixture(scope="module")
def about() -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tap_event_exports", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def plugin() -> dict:
    return yaml.safe_load(PLUGIN.read_text())


def non_null_types(schema: dict) -> set[str]:
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    for member in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(member, dict):
            types |= non_null_types(member) or ({"string"} if "const" in member else set())
    return types - {"null"}


def about_settings(schema: dict, prefix: str = "") -> dict[str, dict]:
    """Dotted name -> schema of every setting: objects of named settings are walked into."""
    found = {}
    for key, sub in schema.get("properties", {}).items():
        nested = (
            "object" in non_null_types(sub)
            and sub.get("properties")
            and not isinstance(sub.get("additionalProperties"), dict)
        )
        if nested:
            found.update(about_settings(sub, prefix=f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = sub
    return found


def expected_kind(schema: dict) -> str:
    types = non_null_types(schema)
    if types == {"string"}:
        if "enum" in schema:
            return "options"
        return "date_iso8601" if schema.get("format") == "date-time" else "string"
    if len(types) == 1:
        (kind,) = types
        return {"number": "decimal"}.get(kind, kind)
    return "string"  # a value of several types is given as text


def test_every_about_setting_is_declared_with_its_kind_and_sensitivity(about, plugin):
    expected = about_settings(about["settings"])
    declared = {s["name"]: s for s in plugin["settings"]}
    assert len(declared) == len(plugin["settings"]), "a setting is declared twice"
    assert set(declared) == set(expected)
    for name, schema in expected.items():
        setting = declared[name]
        assert setting["kind"] == expected_kind(schema), name
        assert setting["kind"] in MELTANO_KINDS, name
        secret = bool(schema.get("secret") or schema.get("writeOnly"))
        assert setting.get("sensitive", False) is secret, name
        if setting["kind"] == "options":
            assert [o["value"] for o in setting["options"]] == schema["enum"], name
        assert setting.get("label"), name
        assert setting.get("description") == schema.get("description"), name


def test_secrets_are_sensitive(plugin):
    sensitive = {s["name"] for s in plugin["settings"] if s.get("sensitive")}
    assert sensitive == {
        "dfinery.api_token",
        "keen.api_key",
        "mytracker.api_secret_key",
        "batch.rest_api_key",
    }


def test_no_defaults_that_would_enable_a_vendor(plugin):
    """Meltano hands `value` defaults to the tap: one inside a vendor block would enable it."""
    assert [s["name"] for s in plugin["settings"] if "value" in s] == []


def test_capabilities_are_the_taps(about, plugin):
    assert sorted(plugin["capabilities"]) == sorted(set(about["capabilities"]))
    assert len(plugin["capabilities"]) == len(set(plugin["capabilities"]))


def test_hub_fields(about, plugin):
    for key in ("name", "namespace", "variant", "label", "description", "pip_url", "quality"):
        assert isinstance(plugin.get(key), str), key
        assert plugin[key].strip(), key
    assert plugin["name"] == about["name"] == "tap-event-exports"
    assert plugin["namespace"] == "tap_event_exports"
    assert plugin["executable"] == "tap-event-exports"
    assert plugin["pip_url"].split()[0] == "tap-event-exports"
    assert plugin["supported_python_versions"] == about["supported_python_versions"]
    assert plugin["supported_python_versions"]


def test_settings_group_validation(about, plugin):
    declared = {s["name"] for s in plugin["settings"]}
    groups = plugin["settings_group_validation"]
    assert groups, "no group of settings makes a valid config"
    for group in groups:
        assert set(group) <= declared
        assert set(about["settings"]["required"]) <= set(group)
    # one group per vendor: its block's required settings
    vendors = {name.split(".")[0] for group in groups for name in group if "." in name}
    assert vendors == {"dfinery", "keen", "mytracker", "batch"}


def test_agrees_with_meltano_yml(plugin):
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = next(p for p in project["plugins"]["extractors"] if p["name"] == plugin["name"])
    declared = {s["name"]: s for s in plugin["settings"]}
    assert extractor["namespace"] == plugin["namespace"]
    for setting in extractor["settings"]:
        hub = declared[setting["name"]]
        assert hub["kind"] == setting["kind"], setting["name"]
        assert hub.get("sensitive", False) == setting.get("sensitive", False), setting["name"]
        assert hub.get("options") == setting.get("options"), setting["name"]


def test_file_is_what_the_script_writes(about):
    """`scripts/update_meltano_settings.py` regenerates the file; nothing was edited by hand."""
    spec = importlib.util.spec_from_file_location(
        "update_meltano_settings", ROOT / "scripts/update_meltano_settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = PLUGIN.read_text()
    regenerated = module.render_plugin(module.plugin_definition(about, yaml.safe_load(text)))
    assert text == regenerated, "plugin.yml is stale: run scripts/update_meltano_settings.py"
