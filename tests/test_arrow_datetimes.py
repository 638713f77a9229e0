"""Date-times typed by Arrow kernels give exactly the record reader's text, or defer to it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import arrow_datetimes
from tap_event_exports.engine.arrow_datetimes import ArrowDateTimes
from tap_event_exports.engine.converters import DateTimeReader

UTC = dt.timezone.utc
TIMEZONES = ["UTC", "Asia/Seoul", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu"]
BULK_FORMS = [
    "2025.1.6 10:35",
    "2025.12.31 23:59",
    "2025.01.06 0:05",
    "2025-01-06 10:38:10.036",
    "2025-01-06T10:38:10",
    "2025-01-06 10:38:10.5",
    "2025-01-06 10:38:10.000001",
    "2025-07-01 12:00:00.123456",
    "2025-01-06T10:38:10.036Z",
    "2025-01-06 10:38:10+09:00",
    "2025-01-06T10:38:10.25-03:30",
    "1999-12-31 23:59:59",
    "1736127307",  # unix seconds
    "0",
    "99999999999",
    "100000000001",  # from here on milliseconds
    "1736127307268",
    "253402300799999",
    None,
]


@pytest.fixture(autouse=True, params=["compiled", "arrow"])
def path(request, monkeypatch):
    """Every test runs with ``datetimes.c`` (where it was built) and with Arrow's kernels."""
    if request.param == "arrow":
        monkeypatch.setattr(arrow_datetimes, "_COMPILED", None)
    elif arrow_datetimes._COMPILED is None:
        pytest.skip("the compiled helpers were not built")
    return request.param


def expected(values, timezone):
    reader = DateTimeReader(timezone)
    return [None if value is None else reader(value) for value in values]


@pytest.mark.parametrize("repeats", [1, 10])  # 10: converted once per distinct value
@pytest.mark.parametrize("timezone", TIMEZONES)
def test_common_forms_equal_the_record_reader(timezone, repeats):
    column = pa.array(BULK_FORMS * repeats)
    typed = ArrowDateTimes(timezone)(column)
    assert typed is not None
    assert typed.type == pa.string()
    assert typed.to_pylist() == expected(BULK_FORMS * repeats, timezone)


def test_rendering_is_pythons_isoformat_in_utc():
    typed = ArrowDateTimes("Asia/Seoul")(
        pa.array(["2025.1.6 10:35", "2025-01-06 10:38:10.036", "2025-01-06T10:38:10.036Z"])
    )
    assert typed.to_pylist() == [
        "2025-01-06T01:35:00+00:00",
        "2025-01-06T01:38:10.036000+00:00",
        "2025-01-06T10:38:10.036000+00:00",
    ]


@pytest.mark.parametrize(
    "odd",
    [
        "2025.1.6 1:5",  # Arrow's strptime reads it, the record reader does not
        "2025.13.6 10:35",
        "2025-02-30 10:00:00",
        "2025-01-06 10:38:10.1234567",  # more than microseconds
        "253402300800000",  # unix milliseconds past 9999-12-31
        "1000000000000000000",
        "9" * 19,
        "2025-01-06",
        "0999-01-01 00:00:00",
        "soon",
    ],
)
def test_other_forms_are_left_to_the_per_value_converter(odd):
    assert ArrowDateTimes("UTC")(pa.array(["2025.1.6 10:35", odd])) is None
    assert ArrowDateTimes("UTC")(pa.array(["2025.1.6 10:35", odd] * 40)) is None


@pytest.mark.parametrize(
    ("timezone", "local"),
    [
        ("Europe/Berlin", "2025-10-26 02:30:00"),  # happens twice
        ("Europe/Berlin", "2025-03-30 02:30:00"),  # does not happen
        ("America/St_Johns", "2025-11-02 01:30:00"),
    ],
)
def test_hours_around_a_clock_change_are_left_to_python(timezone, local):
    """Python reads these with fold=0; Arrow is not asked to guess."""
    assert ArrowDateTimes(timezone)(pa.array([local])) is None
    # the hours either side of it still go in bulk
    assert ArrowDateTimes(timezone)(pa.array(["2025-10-25 12:00:00"])) is not None


def test_all_null_and_empty_columns():
    assert ArrowDateTimes("Asia/Seoul")(pa.array([None, None], pa.string())).to_pylist() == [
        None,
        None,
    ]
    assert ArrowDateTimes("UTC")(pa.array([], pa.string())).to_pylist() == []


def test_a_column_equal_to_the_previous_one_gets_the_same_text():
    convert = ArrowDateTimes("Asia/Seoul")
    first = convert(pa.array(["2025.1.6 10:35", None]))
    assert convert(pa.array(["2025.1.6 10:35", None])) is first
    other = convert(pa.array(["2025.1.6 10:36", None]))
    assert other.to_pylist() == ["2025-01-06T01:36:00+00:00", None]
    assert convert(pa.array(["2025.1.6 10:35", "x"])) is None


FORMS = ["dotted", "iso-space", "iso-t", "iso-fraction", "zulu", "offset", "unix", "millis"]


def _written(moment: dt.datetime, form: str, timezone: str) -> str:
    """``moment`` (UTC) as an export would write it in ``form`` (local forms in ``timezone``)."""
    local = moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    if form == "dotted":
        return f"{local.year}.{local.month}.{local.day} {local.hour}:{local.minute:02d}"
    if form == "iso-space":
        return local.strftime("%Y-%m-%d %H:%M:%S")
    if form == "iso-t":
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    if form == "iso-fraction":  # 1 to 6 digits, as exports write milliseconds and less
        return local.isoformat(sep=" ", timespec="microseconds").rstrip("0").rstrip(".")
    if form == "zulu":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "offset":
        return moment.astimezone(ZoneInfo(timezone)).isoformat()
    seconds = int(moment.timestamp())
    return str(seconds) if form == "unix" else str(seconds * 1000 + moment.microsecond // 1000)


MOMENTS = st.datetimes(
    min_value=dt.datetime(1971, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    start=MOMENTS,
    steps=st.lists(st.integers(min_value=0, max_value=3 * 86_400_000_000), min_size=1, max_size=80),
    forms=st.lists(st.sampled_from(FORMS), min_size=1, max_size=3),
    timezone=st.sampled_from([*TIMEZONES, "America/New_York", "Australia/Lord_Howe"]),
    nulls=st.booleans(),
)
def test_generated_columns_equal_the_record_reader_or_defer(start, steps, forms, timezone, nulls):
    """Columns of nearby times (a block's), mixed forms, zones with and without clock changes."""
    values: list[str | None] = [
        _written(start + dt.timedelta(microseconds=step), forms[index % len(forms)], timezone)
        for index, step in enumerate(steps)
    ]
    if nulls:
        values[::3] = [None] * len(values[::3])
    typed = ArrowDateTimes(timezone)(pa.array(values * 2, pa.string()))  # repeats: per distinct
    if timezone == "UTC":  # no clock changes: every one of these forms goes in bulk
        assert typed is not None
    if typed is not None:
        assert typed.to_pylist() == expected(values * 2, timezone)


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York"])
def test_a_block_across_a_clock_change_gets_each_hours_offset(timezone):
    """Times on both sides of a change (none in its hour), within a day: two offsets."""
    values = ["2025-03-29 23:30:00", "2025-03-30 01:15:00", "2025-03-30 04:45:00", None]
    values += ["2025-11-01 22:00:00", "2025-11-02 03:10:00"] if timezone != "Europe/Berlin" else []
    for column in (values[:4], values):
        typed = ArrowDateTimes(timezone)(pa.array(column * 20))
        assert typed is not None
        assert typed.to_pylist() == expected(column * 20, timezone)
    berlin = ArrowDateTimes("Europe/Berlin")(pa.array(values[:3])).to_pylist()
    assert berlin == [
        "2025-03-29T22:30:00+00:00",
        "2025-03-30T00:15:00+00:00",
        "2025-03-30T02:45:00+00:00",
    ]


def compiled_only(convert: ArrowDateTimes) -> ArrowDateTimes:
    """``convert`` with the Arrow kernels' path made to fail: only ``datetimes.c`` may answer."""

    def no_arrow(column):
        raise AssertionError(f"went to Arrow's kernels: {column.to_pylist()[:5]}")

    convert._convert_values = no_arrow
    return convert


@pytest.mark.parametrize("timezone", TIMEZONES)
def test_the_compiled_path_reads_every_common_form(timezone, path):
    if path != "compiled":
        pytest.skip("datetimes.c only")
    # local times within the hours whose offsets go to datetimes.c as a table (TABLE_HOURS)
    values = [
        v for v in BULK_FORMS if v is None or not v.startswith(("1999", "2025.12", "2025-07"))
    ]
    typed = compiled_only(ArrowDateTimes(timezone))(pa.array(values * 3))
    assert typed.to_pylist() == expected(values * 3, timezone)


CLOSE_TO_FORMS = st.lists(
    st.sampled_from([*"0123456789.-: TZz+,", "2025", "1999", "9999", "1000", "0999"]),
    max_size=12,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            CLOSE_TO_FORMS,
            st.sampled_from([v for v in BULK_FORMS if v is not None]),
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=6,
    ),
    timezone=st.sampled_from(["UTC", "Asia/Seoul", "America/St_Johns", "Europe/Berlin"]),
)
def test_the_compiled_path_gives_the_record_readers_text_or_stops(values, timezone):
    """Text near the forms (and any text): ``datetimes.c`` answers exactly, or not at all."""
    compiled = arrow_datetimes._COMPILED
    if compiled is None:
        pytest.skip("datetimes.c only")
    convert = ArrowDateTimes(timezone)
    typed = convert._convert_compiled(pa.array(values, pa.string()), *compiled)
    if typed is not None:
        assert typed.to_pylist() == expected(values, timezone)


@settings(max_examples=300, deadline=None)
@given(
    start=MOMENTS,
    steps=st.lists(st.integers(min_value=0, max_value=3 * 86_400_000_000), min_size=1, max_size=80),
    forms=st.lists(st.sampled_from(FORMS), min_size=1, max_size=3),
)
def test_the_compiled_path_takes_every_generated_utc_column(start, steps, forms):
    if arrow_datetimes._COMPILED is None:
        pytest.skip("datetimes.c only")
    values = [
        _written(start + dt.timedelta(microseconds=step), forms[index % len(forms)], "UTC")
        for index, step in enumerate(steps)
    ]
    typed = compiled_only(ArrowDateTimes("UTC"))(pa.array(values, pa.string()))
    assert typed.to_pylist() == expected(values, "UTC")


@st.composite
def written_fields(draw):
    """The forms with any field values, valid or not (days past a month's end, hour 24, …)."""

    def field(low, high, width=2):
        value = str(draw(st.integers(low, high)))
        return value.zfill(width) if draw(st.booleans()) or width == 4 else value

    year = field(990, 10_000, 4)
    if draw(st.booleans()):
        return f"{year}.{field(0, 13)}.{field(0, 32)} {field(0, 25)}:{field(0, 61).zfill(2)}"
    text = f"{year}-{field(0, 13).zfill(2)}-{field(0, 32).zfill(2)}{draw(st.sampled_from('T '))}"
    text += f"{field(0, 24).zfill(2)}:{field(0, 60).zfill(2)}:{field(0, 60).zfill(2)}"
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", max_size=8))
    return text + draw(
        st.sampled_from(["", "Z", "z"]) | st.from_regex(r"[+-][0-9]{2}:[0-9]{2}", fullmatch=True)
    )


@settings(max_examples=2000, deadline=None)
@given(
    values=st.lists(written_fields(), min_size=1, max_size=4),
    timezone=st.sampled_from(["UTC", "Asia/Seoul", "America/St_Johns", "Asia/Kathmandu"]),
)
def test_the_compiled_path_checks_every_field_as_python_does(values, timezone):
    compiled = arrow_datetimes._COMPILED
    if compiled is None:
        pytest.skip("datetimes.c only")
    typed = ArrowDateTimes(timezone)._convert_compiled(pa.array(values, pa.string()), *compiled)
    if typed is not None:
        assert typed.to_pylist() == expected(values, timezone)
