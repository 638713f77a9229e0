"""A small threaded HTTP server that fake vendors build on.

A fake implements :meth:`FakeServer.handle`, receiving a :class:`FakeRequest` and answering a
:class:`FakeResponse`, which can also misbehave on purpose: close the connection before
answering, or after part of the body.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import threading
import time
import typing as t
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Self


@dataclass
class FakeRequest:
    """One request as the fake sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    """Lower-case header names."""
    body: bytes
    url: str
    """The full URL as sent (scheme, host, path and query), for signature checks."""

    def json(self) -> t.Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.body.decode() or "null")

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class FakeResponse:
    """An answer, possibly a broken one."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None
    """Announce the full Content-Length but close the connection after this many bytes."""
    close_before_response: bool = False
    """Close the connection without answering at all (a reset)."""

    @classmethod
    def json(cls, status: int, value: t.Any, **headers: str) -> FakeResponse:
        """A JSON answer."""
        return cls(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json", **headers},
        )


HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


@dataclass
class Fault:
    """A vendor-neutral fault injected into the answer to a matching request.

    Kinds: ``500`` (an error status), ``429`` (with ``Retry-After: 1``), ``reset`` (no answer),
    ``slow`` (answer after ``delay`` seconds), ``html-503`` / ``html-200`` (a proxy's HTML page
    where JSON or CSV was expected), ``cut`` (the body stops half-way), ``gzip-cut`` (the last
    bytes of a gzip body are missing, sent chunked so nothing announces the length), ``ragged``
    (a CSV row gains a field), ``bad-utf8`` (a CSV row gets invalid UTF-8), ``new-column``
    (the CSV gains a column).
    """

    kind: str
    path: str = ""
    delay: float = 0.0

    def before(self, fake: FakeServer) -> FakeResponse | None:
        """An answer that replaces the vendor's, or ``None`` to let it answer."""
        kind = self.kind
        if kind == "500":
            return FakeResponse(
                500, b'{"message": "internal error"}', {"Content-Type": "application/json"}
            )
        if kind == "429":
            body = b'{"message": "rate limited", "code": 429}'
            return FakeResponse(429, body, {"Content-Type": "application/json", "Retry-After": "1"})
        if kind == "reset":
            return FakeResponse(close_before_response=True)
        if kind == "403":
            return FakeResponse(403, b"<Error><Code>AccessDenied</Code></Error>")
        if kind == "html-503":
            return FakeResponse(503, HTML_PAGE, {"Content-Type": "text/html"})
        if kind == "html-200":
            return FakeResponse(200, HTML_PAGE, {"Content-Type": "text/html"})
        if kind == "slow":
            time.sleep(self.delay)
        return None

    def after(self, response: FakeResponse) -> FakeResponse | None:
        """The vendor's answer, damaged as the fault says (``None``: nothing to damage)."""
        if self.kind not in {"cut", "gzip-cut", "ragged", "bad-utf8", "new-column"}:
            return response
        if not isinstance(response.body, (bytes, bytearray)) or response.status != 200:
            return None
        body = bytes(response.body)
        if self.kind == "cut":
            response.cut_after = len(body) // 2
        elif self.kind == "gzip-cut" and body[:2] == b"\x1f\x8b":
            response.body = [body[: len(body) - 30]]
        elif self.kind in {"ragged", "bad-utf8", "new-column"}:
            response.body = _damage_csv(body, self.kind)
        return response


def _damage_csv(body: bytes, kind: str) -> bytes:
    packed = body[:2] == b"\x1f\x8b"
    text = gzip.decompress(body) if packed else body
    header = text.split(b"\n", 1)[0]
    delimiter = ";" if b";" in header and b"," not in header else ","
    if kind == "new-column":
        rows = list(csv.reader(io.StringIO(text.decode(), newline=""), delimiter=delimiter))
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        for number, row in enumerate(rows):
            writer.writerow([*row, "added_column" if number == 0 else "new"])
        text = out.getvalue().encode()
    else:
        # the last line always ends a record, so the damage lands outside any quoted field
        lines = text.rstrip(b"\r\n").split(b"\n")
        if len(lines) < 2:
            return body
        tail = lines[-1].rstrip(b"\r")
        lines[-1] = tail + (delimiter.encode() + b"extra" if kind == "ragged" else b"\xff\xfe")
        text = b"\n".join(lines) + b"\n"
    return gzip.compress(text) if packed else text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: t.Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_address[1]}")
        request = FakeRequest(
            method=self.command,
            path=parts.path,
            query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
            raw_query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            url=f"http://{host}{self.path}",
        )
        fake = self.server.fake
        fake.record(request)
        try:
            fault = fake.injected_fault(request)
            response = fault.before(fake) if fault else None
            if response is None:
                try:
                    response = fake.handle(request)
                except Exception as exc:
                    response = FakeResponse(500, f"fake server error: {exc!r}".encode())
                if response is None:
                    response = FakeResponse.json(404, {"message": "not found"})
                if fault:
                    damaged = fault.after(response)
                    if damaged is None:
                        fake.requeue(fault)  # nothing to damage here: keep it for the next one
                    else:
                        response = damaged
            self._write(response)
        finally:
            fake.done()

    def _write(self, response: FakeResponse) -> None:
        if response.close_before_response:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, (bytes, bytearray)):
            data = bytes(response.body)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if response.cut_after is not None:
                self.wfile.write(data[: response.cut_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        for chunk in response.body:
            if not chunk:
                continue
            if response.cut_after is not None and sent + len(chunk) > response.cut_after:
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk[: response.cut_after - sent])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer


class FakeServer:
    """Base of the fake vendors: a threaded HTTP server on 127.0.0.1."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        """Listen on ``host:port`` (port 0: any free port) once started."""
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.log: list[FakeRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: deque[Fault] = deque()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread."""
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port being served."""
        assert self._server is not None, "not started"  # noqa: S101
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # --- bookkeeping -------------------------------------------------------------------------

    def record(self, request: FakeRequest) -> None:
        """Log a request and count it in flight."""
        with self._lock:
            self.log.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def done(self) -> None:
        """A request was answered."""
        with self._lock:
            self.in_flight -= 1

    def requests_to(self, path_part: str) -> list[FakeRequest]:
        """The logged requests whose path contains ``path_part``."""
        with self._lock:
            return [r for r in self.log if path_part in r.path]

    def handle(self, request: FakeRequest) -> FakeResponse | None:
        """Answer one request (``None``: 404)."""
        raise NotImplementedError

    # --- vendor-neutral faults ---------------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, path: str = "", delay: float = 0.0) -> None:
        """Damage the answers to the next ``times`` requests whose path contains ``path``."""
        with self._lock:
            self._faults.extend(Fault(kind, path, delay) for _ in range(times))

    def requeue(self, fault: Fault) -> None:
        """Put a fault back, first in line."""
        with self._lock:
            self._faults.appendleft(fault)

    def injected_fault(self, request: FakeRequest) -> Fault | None:
        """Take the next injected fault that matches a request."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.path in request.path:
                    del self._faults[index]
                    return fault
        return None
