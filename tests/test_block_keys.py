"""Keys of whole blocks hashed in C are exactly the keys of rows hashed one by one in Python."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import block_keys as module
from tap_event_exports.engine.block_keys import block_digests, block_keys
from tap_event_exports.engine.synthetic_keys import SMALL, SyntheticKeys

needs_library = pytest.mark.skipif(module._COMPILED is None, reason="helpers not built")
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200) | st.sampled_from(
    ["", "a", "\x1f", "\x1e", "é", "x" * 300]
)


def one_by_one(scope: str, blocks: list[pa.RecordBatch]) -> list[str]:
    keys = SyntheticKeys(scope)
    result: list[str] = []
    for block in blocks:
        rows = [
            "\x1f".join(values).encode()
            for values in zip(*(column.to_pylist() for column in block.columns), strict=True)
        ]
        result += keys.of_encoded(rows)
    return result


@needs_library
@settings(max_examples=300)
@given(
    scope=st.text(max_size=40),
    width=st.integers(1, 5),
    rows=st.lists(st.lists(TEXT, min_size=5, max_size=5), max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=3),
    ahead=st.booleans(),
)
def test_block_keys_equal_the_keys_of_each_row(scope, width, rows, cuts, ahead):
    """Hashed by the key's own call, or ahead (as the thread parsing the blocks does)."""
    rows = rows + rows[: len(rows) // 2]  # identical rows: ~n repeats, within and across blocks
    columns = [pa.array([row[index] for row in rows], pa.string()) for index in range(width)]
    whole = pa.record_batch(columns, names=[f"c{index}" for index in range(width)])
    bounds = sorted({0, len(rows), *(min(cut, len(rows)) for cut in cuts)})
    blocks = [whole.slice(start, stop - start) for start, stop in itertools.pairwise(bounds)]
    keys = SyntheticKeys(scope)
    compiled = [
        key
        for block in blocks
        for key in block_keys(
            keys, block, block_digests(keys.prefix, block) if ahead else None
        ).to_pylist()
    ]
    assert compiled == one_by_one(scope, blocks)


@needs_library
def test_past_the_small_table_repeats_are_still_counted_exactly():
    distinct = SMALL + 5000
    values = pa.array([str(index) for index in range(distinct)] * 2)
    blocks = [
        pa.record_batch([values.slice(start, 2600)], names=["v"])
        for start in range(0, len(values), 2600)
    ]
    keys = SyntheticKeys("window")
    compiled = [key for block in blocks for key in block_keys(keys, block).to_pylist()]
    assert compiled == one_by_one("window", blocks)
    assert sum(key.endswith("~1") for key in compiled) == distinct


@pytest.mark.parametrize("library", ["present", "absent"])
def test_columns_the_library_does_not_take_are_joined_and_hashed_in_python(library, monkeypatch):
    """Without the library, or with a column it does not read (large strings), the same keys."""
    if library == "absent":
        monkeypatch.setattr(module, "_COMPILED", None)
    values = ["a", "a", "é\x1f", ""]
    numbers = ["1", "1", "2", "3"]
    block = pa.record_batch(
        [pa.array(values, pa.large_string()), pa.array(numbers, pa.large_string())],
        names=["a", "b"],
    )
    assert block_digests(b"w\x1e", block) is None
    keys = block_keys(SyntheticKeys("w"), block)
    assert isinstance(keys, list)
    assert keys == one_by_one("w", [block])
    assert keys[1] == keys[0] + "~1"
