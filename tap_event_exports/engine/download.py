"""Streaming downloads into temporary files, verified before a single record is read.

A response body is written to disk in chunks (memory stays flat whatever the export's size).
Gzip bodies are inflated on the way, member by member, so a cut gzip part is noticed as soon as
the download ends, and the whole file is fetched again. Because a window's files are complete
before its records are parsed, a retry can never emit a record twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import tempfile
import threading
import time
import typing as t
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from tap_event_exports.engine.errors import RetriableError
from tap_event_exports.engine.workspace import current_directory

if t.TYPE_CHECKING:
    from tap_event_exports.engine.http import HttpPolicy, RequestSpec

logger = logging.getLogger("tap_event_exports.download")

CHUNK_SIZE = 1 << 16
SNIFF_LIMIT = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"
FILES_AT_ONCE = 4
"""Files of one export fetched at the same time (myTracker splits an export into parts): a part
is not waited for behind the one before it, and under a request quota the next window's parts
get slots only once every part of this one has asked for its own."""


@dataclass
class Download:
    """A complete, decompressed export file on local disk."""

    path: str
    bytes_received: int
    bytes_written: int
    seconds: float

    def discard(self) -> None:
        """Delete the file; downloads are consumed once."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Inflater:
    """Inflate a gzip stream of one or more members, noticing truncation."""

    def __init__(self) -> None:
        self._engine = zlib.decompressobj(wbits=31)
        self._member_started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._member_started = True
            out.append(self._engine.decompress(data))
            if not self._engine.eof:
                break
            data = self._engine.unused_data
            self._engine = zlib.decompressobj(wbits=31)
            self._member_started = False
            if data and not data.startswith(GZIP_MAGIC):
                break  # trailing bytes after the last member are ignored, as gzip(1) does
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._member_started:
            return b""
        tail = self._engine.flush()
        if not self._engine.eof:
            msg = "gzip data ended before its end-of-stream marker (truncated download)"
            raise RetriableError(msg)
        return tail


def download(
    policy: HttpPolicy,
    spec: RequestSpec,
    *,
    what: str,
    directory: str | None = None,
) -> Download:
    """Fetch ``spec`` into a temporary file, retrying the whole download on any failure."""

    def attempt() -> Download:
        started = time.monotonic()
        response = policy.send_once(spec, what=what)
        if "text/html" in response.headers.get("Content-Type", "").lower():
            response.close()
            msg = "an HTML page where an export file was expected (a proxy or gateway answering?)"
            raise RetriableError(msg)
        handle, path = tempfile.mkstemp(
            prefix="tap-event-exports-", suffix=".csv", dir=directory or current_directory()
        )
        received = written = 0
        inflater: _Inflater | None = None
        try:
            with os.fdopen(handle, "wb") as sink:
                chunks = response.raw.stream(CHUNK_SIZE, decode_content=True)
                for chunk in chunks:
                    if not chunk:
                        continue
                    if received == 0 and chunk.lstrip()[:1] == b"{":
                        chunk = _json_body_or_data(policy, chunk, chunks, what=what)  # noqa: PLW2901
                    if received == 0 and chunk.startswith(GZIP_MAGIC):
                        inflater = _Inflater()
                    received += len(chunk)
                    if inflater is not None:
                        chunk = inflater.feed(chunk)  # noqa: PLW2901
                    sink.write(chunk)
                    written += len(chunk)
                if inflater is not None:
                    tail = inflater.finish()
                    sink.write(tail)
                    written += len(tail)
        except zlib.error as exc:
            os.unlink(path)
            msg = f"corrupt gzip data: {exc}"
            raise RetriableError(msg) from exc
        except BaseException:
            os.unlink(path)
            raise
        finally:
            response.close()
        return Download(path, received, written, time.monotonic() - started)

    return policy.retrying(attempt, what=what)


def download_all(policy: HttpPolicy, specs: list[RequestSpec], *, what: str) -> list[Download]:
    """Fetch every file of one export, up to :data:`FILES_AT_ONCE` at a time, in ``specs`` order.

    Either all of them arrive or none is kept: a file that fails for good deletes the others
    (those still downloading finish first), so a window is read from complete files only.
    """
    if len(specs) <= 1:
        return [download(policy, spec, what=f"{what} file 1") for spec in specs]
    prefix = threading.current_thread().name
    with ThreadPoolExecutor(min(FILES_AT_ONCE, len(specs)), thread_name_prefix=prefix) as pool:
        futures = [
            # each file's requests keep the export's place in the quota's queue (context vars)
            pool.submit(
                contextvars.copy_context().run, download, policy, spec, what=f"{what} file {n}"
            )
            for n, spec in enumerate(specs, start=1)
        ]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            wait(futures)
            for future in futures:
                if not future.cancelled() and future.exception() is None:
                    future.result().discard()
            raise


def _json_body_or_data(
    policy: HttpPolicy, first: bytes, rest: t.Iterator[bytes], *, what: str
) -> bytes:
    """A small body that opens with ``{`` may be a JSON error: raise it if it is one.

    Some vendors answer HTTP 200 with a JSON failure body where a file was expected. Only a
    body that ends within :data:`SNIFF_LIMIT` bytes is inspected; a larger one is data, and the
    bytes read so far are handed back to be written like the rest.
    """
    body = bytearray(first)
    for chunk in rest:
        body += chunk
        if len(body) > SNIFF_LIMIT:
            return bytes(body)
    try:
        parsed = json.loads(body)
    except ValueError:
        return bytes(body)
    policy.check_body(parsed, what=what)
    return bytes(body)
