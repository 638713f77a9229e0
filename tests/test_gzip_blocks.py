"""JSONL gzip files deflated on a thread from buffers handed over: the bytes, in order, once."""

from __future__ import annotations

import gzip
import io
import threading
import zlib

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports import emit
from tap_event_exports.engine import native_lines
from tap_event_exports.gzip_blocks import GzipBlocks

BLOCK = 64


class Kept(io.BytesIO):
    """A file whose bytes stay readable after close."""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def one_member(data: bytes) -> bytes:
    """The content of ``data``, which must be exactly one gzip member."""
    inflate = zlib.decompressobj(wbits=31)
    content = inflate.decompress(data) + inflate.flush()
    assert inflate.eof
    assert inflate.unused_data == b""
    return content


operations = st.lists(
    st.one_of(
        st.tuples(st.just("swap"), st.binary(max_size=BLOCK)),
        st.tuples(st.sampled_from(["bytes", "bytearray", "memoryview"]), st.binary(max_size=300)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_every_block_and_write_comes_out_in_order(ops):
    raw = io.BytesIO()
    blocks = GzipBlocks(raw, level=2, block_bytes=BLOCK)
    buffer = bytearray(BLOCK)
    expected = b""
    for kind, data in ops:
        if kind == "swap":
            buffer[: len(data)] = data
            handed = buffer
            buffer = blocks.swap(handed, len(data))
            assert buffer is not handed
            assert len(buffer) == BLOCK
            buffer[:] = b"\xff" * BLOCK  # the writer fills it again at once
        elif kind == "bytes":
            blocks.write(data)
        else:
            mutable = bytearray(data)
            blocks.write(mutable if kind == "bytearray" else memoryview(mutable))
            mutable[:] = b"\x00" * len(mutable)  # reused by the caller after the call
        expected += data
    blocks.flush()
    blocks.close()
    assert one_member(raw.getvalue()) == expected
    assert gzip.decompress(raw.getvalue()) == expected


def test_flush_waits_for_the_blocks_and_leaves_the_member_open():
    raw = io.BytesIO()
    blocks = GzipBlocks(raw, level=2, block_bytes=BLOCK)
    blocks.swap(bytearray(b"a" * BLOCK), BLOCK)
    blocks.flush()
    assert blocks._blocks.unfinished_tasks == 0
    blocks.write(b"tail")
    blocks.flush()
    blocks.close()
    assert one_member(raw.getvalue()) == b"a" * BLOCK + b"tail"


class FullDisk(io.RawIOBase):
    def __init__(self, room: int) -> None:
        self.room = room
        self.closed_by_caller = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self.room:
            raise OSError(28, "No space left on device")
        self.room -= size
        return size


def test_a_failed_write_on_the_thread_is_raised_by_the_next_call_without_a_hang():
    blocks = GzipBlocks(FullDisk(room=0), level=0, block_bytes=BLOCK)
    buffer = bytearray(BLOCK)
    caught = None
    finished = threading.Event()

    def keep_swapping():
        nonlocal buffer, caught
        try:
            for _ in range(50):  # more than the spare buffers: they must come back
                buffer = blocks.swap(buffer, BLOCK)
        except OSError as exc:
            caught = exc
        finished.set()

    worker = threading.Thread(target=keep_swapping, daemon=True)
    worker.start()
    assert finished.wait(10), "the writer never got a buffer back"
    if caught is None:  # every swap was queued before the failure: flush sees it
        with pytest.raises(OSError, match="No space left"):
            blocks.flush()
    else:
        assert caught.errno == 28
    with pytest.raises(OSError, match="No space left"):
        blocks.close()


def test_a_closed_file_refuses_writes_and_closes_once():
    raw = Kept()
    blocks = GzipBlocks(raw, level=2, block_bytes=BLOCK)
    with blocks:
        blocks.write(b"x")
    blocks.close()
    with pytest.raises(ValueError, match="closed gzip file"):
        blocks.write(b"y")
    with pytest.raises(ValueError, match="closed gzip file"):
        blocks.swap(bytearray(BLOCK), 1)
    assert one_member(raw.getvalue()) == b"x"


@pytest.mark.skipif(not native_lines.available(), reason="the compiled encoder was not built")
@pytest.mark.parametrize("block_bytes", [256, emit.FLUSH_AT])
def test_line_writer_hands_its_buffers_over_and_writes_the_same_lines(block_bytes):
    names = ["id", "text", "n"]
    text = ['é\n"\\', "x" * 3000, "", None, "plain"] * 200  # rows larger than a small buffer
    columns = [
        pa.array([f"row-{i}" for i in range(len(text))]),
        pa.array(text),
        pa.array(range(len(text)), pa.int64()),
    ]
    plain = io.BytesIO()
    expected_writer = emit.LineWriter(plain)
    expected_writer.columns(names)
    expected_writer.write_columns(columns)
    expected_writer.write_rows([["py", "row", 1]])
    expected_writer.flush()

    raw = io.BytesIO()
    blocks = GzipBlocks(raw, level=2, block_bytes=block_bytes)
    writer = emit.LineWriter(blocks, block_bytes=block_bytes)
    writer.columns(names)
    writer.write_columns(columns)
    writer.write_rows([["py", "row", 1]])
    writer.flush()
    blocks.close()
    assert one_member(raw.getvalue()) == plain.getvalue()
    assert plain.getvalue().count(b"\n") == len(text) + 1
