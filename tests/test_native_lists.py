"""List values read in C are exactly the lists ``to_array`` reads, or left to it."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import native_lists
from tap_event_exports.engine.lists import to_array
from tap_event_exports.engine.native_lists import json_lists
from tap_event_exports.sandbox.mytracker import escape_list

pytestmark = pytest.mark.skipif(native_lists._TO_JSON is None, reason="helpers not built")

DOCUMENTED = "['param1','param2\\n with line break','param3 with special characters\\'\\\\\",' ]"
"""The selector dictionary's example of ``params.name``, ``""`` read as CSV's doubled quote."""
PIECES = ["'", '"', ",", "[", "]", " ", "\n", "\r", "\t", "\\", "a", "é", "\x1f", "\xa0", "\u2003"]
ITEM = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=6).map("".join)


@st.composite
def list_texts(draw):
    """Lists as vendors write them, well formed or nearly: quoted items, odd spacing."""
    items = draw(st.lists(ITEM, max_size=5))
    quotes = [draw(st.sampled_from(["'", '"'])) for _ in items]
    space = st.sampled_from(["", " ", "  ", "\n", "\t", "\x1c", "\xa0"])
    inner = (draw(space) + "," + draw(space)).join(
        q + item + q for q, item in zip(quotes, items, strict=True)
    )
    text = (
        "[" + draw(space) + inner + draw(st.sampled_from(["", ",", " ,", ", "])) + draw(space) + "]"
    )
    return draw(space) + text + draw(space) if draw(st.booleans()) else text


def reference(value, syntax):
    try:
        return to_array(value, syntax)
    except ValueError:
        return "refused"


@settings(max_examples=3000)
@given(
    st.lists(list_texts() | ITEM | st.none(), min_size=1, max_size=5),
    st.sampled_from(["json", "quoted"]),
)
@example(["['a,b','param1','param with\n line break']"], "quoted")
@example(["[\"it's\", 'x']", "[]", "[ ]", "['a',]", None], "quoted")
@example(["['a'b', 'c']"], "quoted")
@example(['["a\\nb"]'], "json")
@example([DOCUMENTED, "['a\\\\n', 'b']", "['x']"], "quoted")
@example(["['it\\'s', 'x']", "['a\\', 'b']"], "quoted")
def test_native_lists_equal_to_array_or_defer(values, syntax):
    typed = json_lists(pa.array(values, pa.string()), syntax)
    if typed is None:
        return
    typed.texts.validate(full=True)
    texts = typed.texts.to_pylist()
    for value, text in zip(values, texts, strict=True):
        if value is None:
            assert text is None
        else:
            assert json.loads(text) == reference(value, syntax), (value, text)
    assert typed.to_pylist() == [None if v is None else to_array(v, syntax) for v in values]


def test_myTrackers_lists_and_simple_lists_are_read_in_c():
    values = [
        "['a,b','param1','param with\n line break']",
        "[\"it's\", 'plain']",
        "[]",
        "['x', ]",
        None,
    ]
    typed = json_lists(pa.array(values), "quoted")
    assert typed is not None
    assert typed.to_pylist() == [None if v is None else to_array(v, "quoted") for v in values]
    assert typed.texts.to_pylist()[0] == '["a,b","param1","param with\\n line break"]'
    simple = json_lists(pa.array(['["1", "2"]', "['3']"]), "json")
    assert simple is not None
    assert simple.to_pylist() == [["1", "2"], ["3"]]


def test_what_only_json_loads_reads_is_left_to_python():
    assert json_lists(pa.array(['["a\\nb"]']), "json") is None  # an escape
    assert json_lists(pa.array(["[1, 2]"]), "json") is None  # numbers
    assert json_lists(pa.array(["['a' ,\u2003'b']"]), "quoted") is None  # \\s beyond ASCII


def test_clickhouse_escapes_are_read_in_c_as_to_array_reads_them():
    """The documented form is read in C; a \\xHH byte beyond ASCII is left to ``to_array``."""
    values = [DOCUMENTED, "['plain']", None, "['a\\x41\\x4g\\w\\0']", "['it\\'s' , \"q\\\"\"]"]
    typed = json_lists(pa.array(values), "quoted")
    assert typed is not None
    assert typed.to_pylist() == [
        ["param1", "param2\n with line break", "param3 with special characters'\\\","],
        ["plain"],
        None,
        ["aA\\x4g\\w\0"],
        ["it's", 'q"'],
    ]
    assert typed.to_pylist() == [None if v is None else to_array(v, "quoted") for v in values]
    assert json_lists(pa.array(["['caf\\xc3\\xa9']"]), "quoted") is None
    assert to_array("['caf\\xc3\\xa9']", "quoted") == ["café"]
    assert to_array("['a\\\\b']", "json") == ["a\\\\b"]  # the JSON syntax reads no escapes


@settings(max_examples=500)
@given(st.lists(st.text(), max_size=6))
def test_any_items_the_fake_escapes_are_read_in_c(items):
    typed = json_lists(pa.array([escape_list(items)]), "quoted")
    assert typed is not None
    assert typed.to_pylist() == [items]
