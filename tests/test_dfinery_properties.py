"""Property-based tests of the Dfinery flow over HTTP: generated event and user-profile exports,
served by the fake Dfinery and read by the tap, give the records the documents describe.

Each example is a Dfinery service's data: rows whose cells are drawn from the value forms
Dfinery's pages give for each column type, served by ``POST /api/v1/export/event`` and
``/api/v1/export/userprofile``. The expected records come from a reference decoding written here
from those pages and the contract (section 4 Records, section 5 State), independent of the tap's
converters. The forms and where they come from:

- date-times: ``2025.1.6 10:35`` and ``2025-01-06 10:38:10.036`` (seeds/000, sample export),
  naive, read in the service's ``timezone``; the sample shows hours of two digits only, so an
  earlier hour is drawn both as ``9`` and as ``09``. Columns other than ``df_event_datetime``
  also take the API's Datetime type, ``2023-08-15T12:30:00.000Z`` and ``2023-08-15T12:30:00Z``
  (Data Type page, providers.md 1.6), which is UTC.
- booleans: ``TRUE``/``FALSE`` (seeds/000 sample) and ``true``/``false`` (seeds/001, user-profile
  sample).
- lists: JSON lists of strings, ``["1","2"]`` (seeds/001, written CSV-quoted as
  ``"[""1"",""2""]"``) and ``["foo", "bar"]`` (Data Type page, Array of String).
- numbers: Long ``1`` and Double ``1.0`` (Data Type page), negative, long and with many decimals
  (README: numbers keep every digit). No exponent form is documented, so none is drawn.
- no value: empty (seeds/000: "If no value exists, the default value is empty") and the literal
  ``null`` (seeds/000, seeds/001 samples).
- text: commas, quotes, CR/LF, unicode, leading and trailing spaces, a byte order mark at the
  start of the first column's values; the export is CSV with minimal quoting (seeds/000).

Columns: system and standard properties have the contract's types (``df_*_datetime`` date-times,
money amounts numbers, ``df_items_df_quantity`` an integer); custom properties are strings
unless ``column_types`` types them (README, Vendors, Dfinery). The primary key is
``df_event_detail_log_id``, ``<df_event_log_id>:<n>`` for the items of a purchase (seeds/000).

Windows are whole local days (inclusive ``from_date``/``to_date``); a window ``[start, end)``
holds the events of its days, so an event at exactly local midnight belongs to the window that
starts there; a later run restarts at bookmark minus ``lookback``, rounded down to a local day
(contract section 5). Runs happen today, or on a day just after New York's clock changes, with
the run's notion of now and the fake's today set to that day.

The Data Type page is https://docs.dfinery.ai/api-guide/en/undefined. ``HYPOTHESIS_PROFILE=explore``
(see conftest.py) searches with random seeds and ten times the examples.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import typing as t
from collections import Counter
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tap_event_exports.sandbox.dfinery import (
    EVENT_COLUMNS,
    EVENT_NAMES,
    PROFILE_COLUMNS,
    DfineryFake,
)
from tap_event_exports.tap import TapEventExports
from tests.harness import TapRun, run_tap
from tests.properties import RFC3339_UTC, TEXT_PIECES, scaled
from tests.properties import json_meaning as meaning

UTC = dt.timezone.utc
KEY = "df_event_detail_log_id"
PROFILE_KEY = "df_unified_id"
EVENTS = "dfinery_events"
PROFILES = "dfinery_user_profiles"
ZONES = ("Asia/Seoul", "UTC", "America/New_York")
"""The default service timezone, and two others (one with daylight saving time)."""


# --- the documented typing of the columns --------------------------------------------------------

BUILT_IN: dict[str, str] = {
    "df_event_datetime": "date-time",
    "df_server_datetime": "date-time",
    "df_correction_datetime": "date-time",
    "df_delivery_charge": "number",
    "df_discount": "number",
    "df_total_purchase_amount": "number",
    "df_total_refund_amount": "number",
    "df_items_df_discount": "number",
    "df_items_df_price": "number",
    "df_items_df_quantity": "integer",
}
"""Event columns the contract types; every other standard or system column is a string."""
CUSTOM: dict[str, str] = {
    "custom_012": "string",
    "custom_event_p_boolean": "boolean",
    "custom_event_p_datetime": "date-time",
    "custom_event_p_double": "number",
    "custom_event_p_double_list": "array",
    "custom_event_p_long": "integer",
    "custom_event_p_long_list": "array",
    "custom_event_p_string_list": "array",
    "df_items_custom_012391239128": "string",
    "df_items_custom_item_boolean": "boolean",
    "df_items_custom_item_datetime": "date-time",
    "df_items_custom_item_double": "number",
    "df_items_custom_item_double_list": "array",
    "df_items_custom_item_long": "integer",
    "df_items_custom_item_long_list": "array",
    "df_items_custom_item_string": "string",
    "df_items_custom_item_string_list": "array",
    "sum": "number",
}
"""The sample's custom properties and the type their name says (strings unless typed)."""
ALWAYS = frozenset(
    {
        "df_unified_id",
        "df_api_version",
        "df_event_name",  # the doc table's ``event_name``, spelled as in the sample header
        "df_event_datetime",
        "df_server_datetime",
        "df_correction_datetime",
        "df_event_detail_log_id",
        "df_event_log_id",
    }
)
"""Unified id and system event properties: exported whatever ``properties`` says (seeds/000)."""
ITEM_COLUMNS = [c for c in EVENT_COLUMNS if c.startswith("df_items_")]
PROFILE_BUILT_IN: dict[str, str] = {
    "df_kakao_ads_optin": "boolean",
    "df_push_ads_optin": "boolean",
    "df_push_night_ads_optin": "boolean",
    "df_push_optin": "boolean",
    "df_sms_ads_optin": "boolean",
}
"""User-profile columns the contract types; the other standard ones are strings."""
PROFILE_CUSTOM = {"custom_user_datetime": "date-time", "scenario_list_string": "array"}
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# --- the documented forms ------------------------------------------------------------------------

NULLS = st.sampled_from(["", "null"])
PIECES = st.one_of(
    st.sampled_from(TEXT_PIECES),
    st.text(st.characters(codec="utf-8"), max_size=4),
)
TEXT = st.lists(PIECES, max_size=6).map("".join)
FIRST_TEXT = st.one_of(TEXT, TEXT.map(lambda text: "\ufeff" + text))
"""Values of the header's first column; some begin as a byte order mark would."""
LONGS = st.integers(-(2**63), 2**63 - 1).map(str)
BOOLEANS = st.sampled_from(["TRUE", "FALSE", "true", "false"])
ITEM = st.lists(
    st.one_of(
        st.sampled_from([",", '"', "'", " ", "\n", "\r\n", "\\", "[", "]", "null", "1", "é", "🙂"]),
        st.text(st.characters(codec="utf-8"), max_size=3),
    ),
    max_size=4,
).map("".join)
ARRAYS = st.builds(
    lambda items, separator, ascii_only: json.dumps(
        items, separators=(separator, ":"), ensure_ascii=ascii_only
    ),
    st.lists(ITEM, max_size=4),
    st.sampled_from([",", ", "]),
    st.booleans(),
)


@st.composite
def decimals(draw: st.DrawFn) -> str:
    """Long and Double renderings: ``1``, ``1.0``, negative, 20 digits each side."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = str(draw(st.integers(0, 22).flatmap(lambda digits: st.integers(0, 10**digits))))
    if draw(st.booleans()):
        return sign + whole
    return f"{sign}{whole}.{draw(st.text('0123456789', min_size=1, max_size=20))}"


def unambiguous(wall: dt.datetime, tz: ZoneInfo) -> bool:
    """A wall time the zone's clock shows exactly once (no clock change gap or repeat)."""
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    return first.utcoffset() == second.utcoffset()


def walls(zone: str, day: dt.date | None = None) -> st.SearchStrategy[dt.datetime]:
    """Wall times to the millisecond, on ``day`` or in 2000-2030."""
    if day is None:
        low, high = dt.datetime(2000, 1, 1), dt.datetime(2030, 12, 31, 23, 59, 59)
    else:
        low = dt.datetime.combine(day, dt.time(0))
        high = dt.datetime.combine(day, dt.time(23, 59, 59, 999000))
    edges = st.sampled_from([low, low.replace(hour=9, minute=5), high])
    drawn = st.datetimes(low, high).map(
        lambda w: w.replace(microsecond=w.microsecond // 1000 * 1000)
    )
    tz = ZoneInfo(zone)
    return st.one_of(edges, drawn).filter(lambda w: unambiguous(w, tz))


def dotted(wall: dt.datetime, padded_hour: bool) -> str:
    """``2025.1.6 10:35``: minute precision, month and day without leading zero."""
    hour = f"{wall.hour:02d}" if padded_hour else str(wall.hour)
    return f"{wall.year}.{wall.month}.{wall.day} {hour}:{wall.minute:02d}"


def millis(wall: dt.datetime, separator: str = " ") -> str:
    """``2025-01-06 10:38:10.036``."""
    return f"{wall:%Y-%m-%d}{separator}{wall:%H:%M:%S}.{wall.microsecond // 1000:03d}"


@st.composite
def local_datetime(draw: st.DrawFn, wall: dt.datetime) -> str:
    """The sample export's two renderings of a naive date-time."""
    form = draw(st.sampled_from(["dotted", "millis"]))
    if form == "millis":
        return millis(wall)
    return dotted(wall, padded_hour=draw(st.booleans()) if wall.hour < 10 else False)


@st.composite
def datetimes(draw: st.DrawFn, zone: str) -> str:
    """The export's naive renderings (in ``zone``), and the API's Datetime type in UTC."""
    wall = draw(walls(zone))
    form = draw(st.sampled_from(["local", "local", "utc millis", "utc seconds"]))
    if form == "utc millis":
        return millis(wall, "T") + "Z"
    if form == "utc seconds":
        return f"{wall:%Y-%m-%dT%H:%M:%S}Z"
    return draw(local_datetime(wall))


def forms(kind: str, zone: str) -> st.SearchStrategy[str]:
    if kind == "integer":
        return LONGS
    if kind == "number":
        return decimals()
    if kind == "boolean":
        return BOOLEANS
    if kind == "date-time":
        return datetimes(zone)
    if kind == "array":
        return ARRAYS
    return TEXT


def cells(
    kind: str, zone: str, *, typed: bool = True, first: bool = False
) -> st.SearchStrategy[str]:
    """A cell of a column of ``kind``: no value, or one of the kind's forms. An untyped custom
    column holds its property's forms or any text; the header's ``first`` column's text may
    begin as a byte order mark would."""
    values = FIRST_TEXT if first and kind == "string" else forms(kind, zone)
    if not typed:
        values = st.one_of(values, FIRST_TEXT if first else TEXT)
    return st.one_of(NULLS, values, values)


# --- the reference decoding ----------------------------------------------------------------------

DOTTED = re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2}) (\d{1,2}):(\d{2})")
MILLIS = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})")
ZULU = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?Z")


def reference_datetime(text: str, zone: str) -> dt.datetime:
    """The instant a date-time cell names: naive forms in the service's timezone, ``Z`` in UTC."""
    if match := DOTTED.fullmatch(text):
        year, month, day, hour, minute = (int(part) for part in match.groups())
        wall = dt.datetime(year, month, day, hour, minute)
        return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    if match := MILLIS.fullmatch(text):
        year, month, day, hour, minute, second, fraction = (int(part) for part in match.groups())
        wall = dt.datetime(year, month, day, hour, minute, second, fraction * 1000)
        return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    if match := ZULU.fullmatch(text):
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        fraction = int(match.group(7) or 0)
        return dt.datetime(year, month, day, hour, minute, second, fraction * 1000, tzinfo=UTC)
    raise AssertionError(f"not a documented date-time form: {text!r}")


def reference_value(kind: str, text: str, zone: str) -> t.Any:
    """What a cell means (contract section 4): empty and ``null`` are null."""
    if text in ("", "null"):
        return None
    if kind == "integer":
        return int(text)
    if kind == "number":
        return Decimal(text)
    if kind == "boolean":
        return {"true": True, "false": False}[text.lower()]
    if kind == "date-time":
        return reference_datetime(text, zone)
    if kind == "array":
        items = json.loads(text)
        assert isinstance(items, list)
        return items
    return text


def reference_record(row: dict[str, str], kinds: dict[str, str], zone: str) -> dict[str, t.Any]:
    return {column: reference_value(kinds[column], row[column], zone) for column in kinds}


def meanings(record: dict[str, t.Any], kinds: dict[str, str]) -> dict[str, t.Any]:
    """A record's values by their meaning; a column the export does not have stays unknown."""
    return {column: meaning(kinds.get(column, "?"), value) for column, value in record.items()}


def exact(record: dict[str, t.Any]) -> dict[str, tuple[str, t.Any]]:
    """Values with their type, so that ``1``, ``Decimal(1)`` and ``True`` differ."""
    return {column: (type(value).__name__, value) for column, value in record.items()}


def exact_by_key(records: list[dict[str, t.Any]], key: str) -> dict[t.Any, dict[str, t.Any]]:
    return {k: exact(record) for k, record in by_key(records, key).items()}


# --- the service ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> t.Iterator[DfineryFake]:
    """One fake Dfinery for every example; each example gives it its own data."""
    with DfineryFake(hourly_limit=10**6) as server:
        yield server


def serve(
    fake: DfineryFake,
    zone: str,
    events: list[dict[str, str]] | None = None,
    profiles: list[dict[str, str]] | None = None,
    audiences: dict[str, list[str]] | None = None,
) -> None:
    fake.tz = ZoneInfo(zone)
    fake.events = events or []
    fake.profiles = profiles or []
    fake.audiences = audiences or {}
    fake.bodies.clear()


def local_today(zone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(zone)).date()


def midnight(day: dt.date, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def config(
    fake: DfineryFake, zone: str, start: dt.datetime, end: dt.datetime, **block: t.Any
) -> dict[str, t.Any]:
    """The tap's config; ``zone_set=False`` leaves Asia/Seoul, the default timezone, unsaid."""
    timezone = {"timezone": zone} if zone != "Asia/Seoul" or block.pop("zone_set", True) else {}
    return {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "max_retries": 2,
        "dfinery": {
            "service_id": fake.service_id,
            "api_token": fake.token,
            "base_url": fake.base_url,
            **timezone,
            **block,
        },
    }


def uid(number: int) -> str:
    """A seven-character unified id, as in the samples (``7jPY23Q``)."""
    letters = []
    for _ in range(7):
        number, digit = divmod(number, len(ALNUM))
        letters.append(ALNUM[digit])
    return "".join(letters)


def log_id(moment: dt.datetime, unique: int, received_later: int | None) -> str:
    """``<ms>:<uuid>`` or ``<ms>:<ms>:<uuid>``, the two forms of the sample's log ids."""
    sent = int(moment.timestamp() * 1000)
    tail = f"{unique:08x}-bb2a-4abf-a4a9-80804334cf15"
    return f"{sent}:{tail}" if received_later is None else f"{sent + received_later}:{sent}:{tail}"


# --- event exports -------------------------------------------------------------------------------

CUSTOM_TYPED = st.lists(st.sampled_from(sorted(CUSTOM)), unique=True).map(
    lambda names: {name: CUSTOM[name] for name in names}
)
"""The custom columns ``column_types`` types; the others stay strings."""


def event_kinds(typed: dict[str, str]) -> dict[str, str]:
    return {c: BUILT_IN.get(c) or typed.get(c) or "string" for c in EVENT_COLUMNS}


@st.composite
def event(
    draw: st.DrawFn, zone: str, days: list[dt.date], typed: dict[str, str], unique: int
) -> list[dict[str, str]]:
    """The rows of one event: one row, or one per item of a purchase."""
    wall = draw(walls(zone, draw(st.sampled_from(days))))
    moment = wall.replace(tzinfo=ZoneInfo(zone))
    logged = log_id(moment, unique, draw(st.one_of(st.none(), st.integers(0, 999))))
    name = draw(st.sampled_from(EVENT_NAMES))

    def cell(column: str) -> str:
        if column in BUILT_IN:
            return draw(cells(BUILT_IN[column], zone))
        if column in CUSTOM:
            untyped = column not in typed
            first = column == EVENT_COLUMNS[0]
            return draw(cells(CUSTOM[column], zone, typed=not untyped, first=first))
        return draw(st.one_of(NULLS, TEXT, TEXT))

    base = {c: cell(c) for c in EVENT_COLUMNS if c not in ITEM_COLUMNS}
    base |= {
        "df_event_datetime": draw(local_datetime(wall)),
        "df_event_log_id": logged,
        "df_event_detail_log_id": logged,
        "df_event_name": name,
        "df_unified_id": uid(draw(st.integers(0, 40))),
    }
    if name != "df_purchase":
        return [base | {c: cell(c) for c in ITEM_COLUMNS}]
    items = draw(st.integers(1, 3))
    return [
        base | {c: cell(c) for c in ITEM_COLUMNS} | {KEY: f"{logged}:{n}"}
        for n in range(1, items + 1)
    ]


@st.composite
def event_exports(
    draw: st.DrawFn, days: int
) -> tuple[str, dict[str, str], list[dict[str, str]], dict[str, t.Any]]:
    """A timezone, the ``column_types`` of custom columns, the rows, and a property filter."""
    zone = draw(st.sampled_from(ZONES))
    today = local_today(zone)
    span = [today - dt.timedelta(days=n) for n in range(days, 0, -1)]
    typed = draw(CUSTOM_TYPED)
    count = draw(st.integers(0, 6))
    rows = [row for n in range(count) for row in draw(event(zone, span, typed, n))]
    optional = sorted(set(EVENT_COLUMNS) - ALWAYS)
    condition = draw(st.sampled_from([None, None, "all", "include", "exclude"]))
    block: dict[str, t.Any] = {}
    if condition is not None:
        block["properties_condition_type"] = condition
        block["properties"] = draw(st.lists(st.sampled_from(optional), min_size=1, unique=True))
    return zone, typed, rows, block


def exported_columns(block: dict[str, t.Any]) -> list[str]:
    """The header of an export (seeds/000): every column, or those ``properties`` selects, with
    the unified id and the system event properties always."""
    condition, chosen = block.get("properties_condition_type"), block.get("properties") or []
    return [
        c
        for c in EVENT_COLUMNS
        if c in ALWAYS
        or condition in (None, "all")
        or (condition == "include" and c in chosen)
        or (condition == "exclude" and c not in chosen)
    ]


JSON_TYPES = {
    "string": "string",
    "date-time": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "array": "array",
}


def check_schema(run: TapRun, stream: str, kinds: dict[str, str], key: str) -> None:
    """The stream's last SCHEMA declares every exported column with its type, and the key."""
    schemas = run.schemas(stream)
    assert {tuple(s["key_properties"]) for s in schemas} == {(key,)}
    declared = schemas[-1]["schema"]["properties"]
    for column, kind in kinds.items():
        assert declared[column]["type"] == [JSON_TYPES[kind], "null"], (column, declared[column])
        assert (declared[column].get("format") == "date-time") == (kind == "date-time"), column


def by_key(records: list[dict[str, t.Any]], key: str) -> dict[t.Any, dict[str, t.Any]]:
    counts = Counter(r[key] for r in records)
    assert max(counts.values(), default=1) == 1, f"a key twice: {counts.most_common(3)}"
    return {r[key]: r for r in records}


@settings(max_examples=scaled(100), deadline=None)
@given(export=event_exports(days=3))
def test_event_exports_give_the_documented_records(
    fake: DfineryFake, export: tuple[str, dict[str, str], list[dict[str, str]], dict[str, t.Any]]
) -> None:
    """Every cell form of every column type reaches the record with its documented meaning and
    JSON type, under its header name, keyed by ``df_event_detail_log_id``."""
    zone, typed, rows, block = export
    serve(fake, zone, events=rows)
    today = local_today(zone)
    start, end = midnight(today - dt.timedelta(days=3), zone), midnight(today, zone)
    run = run_tap(config(fake, zone, start, end, column_types=typed or None, **block))

    columns = exported_columns(block)
    kinds = {c: k for c, k in event_kinds(typed).items() if c in columns}
    expected = [reference_record(row, kinds, zone) for row in rows]
    records = run.records(EVENTS)
    note(f"records: {records}")
    assert all(list(r) == columns for r in records), "every exported column, by its header name"
    assert exact_by_key([meanings(r, kinds) for r in records], KEY) == exact_by_key(expected, KEY)
    check_schema(run, EVENTS, kinds, KEY)
    assert run.bookmark(EVENTS) == end.isoformat()


# --- user profiles -------------------------------------------------------------------------------


@st.composite
def profile_exports(
    draw: st.DrawFn,
) -> tuple[str, dict[str, str], list[dict[str, str]], dict[str, t.Any], list[str] | None]:
    """A timezone, ``column_types``, the profiles, the ``user_profiles`` block, an audience."""
    zone = draw(st.sampled_from(ZONES))
    typed = {c: k for c, k in PROFILE_CUSTOM.items() if draw(st.booleans())}
    ids = draw(st.lists(st.integers(0, 10**9), max_size=6, unique=True))
    rows = []
    for number in ids:
        row: dict[str, str] = {}
        for column in PROFILE_COLUMNS:
            if column in PROFILE_BUILT_IN:
                row[column] = draw(cells(PROFILE_BUILT_IN[column], zone))
            elif column in PROFILE_CUSTOM:
                first = column == PROFILE_COLUMNS[0]
                kind = PROFILE_CUSTOM[column]
                row[column] = draw(cells(kind, zone, typed=column in typed, first=first))
            else:
                row[column] = draw(st.one_of(NULLS, TEXT))
        row[PROFILE_KEY] = uid(number)
        row["df_external_id"] = draw(st.one_of(NULLS, TEXT))
        rows.append(row)
    block: dict[str, t.Any] = {}
    condition = draw(st.sampled_from(["all", "include", "exclude"]))
    if condition != "all":
        block["properties_condition_type"] = condition
        others = [c for c in PROFILE_COLUMNS if c != PROFILE_KEY]
        block["properties"] = draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
    if draw(st.booleans()):
        block["identities"] = ["df_external_id"]
        block["identities_condition_type"] = draw(st.sampled_from(["all", "include"]))
    audience = None
    if draw(st.booleans()) and rows:
        audience = draw(st.lists(st.sampled_from([r[PROFILE_KEY] for r in rows]), unique=True))
        block["audience"] = "nwh3nu"
    return zone, typed, rows, block, audience


def profile_columns(block: dict[str, t.Any]) -> list[str]:
    """The header of a user-profile export (seeds/001; providers.md 1.5): ``df_unified_id``
    always, the properties ``properties`` selects, and ``df_external_id`` when identities are
    asked for (the only identity Dfinery exports)."""
    condition = block.get("properties_condition_type", "all")
    chosen = block.get("properties") or []
    columns = {
        c
        for c in PROFILE_COLUMNS
        if c == PROFILE_KEY
        or condition == "all"
        or (condition == "include" and c in chosen)
        or (condition == "exclude" and c not in chosen)
    }
    if block.get("identities"):
        columns.add("df_external_id")
    return sorted(columns)


@settings(max_examples=scaled(60), deadline=None)
@given(export=profile_exports())
def test_user_profiles_give_the_documented_records(
    fake: DfineryFake,
    export: tuple[str, dict[str, str], list[dict[str, str]], dict[str, t.Any], list[str] | None],
) -> None:
    """The user-profile snapshot: every exported column typed as documented, keyed by
    ``df_unified_id``, only the audience's members when one is asked for."""
    zone, typed, rows, block, audience = export
    serve(fake, zone, profiles=rows, audiences={"nwh3nu": audience or []})
    today = local_today(zone)
    start, end = midnight(today - dt.timedelta(days=1), zone), midnight(today, zone)
    run = run_tap(config(fake, zone, start, end, column_types=typed or None, user_profiles=block))

    columns = profile_columns(block)
    kinds = {c: PROFILE_BUILT_IN.get(c) or typed.get(c) or "string" for c in columns}
    members = rows if audience is None else [r for r in rows if r[PROFILE_KEY] in audience]
    expected = [reference_record(row, kinds, zone) for row in members]
    records = run.records(PROFILES)
    note(f"records: {records}")
    assert all(sorted(r) == columns for r in records), "every exported column, by its header name"
    got = [meanings(r, kinds) for r in records]
    assert exact_by_key(got, PROFILE_KEY) == exact_by_key(expected, PROFILE_KEY)
    check_schema(run, PROFILES, kinds, PROFILE_KEY)


# --- windows and lookback ------------------------------------------------------------------------

LOOKBACKS = {
    "PT0S": dt.timedelta(0),
    "PT1H": dt.timedelta(hours=1),
    "PT23H": dt.timedelta(hours=23),
    "P1D": dt.timedelta(days=1),
    "PT25H": dt.timedelta(hours=25),
    "P2D": dt.timedelta(days=2),
}


@st.composite
def edge_events(draw: st.DrawFn, zone: str, days: list[dt.date]) -> list[dict[str, str]]:
    """Events at the first and last moments of local days, in both renderings."""
    rows: list[dict[str, str]] = []
    for day in days:
        first = dt.datetime.combine(day, dt.time(0))
        last = dt.datetime.combine(day, dt.time(23, 59, 59, 999000))
        moments = [
            dotted(first, padded_hour=False),
            dotted(first, padded_hour=True),
            millis(first),
            dotted(last, padded_hour=False),
            millis(last),
        ]
        for text in draw(st.lists(st.sampled_from(moments), max_size=3)):
            number = len(rows)
            moment = reference_datetime(text, zone)
            logged = log_id(moment, number, None)
            row = dict.fromkeys(EVENT_COLUMNS, "")
            row |= {
                "df_event_datetime": text,
                "df_event_log_id": logged,
                KEY: logged,
                "df_event_name": "df_start_session",
                "df_unified_id": uid(number),
            }
            rows.append(row)
    return rows


def local_day(row: dict[str, str], zone: str) -> dt.date:
    return reference_datetime(row["df_event_datetime"], zone).astimezone(ZoneInfo(zone)).date()


def requested_days(bodies: list[dict[str, t.Any]]) -> list[tuple[dt.date, dt.date]]:
    spans = [
        (dt.date.fromisoformat(b["from_date"]), dt.date.fromisoformat(b["to_date"])) for b in bodies
    ]
    return sorted(spans)


def check_windows(
    spans: list[tuple[dt.date, dt.date]], first: dt.date, end: dt.date, step: int
) -> None:
    """Inclusive day ranges one after the other from ``first`` to the day before ``end``, each
    at most ``step`` days and ending on the grid of ``step`` days from 1970-01-01 (or at
    ``end``)."""
    expected_start = first
    for start, last in spans:
        assert start == expected_start, spans
        assert start <= last < start + dt.timedelta(days=step), spans
        after = last + dt.timedelta(days=1)
        assert after == end or (after - dt.date(1970, 1, 1)).days % step == 0, spans
        expected_start = after
    assert expected_start == end or (not spans and first >= end), spans


def check_states(run: TapRun, *, from_bookmark: bool) -> None:
    """Each record's event time is before the bookmark of the next STATE (everything before a
    bookmark has been extracted) and, in a run that starts from nothing, not before the bookmark
    of the STATE before it: an event at exactly a window's start belongs to that window, not to
    the one before."""
    previous: dt.datetime | None = None
    pending: list[dt.datetime] = []
    for message in run.messages:
        if message["type"] == "RECORD":
            moment = reference_datetime_of(message["record"]["df_event_datetime"])
            if previous is not None and not from_bookmark:
                assert moment >= previous, (moment, previous)
            pending.append(moment)
        elif message["type"] == "STATE":
            mark = message["value"]["bookmarks"].get(EVENTS, {}).get("replication_key_value")
            if mark:
                previous = dt.datetime.fromisoformat(mark)
                assert all(moment < previous for moment in pending), (pending, previous)
                pending = []
    if pending:
        # a window re-extracted by lookback leaves the bookmark where it was: the STATE that
        # covers its records may be the one the run started with
        assert previous is not None, "records and no bookmark"
        assert all(moment < previous for moment in pending), (pending, previous)


def reference_datetime_of(value: str) -> dt.datetime:
    assert RFC3339_UTC.fullmatch(value), value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


DAYS_OF_RUN = [None, dt.date(2025, 3, 11), dt.date(2025, 11, 4)]
"""The day the runs happen: today, or just after New York's clock changes (days of 23 and 25
hours in the window range)."""


@contextlib.contextmanager
def run_day(fake: DfineryFake, day: dt.date | None, zone: str) -> t.Iterator[None]:
    """The fake's today is ``day``, and the tap's notion of now is noon that day."""
    if day is None:
        yield
        return
    noon = midnight(day, zone) + dt.timedelta(hours=12)
    built = vars(TapEventExports)["runtime"]

    def at_noon(tap: TapEventExports) -> t.Any:
        runtime = built.fget(tap)
        runtime.now = noon
        return runtime

    fake._today = day
    try:
        with mock.patch.object(TapEventExports, "runtime", property(at_noon)):
            yield
    finally:
        fake._today = None


@settings(max_examples=scaled(80), deadline=None)
@given(data=st.data())
def test_window_edges_and_the_lookback_of_a_second_run(
    fake: DfineryFake, data: st.DataObject
) -> None:
    """Events at exactly local midnight and just before it land in one window each; a second
    run from the first run's STATE re-extracts exactly the days ``lookback`` reaches back to."""
    zone = data.draw(st.sampled_from(ZONES), "zone")
    step = data.draw(st.integers(1, 3), "window days")
    lookback = data.draw(st.sampled_from(sorted(LOOKBACKS)), "lookback")
    pinned = data.draw(st.sampled_from(DAYS_OF_RUN), "day of the runs")
    today = pinned or local_today(zone)
    back = -(-LOOKBACKS[lookback] // dt.timedelta(days=1))  # whole days the lookback reaches
    first_end_ago = data.draw(st.integers(0, 2), "first run ends days ago")
    span = data.draw(st.integers(first_end_ago + max(back, 1), first_end_ago + 5), "days")
    days = [today - dt.timedelta(days=n) for n in range(span, 0, -1)]
    rows = data.draw(edge_events(zone, days), "events")
    first_day, first_end = days[0], today - dt.timedelta(days=first_end_ago)
    block: dict[str, t.Any] = {"window": f"P{step}D", "lookback": lookback}
    if zone == "Asia/Seoul":
        block["zone_set"] = data.draw(st.booleans(), "timezone in the config")

    with run_day(fake, pinned, zone):
        serve(fake, zone, events=rows)
        start, end = midnight(first_day, zone), midnight(first_end, zone)
        first = run_tap(config(fake, zone, start, end, **block))
        spans = requested_days(fake.bodies)
        fake.bodies.clear()
        final = midnight(today, zone)
        second = run_tap(config(fake, zone, start, final, **block), state=first.last_state)
        second_spans = requested_days(fake.bodies)

    check_windows(spans, first_day, first_end, step)
    covered = {row[KEY] for row in rows if first_day <= local_day(row, zone) < first_end}
    got = [r[KEY] for r in first.records(EVENTS)]
    assert Counter(got) == Counter(covered), "each event once"
    for row in rows:
        inside = [s for s in spans if s[0] <= local_day(row, zone) <= s[1]]
        assert len(inside) == (row[KEY] in covered), (row["df_event_datetime"], spans)
    check_states(first, from_bookmark=False)
    assert first.bookmark(EVENTS) == end.isoformat()

    restart = (end - LOOKBACKS[lookback]).astimezone(ZoneInfo(zone)).date()
    check_windows(second_spans, restart, today, step)
    again = {row[KEY] for row in rows if restart <= local_day(row, zone) < today}
    assert Counter(r[KEY] for r in second.records(EVENTS)) == Counter(again)
    check_states(second, from_bookmark=True)
    if second_spans:
        assert second.bookmark(EVENTS) == final.isoformat()
