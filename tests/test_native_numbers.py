"""The compiled number and integer readers: Arrow's values wherever they answer, and they
answer for the forms exports use."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from singer_sdk.contrib.msgspec import encoder

from tap_event_exports.engine import columnar, native_numbers
from tap_event_exports.engine.converters import to_number

pytestmark = pytest.mark.skipif(
    native_numbers._READ is None, reason="the compiled helpers were not built"
)


def by_arrow(column: pa.Array, kind: str) -> pa.Array | None:
    """The columnar reader's typing without the compiled readers (its regex, cast and +0.0)."""
    with mock.patch.object(native_numbers, "_READ", None):
        return columnar._typed(column, kind, None)


def same(ours: pa.Array, theirs: pa.Array) -> None:
    assert ours.type == theirs.type
    assert ours.null_count == theirs.null_count
    for mine, reference in zip(ours.to_pylist(), theirs.to_pylist(), strict=True):
        if isinstance(reference, float):
            assert struct.pack("<d", mine) == struct.pack("<d", reference), (mine, reference)
        else:
            assert mine == reference


DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=22)
NUMBERS = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-", "+"]),
    DIGITS,
    st.one_of(st.just(""), st.just("."), DIGITS.map(lambda d: "." + d)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, d: e + s + d,
            st.sampled_from(["e", "E"]),
            st.sampled_from(["", "+", "-"]),
            st.text(alphabet="0123456789", min_size=0, max_size=3),
        ),
    ),
)
VALUES = st.one_of(NUMBERS, st.text(max_size=6), st.sampled_from(["-0", "-0.0", "1e22", "1e-22"]))


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.one_of(st.none(), VALUES), min_size=1, max_size=40))
@example(values=["9007199254740993"])  # 2^53 + 1: beyond the exact range
@example(values=["0.1", "0.2", "0.30000000000000004", "123456789012345.6", "-0"])
@example(values=["1" * 18, "-" + "9" * 18, "1" * 19])
@example(values=["1" * 40, "1e" + "9" * 40, "-" + "9" * 25 + ".5"])  # no overflow on the way
def test_any_text_is_read_as_arrow_reads_it_or_left_to_arrow(values):
    column = pa.array(values, pa.string())
    for kind in ("number", "integer"):
        ours = native_numbers.read_numbers(column, kind)
        theirs = by_arrow(column, kind)
        if ours is None:
            continue
        assert theirs is not None, values
        same(ours, theirs)


@settings(max_examples=300, deadline=None)
@given(
    whole=st.integers(0, 10**9),
    fraction=st.text(alphabet="0123456789", min_size=0, max_size=5),
    exponent=st.integers(-5, 5),
    signs=st.tuples(st.booleans(), st.booleans()),
)
def test_the_forms_exports_use_are_read(whole, fraction, exponent, signs):
    negative, nulls = signs
    text = ("-" if negative else "") + str(whole) + ("." + fraction if fraction else "")
    values = [text, text + f"e{exponent}", None if nulls else "0"]
    column = pa.array(values, pa.string())
    ours = native_numbers.read_numbers(column, "number")
    assert ours is not None, values
    same(ours, by_arrow(column, "number"))
    integers = pa.array([str(whole), f"-{whole}", None], pa.string())
    read = native_numbers.read_numbers(integers, "integer")
    assert read is not None
    assert read.to_pylist() == [whole, -whole, None]


def test_minus_zero_is_zero_and_sliced_columns_are_left_to_arrow():
    got = native_numbers.read_numbers(pa.array(["-0", "-0.0e5", "2.5"]), "number")
    assert got is not None
    assert [math.copysign(1, value) for value in got.to_pylist()] == [1, 1, 1]
    assert native_numbers.read_numbers(pa.array(["1", "2"]).slice(1), "number") is None


def record_reader_json(value: str | None) -> str | None:
    """The JSON the record reader writes for a number column's value (or ``None``: null)."""
    if value is None:
        return None
    return encoder.encode(to_number(value)).decode()


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.one_of(st.none(), VALUES), min_size=1, max_size=40))
@example(values=["12.50", "007", "-0", "-0.0", "-00.000", "0012.5000", "100", None])
@example(values=["0.00001", "0.0000123456789", "123456789012345.6", "999999999999999.9"])
@example(values=["0.000001", "1" * 18, "1" * 19, "0" * 30 + "1", "1e5", ".5", "5.", "+1.5"])
@example(values=["12345678901234567.25", "-0.000001234567890123", "123456789012345678.000"])
@example(
    values=["0.0000001234567890123", "00000000012.50000", "0.000000000000000", "-0.0" + "0" * 20]
)
def test_number_json_is_the_record_readers_json_or_left_to_it(values):
    """Where the compiled writer answers, each value's JSON is the record reader's, byte for
    byte, and decodes to the record reader's value; a block it does not answer for whole is
    left to the converter."""
    whole = native_numbers.number_json(pa.array(values, pa.string()))
    answered = [native_numbers.number_json(pa.array([value], pa.string())) for value in values]
    assert (whole is not None) == all(one is not None for one in answered)
    for value, one in zip(values, answered, strict=True):
        if one is None:
            continue
        try:
            expected = record_reader_json(value)
        except (ValueError, ArithmeticError):
            pytest.fail(f"{value!r} has JSON from the compiled writer but not the record reader")
        assert one.texts.to_pylist() == [expected]
        [got] = one.to_pylist()
        reference = None if value is None else to_number(value)
        assert type(got) is type(reference), (value, got)
        if isinstance(reference, float):
            assert struct.pack("<d", got) == struct.pack("<d", reference)
        elif isinstance(reference, Decimal):
            assert got.as_tuple() == reference.as_tuple()
        else:
            assert got == reference
    if whole is not None:
        assert whole.texts.null_count == values.count(None)
        assert whole.texts.to_pylist() == [one.texts[0].as_py() for one in answered if one]


@settings(max_examples=300, deadline=None)
@given(
    whole=st.text(alphabet="0123456789", min_size=1, max_size=8),
    fraction=st.text(alphabet="0123456789", min_size=0, max_size=6),
    negative=st.booleans(),
    nulls=st.booleans(),
)
def test_number_json_answers_for_the_forms_exports_use(whole, fraction, negative, nulls):
    """Prices, amounts and counts as exports write them get their JSON from the compiled
    writer (a value below 0.00001 is the only plain form left to the converter)."""
    text = ("-" if negative else "") + whole + ("." + fraction if fraction else "")
    significant = (whole + fraction).lstrip("0")
    assume_fixed = (
        not fraction
        or int(whole) != 0
        or not significant
        or (len(fraction) - len(fraction.lstrip("0")) <= 4)
    )
    values = [text, None if nulls else "0"]
    got = native_numbers.number_json(pa.array(values, pa.string()))
    if not assume_fixed:
        assert got is None
        return
    assert got is not None, values
    assert got.texts.to_pylist() == [record_reader_json(value) for value in values]


def test_number_json_leaves_sliced_columns_and_stops_at_the_first_other_form():
    assert native_numbers.number_json(pa.array(["1", "2"]).slice(1)) is None
    assert native_numbers.number_json(pa.array(["1.5", "2.5e3"])) is None
    assert native_numbers.number_json(pa.array([None, None], pa.string())).texts.to_pylist() == [
        None,
        None,
    ]


@settings(max_examples=200, deadline=None)
@given(
    whole=st.text(alphabet="0123456789", min_size=1, max_size=20).map(
        lambda d: d.lstrip("0") or "0"
    ),
    fraction=st.text(alphabet="0123456789", min_size=1, max_size=20),
    negative=st.booleans(),
)
def test_number_json_keeps_long_decimals_as_the_record_reader_does(whole, fraction, negative):
    """A decimal of more than 16 characters is a ``Decimal`` to the record reader, written as
    it is; the column's Python values are those ``Decimal``s, not floats."""
    text = ("-" if negative else "") + whole + "." + fraction
    if len(text) <= 16:
        return
    got = native_numbers.number_json(pa.array([text], pa.string()))
    leading = len(fraction) - len(fraction.lstrip("0"))
    if whole == "0" and leading > 5:
        assert got is None  # str() of such a Decimal has an exponent: left to the converter
        return
    assert got is not None, text
    assert got.texts.to_pylist() == [record_reader_json(text)] == [text]
    [value] = got.to_pylist()
    assert isinstance(value, Decimal)
    assert value.as_tuple() == Decimal(text).as_tuple()
