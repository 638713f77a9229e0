"""A small threaded HTTP server that fake vendors build on.

A fake implements :meth:`FakeServer.handle`, receiving a :class:`FakeRequest` and answering a
:class:`FakeResponse`, which can also misbehave on purpose: close the connection before
answering, or after part of the body.
"""

from __future__ import annotations

import json
import socket
import threading
import typing as t
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if t.TYPE_CHECKING:
    from collections.abc import Iterable


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
            try:
                response = fake.handle(request)
            except Exception as exc:
                response = FakeResponse(500, f"fake server error: {exc!r}".encode())
            if response is None:
                response = FakeResponse.json(404, {"message": "not found"})
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

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> t.Self:
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

    def __enter__(self) -> t.Self:
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
