"""Property-based tests of Batch end to end: generated export data, served by the fake Batch over
real HTTP (export request, status, ``file_url`` answering 302 to the file), read by the tap, give
the records the vendor's documents and the contract describe.

Cells hold the forms of Batch's output samples (seeds/004 "Output example"): dates
``2017-07-24T00:00:00`` / ``2017-07-24T09:00:00`` (UTC, the format of the API's dates), event
names (``push_opened`` for a requested ``push_open``), install, custom and advertising ids,
``true``/``false``, ``cta``/``cta_position`` (empty unless clicked), hex transactional tokens,
smart segments; ids and attributes also hold ``;``, quotes, CR, LF, unicode, other types' forms,
or nothing. The expected records come from a reference decoding written here from the documents
and the contract (§3 streams, keys and partition columns; §4 typing; §5 half-open windows),
independent of the tap's converters. Synthetic keys are only compared between runs.

The reader-level properties (dialects, every type's forms, sinks) are in
``test_reading_properties.py``; these tests go through the vendor flow.
``HYPOTHESIS_PROFILE=explore`` searches with random seeds and ten times the examples.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import typing as t
from collections import Counter

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from tap_event_exports.sandbox.batch import BatchData, BatchFake
from tests.harness import TapRun, run_tap
from tests.properties import json_meaning, scaled

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
KEY = "_record_id"
STAMP = "%Y-%m-%dT%H:%M:%S"
"""seeds/004: "UTC Date in the 'YYYY-MM-ddTHH:mm:ss' format"; samples ``2017-07-24T09:00:00``."""
IDS = ("install_id", "custom_id", "advertising_id")
"""seeds/004 ``ids``: ``["install_id","custom_id","advertising_id"]`` (the contract's default)."""
TODAY = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# every window size below divides two days, and two days from the epoch start on an even day
GRID_DAY = TODAY - dt.timedelta(days=4 + (TODAY - EPOCH).days % 2)

TYPES = {
    **dict.fromkeys(IDS, "string"),
    "event_date": "date-time",
    "event_type": "string",
    "transactional_token": "string",
    "cta": "string",
    "cta_position": "integer",
    "is_reachable": "boolean",
    "is_optin": "boolean",
    "has_custom_id": "boolean",
    "is_optin_push": "boolean",
    "install_date": "date-time",
    "last_start_date": "date-time",
    "smart_segment": "string",
}
"""The columns of seeds/004's output samples and what their values are."""

STEPS = {
    "PT6H": dt.timedelta(hours=6),
    "PT8H": dt.timedelta(hours=8),
    "PT12H": dt.timedelta(hours=12),
    "P1D": dt.timedelta(days=1),
    "P2D": dt.timedelta(days=2),
}

LOOKBACKS = {
    "PT7H": dt.timedelta(hours=7),
    "P1D": dt.timedelta(days=1),
    "P3D": dt.timedelta(days=3),
}


@dataclasses.dataclass(frozen=True)
class Kind:
    """A partitioned export kind (seeds/004; contract §2 settings, §3 streams)."""

    setting: str
    stream: str
    partition: str
    events: tuple[str, ...]
    """The event names a request lists (seeds/004 "Event list")."""
    written: tuple[str, ...]
    """The event types the file holds (seeds/004 output examples: ``push_opened``)."""
    extra: tuple[str, ...]
    """Columns an ``events`` file has after ``event_type``."""


PUSH = ("push_sent", "push_open", "push_error")
PUSH_WRITTEN = ("push_sent", "push_opened", "push_error")
IN_APP = ("inapp_shown", "inapp_clicked", "inapp_closed")
KINDS = {
    "push": Kind("push_campaigns", "push_campaign", "campaign_token", PUSH, PUSH_WRITTEN, ()),
    "transactional": Kind(
        "transactional_groups",
        "transactional",
        "group_id",
        PUSH,
        PUSH_WRITTEN,
        ("transactional_token",),
    ),
    "in_app": Kind(
        "in_app_campaigns",
        "in_app_campaign",
        "campaign_token",
        IN_APP,
        IN_APP,
        ("cta", "cta_position"),
    ),
}
WRITTEN = {"push_open": "push_opened"}
"""seeds/004: requested ``push_open``, written ``push_opened``."""
REACHABILITY = "batch_reachability_events"
USERBASE = "batch_userbase"
REACHABILITY_COLUMNS = ("event_date", "event_type", "is_reachable", "is_optin", "has_custom_id")
USERBASE_COLUMNS = ("is_optin_push", "install_date", "last_start_date", "smart_segment")


def stamp(moment: dt.datetime) -> str:
    return moment.strftime(STAMP)


def moment_of(row: dict) -> dt.datetime:
    return dt.datetime.strptime(row["event_date"], STAMP).replace(tzinfo=UTC)


# --- the forms of the cells -----------------------------------------------------------------------

NULLS = st.sampled_from(["", "null"])
HOSTILE = [
    *";\"'\r\n\t ,\\",
    "\r\n",
    '""',
    ";;",
    '";"',
    "é",
    "日本語",
    "🙂",
    "\u2028",
    "\x85",
    "\ufeff",
    "\x00",
    "null",
    "NULL",
]
PIECES = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(HOSTILE),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=3),
)
FREE_TEXT = st.lists(PIECES, min_size=1, max_size=6).map("".join)
LOOKALIKES = st.sampled_from(
    ["0", "007", "-1", "1.50", "1e3", "true", "FALSE", "2017-07-24T09:00:00", '["a"]', "[]", "{}"]
)
"""Other types' forms: in a string column they stay the text they are."""
UUIDS = st.uuids().map(str)
INSTALL_IDS = st.one_of(st.just("INSTALLATION_ID"), UUIDS, FREE_TEXT, FREE_TEXT, LOOKALIKES)
CUSTOM_IDS = st.one_of(
    st.just("CUSTOM_USER_ID"),
    st.integers(0, 10**6).map("user-{}".format),
    st.just("jane.doe+batch@example.com"),
    FREE_TEXT,
    LOOKALIKES,
)
ADVERTISING_IDS = st.one_of(
    st.just("ADVERTISING_ID"),
    UUIDS,  # Android advertising id
    UUIDS.map(str.upper),  # iOS IDFA
    st.just("00000000-0000-0000-0000-000000000000"),
    FREE_TEXT,
)
BOOLS = st.sampled_from(["true", "false", "TRUE", "FALSE"])
"""seeds/004 samples ``true``/``false``; contract §4 ``TRUE``/``false``."""
CTAS = st.one_of(
    st.sampled_from(["batch.CustomAction", "batch.dismiss", "batch.deeplink"]), FREE_TEXT
)
HEX_TOKENS = st.text("0123456789abcdef", min_size=20, max_size=32)
SEGMENTS = st.one_of(st.sampled_from(["Engaged", "New", "Dormant", "One-time"]), FREE_TEXT)
ANY_DATE = st.one_of(
    st.datetimes(dt.datetime(2010, 1, 1), dt.datetime(2035, 12, 31)).map(stamp),
    st.dates(dt.date(2010, 1, 1), dt.date(2035, 12, 31)).map(lambda d: f"{d}T00:00:00"),
)


def cell(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(NULLS, values, values, values)


USERS = st.fixed_dictionaries(
    {
        "install_id": cell(INSTALL_IDS),
        "custom_id": cell(CUSTOM_IDS),
        "advertising_id": cell(ADVERTISING_IDS),
    }
)


def edges(start: dt.datetime, end: dt.datetime, steps: t.Iterable[dt.timedelta]) -> list:
    """Window boundaries of ``steps``-wide windows from the epoch around ``[start, end]``."""
    found = {start, end}
    for step in steps:
        point = EPOCH + (start - step - EPOCH) // step * step
        while point <= end + step:
            found.add(point)
            point += step
    return sorted(found)


def moments(start: dt.datetime, end: dt.datetime, steps: t.Iterable[dt.timedelta]) -> t.Any:
    """Instants on window boundaries, a second off them, or anywhere from a day before
    ``start`` to a day after ``end``."""
    bounds = edges(start, end, steps)
    near = [b + dt.timedelta(seconds=s) for b in bounds for s in (-1, 1)]
    low, high = (
        int((start - dt.timedelta(days=1)).timestamp()),
        int((end + dt.timedelta(days=1)).timestamp()),
    )
    anywhere = st.integers(low, high).map(lambda s: dt.datetime.fromtimestamp(s, UTC))
    return st.one_of(st.sampled_from(bounds), st.sampled_from(near), anywhere)


@st.composite
def event_rows(
    draw: st.DrawFn, kind: str, users: list[dict], when: st.SearchStrategy[dt.datetime]
) -> list[dict]:
    """Rows of one export kind, some of them twice (the same event twice in one export)."""
    rows = []
    for _ in range(draw(st.integers(1, 7))):
        row = {**draw(st.sampled_from(users)), "event_date": stamp(draw(when))}
        if kind == "reachability":
            row["event_type"] = "reachability"
            for name in REACHABILITY_COLUMNS[2:]:
                row[name] = draw(cell(BOOLS))
        else:
            row["event_type"] = draw(st.sampled_from(KINDS[kind].written))
        if kind == "transactional":
            row["transactional_token"] = draw(HEX_TOKENS)
        if kind == "in_app":  # seeds/004: ``inapp_shown;;``, ``inapp_clicked;batch.dismiss;1``
            clicked = row["event_type"] == "inapp_clicked"
            row["cta"] = draw(CTAS) if clicked else ""
            row["cta_position"] = draw(st.sampled_from(["0", "1", "2"])) if clicked else ""
        rows.append(row)
    for _ in range(draw(st.integers(0, 2)) if rows else 0):
        rows.insert(draw(st.integers(0, len(rows))), dict(draw(st.sampled_from(rows))))
    # now and then many rows repeating a few values, as real exports do
    return [dict(row) for row in rows * draw(st.sampled_from([1, 1, 1, 1, 12]))]


@st.composite
def userbase_rows(draw: st.DrawFn) -> list[dict]:
    """One row per installation (the stream's key), each with its own non-null install id."""
    users = draw(
        st.lists(
            USERS.filter(lambda u: u["install_id"] not in ("", "null")),
            max_size=5,
            unique_by=lambda u: u["install_id"],
        )
    )
    return [
        {
            **user,
            "is_optin_push": draw(cell(BOOLS)),
            "install_date": draw(cell(ANY_DATE)),
            "last_start_date": draw(cell(ANY_DATE)),
            "smart_segment": draw(cell(SEGMENTS)),
        }
        for user in users
    ]


# --- what is exported -----------------------------------------------------------------------------


@dataclasses.dataclass
class Scenario:
    """What the vendor holds and how the tap is configured."""

    start: dt.datetime
    end: dt.datetime
    window: str
    lookback: str
    ids: list[str] | None
    """``None``: the setting is left out (default: every id)."""
    partitions: dict[str, dict[str, list[dict]]]
    """Per kind, per campaign token or group id, the events."""
    events: dict[str, list[str]]
    """The ``events`` setting (kinds not named export every event they offer)."""
    reachability: list[dict] | None
    userbase: list[dict] | None

    @property
    def columns(self) -> list[str]:
        return list(IDS) if self.ids is None else self.ids

    def data(self) -> BatchData:
        return BatchData(
            campaigns=self.partitions.get("push", {}),
            transactional=self.partitions.get("transactional", {}),
            in_app=self.partitions.get("in_app", {}),
            reachability=self.reachability or [],
            userbase=self.userbase or [],
        )

    def config(self, fake: BatchFake, window: str | None = None) -> dict:
        block: dict[str, t.Any] = {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "rest_api_key": fake.rest_key,
            "window": window or self.window,
            "lookback": self.lookback,
            "reachability": self.reachability is not None,
            "userbase": self.userbase is not None,
        }
        for kind, tokens in self.partitions.items():
            block[KINDS[kind].setting] = list(tokens)
        if self.ids is not None:
            block["ids"] = self.ids
        if self.events:
            block["events"] = self.events
        return {
            "start_date": self.start.isoformat(),
            "end_date": self.end.isoformat(),
            "poll_interval": 0.01,
            "max_retries": 2,
            "batch": block,
        }

    def streams(self) -> list[str]:
        names = [
            f"batch_{KINDS[k].stream}_{what}" for k in self.partitions for what in ("events", "ids")
        ]
        if self.reachability is not None:
            names.append(REACHABILITY)
        if self.userbase is not None:
            names.append(USERBASE)
        return names


TOKENS = {
    "push": ["CAMPAIGN_TOKEN", "c-2"],
    "transactional": ["GROUP_ID", "welcome"],
    "in_app": ["INAPP_TOKEN", "inapp_b"],
}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    window = draw(st.sampled_from(sorted(STEPS)))
    lookback = draw(st.sampled_from(sorted(LOOKBACKS)))
    start = GRID_DAY + dt.timedelta(days=draw(st.sampled_from([0, 2])))
    end = start + dt.timedelta(days=2)
    ids = draw(
        st.one_of(
            st.none(),
            st.permutations(IDS).flatmap(lambda p: st.integers(1, 3).map(lambda n: list(p[:n]))),
        )
    )
    users = draw(st.lists(USERS, min_size=1, max_size=4))
    when = moments(start, end, [STEPS[window]])
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=3, unique=True))
    partitions = {
        kind: {
            token: draw(event_rows(kind, users, when))
            for token in TOKENS[kind][: draw(st.integers(1, 2))]
        }
        for kind in kinds
    }
    events = {}
    for kind in kinds:
        if draw(st.booleans()):
            names = KINDS[kind].events
            events[KINDS[kind].setting] = draw(
                st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)
            )
    reachability = draw(st.one_of(st.none(), event_rows("reachability", users, when)))
    userbase = draw(st.one_of(st.none(), userbase_rows()))
    if userbase is not None and ids is not None and "install_id" not in ids:
        ids = ["install_id", *ids]  # the userbase's key is exported
    return Scenario(start, end, window, lookback, ids, partitions, events, reachability, userbase)


# --- the reference decoding -----------------------------------------------------------------------


def reference(column: str, text: str) -> t.Any:
    """What a cell means (contract §4): empty and ``null`` are null, dates UTC."""
    if text in ("", "null"):
        return None
    kind = TYPES[column]
    if kind == "boolean":
        return {"true": True, "false": False}[text.lower()]
    if kind == "integer":
        return int(text)
    if kind == "date-time":
        return dt.datetime.strptime(text, STAMP).replace(tzinfo=UTC)
    return text


def on_grid(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """README "Records": ``*_ids`` streams "keep their windows on the fixed grid" (from the epoch)."""
    return EPOCH + (moment - EPOCH) // step * step


def expected(
    scenario: Scenario, window: str | None = None, since: dt.datetime | None = None
) -> dict[str, tuple[list[str], list[dict]]]:
    """Every stream's columns and records (without keys), from the data and the documents,
    for a run that starts at ``since`` (default: ``start_date``)."""
    step = STEPS[window or scenario.window]
    since = since or scenario.start
    ids = scenario.columns
    out: dict[str, tuple[list[str], list[dict]]] = {}

    def within(rows: list[dict], start: dt.datetime) -> list[dict]:
        return [r for r in rows if start <= moment_of(r) < scenario.end]  # [start, end)

    for kind_name, tokens in scenario.partitions.items():
        kind = KINDS[kind_name]
        requested = scenario.events.get(kind.setting) or kind.events
        wanted = {WRITTEN.get(e, e) for e in requested}
        for what in ("events", "ids"):
            stream = f"batch_{kind.stream}_{what}"
            columns = (
                [*ids, "event_date", "event_type", *kind.extra]
                if what == "events"
                else [*ids, "event_type"]
            )
            start = since if what == "events" else on_grid(since, step)
            out[stream] = (
                [*columns, kind.partition],
                [
                    {**{c: reference(c, row[c]) for c in columns}, kind.partition: token}
                    for token, rows in tokens.items()
                    for row in within(rows, start)
                    if row["event_type"] in wanted
                ],
            )
    if scenario.reachability is not None:
        columns = [*ids, *REACHABILITY_COLUMNS]
        out[REACHABILITY] = (
            columns,
            [
                {c: reference(c, row[c]) for c in columns}
                for row in within(scenario.reachability, since)
            ],
        )
    if scenario.userbase is not None:
        columns = [*ids, *USERBASE_COLUMNS]
        out[USERBASE] = (
            columns,
            [{c: reference(c, row[c]) for c in columns} for row in scenario.userbase],
        )
    return out


# --- reading what the tap gives -------------------------------------------------------------------


def meaning(column: str, value: t.Any) -> t.Any:
    """The meaning of a value the tap gave, checking its JSON type."""
    return json_meaning(TYPES.get(column, "string"), value)  # partition columns are strings


def exact(record: dict) -> str:
    """A record with its values' types, so that ``1``, ``True`` and ``"1"`` differ."""
    return json.dumps(
        {
            k: [type(v).__name__, v.isoformat() if isinstance(v, dt.datetime) else repr(v)]
            for k, v in record.items()
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def observed(run: TapRun, stream: str, header: list[str]) -> list[dict]:
    """The stream's records, their values read back, keys left out.

    A column the export does not have (an id that was not requested) may be present but null.
    """
    out = []
    for record in run.records(stream):
        values = {name: meaning(name, v) for name, v in record.items() if name != KEY}
        absent = {name: v for name, v in values.items() if name not in header}
        assert all(v is None for v in absent.values()), (stream, absent)
        out.append({name: v for name, v in values.items() if name in header})
    return out


def check_records(
    scenario: Scenario, run: TapRun, window: str | None = None, since: dt.datetime | None = None
) -> None:
    """Each stream gives exactly the expected records, each once, with its key."""
    want = expected(scenario, window, since)
    assert {m["stream"] for m in run.messages if m["type"] == "RECORD"} <= set(want)
    for stream, (header, records) in want.items():
        got = observed(run, stream, header)
        assert sorted(map(exact, got)) == sorted(map(exact, records)), stream
        schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream)
        keyed = [r.get(KEY) for r in run.records(stream)]
        if stream == USERBASE:  # contract §3: full table, key install_id
            assert schema["key_properties"] == ["install_id"]
            assert keyed == [None] * len(keyed)
        else:  # contract §3: the synthetic key, distinct even for identical rows
            assert schema["key_properties"] == [KEY]
            assert all(type(k) is str and k for k in keyed), stream
            assert len(set(keyed)) == len(keyed), f"{stream}: two records with one key"
        event(f"{stream}: {'some' if records else 'no'} records")
        texts = [v for r in records for v in r.values() if isinstance(v, str)]
        for what, marks in (("a ';' or a quote", ';"'), ("a CR or an LF", "\r\n")):
            if any(c in v for v in texts for c in marks):
                event(f"a value holding {what}")
        if any(v is None for r in records for v in r.values()):
            event("a null value")


def keyed_records(run: TapRun, stream: str) -> list[tuple[str, str]]:
    """(record, key) pairs of a stream, in a stable order."""
    return sorted(
        (json.dumps({k: v for k, v in r.items() if k != KEY}, sort_keys=True), r[KEY])
        for r in run.records(stream)
    )


# --- the fake ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> t.Iterator[BatchFake]:
    """One fake Batch for the module; each example gives it its own data."""
    with BatchFake(BatchData(), job_seconds=0) as server:
        yield server


def serve(fake: BatchFake, scenario: Scenario) -> None:
    fake.data = scenario.data()
    reset(fake)


def reset(fake: BatchFake) -> None:
    fake.jobs.clear()
    fake.log.clear()
    fake.faults.clear()


# --- the properties -------------------------------------------------------------------------------


def documented_sample() -> Scenario:
    """seeds/004's output examples, their placeholders replaced by values holding ``;``,
    quotes, line breaks, unicode, ``null`` and nothing; events at midnight (a window's start),
    a second before it, and twice in one export."""
    start = GRID_DAY
    users = [
        {
            "install_id": "INSTALLATION_ID",
            "custom_id": "CUSTOM_USER_ID",
            "advertising_id": "ADVERTISING_ID",
        },
        {"install_id": 'a;b"c', "custom_id": "line\rone\ntwo\r\n", "advertising_id": ""},
        {"install_id": "日本語🙂\u2028", "custom_id": "null", "advertising_id": '"quoted"'},
    ]
    midnight, morning = start + dt.timedelta(days=1), start + dt.timedelta(hours=9)
    before = midnight - dt.timedelta(seconds=1)

    def rows(kind: str, extra: t.Callable[[str], dict]) -> list[dict]:
        out = []
        for user, when, name in zip(
            users, (midnight, morning, before), KINDS[kind].written, strict=True
        ):
            out.append({**user, "event_date": stamp(when), "event_type": name, **extra(name)})
        return [*out, dict(out[0])]

    def in_app(name: str) -> dict:
        clicked = name == "inapp_clicked"
        return {
            "cta": "batch.CustomAction;x" if clicked else "",
            "cta_position": "1" if clicked else "",
        }

    reachability = [
        {
            **user,
            "event_date": stamp(when),
            "event_type": "reachability",
            "is_reachable": "true",
            "is_optin": "true",
            "has_custom_id": flag,
        }
        for user, when, flag in zip(
            users, (midnight, before, morning), ("false", "TRUE", ""), strict=True
        )
    ]
    userbase = [
        {
            **user,
            "is_optin_push": flag,
            "install_date": "2017-07-24T09:00:00",
            "last_start_date": last,
            "smart_segment": segment,
        }
        for user, flag, last, segment in zip(
            users,
            ("true", "false", ""),
            ("2017-07-24T10:00:00", "", "2017-07-24T00:00:00"),
            ("Engaged", "", 'a;"b"\n'),
            strict=True,
        )
    ]
    return Scenario(
        start=start,
        end=start + dt.timedelta(days=2),
        window="P1D",
        lookback="P3D",
        ids=None,
        partitions={
            "push": {"CAMPAIGN_TOKEN": rows("push", lambda _n: {})},
            "transactional": {
                "GROUP_ID": rows(
                    "transactional",
                    lambda _n: {"transactional_token": "5bc1861d86c96c22685a6b6cbcc72"},
                )
            },
            "in_app": {"INAPP_TOKEN": rows("in_app", in_app)},
        },
        events={},
        reachability=reachability,
        userbase=userbase,
    )


@settings(max_examples=scaled(12), deadline=None)
@given(scenario=scenarios())
@example(scenario=documented_sample())
def test_every_kind_gives_the_documented_records(fake, scenario):
    """Push, transactional and in-app events and ids (one partition per token), reachability and
    userbase: exactly the documented records, JSON types, partition columns and keys. The next
    run, from the first one's STATE, exports the ``lookback`` before the bookmark again (the
    userbase all over again), and its records carry the keys they had (contract §5)."""
    note(f"scenario: {scenario!r}")
    serve(fake, scenario)
    first = run_tap(scenario.config(fake))
    check_records(scenario, first)
    assert fake.requests_to("/storage/"), "files come through the 302 to the storage link"
    assert fake.auth_leaks == []

    reset(fake)
    second = run_tap(scenario.config(fake), state=first.last_state)
    since = max(scenario.start, scenario.end - LOOKBACKS[scenario.lookback])
    check_records(scenario, second, since=since)
    for stream in scenario.streams():
        if stream != USERBASE:
            again = Counter(keyed_records(second, stream)) - Counter(keyed_records(first, stream))
            assert not again, f"{stream}: re-extracted records with other keys"
    assert sorted(map(json.dumps, second.records(USERBASE))) == sorted(
        map(json.dumps, first.records(USERBASE))
    )


@st.composite
def edge_scenarios(draw: st.DrawFn) -> tuple[Scenario, str]:
    """Push campaign events and ids and reachability events, mostly on window boundaries of two
    window sizes; ``start_date`` and ``end_date`` on or off the windows' grid."""
    first, second = draw(st.permutations(sorted(STEPS)))[:2]
    start = GRID_DAY + dt.timedelta(seconds=draw(st.sampled_from([0, 3 * 3600, 13 * 3600 + 1817])))
    end = (
        GRID_DAY
        + dt.timedelta(days=3)
        - dt.timedelta(seconds=draw(st.sampled_from([0, 1, 5 * 3600])))
    )
    bounds = edges(start, end, [STEPS[first], STEPS[second]])
    on_edge = st.one_of(
        st.sampled_from(bounds),
        st.sampled_from(bounds).map(lambda b: b - dt.timedelta(seconds=1)),
    )
    users = draw(st.lists(USERS, min_size=1, max_size=3))
    scenario = Scenario(
        start=start,
        end=end,
        window=first,
        lookback="P1D",
        ids=None,
        partitions={"push": {"CAMPAIGN_TOKEN": draw(event_rows("push", users, on_edge))}},
        events={},
        reachability=draw(event_rows("reachability", users, on_edge)),
        userbase=None,
    )
    return scenario, second


def check_windows(fake: BatchFake, scenario: Scenario, window: str) -> None:
    """The requests' windows tile ``[start, end)`` with inclusive bounds a second apart, and each
    event of the range is in exactly one request's file (contract §5)."""
    step = STEPS[window]
    routes = {
        "campaign/CAMPAIGN_TOKEN/events": (
            scenario.partitions["push"]["CAMPAIGN_TOKEN"],
            scenario.start,
        ),
        "campaign/CAMPAIGN_TOKEN/ids": (
            scenario.partitions["push"]["CAMPAIGN_TOKEN"],
            on_grid(scenario.start, step),
        ),
        "reachability/events": (scenario.reachability or [], scenario.start),
    }
    for route, (rows, start) in routes.items():
        jobs = sorted(
            (j for j in fake.jobs.values() if j.uri.endswith(f"/export/{route}")),
            key=lambda j: j.body["from"],
        )
        spans = [
            (
                dt.datetime.strptime(j.body["from"], STAMP).replace(tzinfo=UTC),
                dt.datetime.strptime(j.body["to"], STAMP).replace(tzinfo=UTC),
            )
            for j in jobs
        ]
        assert spans, route
        assert spans[0][0] == start, route
        assert spans[-1][1] == scenario.end - dt.timedelta(seconds=1), route
        for (_, to), (after, _) in itertools.pairwise(spans):
            assert after == to + dt.timedelta(seconds=1), f"{route}: a gap or an overlap"
        assert all(to - low < step for low, to in spans), route
        # each generated event is its own object: count the files that hold it
        which = {id(row): f"event {n} at {row['event_date']}" for n, row in enumerate(rows)}
        served = Counter(which[id(row)] for job in jobs for row in job.rows)
        inside = [r for r in rows if start <= moment_of(r) < scenario.end]
        assert served == Counter(which[id(r)] for r in inside), (
            f"{route}: an event in no or two windows"
        )
        for row in inside:
            if moment_of(row) in {low for low, _ in spans}:
                event("an event exactly on a window's start")


@settings(max_examples=scaled(8), deadline=None)
@given(case=edge_scenarios())
def test_events_on_window_edges_land_in_exactly_one_window(fake, case):
    """Windows ``[start, end)`` are sent as inclusive ``from``/``to`` a second apart: an event on
    a boundary is in exactly one window, with two window sizes; the events streams' keys do not
    depend on where the windows fall (contract §5)."""
    scenario, other = case
    note(f"scenario: {scenario!r}, other window {other}")
    serve(fake, scenario)
    runs = []
    for window in (scenario.window, other):
        reset(fake)
        run = run_tap(scenario.config(fake, window))
        check_windows(fake, scenario, window)
        check_records(scenario, run, window)
        runs.append(run)
    for stream in ("batch_push_campaign_events", REACHABILITY):
        assert keyed_records(runs[1], stream) == keyed_records(runs[0], stream), stream
