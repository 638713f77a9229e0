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
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from tap_event_exports.engine.errors import RetriableError
from tap_event_exports.engine.workspace import current_directory

if t.TYPE_CHECKING:
    import requests

    from tap_event_exports.engine.http import HttpPolicy, RequestSpec

logger = logging.getLogger("tap_event_exports.download")

CHUNK_SIZE = 1 << 20
"""Bytes read from a response at a time: at 64 KiB, a 300 MB export took sixteen times as many
reads, each a pass through urllib3 and a wake-up of the thread, for about a tenth more CPU."""
GZIP_CHUNK_SIZE = 1 << 16
"""Bytes read at a time from a gzip file (myTracker's parts): each read inflates to several
times its size, and parts are fetched several at once, so larger reads only cost memory."""
INFLATED_PIECE = 1 << 20
"""Most bytes inflated from a gzip body at once (a 1 MiB read may inflate to ten times that)."""
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
        self._held = b""
        """The first byte of a next member, whose second is in the next read."""
        self._trailing = False
        """Bytes that start no member came after the last one: the rest is ignored too."""

    def feed(self, data: bytes) -> t.Iterator[bytes]:
        """The inflated bytes of ``data``, in pieces of at most :data:`INFLATED_PIECE`."""
        if self._trailing:
            return
        if self._held:
            data, self._held = self._held + data, b""
        while True:
            if not self._member_started:
                if len(data) < len(GZIP_MAGIC) and GZIP_MAGIC.startswith(data):
                    self._held = data  # nothing yet, or a member's first byte
                    return
                if not data.startswith(GZIP_MAGIC):
                    self._trailing = True  # bytes after the last member: ignored, as gzip(1) does
                    return
                self._member_started = True
            piece = self._engine.decompress(data, INFLATED_PIECE)
            if piece:
                yield piece
            if self._engine.eof:
                data = self._engine.unused_data
                self._engine = zlib.decompressobj(wbits=31)
                self._member_started = False
            elif self._engine.unconsumed_tail:
                data = self._engine.unconsumed_tail
            elif len(piece) < INFLATED_PIECE:
                return
            else:
                data = b""  # the piece was cut at its limit: more output may be waiting

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
    tabular: bool = False,
) -> Download:
    """Fetch ``spec`` into a temporary file, retrying the whole download on any failure.

    ``tabular``: only a CSV file is an answer; a JSON body that is not the vendor's failure is
    no data (an envelope saying OK with no ``data``) or an error, never read as CSV.
    """

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
                chunks = response.raw.stream(_read_size(response), decode_content=True)
                for chunk in chunks:
                    if not chunk:
                        continue
                    if received == 0 and chunk.lstrip()[:1] == b"{":
                        chunk = _json_body_or_data(  # noqa: PLW2901
                            policy, chunk, chunks, what=what, tabular=tabular
                        )
                    if received == 0 and chunk.startswith(GZIP_MAGIC):
                        inflater = _Inflater()
                    received += len(chunk)
                    if inflater is None:
                        sink.write(chunk)
                        written += len(chunk)
                        continue
                    for piece in inflater.feed(chunk):
                        sink.write(piece)
                        written += len(piece)
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


def _read_size(response: requests.Response) -> int:
    """How many bytes to read at a time: fewer for what its headers or name say is gzip.

    Only memory and speed depend on it: every body is read whole, and inflated if it is gzip.
    """
    kind = response.headers.get("Content-Type", "").lower()
    path = urllib.parse.urlsplit(response.url).path
    return GZIP_CHUNK_SIZE if "gzip" in kind or path.endswith(".gz") else CHUNK_SIZE


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
    policy: HttpPolicy, first: bytes, rest: t.Iterator[bytes], *, what: str, tabular: bool
) -> bytes:
    """A small body that opens with ``{`` may be a JSON error: raise it if it is one.

    Some vendors answer HTTP 200 with a JSON failure body where a file was expected. Only a
    body that ends within :data:`SNIFF_LIMIT` bytes is inspected; a larger one is data, and the
    bytes read so far are handed back to be written like the rest. Where only CSV is an answer
    (``tabular``), any other JSON object is an empty file when the vendor's dialect reads it as
    "no data", and otherwise an error retried like a failed download.
    """
    if len(first) > SNIFF_LIMIT:
        return first
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
    if not tabular or not isinstance(parsed, dict):
        return bytes(body)
    if policy.dialect.no_data(parsed):
        return b""  # the vendor's "OK, nothing": no rows
    shown = " ".join(bytes(body[:200]).decode(errors="replace").split())  # one line
    msg = f"a JSON answer where a CSV export was expected: {shown}"
    raise RetriableError(msg)
