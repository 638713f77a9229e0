"""JSON results turned into CSV text keep every number as the document wrote it.

A JSON parser gives ``1e-07`` and ``0.0000001`` as the same value; Keen's query results are
turned into the CSV text its extraction files hold, so the text must be the document's
(contract §3: the two ``api`` modes give the same records, and synthetic keys hash the text).
The documents here are generated, numbers in every JSON form, strings holding digits, quotes,
backslashes and ``true``, and read in pieces of any size, so tokens are cut anywhere.
"""

from __future__ import annotations

import dataclasses
import io
import json
import typing as t

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.jsonrows import (
    NumberTexts,
    _with_number_texts,
    events_to_csv,
    flatten,
    render,
)
from tests.properties import scaled


@dataclasses.dataclass(frozen=True)
class Number:
    """A JSON number as text."""

    text: str


digits = st.text("0123456789", min_size=1, max_size=25)
numbers = st.builds(
    lambda sign, whole, fraction, exponent: Number(sign + whole + fraction + exponent),
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.builds(lambda a, b: a + b, st.sampled_from("123456789"), digits)),
    st.one_of(st.just(""), digits.map(lambda d: "." + d)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, d: e + s + d,
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.text("0123456789", min_size=1, max_size=4),
        ),
    ),
)
texts = st.text(st.sampled_from(list('ab"\\\n1-9eE.+ truefalsnl{}[]:,é🙂\u2028')), max_size=12)
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
events = st.dictionaries(texts, values, min_size=1, max_size=5)


def dump(value: t.Any, *, ascii_only: bool, spaces: bool) -> str:
    """JSON text of a generated value, numbers written as drawn."""
    comma, colon = (", ", ": ") if spaces else (",", ":")
    if isinstance(value, Number):
        return value.text
    if isinstance(value, list):
        return "[" + comma.join(dump(v, ascii_only=ascii_only, spaces=spaces) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            json.dumps(k, ensure_ascii=ascii_only)
            + colon
            + dump(v, ascii_only=ascii_only, spaces=spaces)
            for k, v in value.items()
        )
        return "{" + comma.join(items) + "}"
    return json.dumps(value, ensure_ascii=ascii_only)


def expected(event: dict[str, t.Any]) -> dict[str, str]:
    """The CSV text of each (flattened) property: numbers as written, lists compact JSON."""
    out: dict[str, str] = {}

    def walk(value: dict[str, t.Any], prefix: str) -> None:
        for key, item in value.items():
            name = prefix + key
            if isinstance(item, dict) and item:
                walk(item, name + ".")
            elif isinstance(item, Number):
                out[name] = item.text
            elif item is None:
                out[name] = ""
            elif isinstance(item, bool):
                out[name] = "true" if item else "false"
            elif isinstance(item, str):
                out[name] = item
            else:
                out[name] = dump(item, ascii_only=False, spaces=False)

    walk(event, "")
    return out


class Pieces:
    """A file read at most ``size`` bytes at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = io.BytesIO(data)
        self._size = size

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._size if size < 0 else min(size, self._size))


@settings(max_examples=scaled(150), deadline=None)
@given(
    meta=values,
    drawn=st.lists(events, max_size=4),
    size=st.one_of(st.integers(1, 8), st.just(65536)),
    ascii_only=st.booleans(),
    spaces=st.booleans(),
)
def test_numbers_keep_their_text_wherever_the_reads_cut(meta, drawn, size, ascii_only, spaces):
    """Every number of every event comes out as written, whatever came before the events."""
    form = {"ascii_only": ascii_only, "spaces": spaces}
    document = (
        f'{{"query": {dump(meta, **form)}, "result": '
        f"[{', '.join(dump(event, **form) for event in drawn)}]}}"
    ).encode()
    source = NumberTexts(Pieces(document, size))
    got = [
        {name: render(value) for name, value in flatten(event).items()}
        for event in ijson.items(_with_number_texts(source), "result.item")
    ]
    assert got == [expected(event) for event in drawn]


def test_the_csv_holds_the_numbers_as_written(tmp_path):
    """``events_to_csv`` writes the document's number text, in lists too."""
    path = tmp_path / "result.json"
    path.write_bytes(
        b'{"result": [{"a": 1e-07, "b": 0.0000001, "c": 1E+16, "d": [1e16, 0.10, -0], "e": 7}]}'
    )
    out, count = events_to_csv(
        str(path), prefix="result.item", what="test", directory=str(tmp_path)
    )
    assert count == 1
    assert open(out, encoding="utf-8").read().splitlines() == [
        "a,b,c,d,e",
        '1e-07,0.0000001,1E+16,"[1e16,0.10,-0]",7',
    ]


@pytest.mark.parametrize("number", ["1e99999999999999999999", "1" * 5000, "-0." + "1" * 5000])
def test_a_number_too_large_to_read_is_a_one_line_error(tmp_path, number):
    """An exponent beyond any decimal, or more digits than an integer is read from: named."""
    path = tmp_path / "result.json"
    path.write_bytes(b'{"result": [{"a": ' + number.encode() + b"}]}")
    with pytest.raises(DataError, match=r"^test: the JSON result holds a number out of range$"):
        events_to_csv(str(path), prefix="result.item", what="test", directory=str(tmp_path))


def test_a_long_string_is_not_kept_while_it_is_read():
    """Only a string's opening quote (and a last backslash) wait for the next bytes, so a long
    string costs one scan, and its digits and escaped quotes are no numbers."""
    text = ('9 \\"1\\\\ ' * 200_000) + "\\"
    document = json.dumps({"result": [{"s": text, "n": 1.50}]}).encode()
    reader = NumberTexts(Pieces(document, 65536))
    waiting = []
    while reader.read(65536):
        waiting.append(len(reader._rest))
    assert max(waiting) <= 2
    assert reader.next_text() == "1.5"
    assert not reader._texts
