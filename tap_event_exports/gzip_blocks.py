"""A gzip file deflated on a thread of its own from whole buffers handed over, not copied.

JSONL BATCH files are deflated while the output thread encodes the next lines. A general
threaded gzip writer copies every write twice (into its own buffer, then into a block it may
keep); here the line writer hands over the buffer it filled and takes an empty one back, so
the lines are read once more only by the deflater. The output is one gzip member (ISA-L's
deflate, read by any gzip reader).
"""

from __future__ import annotations

import queue
import threading
import typing as t

from isal import isal_zlib

GZIP_WBITS = 31
"""zlib's wbits for a gzip header and trailer around the deflate stream."""
SPARE_BUFFERS = 2
"""Buffers deflated or waiting while the writer fills another (bounds the memory held)."""


class GzipBlocks:
    """Deflates blocks in order on a thread and writes them to ``raw``.

    ``swap`` takes a filled buffer and gives back an empty one of the same size; ``write``
    takes bytes the caller may reuse (copied when mutable). A failure on the thread (a full
    disk, say) is raised by the next call; blocks after it are dropped.
    """

    def __init__(self, raw: t.IO[bytes], *, level: int, block_bytes: int) -> None:
        """Deflate at ``level`` into ``raw``; buffers handed back hold ``block_bytes``."""
        self._raw = raw
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, GZIP_WBITS)
        self._blocks: queue.Queue[tuple[t.Any, int] | None] = queue.Queue()
        self._spare: queue.Queue[bytearray] = queue.Queue()
        for _ in range(SPARE_BUFFERS):
            self._spare.put(bytearray(block_bytes))
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gzip-blocks", daemon=True)
        self._thread.start()

    def swap(self, block: bytearray, used: int) -> bytearray:
        """Queue the first ``used`` bytes of ``block`` (kept until deflated); an empty buffer."""
        self._check()
        self._blocks.put((block, used))
        return self._spare.get()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` (bytes are kept, anything mutable is copied first)."""
        self._check()
        kept = data if isinstance(data, bytes) else bytes(data)
        self._blocks.put((kept, len(kept)))
        return len(kept)

    def flush(self) -> None:
        """Wait until every queued block is deflated and written (not a deflate flush)."""
        self._check()
        self._blocks.join()
        self._check()
        self._raw.flush()

    def close(self) -> None:
        """Write the rest and the gzip trailer; the thread ends."""
        if self._closed:
            return
        self._closed = True
        try:
            self._blocks.join()
            if self._error is None:
                self._raw.write(self._deflate.flush())
                self._raw.flush()
        finally:
            self._blocks.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> GzipBlocks:
        """Closed on leaving (see :meth:`close`)."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close."""
        self.close()

    def _check(self) -> None:
        if self._closed:
            msg = "write to a closed gzip file"
            raise ValueError(msg)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._blocks.get()) is not None:
            data, used = item
            try:
                if self._error is None:
                    self._raw.write(self._deflate.compress(memoryview(data)[:used]))
            except BaseException as exc:  # raised by the writer's next call
                self._error = exc
            finally:
                if isinstance(data, bytearray):
                    self._spare.put(data)
                self._blocks.task_done()
        self._blocks.task_done()
