"""Synthetic keys: the packed digest table, and the compiled counter where the compiled helpers
were built, give exactly the keys the dict of digests gave.

The reference is the counting as it was before the packed table (:class:`DictKeys`, a dict of
every digest an export produced). Rows are drawn from small pools, so they repeat within a
block and across blocks, and are keyed through every entry point (one row, one text, a block
of encoded rows, a block of rows). The table's sizes are shrunk in most tests so that few rows
already cross every path: the switch from the dict, bulk steps and chunks, buckets shared by
rows of one block, full levels, chains, page boundaries.

``HYPOTHESIS_PROFILE=explore`` (see conftest.py) searches with random seeds and ten times the
examples.
"""

from __future__ import annotations

import collections
import hashlib
import random
import struct

import pyarrow.compute  # noqa: F401 - the table counts blocks in Arrow where pyarrow is loaded
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import synthetic_keys as sk
from tap_event_exports.engine.synthetic_keys import DigestCounts, SyntheticKeys
from tests.properties import scaled


class DictKeys:
    """Synthetic keys counted in a dict of every digest (the implementation before the table)."""

    def __init__(self, scope: str) -> None:
        self._scope = hashlib.blake2b(scope.encode() + b"\x1e", digest_size=16)
        self._seen: dict[bytes, int] = {}

    def __call__(self, row: list[str]) -> str:
        return self.of_encoded(["\x1f".join(row).encode()])[0]

    def of_encoded(self, rows: list[bytes]) -> list[str]:
        keys = []
        for joined in rows:
            hasher = self._scope.copy()
            hasher.update(joined)
            digest = hasher.digest()
            repeat = self._seen.get(digest)
            if repeat is None:
                self._seen[digest] = 1
                keys.append(digest.hex())
            else:
                self._seen[digest] = repeat + 1
                keys.append(f"{digest.hex()}~{repeat}")
        return keys


TINY = {
    "BULK": 4,
    "CHUNK": 24,
    "FIRST_BITS": 3,
    "SPREAD": 1,
    "PAGE_BITS": 3,
    "PAGE_MASK": 7,
}
"""Sizes that send a few dozen rows through every path of the table."""


@pytest.fixture
def python_counts(monkeypatch):
    """Count in Python (the dict, then the packed table), as without the compiled helpers."""
    monkeypatch.setattr(sk, "_COMPILED", None)


@pytest.fixture
def tiny(python_counts, monkeypatch):
    for name, value in TINY.items():
        monkeypatch.setattr(sk, name, value)


COUNTERS = [
    "python",
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(sk._COMPILED is None, reason="compiled helpers not built"),
    ),
]


@pytest.fixture(params=COUNTERS)
def counter(request, monkeypatch):
    """Each way an export's digests are counted: in Python, and compiled (if built)."""
    if request.param == "python":
        monkeypatch.setattr(sk, "_COMPILED", None)
    return request.param


ENTRY_POINTS = ("call", "text", "encoded", "rows")


def key_all(keys, entry: str, rows: list[list[str]]) -> list[str]:
    """Key ``rows`` through one entry point of :class:`SyntheticKeys` (or the reference)."""
    if isinstance(keys, DictKeys):
        return keys.of_encoded(["\x1f".join(row).encode() for row in rows])
    if entry == "call":
        return [keys(row) for row in rows]
    if entry == "text":
        return [keys.of_text("\x1f".join(row)) for row in rows]
    if entry == "encoded":
        return keys.of_encoded(["\x1f".join(row).encode() for row in rows])
    return keys.of_rows(rows)


fields = st.text(alphabet=st.characters(codec="utf-8"), max_size=4)
pools = st.lists(st.lists(fields, min_size=1, max_size=3), min_size=1, max_size=12)


@st.composite
def exports(draw, most: int = 40):
    """A pool of distinct raw rows and blocks of rows drawn from it (repeats everywhere)."""
    pool = draw(pools)
    picks = st.integers(0, len(pool) - 1)
    blocks = draw(
        st.lists(
            st.tuples(st.sampled_from(ENTRY_POINTS), st.lists(picks, max_size=most)), max_size=8
        )
    )
    return [(entry, [pool[i] for i in block]) for entry, block in blocks]


FIXTURES = [HealthCheck.function_scoped_fixture]  # the sizes are set once per test


@settings(max_examples=scaled(300), deadline=None, suppress_health_check=FIXTURES)
@given(export=exports(), small=st.sampled_from([0, 1, 5, 10**9]))
def test_keys_match_the_dict_of_digests(tiny, export, small, monkeypatch):
    monkeypatch.setattr(sk, "SMALL", small)
    ours, reference = SyntheticKeys("stream|partition|window"), DictKeys("stream|partition|window")
    for entry, rows in export:
        assert key_all(ours, entry, rows) == key_all(reference, entry, rows)


@settings(max_examples=scaled(40), deadline=None, suppress_health_check=FIXTURES)
@given(export=exports(most=300), small=st.sampled_from([0, 100]))
def test_keys_match_the_dict_of_digests_at_full_sizes(counter, export, small, monkeypatch):
    """The sizes the tap runs with: blocks of more than :data:`BULK` rows go through Arrow."""
    monkeypatch.setattr(sk, "SMALL", small)
    ours, reference = SyntheticKeys("s"), DictKeys("s")
    assert isinstance(ours._counts, sk.CompiledCounts) == (counter == "compiled")
    for entry, rows in export:
        assert key_all(ours, entry, rows) == key_all(reference, entry, rows)


def crafted(seed: int) -> list[bytes]:
    """Digests that share first words (same bucket and summary in every level), zero words, and
    the largest word: only a comparison of the whole digest tells them apart."""
    rng = random.Random(seed)
    words = [0, 1, 2**64 - 1, rng.getrandbits(64), rng.getrandbits(64)]
    return [
        struct.pack("=QQ", first, second)
        for first in words
        for second in (0, 1, rng.getrandbits(64))
    ]


@settings(max_examples=scaled(200), deadline=None, suppress_health_check=FIXTURES)
@given(
    picks=st.lists(st.lists(st.integers(0, 14), max_size=40), max_size=10),
    seed=st.integers(0, 3),
    arrow=st.booleans(),
)
def test_digest_counts_match_a_counter(tiny, picks, seed, arrow, monkeypatch):
    if not arrow:
        monkeypatch.setattr(sk, "BULK", 10**9)  # every digest one by one
    digests = crafted(seed)
    counts, reference = DigestCounts(), collections.Counter()
    for block in picks:
        expected = counted(reference, [digests[pick] for pick in block])
        assert sorted(counts.add(b"".join(digests[pick] for pick in block))) == expected


def counted(reference: collections.Counter, block: list[bytes]) -> list[tuple[int, int]]:
    """``(index, occurrences before)`` of the block's repeats, counted into ``reference``."""
    repeats = []
    for index, digest in enumerate(block):
        if reference[digest]:
            repeats.append((index, reference[digest]))
        reference[digest] += 1
    return repeats


def test_a_large_export_matches_the_dict_of_digests(counter):
    """340,000 rows in blocks of 2,600, more distinct ones than the first level holds (the
    compiled index is rebuilt ten times, its digests fill five pages), with rows repeated next
    to each other, within a block and across blocks."""
    rng = random.Random(7)
    rows = [[f"{n}", "installs", f"{n % 977}"] for n in range(300_000)]
    rows += [rng.choice(rows) for _ in range(40_000)]  # repeats of rows from anywhere
    rng.shuffle(rows)
    for index in range(0, len(rows) - 1, 50):
        rows[index + 1] = rows[index]  # the same event twice
    ours, reference = SyntheticKeys("mytracker_installs|"), DictKeys("mytracker_installs|")
    got, want = [], []
    for start in range(0, len(rows), 2600):
        block = ["\x1f".join(row).encode() for row in rows[start : start + 2600]]
        got.extend(ours.of_encoded(block))
        want.extend(reference.of_encoded(block))
    assert got == want
    distinct = len({tuple(row) for row in rows})
    assert distinct > 262_144, "a second level was opened"
    assert sum("~" in key for key in got) == len(rows) - distinct
    assert len(set(got)) == len(got)


def test_one_row_at_a_time_on_a_large_export_matches_the_dict_of_digests(counter):
    """The record reader's rows one by one, past the dict, without Arrow."""
    rng = random.Random(3)
    pool = [[f"{n}", f"{n % 13}"] for n in range(20_000)]
    rows = [rng.choice(pool) for _ in range(60_000)]
    ours, reference = SyntheticKeys("w"), DictKeys("w")
    assert [ours(row) for row in rows] == [reference(row) for row in rows]


@pytest.mark.usefixtures("counter")
def test_keys_do_not_depend_on_how_rows_are_cut_into_blocks(monkeypatch):
    for name, value in TINY.items():
        monkeypatch.setattr(sk, name, value)
    rng = random.Random(5)
    pool = [[f"{n}"] for n in range(60)]
    rows = [rng.choice(pool) for _ in range(500)]
    whole = SyntheticKeys("w").of_rows(rows)
    cut, keys = [], SyntheticKeys("w")
    start = 0
    while start < len(rows):
        size = rng.randrange(0, 70)
        cut.extend(keys.of_rows(rows[start : start + size]))
        start += size
    assert cut == whole == DictKeys("w").of_encoded(["\x1f".join(r).encode() for r in rows])


compiled_only = pytest.mark.skipif(sk._COMPILED is None, reason="compiled helpers not built")


@compiled_only
@settings(max_examples=scaled(200), deadline=None)
@given(
    picks=st.lists(st.lists(st.integers(0, 14), max_size=40), max_size=10), seed=st.integers(0, 3)
)
def test_compiled_counts_match_a_counter(picks, seed):
    """Digests sharing their first word share a slot of the index: only the whole digest tells
    them apart."""
    digests = crafted(seed)
    counts, reference = sk.CompiledCounts.made(), collections.Counter()
    assert counts is not None
    for block in picks:
        expected = counted(reference, [digests[pick] for pick in block])
        assert counts.add(b"".join(digests[pick] for pick in block)) == expected
    assert [counts.add_one(digest) for digest in digests] == [reference[d] for d in digests]


@compiled_only
def test_compiled_counts_fill_blocks_in_place_past_pages_and_index_rebuilds():
    """A block's occurrence counts land in the caller's array; 140,000 distinct digests cross two
    page boundaries and nine rebuilds of the index."""
    import ctypes

    rng = random.Random(11)
    pool = [rng.randbytes(16) for _ in range(140_000)]
    rows = pool + [rng.choice(pool) for _ in range(20_000)]
    counts, reference = sk.CompiledCounts.made(), collections.Counter()
    assert counts is not None
    for start in range(0, len(rows), 8192):
        block = rows[start : start + 8192]
        before = (ctypes.c_int64 * len(block))()
        digests = ctypes.create_string_buffer(b"".join(block))
        repeats = counts.add_into(len(block), digests, before)
        expected = []
        for digest in block:
            expected.append(reference[digest])
            reference[digest] += 1
        assert list(before) == expected
        assert repeats == sum(1 for seen in expected if seen)


def test_positions_must_fit_a_bucket():
    store = sk._Store()
    store.digests = [b""] * ((sk.LOW >> sk.PAGE_BITS) - 1)  # pages up to 2**32 - 2**17 rows
    store._new_page()  # the last page whose positions + 1 fit 32 bits
    with pytest.raises(OverflowError, match="distinct rows in one export"):
        store._new_page()


def test_keys_by_name_hash_the_named_non_empty_values():
    """Keen's keys: the same event, whatever the column order and the other events' columns;
    a value under another name is another event."""

    def key(header: list[str], row: list[str]) -> str:
        keys = SyntheticKeys("keen_pageviews|", by_name=True)
        keys.columns(header)
        return keys(row)

    first = key(["keen.timestamp", "a"], ["2024-03-01T10:00:00.000Z", "x"])
    assert key(["a", "keen.timestamp"], ["x", "2024-03-01T10:00:00.000Z"]) == first
    assert key(["late", "a", "keen.timestamp"], ["", "x", "2024-03-01T10:00:00.000Z"]) == first
    assert key(["keen.timestamp", "b"], ["2024-03-01T10:00:00.000Z", "x"]) != first
    assert key(["keen.timestamp", "a"], ["2024-03-01T10:00:00.000Z", "y"]) != first
    by_position = SyntheticKeys("keen_pageviews|")
    assert by_position(["2024-03-01T10:00:00.000Z", "x"]) != by_position(
        ["x", "2024-03-01T10:00:00.000Z"]
    )
