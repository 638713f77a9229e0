"""Synthetic keys (``_record_id``) for exports without a vendor id.

Numbering repeats (``~n``) needs every digest an export has produced so far. Where the
compiled helpers were built, :class:`CompiledCounts` counts them (``digest_counts.c``, about 30
bytes a row). Otherwise a dict of them costs about 140 bytes a row (35 MiB for a 257k-row
window), so past :data:`SMALL` rows an export counts them in :class:`DigestCounts`, packed in
about 30 bytes a row, and exactly all the same: digests are compared whole, never by a prefix.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import mmap
import struct
import sys
import typing as t

from tap_event_exports.engine import native

if t.TYPE_CHECKING:
    import pyarrow as pa


# --- synthetic keys --------------------------------------------------------------------------

SMALL = 1 << 15
"""Distinct rows an export counts in a dict (the fastest for few rows; about 4.5 MiB at most)."""


class SyntheticKeys:
    """``_record_id`` values for exports without a vendor id.

    A key is a hash of the row's raw values and its window, so extracting the same data again
    gives the same key; the n-th repetition of an identical row in one export gets ``~n``
    appended, so identical rows stay distinct.
    """

    def __init__(self, scope: str, *, by_name: bool = False) -> None:
        """``scope`` names the export the rows come from (stream, partition and window).

        ``by_name``: a row's hash covers its non-empty values with their column names, in name
        order, so the key does not change with the file's column order or with columns other
        rows brought (see :meth:`columns`); otherwise it covers every value in the file's order.
        """
        self.prefix = scope.encode() + b"\x1e"
        """What each row's hash starts with (:meth:`joined` of the row follows)."""
        self.by_name = by_name
        self._named: list[tuple[int, str]] = []
        """With ``by_name``: (position, ``name`` and the group separator) in name order."""
        self._scope = hashlib.blake2b(self.prefix, digest_size=16)
        compiled = CompiledCounts.made()
        self._seen: dict[bytes, int] | None = {} if compiled is None else None
        """Occurrences per digest, until the export has more than :data:`SMALL` distinct rows
        (without the compiled helpers)."""
        self._counts: DigestCounts | CompiledCounts = compiled or DigestCounts()
        """Occurrences per digest from then on (from the start with the compiled helpers)."""

    def columns(self, header: list[str]) -> None:
        """The header of the file whose rows come next (needed with ``by_name``)."""
        order = sorted(range(len(header)), key=header.__getitem__)
        self._named = [(position, f"{header[position]}\x1d") for position in order]

    def joined(self, row: t.Sequence[str]) -> str:
        """What a raw row's hash covers after the prefix, joined by the unit separator."""
        if not self.by_name:
            return "\x1f".join(row)
        if not self._named and row:
            msg = "synthetic keys by name: no header given (columns() comes first)"
            raise RuntimeError(msg)
        return "\x1f".join(name + row[position] for position, name in self._named if row[position])

    def __call__(self, row: t.Sequence[str]) -> str:
        """The key of one raw row."""
        return self.of_text(self.joined(row))

    def of_text(self, joined: str) -> str:
        """The key of one raw row given as its :meth:`joined` text."""
        hasher = self._scope.copy()
        hasher.update(joined.encode())
        digest = hasher.digest()
        seen = self._seen
        if seen is None:
            repeat = self._counts.add_one(digest)
        else:
            repeat = seen.get(digest, 0)
            seen[digest] = repeat + 1
            if len(seen) > SMALL:
                self._pack()
        return f"{digest.hex()}~{repeat}" if repeat else digest.hex()

    def of_rows(self, rows: t.Sequence[t.Sequence[str]]) -> list[str]:
        """The keys of raw rows, as :meth:`__call__` gives them one by one."""
        if not self.by_name:
            return self.of_encoded(["\x1f".join(row).encode() for row in rows])
        joined = self.joined
        return self.of_encoded([joined(row).encode() for row in rows])

    def of_encoded(self, rows: t.Iterable[bytes]) -> list[str]:
        """The keys of raw rows given as their :meth:`joined` text in UTF-8."""
        copy = self._scope.copy
        digests: list[bytes] = []
        append = digests.append
        for joined in rows:
            hasher = copy()
            hasher.update(joined)
            append(hasher.digest())
        keys = [digest.hex() for digest in digests]
        if self._seen is None:
            repeats = self._counts.add(b"".join(digests))
        else:
            repeats = self._count_each(digests)
        for index, repeat in repeats:
            keys[index] = f"{keys[index]}~{repeat}"
        return keys

    def count(self, digests: bytes) -> list[tuple[int, int]]:
        """Count rows' concatenated digests in order; ``(index, occurrences before)`` of repeats.

        For digests made elsewhere (``synthetic_keys.c``): the keys are then those
        :meth:`of_encoded` gives for the same rows.
        """
        if self._seen is None:
            return self._counts.add(digests)
        return self._count_each(
            [digests[start : start + DIGEST] for start in range(0, len(digests), DIGEST)]
        )

    def count_into(self, rows: int, digests: t.Any, before: t.Any) -> None:
        """:meth:`count` of a ctypes buffer of ``rows`` digests, into an int64 array.

        ``before`` (a ctypes array of zeros) gets how many times each row's digest occurred
        before it.
        """
        if isinstance(self._counts, CompiledCounts):
            self._counts.add_into(rows, digests, before)
            return
        for index, repeat in self.count(ctypes.string_at(digests, DIGEST * rows)):
            before[index] = repeat

    def _count_each(self, digests: list[bytes]) -> list[tuple[int, int]]:
        """:meth:`count` while the export's digests are kept in the dict."""
        seen = self._seen
        assert seen is not None  # noqa: S101 - callers check
        repeats: list[tuple[int, int]] = []
        get = seen.get
        for index, digest in enumerate(digests):
            before = get(digest)
            if before is None:
                seen[digest] = 1
            else:
                seen[digest] = before + 1
                repeats.append((index, before))
        if len(seen) > SMALL:
            self._pack()
        return repeats

    def _pack(self) -> None:
        """From now on the export's rows are counted packed."""
        if self._seen is not None and isinstance(self._counts, DigestCounts):
            self._counts.add_counted(self._seen)
            self._seen = None


# --- exact counts of digests, compiled --------------------------------------------------------

_POINTER = ctypes.c_void_p
_COMPILED = native.functions(
    ("digest_counts_new", ctypes.c_void_p, []),
    ("digest_counts_free", None, [ctypes.c_void_p]),
    ("digest_counts_add", ctypes.c_int64, [_POINTER, ctypes.c_int64, _POINTER, _POINTER]),
)
"""``digest_counts.c``'s functions, if the compiled helpers were built."""


class CompiledCounts:
    """:class:`DigestCounts` in ``digest_counts.c``: the same counts, a block at a time.

    Counting in Python took as long as hashing the rows (0.45 s a million rows); there it is a
    fraction of that, and no Python object is made per row.
    """

    def __init__(self, compiled: list[t.Any]) -> None:
        """A counter of no digest yet, made by the compiled helpers ``compiled``."""
        self._new, self._free, self._add = compiled
        self._handle = self._new()
        if not self._handle:
            msg = "no memory left to count an export's rows"
            raise MemoryError(msg)
        self._one = (ctypes.c_int64 * 1)()

    @classmethod
    def made(cls) -> CompiledCounts | None:
        """A new counter, or ``None`` without the compiled helpers."""
        return None if _COMPILED is None else cls(_COMPILED)

    def __del__(self) -> None:
        """Give the counter's memory back (an export's digests live as long as its keys)."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._free(handle)

    def add_into(self, rows: int, digests: t.Any, before: t.Any) -> int:
        """Count ``rows`` concatenated digests (a buffer) in order; how many repeat earlier ones.

        ``before[i]`` gets how many times row i's digest occurred before it.
        """
        repeats = self._add(self._handle, rows, digests, before)
        if repeats < 0:
            msg = f"more than {LOW - 1} distinct rows in one export, or no memory to count them"
            raise MemoryError(msg)
        return int(repeats)

    def add(self, digests: bytes) -> list[tuple[int, int]]:
        """Count concatenated digests in order; ``(index, occurrences before)`` of repeats."""
        count = len(digests) // DIGEST
        before = (ctypes.c_int64 * max(1, count))()
        if not self.add_into(count, digests, before):
            return []
        return [(index, seen) for index, seen in enumerate(before[:count]) if seen]

    def add_one(self, digest: bytes) -> int:
        """Count one digest; returns how many times it occurred before (0: new)."""
        self.add_into(1, digest, self._one)
        return int(self._one[0])


# --- exact counts of digests, packed ---------------------------------------------------------

DIGEST = 16
LOW = 0xFFFFFFFF
HIGH = LOW << 32
BULK = 64
"""Digests from which :meth:`DigestCounts.add` works in Arrow kernels rather than one by one."""
CHUNK = 4096
"""Digests per bulk step at most, so that the rows of a step rarely share a bucket."""
FIRST_BITS = 16
"""Buckets of the first level (2**16: 512 KiB)."""
SPREAD = 64
"""Buckets per digest of a bulk step at least, for the same reason."""
PAGE_BITS = 16
"""Digests per page of the store (1 MiB of digests)."""
PAGE_MASK = (1 << PAGE_BITS) - 1
SUMMARY = [((1 << (top >> 5)) | (1 << (top & 31))) << 32 for top in range(1024)]
"""The two summary bits (in a bucket's high half) of a digest, by the top 10 bits of its first
8 bytes, which no bucket number uses."""
_first_word = struct.Struct("=Q").unpack_from
"""A digest's first 8 bytes as the native 64-bit integer Arrow's view of the digests reads."""


class DigestCounts:
    """How many times each 16-byte digest occurred, exactly, in about 30 bytes a digest.

    Each digest is stored once, in the order first seen (:class:`_Store`), and found again
    through levels of chained hash tables (:class:`_Level`): when a level is full, it is kept
    and a level twice its size is opened, so nothing is ever rehashed. Occurrences beyond the
    first are counted in a dict, for the few digests that repeat. Blocks of digests are looked
    up and inserted by Arrow kernels; a stored digest is only read back where its bucket's
    summary says it may be there.
    """

    def __init__(self) -> None:
        """No digest seen yet."""
        self._levels: list[_Level] = []
        self._store = _Store()
        self._repeats: dict[int, int] = {}
        """Per position of a digest seen more than once: how many times it was seen."""

    def add_one(self, digest: bytes) -> int:
        """Count one digest; returns how many times it occurred before (0: new)."""
        (word,) = _first_word(digest)
        bits = SUMMARY[word >> 54]
        position = self._find(digest, word, bits)
        if position >= 0:
            return self._repeat(position)
        levels = self._levels
        level = levels[-1] if levels and levels[-1].size < levels[-1].capacity else None
        if level is None:
            level = self._room(1, FIRST_BITS)
        words = level.words
        bucket = word & level.mask
        entry = words[bucket]
        position = self._store.append(digest, entry & LOW)
        words[bucket] = ((entry | bits) & HIGH) | (position + 1)
        level.size += 1
        return 0

    def add(self, digests: bytes) -> list[tuple[int, int]]:
        """Count concatenated digests in order; ``(index, occurrences before)`` of repeats."""
        count = len(digests) // DIGEST
        repeats: list[tuple[int, int]] = []
        if count > CHUNK:
            for start in range(0, count, CHUNK):
                chunk = digests[start * DIGEST : (start + CHUNK) * DIGEST]
                repeats.extend((start + index, seen) for index, seen in self.add(chunk))
            return repeats
        if count >= BULK and "pyarrow.compute" in sys.modules:  # keys alone never load it
            return self._add_bulk(digests, count)
        for index in range(count):
            repeat = self.add_one(digests[index * DIGEST : (index + 1) * DIGEST])
            if repeat:
                repeats.append((index, repeat))
        return repeats

    def add_counted(self, seen: dict[bytes, int]) -> None:
        """Take over distinct digests counted elsewhere (occurrences per digest)."""
        self.add(b"".join(seen))
        for digest, occurrences in seen.items():
            if occurrences > 1:
                (word,) = _first_word(digest)
                position = self._find(digest, word, SUMMARY[word >> 54])
                self._repeats[position] = self._repeats.get(position, 1) + occurrences - 1

    def _find(self, digest: bytes, word: int, bits: int) -> int:
        """The position of ``digest``, or -1."""
        pages, links = self._store.digests, self._store.links
        for level in self._levels:
            entry = level.words[word & level.mask]
            if entry & bits == bits:
                link = entry & LOW
                while link:
                    position = link - 1
                    page, at = position >> PAGE_BITS, (position & PAGE_MASK) * DIGEST
                    if pages[page][at : at + DIGEST] == digest:
                        return position
                    link = links[page][position & PAGE_MASK]
        return -1

    def _repeat(self, position: int) -> int:
        seen = self._repeats.get(position, 1)
        self._repeats[position] = seen + 1
        return seen

    def _room(self, count: int, bits: int) -> _Level:
        """The newest level, or a new one if it has no room for ``count`` more digests."""
        levels = self._levels
        if levels and levels[-1].size + count <= levels[-1].capacity:
            return levels[-1]
        if levels:
            bits = max(bits, levels[-1].mask.bit_length() + 1)
        levels.append(_Level(bits))
        return levels[-1]

    def _add_bulk(self, digests: bytes, count: int) -> list[tuple[int, int]]:
        """:meth:`add` for a block, in Arrow kernels; rows sharing a bucket go one by one.

        The rows whose bucket (in the newest level) no earlier row of the block has all differ:
        they are looked up at once through the bucket summaries and, if new, inserted at once.
        A row sharing a bucket with an earlier row is the same digest again (a repeat of that
        row) or, rarely, another digest, which :meth:`add_one` counts after the block.
        """
        kit = _arrow()
        pa, pc = kit.pa, kit.pc
        newest = self._room(count, max(FIRST_BITS, (SPREAD * count - 1).bit_length()))
        arange, evens = _ranges(count)
        data = pa.py_buffer(digests)
        whole = pa.Array.from_buffers(pa.binary(DIGEST), count, [None, data])
        words = pc.take(pa.Array.from_buffers(kit.u64, 2 * count, [None, data]), evens)
        bits = pc.take(kit.summary, pc.shift_right(words, kit.at54))
        newest_words, newest_mask = newest.view()
        bucket = pc.bit_wise_and(words, newest_mask)
        first = pc.index_in(bucket, value_set=bucket)  # the block's first row in each bucket
        alone = pc.equal(first, arange)
        entry = pc.take(newest_words, bucket)
        maybe = None
        for level in self._levels:
            if not level.size:
                continue
            held = entry
            if level is not newest:
                level_words, level_mask = level.view()
                held = pc.take(level_words, pc.bit_wise_and(words, level_mask))
            hit = pc.equal(pc.bit_wise_and(held, bits), bits)
            maybe = hit if maybe is None else pc.or_(maybe, hit)
        repeats: list[tuple[int, int]] = []
        found: dict[int, int] = {}
        new = alone
        if maybe is not None:
            for index in pc.indices_nonzero(pc.and_(maybe, alone)).to_pylist():
                digest = digests[index * DIGEST : (index + 1) * DIGEST]
                (word,) = _first_word(digest)
                position = self._find(digest, word, SUMMARY[word >> 54])
                if position >= 0:
                    found[index] = position
                    repeats.append((index, self._repeat(position)))
            if found:
                seen = pa.array(list(found), pa.int32())
                new = pc.and_(alone, pc.invert(pc.is_in(arange, value_set=seen)))
        base = self._store.size
        rank = pc.cumulative_sum(pc.cast(new, kit.u64))  # of a new row: its position + 1 - base
        inserted = pa.RecordBatch.from_arrays(
            [
                bucket,
                pc.bit_wise_or(
                    pc.bit_wise_and(pc.bit_wise_or(entry, bits), kit.high),
                    pc.add(rank, pa.scalar(base, kit.u64)),
                ),
                pc.cast(pc.bit_wise_and(entry, kit.low), pa.uint32()),
                whole,
            ],
            names=["bucket", "word", "link", "digest"],
        ).filter(new)
        added = inserted.num_rows
        if added:
            self._store.extend(
                _value_bytes(inserted.column(3), DIGEST), _value_bytes(inserted.column(2), 4)
            )
            table = newest.words
            for at, value in zip(
                inserted.column(0).to_pylist(), inserted.column(1).to_pylist(), strict=True
            ):
                table[at] = value
            newest.size += added
        if added + len(found) < count:
            later = pc.indices_nonzero(pc.invert(alone))
            firsts = pc.take(first, later)
            for index, earlier, ranked in zip(
                later.to_pylist(),
                firsts.to_pylist(),
                pc.take(rank, firsts).to_pylist(),
                strict=True,
            ):
                digest = digests[index * DIGEST : (index + 1) * DIGEST]
                if digest == digests[earlier * DIGEST : (earlier + 1) * DIGEST]:
                    position = found[earlier] if earlier in found else base + ranked - 1
                    repeats.append((index, self._repeat(position)))
                else:
                    repeat = self.add_one(digest)
                    if repeat:
                        repeats.append((index, repeat))
        return repeats


class _Level:
    """A hash table of a fixed number of buckets, chained through the store's links.

    A bucket is a 64-bit word: a 32-bit summary of its digests (two bits each, high half) that
    rules most rows out without reading a digest, and the position + 1 of its latest digest
    (low half; 0 when empty).
    """

    __slots__ = ("_view", "capacity", "mask", "size", "words")

    def __init__(self, bits: int) -> None:
        self.mask = (1 << bits) - 1
        self.capacity = 1 << bits
        self.size = 0
        self.words = memoryview(_mapping(8 * self.capacity)).cast("Q")
        self._view: tuple[pa.Array, pa.Scalar] | None = None

    def view(self) -> tuple[pa.Array, pa.Scalar]:
        """The buckets as an Arrow array (sharing their memory) and the mask as a scalar."""
        if self._view is None:
            pa = _arrow().pa
            words = pa.Array.from_buffers(
                pa.uint64(), self.capacity, [None, pa.py_buffer(self.words)]
            )
            self._view = (words, pa.scalar(self.mask, pa.uint64()))
        return self._view


class _Store:
    """The distinct digests in the order first seen, and each one's link, in fixed pages.

    A growing buffer would move at every step and leave its old copies behind as free space
    that the allocator keeps; pages are filled, never moved.
    """

    __slots__ = ("digests", "links", "size")

    def __init__(self) -> None:
        self.digests: list[mmap.mmap] = []
        self.links: list[memoryview] = []
        """Per position: the position + 1 of the next digest of the same bucket, or 0 (native
        32-bit integers)."""
        self.size = 0

    def append(self, digest: bytes, link: int) -> int:
        """Store one digest; returns its position."""
        position = self.size
        page, at = position >> PAGE_BITS, position & PAGE_MASK
        if page == len(self.digests):
            self._new_page()
        self.digests[page][at * DIGEST : (at + 1) * DIGEST] = digest
        self.links[page][at] = link
        self.size = position + 1
        return position

    def extend(self, digests: memoryview, links: memoryview) -> None:
        """Store concatenated digests with their links (native 32-bit integers)."""
        count = len(digests) // DIGEST
        done = 0
        while done < count:
            page, at = self.size >> PAGE_BITS, self.size & PAGE_MASK
            if page == len(self.digests):
                self._new_page()
            step = min(count - done, PAGE_MASK + 1 - at)
            target = self.digests[page]
            target[at * DIGEST : (at + step) * DIGEST] = digests[
                done * DIGEST : (done + step) * DIGEST
            ]
            self.links[page][at : at + step] = links[done * 4 : (done + step) * 4].cast("I")
            done += step
            self.size += step

    def _new_page(self) -> None:
        last = (len(self.digests) + 1) << PAGE_BITS  # the page's last position + 1
        if last > LOW:
            msg = f"more than {LOW - (PAGE_MASK + 1)} distinct rows in one export"
            raise OverflowError(msg)
        self.digests.append(_mapping((PAGE_MASK + 1) * DIGEST))
        self.links.append(memoryview(_mapping(4 * (PAGE_MASK + 1))).cast("I"))


def _mapping(size: int) -> mmap.mmap:
    """``size`` zero bytes in an anonymous mapping of their own, its pages mapped at once.

    A table lives as long as its export, among blocks that come and go: in the allocator's heap
    it would pin the free space around it, while a mapping is given back whole when dropped.
    Mapping the pages in one call costs less than a page fault at each first touch.
    """
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if not populate:
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)


def _value_bytes(values: pa.Array, width: int) -> memoryview:
    """The data buffer of a fixed-width Arrow array, for its own rows only."""
    start = values.offset * width
    return memoryview(values.buffers()[1])[start : start + len(values) * width]


class _Arrow(t.NamedTuple):
    """pyarrow (only once the run has loaded it: keys never do) and the kernels' constants.

    Arrow scalars are made once: a Python value given to a kernel costs a failed numpy import.
    """

    pa: t.Any
    pc: t.Any
    u64: t.Any
    summary: t.Any
    at54: t.Any
    low: t.Any
    high: t.Any


@functools.cache
def _arrow() -> _Arrow:
    import pyarrow as pa  # noqa: PLC0415 - only where blocks are counted
    import pyarrow.compute as pc  # noqa: PLC0415

    u64 = pa.uint64()
    scalars = (pa.scalar(value, u64) for value in (54, LOW, HIGH))
    return _Arrow(pa, pc, u64, pa.array(SUMMARY, u64), *scalars)


_RANGES: list[t.Any] = []


def _ranges(count: int) -> tuple[pa.Array, pa.Array]:
    """``0 .. count - 1`` and the first ``count`` even numbers, as int32 Arrow arrays."""
    if not _RANGES or len(_RANGES[0]) < count:
        pa = _arrow().pa
        size = max(count, CHUNK)
        _RANGES[:] = [
            pa.array(range(size), pa.int32()),
            pa.array(range(0, 2 * size, 2), pa.int32()),
        ]
    arange, evens = _RANGES
    return arange.slice(0, count), evens.slice(0, count)
