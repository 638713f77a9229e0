"""The catalog of a config, built from the vendors' stream declarations without singer-sdk.

``--discover`` through the SDK spends about half a second importing it. This module builds the
same catalog from the declarations (``vendors/*_streams.py``) with plain Python: the SDK's
stream order, entry keys, metadata and JSON layout, byte for byte, as
``tests/test_discovery.py`` checks against the SDK on many configs.
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse

from tap_event_exports.setting_schemas import block_matches_schema, matches_schema
from tap_event_exports.settings import GLOBAL_SETTINGS, Setting, validate_config
from tap_event_exports.vendors.batch_streams import BatchBlock
from tap_event_exports.vendors.dfinery_streams import DfineryBlock
from tap_event_exports.vendors.keen_streams import KeenBlock
from tap_event_exports.vendors.mytracker_streams import MyTrackerBlock

if t.TYPE_CHECKING:
    from tap_event_exports.engine.contract import Declaration, StreamShape

DECLARATIONS: tuple[Declaration, ...] = (
    DfineryBlock(),
    KeenBlock(),
    MyTrackerBlock(),
    BatchBlock(),
)
"""The providers in the order of ``tap.PROVIDERS`` (validation and errors follow it)."""

SCHEMA_KEYS = (
    "title",
    "description",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "maxLength",
    "minLength",
    "format",
    "type",
    "default",
    "required",
    "enum",
    "pattern",
    "contentMediaType",
    "contentEncoding",
    "deprecated",
    "additionalProperties",
    "anyOf",
    "patternProperties",
    "allOf",
    "oneOf",
    "x-sql-datatype",
    "x-sql-datatype-properties",
)
"""The keys singer-sdk's ``Schema`` keeps, in the order it writes them (``STANDARD_KEYS``)."""


def conforms(config: t.Mapping[str, t.Any]) -> bool:
    """Whether the SDK's JSON-schema check surely passes (else it would log a warning).

    Settings the tap does not declare (``stream_maps``, ``flattening_*``, ``batch_config``...)
    are left to the SDK too: some of them change what it does.
    """
    known = {s.name for s in GLOBAL_SETTINGS} | {d.key for d in DECLARATIONS}
    if not set(config) <= known:
        return False
    top = {s.name: config[s.name] for s in GLOBAL_SETTINGS if s.name in config}
    if not block_matches_schema(top, GLOBAL_SETTINGS):
        return False
    return all(
        matches_schema(Setting(d.key, "object", d.description, fields=d.settings), config[d.key])
        for d in DECLARATIONS
        if d.key in config
    )


def catalog_text(config: t.Mapping[str, t.Any]) -> str:
    """The catalog ``--discover`` prints for a config (without its final newline).

    Raises what the SDK path would refuse the config with (``ConfigError``, ``ValueError``).
    """
    _, blocks = validate_config(config, DECLARATIONS, strict=False)
    shapes: list[StreamShape] = []
    for declaration in DECLARATIONS:
        block = blocks.get(declaration.key)
        if block is not None:
            shapes.extend(declaration.streams(block))
            urllib.parse.urlsplit(block["base_url"])  # as the provider's HttpPolicy does
    entries = {shape.name: catalog_entry(shape) for shape in sorted(shapes, key=lambda s: s.name)}
    return json.dumps({"streams": list(entries.values())}, indent=2, separators=(",", ":"))


def catalog_entry(shape: StreamShape) -> dict[str, t.Any]:
    """One stream's entry, as ``ExportStream`` and the SDK's ``CatalogEntry`` write it."""
    schema = shape.schema()
    keys = list(shape.primary_keys)
    replication_key = shape.replication_key if shape.windowed else None
    forced = "INCREMENTAL" if shape.windowed and not replication_key else None
    entry: dict[str, t.Any] = {"tap_stream_id": shape.name}
    if replication_key is not None:
        entry["replication_key"] = replication_key
    entry["replication_method"] = forced or ("INCREMENTAL" if replication_key else "FULL_TABLE")
    entry["key_properties"] = keys
    entry["schema"] = sdk_schema(schema)
    entry["stream"] = shape.name
    entry["metadata"] = metadata(schema, keys, replication_key, forced)
    return entry


def sdk_schema(data: dict[str, t.Any]) -> dict[str, t.Any]:
    """A JSON schema as the SDK's ``Schema.from_dict(...).to_dict()`` rewrites it."""
    out: dict[str, t.Any] = {}
    if data.get("properties") is not None:
        out["properties"] = {k: sdk_schema(v) for k, v in data["properties"].items()}
    if data.get("items") is not None:
        out["items"] = sdk_schema(data["items"])
    for key in SCHEMA_KEYS:
        if data.get(key) is not None:
            out[key] = data[key]
    for key in ("$id", "$schema"):
        if data.get(key) is not None:
            out[key] = data[key]
    return out


def metadata(
    schema: dict[str, t.Any], keys: list[str], replication_key: str | None, forced: str | None
) -> list[dict[str, t.Any]]:
    """The SDK's standard metadata: one entry per property, then the stream's own."""
    automatic = {*keys, *([replication_key] if replication_key else [])}
    entries: list[dict[str, t.Any]] = []

    def nested(properties: dict[str, t.Any], breadcrumb: list[str]) -> None:
        for name, prop in properties.items():
            crumb = [*breadcrumb, "properties", name]
            entries.append({"breadcrumb": crumb, "metadata": {"inclusion": "available"}})
            if prop.get("properties"):
                nested(prop["properties"], crumb)

    for name, prop in schema.get("properties", {}).items():
        inclusion = "automatic" if name in automatic else "available"
        entries.append({"breadcrumb": ["properties", name], "metadata": {"inclusion": inclusion}})
        nested(prop.get("properties", {}), ["properties", name])
    root: dict[str, t.Any] = {
        "inclusion": "available",
        "selected": True,
        "selected-by-default": True,
        "table-key-properties": keys,
    }
    if replication_key:
        root["replication-key"] = replication_key
    if forced:
        root["forced-replication-method"] = forced
    if replication_key:
        root["valid-replication-keys"] = [replication_key]
    entries.append({"breadcrumb": [], "metadata": root})
    return entries
