"""How settings look outside the tap: singer-sdk properties, their JSON schema, meltano.yml.

:func:`matches_schema` answers, without jsonschema, whether a value surely passes the schema
:func:`to_property` gives, so discovery can skip the SDK where the SDK would not warn.
"""

from __future__ import annotations

import typing as t
from decimal import Decimal

from tap_event_exports.engine.converters import COLUMN_TYPES

if t.TYPE_CHECKING:
    from singer_sdk import typing as th

    from tap_event_exports.settings import Setting


def _jsonschema_type(setting: Setting) -> th.JSONTypeHelper:
    from singer_sdk import typing as th  # noqa: PLC0415 - discovery validates without the SDK

    kind = setting.kind
    if kind in {"string", "secret", "duration", "timezone"}:
        return th.StringType()
    if kind == "enum":
        return th.StringType(allowed_values=list(setting.choices))
    if kind == "integer":
        return th.IntegerType()
    if kind == "number":
        return th.NumberType()
    if kind == "boolean":
        return th.BooleanType()
    if kind == "date-time":
        return th.DateTimeType()
    if kind == "string-list":
        return th.ArrayType(th.StringType())
    if kind == "integer-list":
        return th.ArrayType(th.IntegerType())
    if kind == "column-types":
        return th.ObjectType(additional_properties=th.StringType(allowed_values=list(COLUMN_TYPES)))
    if kind == "object":
        return th.ObjectType(*(to_property(f) for f in setting.fields), additional_properties=False)
    if kind == "object-list":
        return th.ArrayType(th.ObjectType(*(to_property(f) for f in setting.fields)))
    return th.CustomType({})  # any JSON value


def to_property(setting: Setting) -> th.Property:
    """The singer-sdk property of a setting (for ``--about`` and the config schema)."""
    from singer_sdk import typing as th  # noqa: PLC0415 - discovery validates without the SDK

    return th.Property(
        setting.name,
        _jsonschema_type(setting),
        required=setting.required,
        secret=setting.secret,
        default=setting.default,
        description=setting.description,
    )


_STRING_KINDS = frozenset({"string", "secret", "duration", "timezone", "date-time"})


def matches_schema(setting: Setting, value: t.Any) -> bool:
    """Whether a value surely passes the JSON schema :func:`to_property` gives the setting.

    Decided without jsonschema, for discovery without the SDK, and stricter where that is
    simpler: ``False`` only means the SDK's own check must decide (and may warn).
    """
    kind = setting.kind
    if value is None:  # nullable unless required; an enum's ``enum`` refuses null; and the
        # SDK's validator fills an object's defaults in before it checks types (null: a crash)
        defaults = kind == "object" and any(f.default is not None for f in setting.fields)
        return not setting.required and kind != "enum" and not defaults
    if kind in _STRING_KINDS:
        return isinstance(value, str)
    if kind == "enum":
        return isinstance(value, str) and value in setting.choices
    if kind in {"integer", "number"}:
        types = (int,) if kind == "integer" else (int, float, Decimal)
        return isinstance(value, types) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in {"string-list", "integer-list"}:
        item = str if kind == "string-list" else int
        return isinstance(value, list) and all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        )
    if kind == "column-types":
        return isinstance(value, dict) and all(
            isinstance(v, str) and v in COLUMN_TYPES for v in value.values()
        )
    if kind == "object":
        return block_matches_schema(value, setting.fields)
    if kind == "object-list":
        return isinstance(value, list) and all(
            block_matches_schema(v, setting.fields) for v in value
        )
    return True  # any JSON value


def block_matches_schema(block: t.Any, settings: t.Sequence[Setting]) -> bool:
    """Whether an object of settings surely passes its schema (no unknown or missing names)."""
    if not isinstance(block, dict) or not set(block) <= {s.name for s in settings}:
        return False
    return all(
        matches_schema(s, block[s.name]) if s.name in block else not s.required for s in settings
    )


def meltano_settings(settings: t.Sequence[Setting], prefix: str = "") -> list[dict]:
    """Settings as meltano.yml declares them: nested blocks flattened to dotted names."""
    kinds = {
        "secret": "string",
        "integer": "integer",
        "number": "decimal",
        "boolean": "boolean",
        "date-time": "date_iso8601",
        "enum": "options",
        "string-list": "array",
        "integer-list": "array",
        "column-types": "object",
        "object-list": "array",
        "any": "object",
    }
    out: list[dict] = []
    for setting in settings:
        name = f"{prefix}{setting.name}"
        if setting.kind == "object":
            out.extend(meltano_settings(setting.fields, prefix=f"{name}."))
            continue
        entry: dict[str, t.Any] = {"name": name, "kind": kinds.get(setting.kind, "string")}
        if setting.secret:
            entry["sensitive"] = True
        if setting.kind == "enum":
            entry["options"] = [{"label": c, "value": c} for c in setting.choices]
        entry["description"] = setting.description
        out.append(entry)
    return out
