"""Property-based tests of Keen IO through its whole HTTP flow, in both API modes.

Each example is a Keen event collection drawn from the forms the documents give, served by the
fake Keen over HTTP and extracted by the tap with ``api: extract`` (2.0 extraction job, a CSV
file at ``results_url``, columns dotted or named by 2.0's colon paths) and with ``api: query``
(3.0 synchronous extraction, ``{"result": [...]}``). The expected records come from a reference
decoding written here from the documents, independent of the tap's converters:

- contract §3: "records are flat, and a nested Keen property keeps its dotted path as the
  column name (``keen.id``, ``keen.timestamp``, ``user.email``), in both ``api`` modes, so the
  two modes give the same records"; the key is ``keen.id`` where present, else ``_record_id``.
- README (Keen IO): "``keen.timestamp`` and ``keen.created_at`` are date-times; other
  properties are strings unless ``column_types`` types them; lists arrive as JSON text
  (``["a","b"]``), or arrays with ``column_types``".
- contract §4 / README "Records": "empty string and the literal ``null`` are null;
  ``TRUE``/``false`` are booleans; integers and decimals are numbers without float rounding
  surprises; JSON-ish lists such as ``["1","2"]`` are arrays; date-times are RFC 3339 in UTC";
  "numbers keep every digit".
- providers.md 2.5: "All times UTC" (a time without an offset is UTC); event times as the
  documents show them: ``2012-07-30T21:21:46.566000+00:00`` (3.0 event), ``…Z``,
  ``2012-06-06T19:10:39.205000`` (2.0 event), with or without a fraction.
- contract §5: windows are half-open ``[start, end)`` in UTC, so an event exactly on a
  boundary belongs to exactly one window.

A text value is the JSON text of the event's value: Keen's JSON body and the extraction file
carry the same number (``0.1``, ``1e-07``, ``1e+16``), and a list is its compact JSON.

``HYPOTHESIS_PROFILE=explore`` (see conftest.py) searches with random seeds and ten times the
examples; the default profile is derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import re
import typing as t
from decimal import Decimal

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from tap_event_exports.sandbox.keen import KeenFake
from tests.conftest import KEEN_MINUTE_SECONDS
from tests.harness import TapRun, run_tap
from tests.properties import TEXT_PIECES, scaled
from tests.properties import json_meaning as meaning

UTC = dt.timezone.utc
START = dt.datetime(2024, 3, 1, tzinfo=UTC)
SPAN = dt.timedelta(days=2)
KEEN_COLUMNS = {"keen.id": "string", "keen.timestamp": "date-time", "keen.created_at": "date-time"}
"""The stream's own columns (README, Keen IO)."""
TYPED = {
    "amount": "number",
    "count": "integer",
    "flag": "boolean",
    "tags": "array",
    "seen_at": "date-time",
}
"""Properties of one kind each, which ``column_types`` may declare."""
STREAMS = {"Purchases v2": "keen_purchases_v2", "pageviews": "keen_pageviews"}
"""Collections and their stream names (contract §3: ``Purchases v2`` → ``keen_purchases_v2``)."""


# --- the forms the documents give ---------------------------------------------------------------

NAME = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=6).filter(
    lambda name: name[0].isalpha()
)
"""A property name (Keen addresses nested ones by dots, so a name holds none)."""
TOP_NAME = NAME.filter(lambda name: name != "keen" and name not in TYPED)

PIECES = st.one_of(
    st.sampled_from(TEXT_PIECES),
    st.text(st.characters(codec="utf-8"), max_size=3),
)
STRINGS = st.lists(PIECES, max_size=6).map("".join)
"""Text with commas, quotes, line breaks of every kind and unicode (``""`` and ``null`` too)."""
INT64 = st.integers(-(2**63), 2**63 - 1)
INTEGERS = st.one_of(st.integers(-1000, 1000), INT64, st.integers(-(10**30), 10**30))
FLOATS = st.one_of(
    st.sampled_from([3.5, 99.99, 0.1, 10.0, -0.0, 1e16, 1e-07, 1.5e300]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(STRINGS, STRINGS, st.booleans(), st.none(), INTEGERS, FLOATS)
LISTS = st.lists(
    st.one_of(
        SCALARS,
        st.lists(SCALARS, max_size=2),
        st.dictionaries(NAME, SCALARS, min_size=1, max_size=2),
    ),
    max_size=4,
)
"""Lists (of text, numbers, booleans, nulls, lists, objects): values, never flattened."""
VALUES = st.recursive(
    st.one_of(SCALARS, SCALARS, LISTS),
    lambda inner: st.dictionaries(NAME, inner, min_size=1, max_size=3),
    max_leaves=6,
)
"""A property's value: a leaf, or a nested object (flattened to dotted columns)."""

FRACTIONS = (0, 3, 6)
"""Digits of a second's fraction: none, milliseconds, microseconds."""
KEEN_OFFSETS = ("Z", "+00:00", "")
"""UTC as ``Z``, as ``+00:00`` (3.0 event example), or unsaid (2.0 event example)."""
OFFSETS = (*KEEN_OFFSETS, "+09:00", "-05:00", "+05:30")
"""Offsets of a date-time property that ``column_types`` declares."""


def iso(moment: dt.datetime, digits: int, offset: str) -> str:
    """``moment`` (UTC) written as ISO-8601 with ``digits`` of fraction and ``offset``."""
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        zone = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        moment = moment.astimezone(zone)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}"
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + offset


@st.composite
def times(
    draw: st.DrawFn, moment: dt.datetime, offsets: tuple[str, ...] = KEEN_OFFSETS
) -> tuple[str, dt.datetime]:
    """An ISO-8601 text for ``moment`` (cut to the drawn precision), and the instant it says."""
    digits = draw(st.sampled_from(FRACTIONS))
    unit = 10 ** (6 - digits)
    moment = moment.replace(microsecond=moment.microsecond // unit * unit)
    return iso(moment, digits, draw(st.sampled_from(offsets))), moment


@st.composite
def exact_times(
    draw: st.DrawFn, moment: dt.datetime, offsets: tuple[str, ...] = KEEN_OFFSETS
) -> str:
    """An ISO-8601 text that says exactly ``moment``."""
    digits = draw(
        st.sampled_from([d for d in FRACTIONS if moment.microsecond % 10 ** (6 - d) == 0])
    )
    return iso(moment, digits, draw(st.sampled_from(offsets)))


def moments(start: dt.datetime, span: dt.timedelta) -> st.SearchStrategy[dt.datetime]:
    """Instants in ``[start, start + span)``, to the microsecond, millisecond or second."""
    micros = int(span / dt.timedelta(microseconds=1))
    unit = st.sampled_from([10 ** (6 - digits) for digits in FRACTIONS])
    return st.builds(
        lambda n, unit: start + dt.timedelta(microseconds=n // unit * unit),
        st.integers(0, micros - 1),
        unit,
    )


TYPED_VALUES: dict[str, st.SearchStrategy[t.Any]] = {
    "number": st.one_of(INTEGERS, FLOATS),
    "integer": INT64,
    "boolean": st.booleans(),
    "array": st.lists(STRINGS.filter(lambda s: s not in ("", "null")), max_size=4),
}


@st.composite
def typed_property(draw: st.DrawFn, kind: str) -> t.Any:
    if kind == "date-time":
        text, _ = draw(
            times(draw(moments(dt.datetime(2000, 1, 1, tzinfo=UTC), SPAN * 5000)), OFFSETS)
        )
        return text
    return draw(TYPED_VALUES[kind])


ABSENT = object()


@st.composite
def events(draw: st.DrawFn, moment: dt.datetime, *, with_id: bool = True) -> dict[str, t.Any]:
    """One event as Keen stores it: ``keen`` properties, user properties, nested objects."""
    stamp = draw(exact_times(moment))
    keen: dict[str, t.Any] = {"timestamp": stamp}
    if with_id:
        keen["id"] = ""  # given once the collection is drawn (ids are unique)
    if draw(st.integers(0, 4)):  # now and then an event without one
        created, _ = draw(times(draw(moments(moment, dt.timedelta(hours=30)))))
        keen["created_at"] = created
    event: dict[str, t.Any] = {"keen": keen}
    event.update(draw(st.dictionaries(TOP_NAME, VALUES, max_size=5)))
    for name, kind in TYPED.items():
        value = draw(
            st.one_of(st.just(ABSENT), st.none(), typed_property(kind), typed_property(kind))
        )
        if value is not ABSENT:
            event[name] = value
    return event


@dataclasses.dataclass
class Case:
    """A collection, its extraction range, and how the tap is set up to extract it."""

    collection: str
    events: list[dict[str, t.Any]]
    start: dt.datetime = START
    end: dt.datetime = START + SPAN
    window: str = "P1D"
    declared: dict[str, str] = dataclasses.field(default_factory=dict)
    """``column_types`` of the config."""
    colon_names: bool = False
    """The extraction file names its columns by 2.0's colon paths."""

    @property
    def stream(self) -> str:
        return STREAMS[self.collection]


@st.composite
def cases(draw: st.DrawFn, *, with_id: bool = True, max_events: int = 8) -> Case:
    stamps = draw(st.lists(moments(START, SPAN), max_size=max_events))
    drawn = [draw(events(moment, with_id=with_id)) for moment in stamps]
    if with_id:
        ids = draw(
            st.lists(
                st.integers(0, 2**96 - 1), min_size=len(drawn), max_size=len(drawn), unique=True
            )
        )
        for event, number in zip(drawn, ids, strict=True):
            event["keen"]["id"] = f"{number:024x}"
    else:  # identical events now and then (the synthetic key tells them apart)
        for _ in range(draw(st.integers(0, 2)) if drawn else 0):
            copy = json.loads(json.dumps(drawn[draw(st.integers(0, len(drawn) - 1))]))
            drawn.insert(draw(st.integers(0, len(drawn))), copy)
    declared = {name: kind for name, kind in TYPED.items() if draw(st.booleans())}
    return Case(
        collection=draw(st.sampled_from(list(STREAMS))),
        events=drawn,
        declared=declared,
        colon_names=draw(st.booleans()),
    )


# --- the reference decoding ---------------------------------------------------------------------

ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?"
)


def reference_time(text: str) -> dt.datetime:
    """The instant an ISO-8601 text says; without an offset it is UTC ("All times UTC")."""
    match = ISO.fullmatch(text)
    assert match, text
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    wall = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int((fraction or "").ljust(6, "0")),
    )
    if offset in (None, "Z"):
        return wall.replace(tzinfo=UTC)
    sign = -1 if offset[0] == "-" else 1
    delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return wall.replace(tzinfo=dt.timezone(sign * delta)).astimezone(UTC)


def flat(event: dict[str, t.Any], prefix: str = "") -> dict[str, t.Any]:
    """Nested objects as dotted names; lists and other leaves are values."""
    out: dict[str, t.Any] = {}
    for key, value in event.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def json_text(value: t.Any) -> str:
    """The JSON text of a value: numbers as JSON writes them, lists compact, unicode as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def text_of(value: t.Any) -> str | None:
    """A property as text: strings as they are, ``true``/``false``, numbers and lists as JSON."""
    text = value if isinstance(value, str) else json_text(value)
    return None if text in ("", "null") else text


def reference_value(kind: str, value: t.Any) -> t.Any:
    """What a property means in a record (README "Records", README Keen IO)."""
    if value is None:
        return None
    if kind == "string":
        return text_of(value)
    if kind == "date-time":
        return reference_time(value)
    if kind == "number":
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if kind in ("integer", "boolean"):
        return value
    assert kind == "array", kind
    return list(value)


def kinds(case: Case) -> dict[str, str]:
    return {**case.declared, **KEEN_COLUMNS}


def reference_record(event: dict[str, t.Any], case: Case) -> dict[str, t.Any]:
    types = kinds(case)
    return {
        name: reference_value(types.get(name, "string"), value)
        for name, value in flat(event).items()
    }


def columns_of(case: Case) -> set[str]:
    """Every column the collection's exports can have, and those ``column_types`` declares."""
    return {name for event in case.events for name in flat(event)} | set(case.declared)


# --- reading what the tap gives -----------------------------------------------------------------


def record_meaning(record: dict[str, t.Any], case: Case) -> dict[str, t.Any]:
    types = kinds(case)
    return {name: meaning(types.get(name, "string"), value) for name, value in record.items()}


def check_record(record: dict[str, t.Any], event: dict[str, t.Any], case: Case, api: str) -> None:
    """The record holds the event's properties with their meaning, and nothing else but nulls
    of other columns of the export."""
    got = record_meaning(record, case)
    want = reference_record(event, case)
    extra = set(got) - set(want)
    assert extra <= columns_of(case), (
        f"{api}: columns that no event has: {extra - columns_of(case)}"
    )
    assert got == want | {name: None for name in extra}, f"{api}: record of {event}"


def fake_config(fake: KeenFake, case: Case, api: str) -> dict[str, t.Any]:
    block: dict[str, t.Any] = {
        "base_url": fake.base_url,
        "project_id": fake.project_id,
        "api_key": fake.api_key,
        "collections": [case.collection],
        "api": api,
        "window": case.window,
    }
    if case.declared:
        block["column_types"] = case.declared
    return {
        "start_date": case.start.isoformat(),
        "end_date": case.end.isoformat(),
        "max_retries": 2,
        "poll_interval": 0.02,
        "keen": block,
    }


def extract(fake: KeenFake, case: Case, api: str) -> TapRun:
    """Serve the case's collection and run the tap on it."""
    fake.collections = {case.collection: case.events}
    fake.colon_names = case.colon_names and api == "extract"
    try:
        return run_tap(fake_config(fake, case, api))
    finally:
        fake.colon_names = False


def schema_of(run: TapRun, stream: str) -> dict[str, t.Any]:
    schemas = run.schemas(stream)
    assert schemas, f"no SCHEMA for {stream}"
    return schemas[-1]


JSON_TYPES = {
    "string": "string",
    "date-time": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
}


def check_schema(run: TapRun, case: Case, key: str) -> None:
    """The stream's key, and every column the records hold, typed as the records are."""
    schema = schema_of(run, case.stream)
    assert schema["key_properties"] == [key]
    properties = schema["schema"]["properties"]
    types = kinds(case)
    for record in run.records(case.stream):
        for name in record:
            kind = types.get(name, "string")
            assert name in properties, f"{name} is in no SCHEMA"
            declared = properties[name].get("type")
            declared = [declared] if isinstance(declared, str) else declared
            assert JSON_TYPES[kind] in declared, (name, properties[name])
            if kind == "date-time":
                assert properties[name].get("format") == "date-time", (name, properties[name])


def by_id(run: TapRun, stream: str) -> dict[str, dict[str, t.Any]]:
    out: dict[str, dict[str, t.Any]] = {}
    for record in run.records(stream):
        assert record.get("keen.id") not in out, f"keen.id {record.get('keen.id')} twice"
        out[record["keen.id"]] = record
    return out


@pytest.fixture(scope="module")
def keen_fake() -> t.Iterator[KeenFake]:
    """One fake Keen for a test's examples (each example serves its own collection)."""
    with KeenFake({}, job_seconds=0.02, minute_seconds=KEEN_MINUTE_SECONDS) as fake:
        yield fake


# --- the properties -----------------------------------------------------------------------------


def one_event(**properties: t.Any) -> Case:
    stamp = "2024-03-01T10:00:00.000Z"
    event = {"keen": {"id": "0" * 23 + "1", "timestamp": stamp, "created_at": stamp}}
    return Case("pageviews", [event | properties])


@settings(max_examples=scaled(60), deadline=None)
@given(case=cases())
@example(case=one_event(ratio=1e-07))
@example(case=one_event(big=1e16))
@example(case=one_event(coordinates=[1e16, 51.5]))
def test_both_modes_give_the_documented_records(keen_fake: KeenFake, case: Case) -> None:
    """Every event once, keyed by ``keen.id``, with the reference values and JSON types; and
    the extraction file and the query give the same records."""
    note(f"events: {json.dumps(case.events, ensure_ascii=False)}")
    got = {}
    for api in ("extract", "query"):
        run = extract(keen_fake, case, api)
        records = by_id(run, case.stream)
        assert sorted(records) == sorted(e["keen"]["id"] for e in case.events), api
        for event in case.events:
            check_record(records[event["keen"]["id"]], event, case, api)
        if case.events:
            check_schema(run, case, "keen.id")
        got[api] = records
    assert got["extract"] == got["query"], "the two modes give the same records"


def unkeyed(*properties: dict[str, t.Any], colon_names: bool = False) -> Case:
    """Events without ``keen.id`` (old projects), one per set of properties, at one time."""
    stamp = "2024-03-01T10:00:00.000Z"
    events = [{"keen": {"timestamp": stamp}} | p for p in properties]
    return Case("pageviews", events, colon_names=colon_names)


def content(record: dict[str, t.Any], case: Case, *, typed: bool = True) -> str:
    """A record's non-null values, by meaning, as one comparable text."""
    values = record_meaning(record, case) if typed else record
    return repr(sorted((k, repr(comparable(v))) for k, v in values.items() if v is not None))


def comparable(value: t.Any) -> t.Any:
    """Equal numbers alike (``3``, ``3.0``, ``Decimal("3.0")``)."""
    return value.normalize() if isinstance(value, Decimal) else value


def synthetic_keys(run: TapRun, case: Case) -> dict[str, list[str]]:
    """The records' ``_record_id`` values by the records' content (in order of appearance):
    one per record, all different."""
    out: dict[str, list[str]] = {}
    records = run.records(case.stream)
    for record in records:
        key = record.get("_record_id")
        assert type(key) is str, record
        assert key, record
        body = content({k: v for k, v in record.items() if k != "_record_id"}, case)
        out.setdefault(body, []).append(key)
    keys = [key for keys in out.values() for key in keys]
    assert len(set(keys)) == len(keys) == len(records), "one key per record"
    return out


@settings(max_examples=scaled(15), deadline=None)
@given(case=cases(with_id=False, max_events=5))
@example(case=unkeyed({"z": "x"}, colon_names=True))
def test_without_keen_id_both_modes_give_the_same_records_and_keys(
    keen_fake: KeenFake, case: Case
) -> None:
    """Without ``keen.id`` the key is ``_record_id`` (contract §3): each event once with its
    reference values, identical events apart, and the same key in both modes ("the two modes
    give the same records")."""
    note(f"events: {json.dumps(case.events, ensure_ascii=False)}")
    want = collections.Counter(
        content(reference_record(e, case), case, typed=False) for e in case.events
    )
    keyed = {}
    for api in ("extract", "query"):
        run = extract(keen_fake, case, api)
        if case.events:
            check_schema(run, case, "_record_id")
        keyed[api] = synthetic_keys(run, case)
        got = collections.Counter({body: len(keys) for body, keys in keyed[api].items()})
        assert got == want, api
    assert keyed["extract"] == keyed["query"], "the same event has the same key in both modes"


@settings(max_examples=scaled(10), deadline=None)
@given(case=cases(with_id=False, max_events=5), seed=st.integers(0, 2**32))
@example(case=unkeyed({"a": "x"}), seed=1)
def test_a_synthetic_key_does_not_depend_on_the_order_of_the_files_columns(
    keen_fake: KeenFake, case: Case, seed: int
) -> None:
    """Keen: "column order in the file is not guaranteed" (providers 2.2); re-extracting the
    same data gives the same key (contract §3), so the columns' order does not change it."""
    note(f"events: {json.dumps(case.events, ensure_ascii=False)}")
    case.colon_names = False
    sorted_columns = synthetic_keys(extract(keen_fake, case, "extract"), case)
    keen_fake.column_seed = seed
    try:
        other_order = synthetic_keys(extract(keen_fake, case, "extract"), case)
    finally:
        keen_fake.column_seed = None
    assert other_order == sorted_columns


LATE = st.dictionaries(TOP_NAME.map(lambda name: f"late_{name}"), SCALARS, min_size=1, max_size=2)
"""Properties of an event that reaches the window later, which no other event has."""


@settings(max_examples=scaled(10), deadline=None)
@given(case=cases(with_id=False, max_events=5), late=LATE)
@example(case=unkeyed({}), late={"late_b": "y"})
def test_a_synthetic_key_does_not_depend_on_the_other_events_of_its_window(
    keen_fake: KeenFake, case: Case, late: dict[str, t.Any]
) -> None:
    """Re-extracting the same data gives the same key, so a target that upserts on it keeps no
    duplicates (contract §3, §5 lookback): an event that reaches a window later, with a
    property no other event has, changes no other event's key. (The query's events are JSON:
    which columns they make is the tap's own doing.)"""
    note(f"events: {json.dumps(case.events, ensure_ascii=False)}; late: {late}")
    first = synthetic_keys(extract(keen_fake, case, "query"), case)
    keen = dict(case.events[0]["keen"]) if case.events else {"timestamp": START.isoformat()}
    later = dataclasses.replace(case, events=[*case.events, {"keen": keen} | late])
    again = synthetic_keys(extract(keen_fake, later, "query"), later)
    assert {body: again.get(body) for body in first} == first


WINDOWS = {
    "PT1H": dt.timedelta(hours=1),
    "PT90M": dt.timedelta(minutes=90),
    "PT6H": dt.timedelta(hours=6),
    "P1D": dt.timedelta(days=1),
}
NEAR = (dt.timedelta(microseconds=1), dt.timedelta(milliseconds=1), dt.timedelta(seconds=1))
"""How close to an edge the events next to it are."""


@st.composite
def edge_cases(draw: st.DrawFn) -> Case:
    """Events exactly on window edges, and just before and after them, and outside the range."""
    window = draw(st.sampled_from(list(WINDOWS)))
    count = draw(st.integers(1, 3))
    start = START + dt.timedelta(seconds=draw(st.integers(0, 86_399)))
    end = start + WINDOWS[window] * count
    edges = [start + WINDOWS[window] * k for k in range(count + 1)]
    near = st.sampled_from(NEAR)
    moment = st.one_of(
        st.sampled_from(edges),
        st.builds(lambda edge, d: edge - d, st.sampled_from(edges), near),
        st.builds(lambda edge, d: edge + d, st.sampled_from(edges), near),
    )
    stamps = draw(st.lists(moment, min_size=1, max_size=10))
    drawn = []
    for number, stamp in enumerate(stamps, 1):
        keen = {"id": f"{number:024x}", "timestamp": draw(exact_times(stamp))}
        drawn.append({"keen": keen, "n": number})
    return Case("pageviews", drawn, start=start, end=end, window=window)


@settings(max_examples=scaled(30), deadline=None)
@given(case=edge_cases())
def test_an_event_on_a_window_edge_lands_in_exactly_one_window(
    keen_fake: KeenFake, case: Case
) -> None:
    """Windows are ``[start, end)``: an event on an edge once, none from outside the range."""
    note(f"events: {case.events}")
    inside = sorted(
        e["keen"]["id"]
        for e in case.events
        if case.start <= reference_time(e["keen"]["timestamp"]) < case.end
    )
    for api in ("extract", "query"):
        run = extract(keen_fake, case, api)
        ids = [record["keen.id"] for record in run.records(case.stream)]
        assert sorted(ids) == inside, api
        bookmark = run.bookmark(case.stream)
        assert bookmark is not None
        assert dt.datetime.fromisoformat(bookmark) == case.end, api
