"""meltano.yml declares the extractor fully, in step with the tap's settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from tap_event_exports.setting_schemas import meltano_settings
from tap_event_exports.settings import GLOBAL_SETTINGS
from tap_event_exports.tap import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent


def extractor() -> dict:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-event-exports")


def test_every_setting_is_declared_with_its_kind():
    expected = meltano_settings(GLOBAL_SETTINGS)
    for provider in PROVIDERS:
        expected += meltano_settings(provider.settings, prefix=f"{provider.key}.")
    declared = {s["name"]: s for s in extractor()["settings"]}
    assert set(declared) == {s["name"] for s in expected}
    for setting in expected:
        assert declared[setting["name"]]["kind"] == setting["kind"], setting["name"]
        assert declared[setting["name"]].get("sensitive", False) == setting.get("sensitive", False)


def test_secrets_are_sensitive_and_plugin_needs_no_hub():
    plugin = extractor()
    sensitive = {s["name"] for s in plugin["settings"] if s.get("sensitive")}
    assert sensitive == {
        "dfinery.api_token",
        "keen.api_key",
        "batch.rest_api_key",
        "mytracker.api_secret_key",
    }
    assert plugin["namespace"] == "tap_event_exports"
    assert plugin["pip_url"] == "-e ."
    assert {"state", "catalog", "discover", "about", "stream-maps"} <= set(plugin["capabilities"])
