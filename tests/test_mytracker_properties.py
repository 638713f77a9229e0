"""Property-based tests of myTracker end to end: generated raw exports, served by the fake
myTracker over real HTTP (signed create.json, get.json, gzipped CSV parts), read by the tap.

Each example is a set of raw events whose cells hold the forms the documents give for the
selectors: ``ts*`` unix seconds, ``id*`` numeric ids, ``*Title`` and other free texts (commas,
quotes, CR, LF, unicode), ``SDKKey`` with its leading zeros, ``dtEvent`` (the event's date in
the ``timezone`` setting), ``params.name``/``params.value`` lists of any items, written by the
fake as the documents show them (ClickHouse's escaped strings, ``['param1','param2\\n with line
break']``) or in the older unescaped style, revenue decimals, empty cells. The export is cut
into several gzip parts and the tap's windows fall on its ``window`` grid.

The expected records come from a reference decoding written here from the documents (the
README "Records" and myTracker sections, contract §3-§5, providers.md §3.4), independent of the
tap's converters. Synthetic keys are compared between runs only, never recomputed.

Sources of the forms:

- ``tsEvent``, ``tsInsert`` are unix timestamps; ``dtEvent`` is the event date in ``timezone``;
  ``params.name``/``params.value`` are lists serialized like ``['param1','param2\\n with line
  break',…]`` [providers.md §3.4, from the docs' customEvents selector list]; the selector
  dictionary's example ``['param1','param2\\n with line break','param3 with special
  characters\\'\\\\"",' ]`` is ClickHouse's text form of an ``Array(String)`` (backslash
  escapes).
- Typing: "``ts*`` selectors (unix seconds) are date-times in UTC, ``id*`` selectors integers,
  ``*Title`` strings, ``params.name``/``params.value`` arrays of their items; ``SDKKey`` stays a
  string (leading zeros kept); any selector the tap does not know is a string unless
  ``column_types`` types it" [README, myTracker]; "empty string ... null", "integers and
  decimals are numbers without float rounding surprises", "date-times are RFC 3339 in UTC",
  "``column_types`` may make them strings" [contract §4].
- Windows: "``tsFrom``/``tsTo`` (unix seconds, inclusive, so ``tsTo`` = window end - 1 s)"
  [README, myTracker]; "half-open ``[start, end)`` in UTC ... a record exactly on a boundary
  belongs to exactly one window" [contract §5]; the first window "runs to the next boundary of
  the fixed grid of ``window`` steps counted from 1970-01-01" [README, State].
- Keys: "a hash of the row's raw values with its stream and partition, so extracting the same
  data again gives the same key wherever the windows fall ...; the n-th repetition of an
  identical row within one export gets ``~n`` appended" [README, Records].
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import typing as t
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from tap_event_exports.engine import native_lists
from tap_event_exports.engine.lists import to_array
from tap_event_exports.engine.native_lists import json_lists
from tap_event_exports.sandbox.mytracker import MyTrackerFake, escape_list
from tests.harness import TapRun, run_tap
from tests.properties import (
    RFC3339_UTC,
    TEXT_PIECES,
    Unexpected,
    clickhouse_list,
    quoted_items,
    scaled,
)

UTC = dt.timezone.utc
EVENT = "customEvents"
STREAM = "mytracker_custom_events"
KEY = "_record_id"
BASE = dt.datetime(2025, 3, 30, tzinfo=UTC)
"""A day the clocks changed in Europe: ``dtEvent`` dates in such zones cross the change."""
HOUR = 3600
ZONES = (
    "UTC",
    "Europe/Moscow",  # the API's default
    "Asia/Yekaterinburg",  # the create page's example
    "Asia/Calcutta",  # +05:30
    "Asia/Katmandu",  # +05:45
    "America/St_Johns",  # -02:30 / -03:30
    "Europe/Berlin",  # changed its clocks on BASE
    "Pacific/Apia",  # +13:00
    "Pacific/Honolulu",  # -10:00
)
"""Zones of myTracker's Timezones dictionary (providers.md §3.4)."""
WINDOWS = {"P1D": 86400, "PT12H": 12 * HOUR, "PT6H": 6 * HOUR, "PT4H": 4 * HOUR}

TIMESTAMPS = ("tsEvent", "tsInstall", "tsInsert")
IDS = ("idApp", "idCountry", "idCampaign", "idDevice", "idPartner")
TITLES = ("idAppTitle", "idCountryTitle", "idCampaignTitle", "idPartnerTitle")
LISTS = ("params.name", "params.value")
TEXTS = ("SDKKey", "eventName", "customUserId", "dtEvent", "revenue")
SELECTORS = (*TIMESTAMPS, *IDS, *TITLES, *LISTS, *TEXTS)
KINDS = {
    **dict.fromkeys(TIMESTAMPS, "date-time"),
    **dict.fromkeys(IDS, "integer"),
    **dict.fromkeys(TITLES + TEXTS, "string"),
    **dict.fromkeys(LISTS, "array"),
}
"""Each selector's documented type (README, myTracker "Typing"); ``revenue`` is not a selector
the tap knows: a string."""
COLUMN_TYPES = st.fixed_dictionaries(
    {},
    optional={
        "revenue": st.just("number"),
        "params.value": st.just("string"),
        "idCountry": st.just("string"),
    },
)
"""``column_types`` "may type any column, standard ones included" and "may make [lists]
strings" [contract §2, §4]."""


# --- the forms of each selector -----------------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(TEXT_PIECES),
    st.text(st.characters(codec="utf-8"), max_size=4),
)
TEXT = st.lists(PIECES, max_size=6).map("".join)
"""Free texts: delimiters, quotes, line breaks, controls, unicode, other types' look."""
LONG = st.builds(
    lambda piece, times: piece * times,
    st.sampled_from(['é,"\r\n🎉', "Чат ', ", "x\r"]),
    st.integers(10_000, 40_000),
)
"""Hundreds of kilobytes in one field: it straddles every buffer a download is read in."""
TITLE = st.one_of(TEXT, TEXT, TEXT, TEXT, TEXT, LONG)
ITEM = st.lists(
    st.one_of(
        st.sampled_from(
            [",", "'", '"', "\r", "\n", "\r\n", " ", "\\", "[", "]", ";", "', '", "','", '","']
        ),
        st.sampled_from(["param1", "param2\n with line break", "Чат 🎉", "0042", "null"]),
        st.text(st.characters(codec="utf-8"), max_size=3),
    ),
    max_size=4,
).map("".join)
"""A list item: any text (the older unescaped style draws none with both quote characters)."""
ITEMS = st.lists(st.one_of(ITEM, ITEM, ITEM, ITEM, ITEM, LONG), max_size=4)
UNESCAPED = ITEMS.filter(lambda items: not any("'" in i and '"' in i for i in items))
"""Items the older style can write: none holds both quote characters (no escape-free form)."""
DIGITS = st.text("0123456789", min_size=1, max_size=20)
IDENTIFIERS = st.one_of(st.integers(0, 1000), st.integers(0, 2**63 - 1)).map(str)
"""Ids are whole numbers, beyond a double's 2**53 too ("without float rounding surprises")."""
SDK_KEYS = st.integers(0, 10**20 - 1).map(lambda n: f"{n:020d}")
"""``00004399666566289449`` [seeds/003]: twenty digits, leading zeros."""


@st.composite
def revenues(draw: st.DrawFn) -> str:
    """Decimals as a payment's amount: whole, cents, many digits."""
    whole = str(draw(st.one_of(st.integers(0, 1000), st.integers(0, 10**20))))
    fraction = draw(st.one_of(st.just(""), st.sampled_from(["0", "00", "5", "50", "99"]), DIGITS))
    return f"{whole}.{fraction}" if fraction else whole


def write_list(items: list[str]) -> str:
    """myTracker's older list form: items as they are, in single quotes (double quotes for an
    item holding a single quote), comma separated, no escapes."""
    return "[" + ",".join(f'"{i}"' if "'" in i else f"'{i}'" for i in items) + "]"


Cell = str | list[str]
"""A raw cell: its text, or a list's items (the fake writes them)."""


def written(cell: Cell, escaped: bool) -> str:
    """A cell's text in the file: a list's items as the documents write them (the reference's
    own ClickHouse writer), or in the older style."""
    if isinstance(cell, str):
        return cell
    return clickhouse_list(cell) if escaped else write_list(cell)


def maybe_empty(values: st.SearchStrategy[t.Any]) -> st.SearchStrategy[t.Any]:
    return st.one_of(st.just(""), values, values, values)


@dataclasses.dataclass(frozen=True)
class Span:
    """One run's range and window, and the windows the tap is to ask for."""

    start: int
    end: int
    window: str

    @property
    def step(self) -> int:
        return WINDOWS[self.window]

    def windows(self) -> list[tuple[int, int]]:
        """``[start, end)`` cut on the grid of ``window`` steps counted from 1970-01-01."""
        out, moment = [], self.start
        while moment < self.end:
            edge = min((moment // self.step + 1) * self.step, self.end)
            out.append((moment, edge))
            moment = edge
        return out

    def edges(self) -> list[int]:
        return [self.start, *(end for _, end in self.windows())]


SPANS = st.builds(
    lambda offset, hours, window: Span(
        int(BASE.timestamp()) + offset, int(BASE.timestamp()) + offset + hours * HOUR, window
    ),
    st.sampled_from([0, -6 * HOUR, 2 * HOUR + 17 * 60 + 5, -5 * HOUR - 1, 12 * HOUR]),
    st.sampled_from([6, 12]),
    st.sampled_from(list(WINDOWS)),
).filter(lambda span: len(span.windows()) <= 3)
"""A few hours around BASE, on or off the grid; at most three windows (the API's 10 requests
a second keep each run to a handful of requests)."""


@st.composite
def event_times(draw: st.DrawFn, span: Span) -> int:
    """Mostly on and next to window edges (and the range's ends), else anywhere near."""
    edge = draw(st.sampled_from(span.edges()))
    near = st.builds(lambda delta: edge + delta, st.sampled_from([-1, 0, 0, 1]))
    anywhere = st.integers(span.start - HOUR, span.end + HOUR)
    return draw(st.one_of(near, anywhere))


@st.composite
def raw_rows(
    draw: st.DrawFn, span: Span, zone: str, max_rows: int = 10, *, escaped: bool = True
) -> list[dict[str, Cell]]:
    """Raw events, every selector's cell in one of its documented forms; some repeated. List
    cells hold their items (any text; ``escaped=False``: what the older style can write)."""
    rows = []
    for _ in range(draw(st.integers(1, max_rows))):
        ts = draw(event_times(span))
        row: dict[str, Cell] = {
            "tsEvent": str(ts),
            "tsInstall": draw(
                maybe_empty(
                    st.one_of(
                        st.just(ts), st.integers(ts - 400 * 86400, ts), st.integers(0, ts)
                    ).map(str)
                )
            ),
            "tsInsert": draw(maybe_empty(st.integers(ts, ts + 3 * 86400).map(str))),
            "dtEvent": dt.datetime.fromtimestamp(ts, ZoneInfo(zone)).date().isoformat(),
            "SDKKey": draw(maybe_empty(SDK_KEYS)),
            "eventName": draw(maybe_empty(TEXT)),
            "customUserId": draw(maybe_empty(st.one_of(TEXT, DIGITS))),
            "revenue": draw(maybe_empty(revenues())),
        }
        row.update({name: draw(maybe_empty(IDENTIFIERS)) for name in IDS})
        row.update({name: draw(maybe_empty(TITLE)) for name in TITLES})
        row.update({name: draw(maybe_empty(ITEMS if escaped else UNESCAPED)) for name in LISTS})
        rows.append(row)
    for _ in range(draw(st.integers(0, 2))):  # the same event twice, next to it or elsewhere
        copy = dict(rows[draw(st.integers(0, len(rows) - 1))])
        rows.insert(draw(st.integers(0, len(rows))), copy)
    return rows


SELECTIONS = st.lists(st.sampled_from(SELECTORS[1:]), unique=True, max_size=len(SELECTORS)).flatmap(
    lambda chosen: st.permutations(["tsEvent", *chosen])
)
"""Any selectors in any order, ``tsEvent`` (the event time windows are cut by) among them."""


# --- the reference decoding ---------------------------------------------------------------------


def reference(kind: str, cell: Cell, escaped: bool) -> t.Any:
    """What a cell means, as a typed value to compare with :func:`meaning`: a list's items
    exactly, when written with the documented escapes."""
    if kind == "array" and escaped and isinstance(cell, list):
        return ("array", cell)
    text = written(cell, escaped)
    if text == "":
        return None
    if kind == "date-time":
        return ("date-time", dt.datetime.fromtimestamp(int(text), UTC))
    if kind == "integer":
        return ("integer", int(text))
    if kind == "number":
        return ("number", Decimal(text))
    if kind == "array":
        return ("array", quoted_items(text))
    return ("string", text)


def meaning(kind: str, value: t.Any) -> t.Any:
    """A RECORD value (JSON read with ``parse_float=Decimal``) with its JSON type checked."""
    if value is None:
        return None
    wrong = Unexpected(f"{type(value).__name__} for {kind}", repr(value))
    if kind == "date-time":
        if type(value) is not str or not RFC3339_UTC.fullmatch(value):
            return Unexpected("not RFC 3339 UTC", repr(value))
        return ("date-time", dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    if kind == "integer":
        return ("integer", value) if type(value) is int else wrong
    if kind == "number":
        return ("number", Decimal(value)) if type(value) in (int, Decimal) else wrong
    if kind == "array":
        if type(value) is list and all(type(item) is str for item in value):
            return ("array", value)
        return wrong
    return ("string", value) if type(value) is str else wrong


def kinds_of(selectors: list[str], column_types: dict[str, str]) -> dict[str, str]:
    return {name: column_types.get(name, KINDS[name]) for name in selectors}


def event_time(row: dict[str, Cell]) -> int:
    return int(str(row["tsEvent"]))


def expected_records(
    rows: list[dict[str, Cell]],
    selectors: list[str],
    kinds: dict[str, str],
    span: Span,
    escaped: bool = True,
) -> list[dict[str, t.Any]]:
    """The rows of ``[start, end)``, window by window, each in the order the export holds it."""
    inside = [row for row in rows if span.start <= event_time(row) < span.end]
    inside.sort(key=lambda row: event_time(row) // span.step)  # stable: export order kept
    return [
        {name: reference(kinds[name], row[name], escaped) for name in selectors} for row in inside
    ]


def got_records(run: TapRun, kinds: dict[str, str]) -> list[dict[str, t.Any]]:
    records = run.records(STREAM)
    for record in records:
        assert set(record) == {*kinds, KEY}, "every selector, and the key"
    return [
        {name: meaning(kind, record[name]) for name, kind in kinds.items()} for record in records
    ]


def raw_keys(run: TapRun, selectors: list[str], rows: list[dict[str, Cell]], span: Span) -> dict:
    """Each exported row's raw cells → the keys its occurrences got, in order."""
    inside = [row for row in rows if span.start <= event_time(row) < span.end]
    inside.sort(key=lambda row: event_time(row) // span.step)
    records = run.records(STREAM)
    assert len(records) == len(inside)
    keys: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for row, record in zip(inside, records, strict=True):
        keys[tuple(written(row[name], True) for name in selectors)].append(record[KEY])
    return keys


def check_keys(keys: dict[tuple[str, ...], list[str]]) -> None:
    """Strings, all distinct; the n-th repetition of an identical row is its key and ``~n``."""
    every = [key for group in keys.values() for key in group]
    assert all(type(key) is str and key for key in every)
    assert len(set(every)) == len(every), "two records with one key"
    for group in keys.values():
        assert group[1:] == [f"{group[0]}~{n}" for n in range(1, len(group))], group


# --- running the tap against the fake -----------------------------------------------------------


@contextlib.contextmanager
def vendor() -> t.Iterator[MyTrackerFake]:
    """One fake myTracker for a test's examples; exports are ready at their first check.

    Its quotas are the tap's to keep (the tap paces itself per run): here they are wide, so
    that runs following each other are not refused for the previous run's requests.
    """
    with MyTrackerFake(
        {EVENT: []}, job_seconds=0.0, per_second=10_000, per_minute=10**6, per_hour=10**7
    ) as fake:
        yield fake


def config(
    fake: MyTrackerFake,
    span: Span,
    selectors: list[str],
    zone: str,
    column_types: dict[str, str] | None = None,
) -> dict:
    block: dict[str, t.Any] = {
        "base_url": fake.base_url,
        "api_user_id": fake.user_id,
        "api_secret_key": fake.secret,
        "exports": [{"event": EVENT, "selectors": selectors}],
        "timezone": zone,
        "window": span.window,
    }
    if column_types:
        block["column_types"] = column_types
    return {
        "start_date": dt.datetime.fromtimestamp(span.start, UTC).isoformat(),
        "end_date": dt.datetime.fromtimestamp(span.end, UTC).isoformat(),
        "max_retries": 2,
        "poll_interval": 0.02,
        "mytracker": block,
    }


def sync(
    fake: MyTrackerFake,
    rows: list[dict[str, Cell]],
    part_rows: int,
    conf: dict,
    *,
    plain: bool = False,
    escaped: bool = True,
) -> tuple[TapRun, list[t.Any]]:
    """One run over ``rows`` in parts of ``part_rows`` (gzip archives, or ``plain`` CSV files;
    lists with the documented escapes, or ``escaped=False`` in the older style); the run and
    the requests it made."""
    fake.rows = {EVENT: rows}
    fake.part_rows = part_rows
    fake.plain_files = plain
    fake.escaped_lists = escaped
    seen = len(fake.log)
    run = run_tap(conf)
    return run, fake.log[seen:]


def check_requests(requests: list[t.Any], span: Span, zone: str, selectors: list[str]) -> None:
    """One export per window: tsFrom its start, tsTo its end - 1 s, the timezone sent."""
    creates = [r for r in requests if r.path.endswith("/create.json")]
    asked = sorted((int(r.arg("tsFrom")), int(r.arg("tsTo"))) for r in creates)
    assert asked == [(start, end - 1) for start, end in span.windows()]
    for create in creates:
        assert create.arg("event") == EVENT
        assert create.arg("timezone") == zone
        assert create.arg("selectors") == ",".join(selectors)


def check_bookmark(run: TapRun, span: Span) -> None:
    bookmark = run.bookmark(STREAM)
    assert bookmark is not None
    assert dt.datetime.fromisoformat(bookmark) == dt.datetime.fromtimestamp(span.end, UTC)


# --- the properties -----------------------------------------------------------------------------


def test_records_hold_the_documented_value_of_every_form():
    """Every selector's every form, over HTTP in several parts (gzip archives, or plain CSV
    files as the download page also allows): exact values and JSON types (lists of any items
    written with the documented escapes come back exactly), one export per window, each event
    once, distinct keys with ``~n`` for repeated rows."""
    with vendor() as fake:

        @settings(max_examples=scaled(40), deadline=None)
        @given(
            data=st.data(),
            span=SPANS,
            zone=st.sampled_from(ZONES),
            selectors=SELECTIONS,
            column_types=COLUMN_TYPES,
            part_rows=st.integers(1, 4),
            plain=st.sampled_from([False, False, True]),
            escaped=st.sampled_from([True, True, False]),
        )
        def check(*, data, span, zone, selectors, column_types, part_rows, plain, escaped):
            rows = data.draw(raw_rows(span, zone, escaped=escaped), label="rows")
            kinds = kinds_of(selectors, column_types)
            conf = config(fake, span, selectors, zone, column_types)
            run, requests = sync(fake, rows, part_rows, conf, plain=plain, escaped=escaped)
            note(f"requests: {[r.path + '?' + r.raw_query for r in requests]}")
            expected = expected_records(rows, selectors, kinds, span, escaped)
            assert got_records(run, kinds) == expected
            check_keys(raw_keys(run, selectors, rows, span))
            check_requests(requests, span, zone, selectors)
            parts = [r.path for r in requests if r.path.startswith("/storage/download/raw/")]
            assert all(path.endswith(".csv" if plain else ".csv.gz") for path in parts)
            check_bookmark(run, span)
            schema = run.schemas(STREAM)[0]
            assert schema["key_properties"] == [KEY]

        check()


def test_keys_stay_the_same_across_runs_part_splits_and_window_placements():
    """The same rows extracted twice, cut in other parts and other windows (another ``window``,
    a range starting elsewhere), the second export listing them in another order: every row
    common to both runs keeps its keys."""
    with vendor() as fake:

        @settings(max_examples=scaled(20), deadline=None)
        @given(
            data=st.data(),
            spans=st.tuples(SPANS, SPANS),
            zone=st.sampled_from(ZONES),
            selectors=SELECTIONS,
            parts=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        )
        def check(*, data, spans, zone, selectors, parts):
            first, second = spans
            covering = Span(min(first.start, second.start), max(first.end, second.end), "P1D")
            rows = data.draw(raw_rows(covering, zone), label="rows")
            again = data.draw(st.permutations(rows), label="the rows in the second export")
            keys = []
            for span, part_rows, served in zip(spans, parts, (rows, again), strict=True):
                run, _ = sync(fake, served, part_rows, config(fake, span, selectors, zone))
                keys.append(raw_keys(run, selectors, served, span))
            common = keys[0].keys() & keys[1].keys()
            assert {row: keys[0][row] for row in common} == {row: keys[1][row] for row in common}
            for found in keys:
                check_keys(found)

        check()


def test_an_incremental_run_reextracts_the_lookback_with_the_same_keys():
    """A later run starts at bookmark - ``lookback`` (off the grid), its first window running to
    the grid: the events since then exactly once, those it re-extracts with their keys."""
    with vendor() as fake:

        @settings(max_examples=scaled(15), deadline=None)
        @given(
            data=st.data(),
            span=SPANS,
            lookback=st.sampled_from([("PT1H", HOUR), ("PT45M", 45 * 60), ("PT3H", 3 * HOUR)]),
            later=st.sampled_from([HOUR, 5 * HOUR]),
            zone=st.sampled_from(ZONES),
            selectors=SELECTIONS,
            parts=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        )
        def check(*, data, span, lookback, later, zone, selectors, parts):
            duration, seconds = lookback
            resumed = Span(span.end - seconds, span.end + later, span.window)
            covering = Span(span.start, resumed.end, "P1D")
            rows = data.draw(raw_rows(covering, zone), label="rows")
            conf = config(fake, span, selectors, zone)
            conf["mytracker"]["lookback"] = duration
            first, _ = sync(fake, rows, parts[0], conf)
            conf["end_date"] = dt.datetime.fromtimestamp(resumed.end, UTC).isoformat()
            fake.rows, fake.part_rows = {EVENT: rows}, parts[1]
            seen = len(fake.log)
            second = run_tap(conf, state=first.last_state)
            kinds = kinds_of(selectors, {})
            assert got_records(second, kinds) == expected_records(rows, selectors, kinds, resumed)
            check_requests(fake.log[seen:], resumed, zone, selectors)
            check_bookmark(second, resumed)
            keys = [
                raw_keys(run, selectors, rows, s) for run, s in ((first, span), (second, resumed))
            ]
            common = keys[0].keys() & keys[1].keys()
            assert {row: keys[0][row] for row in common} == {row: keys[1][row] for row in common}

        check()


def test_events_on_window_edges_land_in_exactly_one_window_in_any_timezone():
    """Events on, just before and just after every window edge, with a non-UTC ``timezone``:
    each event of ``[start_date, end_date)`` exactly once, none outside, windows that tile the
    range with inclusive ``tsTo`` = next ``tsFrom`` - 1."""
    selectors = ["tsEvent", "dtEvent", "idApp"]
    with vendor() as fake:

        @settings(max_examples=scaled(20), deadline=None)
        @given(
            data=st.data(),
            span=SPANS,
            zone=st.sampled_from(ZONES[1:]),
            part_rows=st.integers(1, 3),
        )
        def check(*, data, span, zone, part_rows):
            edges = [edge + delta for edge in span.edges() for delta in (-1, 0, 1)]
            times = data.draw(st.lists(st.sampled_from(edges), min_size=1, max_size=8))
            rows = [
                {
                    "tsEvent": str(ts),
                    "dtEvent": dt.datetime.fromtimestamp(ts, ZoneInfo(zone)).date().isoformat(),
                    "idApp": str(n),
                }
                for n, ts in enumerate(times)
            ]
            kinds = kinds_of(selectors, {})
            run, requests = sync(fake, rows, part_rows, config(fake, span, selectors, zone))
            assert got_records(run, kinds) == expected_records(rows, selectors, kinds, span)
            check_requests(requests, span, zone, selectors)
            check_bookmark(run, span)
            got = sorted(record["idApp"] for record in run.records(STREAM))
            assert got == [n for n, ts in enumerate(times) if span.start <= ts < span.end]

        check()


@settings(max_examples=scaled(500), deadline=None)
@given(items=st.lists(st.one_of(ITEM, st.text()), max_size=6))
@example(items=["param1", "param2\n with line break", "param3 with special characters'\\\","])
@example(items=["\\x41", "\\", "'", "\\'", "", "\x00\x07\x1f", "both ' and \""])
def test_any_items_written_by_the_fakes_escaper_read_back_exactly(items):
    """The fake writes lists as ClickHouse does (the reference's own writer agrees), and the
    tap reads any items back exactly, in Python and in the compiled helpers alike."""
    text = escape_list(items)
    assert text == clickhouse_list(items)
    assert quoted_items(text) == items
    assert to_array(text, "quoted") == items
    typed = json_lists(pa.array([text, None]), "quoted")
    if native_lists._TO_JSON is None:  # built without a compiler: nothing more to compare
        assert typed is None
        return
    assert typed is not None, "the escaper writes no \\xHH: C reads every such list"
    assert typed.to_pylist() == [items, None]
