"""Output handed to the output thread keeps its order, its bound and its errors."""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pytest

from tap_event_exports import emit
from tap_event_exports.engine import native_lines
from tap_event_exports.engine.concurrency import WriteBehind, one_thread


def test_items_run_in_order_on_one_thread_across_writers():
    pool = one_thread("test-writer")
    first, second = WriteBehind(2, pool), WriteBehind(2, pool)
    done: list[tuple[str, int, str]] = []
    for index in range(20):
        writer = first if index % 2 else second
        writer.submit(lambda i=index: done.append((threading.current_thread().name, i, "x")))
    first.wait()
    second.wait()
    assert [i for _, i, _ in done] == list(range(20))
    assert {name for name, _, _ in done} == {next(iter(done))[0]}
    assert done[0][0].startswith("test-writer")
    assert first.idle
    assert second.idle


def test_at_most_depth_items_wait():
    release = threading.Event()
    started = []
    writer = WriteBehind(2, one_thread("test-depth"))
    writer.submit(lambda: (started.append(1), release.wait(5)))
    writer.submit(lambda: started.append(2))
    blocked = threading.Thread(target=writer.submit, args=(lambda: started.append(3),))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "a third item waits while two are in flight"
    release.set()
    blocked.join(5)
    writer.wait()
    assert started == [1, 2, 3]


def test_a_failure_is_raised_by_the_next_call_and_later_items_still_run():
    writer = WriteBehind(4, one_thread("test-failure"))
    ran = []

    def fail():
        raise BrokenPipeError("reader gone")

    writer.submit(fail)
    writer.submit(lambda: ran.append("after"))
    with pytest.raises(BrokenPipeError, match="reader gone"):
        writer.wait()
    writer.wait()
    assert ran == ["after"]
    writer.submit(fail)
    writer.wait(raise_errors=False)  # an aborted file: nothing raised
    assert writer.idle


class ClosedPipe(io.RawIOBase):
    def writable(self):
        return True

    def write(self, data):
        raise BrokenPipeError("the target stopped reading")


@pytest.mark.skipif(not native_lines.available(), reason="the compiled encoder was not built")
def test_a_write_error_on_the_output_thread_reaches_the_caller():
    writer = emit.LineWriter(ClosedPipe())
    writer.columns(["a"])
    writer.write_columns([pa.array(["x" * 1000] * 1000)])  # more than the buffer: written out
    with pytest.raises(BrokenPipeError, match="stopped reading"):
        writer.flush()


@pytest.mark.skipif(not native_lines.available(), reason="the compiled encoder was not built")
def test_record_lines_stay_in_order_between_blocks_and_single_records():
    out = io.BytesIO()
    writer = emit.LineWriter(out)
    writer.columns(["n"])
    expected = []
    for start in range(0, 3000, 300):
        writer.write_columns([pa.array(range(start, start + 300))])
        expected += [f'{{"n":{n}}}' for n in range(start, start + 300)]
        writer.write({"after": start})
        expected.append(f'{{"after":{start}}}')
        writer.write_rows([[start]])
        expected.append(f'{{"n":{start}}}')
    writer.flush()
    assert out.getvalue().decode().splitlines() == expected


@pytest.mark.skipif(not native_lines.available(), reason="the compiled encoder was not built")
def test_an_abandoned_writer_settles_its_blocks_without_raising():
    """An aborted BATCH file waits for its lines before closing; their failures do not matter."""
    writer = emit.LineWriter(ClosedPipe())
    writer.columns(["a"])
    writer.write_columns([pa.array(["x" * 1000] * 1000)])
    writer.settle()
    assert writer._behind.idle
