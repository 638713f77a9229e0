"""Rewrite the tap's settings in meltano.yml and in the Meltano Hub definition plugin.yml.

    .venv/bin/python scripts/update_meltano_settings.py

- meltano.yml: the extractor's `settings:` from the settings the code declares
  (tests/test_meltano_yml.py fails when the two disagree).
- plugin.yml: the plugin definition Meltano Hub takes (on the Hub it is
  `_data/meltano/extractors/tap-event-exports/<variant>.yml`), generated from
  `tap-event-exports --about --format=json`: capabilities, settings (nested objects as dotted
  names), settings_group_validation, and name/namespace/executable/pip_url/description.
  Other keys (variant, label, repo, keywords, ...) are kept as written in the file
  (tests/test_plugin_definition.py fails when the file and `--about` disagree).
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

from tap_event_exports.setting_schemas import meltano_settings
from tap_event_exports.settings import GLOBAL_SETTINGS
from tap_event_exports.tap import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "meltano.yml"
PLUGIN_PATH = ROOT / "plugin.yml"

PLUGIN_HEADER = """\
# Meltano Hub plugin definition of tap-event-exports (on the Hub:
# _data/meltano/extractors/tap-event-exports/<variant>.yml).
# Generated from `tap-event-exports --about --format=json`; refresh with
#     .venv/bin/python scripts/update_meltano_settings.py
"""

# Keys the Hub definition takes from `--about`; everything else in plugin.yml is kept as written.
GENERATED_KEYS = (
    "name",
    "namespace",
    "executable",
    "pip_url",
    "description",
    "supported_python_versions",
    "capabilities",
    "settings_group_validation",
    "settings",
)
# Written when plugin.yml does not exist yet (or lacks them); edited by hand afterwards.
DEFAULT_KEYS: dict[str, t.Any] = {
    "variant": "tap-event-exports",
    "label": "Event Exports (Dfinery, Keen IO, myTracker, Batch)",
    "keywords": ["meltano_sdk", "api", "events"],
    "quality": "unknown",  # the Hub requires it; its maintainers rate connectors
}
KEY_ORDER = (
    "name",
    "variant",
    "namespace",
    "label",
    "description",
    "pip_url",
    "executable",
    "repo",
    "docs",
    "keywords",
    "quality",
    "supported_python_versions",
    "capabilities",
    "settings_group_validation",
    "settings",
)
LABEL_WORDS = {"api": "API", "id": "ID", "ids": "IDs", "url": "URL", "mytracker": "myTracker"}


def meltano_yml_settings() -> list[dict]:
    """The extractor's settings as meltano.yml declares them, from the code's declarations."""
    settings = meltano_settings(GLOBAL_SETTINGS)
    for provider in PROVIDERS:
        settings += meltano_settings(provider.settings, prefix=f"{provider.key}.")
    return settings


def write_meltano_yml() -> None:
    """Regenerate and write meltano.yml's settings list."""
    project = yaml.safe_load(PATH.read_text())
    for plugin in project["plugins"]["extractors"]:
        if plugin["name"] == "tap-event-exports":
            plugin["settings"] = meltano_yml_settings()
    PATH.write_text(yaml.safe_dump(project, sort_keys=False, width=100, allow_unicode=True))


# --- the Meltano Hub definition, from --about ---------------------------------------------


def about() -> dict:
    """`tap-event-exports --about --format=json`, as the installed tap prints it."""
    out = subprocess.run(
        [sys.executable, "-m", "tap_event_exports", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def _types(schema: dict) -> list[str]:
    """The non-null JSON types a schema allows (of its own ``type``, or of its union's members)."""
    if "type" in schema:
        declared = schema["type"]
        types = declared if isinstance(declared, list) else [declared]
    else:
        types = []
        for member in schema.get("anyOf", []) + schema.get("oneOf", []):
            if not isinstance(member, dict):
                continue
            if "type" not in member and isinstance(member.get("const"), str):
                types.append("string")
            else:
                types += _types(member)
    return list(dict.fromkeys(x for x in types if x != "null"))


def is_nested_block(schema: dict) -> bool:
    """An object of named settings: Meltano sets its settings one by one, as dotted names.

    Objects whose keys are the user's own (a schema for ``additionalProperties``, such as
    ``stream_maps`` or ``column_types``, or no ``properties`` at all) are one ``object`` setting.
    """
    return (
        "object" in _types(schema)
        and bool(schema.get("properties"))
        and not isinstance(schema.get("additionalProperties"), dict)
    )


def setting_kind(schema: dict) -> str:
    """The Meltano kind of a JSON schema (``number`` is ``decimal``; mixed unions are text)."""
    types = _types(schema)
    if len(types) != 1:
        return "string"
    kind = types[0]
    if kind == "string":
        if schema.get("enum"):
            return "options"
        if schema.get("format") == "date-time":
            return "date_iso8601"
        return "string"
    return {"integer": "integer", "number": "decimal", "boolean": "boolean"}.get(kind, kind)


def is_sensitive(schema: dict) -> bool:
    """Secrets are marked ``secret`` (and ``writeOnly``) in the tap's JSON schema."""
    return bool(schema.get("secret") or schema.get("writeOnly"))


def label(name: str) -> str:
    """A readable label: ``dfinery.api_token`` -> ``Dfinery API Token``."""
    words = name.replace(".", " ").replace("_", " ").split()
    return " ".join(LABEL_WORDS.get(w.lower(), w[:1].upper() + w[1:]) for w in words)


def about_settings(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """Every setting of an ``--about`` settings schema: (dotted name, its schema)."""
    found: list[tuple[str, dict]] = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if is_nested_block(sub):
            found += about_settings(sub, prefix=f"{name}.")
        else:
            found.append((name, sub))
    return found


def hub_settings(schema: dict) -> list[dict]:
    """The Hub's ``settings``: name, kind, label, description, sensitive, options.

    No ``value`` defaults: Meltano passes defaults to the tap as config, and a default inside a
    provider block (``dfinery.base_url``) would make the block present, i.e. enable the vendor.
    The tap applies its own defaults.
    """
    out: list[dict] = []
    for name, sub in about_settings(schema):
        entry: dict[str, t.Any] = {"name": name, "kind": setting_kind(sub), "label": label(name)}
        if sub.get("description"):
            entry["description"] = sub["description"]
        if is_sensitive(sub):
            entry["sensitive"] = True
        if entry["kind"] == "options":
            entry["options"] = [{"label": str(v), "value": v} for v in sub["enum"]]
        out.append(entry)
    return out


def hub_groups(schema: dict) -> list[list[str]]:
    """``settings_group_validation``: the minimal sets of settings that make a valid config.

    The top-level required settings plus the required settings of one optional block with
    requirements of its own (each provider: a config needs at least one).
    """
    top = list(schema.get("required", []))
    groups = []
    for key, sub in schema.get("properties", {}).items():
        if key in top or not is_nested_block(sub) or not sub.get("required"):
            continue
        groups.append(top + [f"{key}.{name}" for name in sub["required"]])
    return groups or [top]


def plugin_definition(info: dict, existing: dict | None = None) -> dict:
    """The Hub definition: generated keys from ``--about``, the others kept from ``existing``."""
    name = info["name"]
    generated: dict[str, t.Any] = {
        "name": name,
        "namespace": name.replace("-", "_"),
        "executable": name,
        "pip_url": name,
        "description": (info.get("description") or "").strip(),
        "supported_python_versions": list(info.get("supported_python_versions") or []),
        "capabilities": sorted(info["capabilities"]),
        "settings_group_validation": hub_groups(info["settings"]),
        "settings": hub_settings(info["settings"]),
    }
    kept = {k: v for k, v in (existing or {}).items() if k not in GENERATED_KEYS}
    merged = {**DEFAULT_KEYS, **kept, **generated}
    ordered = {k: merged[k] for k in KEY_ORDER if k in merged}
    ordered.update({k: v for k, v in merged.items() if k not in ordered})
    return ordered


def render_plugin(definition: dict) -> str:
    """plugin.yml's text: a header comment and the definition."""
    body = yaml.safe_dump(definition, sort_keys=False, width=100, allow_unicode=True)
    return PLUGIN_HEADER + body


def write_plugin_yml(info: dict | None = None) -> None:
    """Regenerate plugin.yml from ``--about``, keeping its hand-written keys."""
    existing = yaml.safe_load(PLUGIN_PATH.read_text()) if PLUGIN_PATH.exists() else None
    PLUGIN_PATH.write_text(render_plugin(plugin_definition(info or about(), existing)))


def main() -> None:
    """Regenerate both files."""
    write_meltano_yml()
    write_plugin_yml()


if __name__ == "__main__":
    main()
