"""The HTTP policy: wait hints, retries, redirects and streaming downloads."""

from __future__ import annotations

import gzip
import random
import time
import tracemalloc

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import download as download_module
from tap_event_exports.engine.contract import BodyFailure, VendorDialect
from tap_event_exports.engine.download import _Inflater, download
from tap_event_exports.engine.errors import RetriableError, RetriesExhaustedError, VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec, header_wait
from tap_event_exports.sandbox.server import FakeResponse, FakeServer


def response(**headers) -> requests.Response:
    r = requests.Response()
    r.status_code = 429
    r.headers.update(headers)
    return r


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-reset": "1700000030000"}, 30.0),  # unix milliseconds (Dfinery's examples)
        ({"X-Rate-Limit-Reset": "1700000045"}, 45.0),  # unix seconds (Dfinery's table)
        ({"X-Rate-Limit-Reset": "12"}, 12.0),  # seconds from now
        ({"x-ratelimit-reset": "1699999970000"}, 0.0),  # just past: the period has ended
        ({"x-ratelimit-reset": "1682640000000"}, None),  # long past (the guide's example)
        ({"X-Rate-Limit-Reset": "1690000000"}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:14:00 GMT"}, 40.0),
        ({}, None),
    ],
)
def test_header_wait(headers, expected):
    assert header_wait(response(**headers), now=1_700_000_000) == expected


class Dialect(VendorDialect):
    name = "fakevendor"

    def authenticate(self, request):
        request.headers["Authorization"] = "Bearer s3cret-token"

    def error_message(self, response):
        return response.text[:50]

    def wait_hint(self, response):
        return None

    def body_failure(self, body):
        if isinstance(body, dict) and body.get("result") == "fail":
            return BodyFailure(body["message"] == "try_again", body["message"])
        return None


class Script(FakeServer):
    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)

    def handle(self, request):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def policy(server, retries=4) -> HttpPolicy:
    return HttpPolicy(Dialect(), timeout=2, max_retries=retries, base_url=server.base_url)


def test_retries_then_succeeds_and_fails_fast_on_400():
    ok = FakeResponse(200, b"a,b\n1,2\n")
    with Script([FakeResponse(500, b"boom"), FakeResponse(502, b""), ok]) as server:
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        assert open(got.path, "rb").read() == b"a,b\n1,2\n"
        got.discard()
        assert len(server.log) == 3
    with Script([FakeResponse(400, b"bad field")]) as server:
        with pytest.raises(VendorError, match="fakevendor: w: HTTP 400 bad field"):
            download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        assert len(server.log) == 1


def test_json_failure_body_on_200_is_an_error():
    body = b'{"result":"fail","message":"try_again"}'
    with Script([FakeResponse(200, body), FakeResponse(200, b"a\n1\n")]) as server:
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        assert open(got.path, "rb").read() == b"a\n1\n"
    with Script([FakeResponse(200, b'{"result":"fail","message":"nope"}')]) as server:
        with pytest.raises(VendorError, match="fakevendor: w: nope"):
            download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")


def test_timeouts_and_resets_are_retried_up_to_max_retries():
    def slow(_request):
        time.sleep(3)
        return FakeResponse(200, b"late")

    with (
        Script([FakeResponse(close_before_response=True), slow]) as server,
        pytest.raises(RetriesExhaustedError, match=r"gave up after 2 attempts \(max_retries\)"),
    ):
        download(policy(server, retries=2), RequestSpec("GET", server.base_url + "/x"), what="w")


def test_credentials_never_follow_a_redirect_to_another_host():
    seen = {}

    def storage(request):
        seen["auth"] = request.headers.get("authorization")
        return FakeResponse(200, b"a\n1\n")

    with Script([storage]) as server:

        def api(request):
            if request.path == "/file":
                seen["api_auth"] = request.headers.get("authorization")
                return FakeResponse(302, b"", {"Location": f"http://localhost:{server.port}/s"})
            return storage(request)

        server.answers = [api]
        got = download(policy(server), RequestSpec("GET", server.base_url + "/file"), what="w")
        assert open(got.path, "rb").read() == b"a\n1\n"
    assert seen == {"api_auth": "Bearer s3cret-token", "auth": None}


def test_cut_gzip_is_downloaded_again_and_gzip_is_inflated():
    data = gzip.compress(b"a\n" + b"12345\n" * 20000)
    cut = FakeResponse(200, data, cut_after=len(data) // 2)
    truncated_without_length = FakeResponse(200, [data[: len(data) - 40]])
    with Script([cut, truncated_without_length, FakeResponse(200, data)]) as server:
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        assert open(got.path, "rb").read() == b"a\n" + b"12345\n" * 20000
        assert len(server.log) == 3


def test_download_memory_stays_flat():
    chunk = b"x" * 65536 + b"\n"
    with Script([FakeResponse(200, [chunk] * 600)]) as server:  # ~40 MB, chunked
        tracemalloc.start()
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert got.bytes_written == len(chunk) * 600
        got.discard()
    assert peak < 4 * 1024 * 1024


def test_a_gzip_body_is_inflated_in_bounded_pieces():
    """A 1 MiB read of a well-compressed body inflates piece by piece, not all at once."""
    content = b"a,b\n" + b"1,2\n" * 12_000_000  # 48 MB that deflate to about 50 KB
    with Script([FakeResponse(200, gzip.compress(content, 1))]) as server:
        tracemalloc.start()
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert got.bytes_written == len(content)
        with open(got.path, "rb") as written:
            assert written.read() == content
        got.discard()
    assert peak < 6 * 1024 * 1024


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    repeat=st.integers(1, 40),
    level=st.sampled_from([0, 1, 9]),
    piece=st.integers(1, 700),
    cuts=st.integers(0, 2**32),
    trailer=st.binary(max_size=40).filter(lambda tail: not tail.startswith(b"\x1f\x8b")),
)
def test_inflated_pieces_are_the_members_whatever_the_reads(
    *, members, repeat, level, piece, cuts, trailer
):
    """Every way of splitting the members into reads gives back their bytes, in small pieces.

    Bytes after the last member that start no other are ignored, as gzip(1) does.
    """
    members = [member * repeat for member in members]
    body = b"".join(gzip.compress(member, level) for member in members) + trailer
    chunks, rest, pick = [], body, random.Random(cuts)
    while rest:
        size = pick.randint(1, max(1, len(body) // 3))
        chunks.append(rest[:size])
        rest = rest[size:]
    inflater = _Inflater()
    out: list[bytes] = []
    original = download_module.INFLATED_PIECE
    download_module.INFLATED_PIECE = piece
    try:
        for chunk in chunks:
            out.extend(inflater.feed(chunk))
        tail = inflater.finish()
    finally:
        download_module.INFLATED_PIECE = original
    assert all(0 < len(part) <= piece for part in out)
    assert b"".join(out) + tail == b"".join(members)


@pytest.mark.parametrize(
    ("url", "content_type", "size"),
    [
        ("https://x/export.csv", "text/csv; charset=utf-8", download_module.CHUNK_SIZE),
        ("https://x/raw/4.installs.26c4.0.csv.gz", "application/octet-stream", 1 << 16),
        ("https://x/file", "application/gzip", 1 << 16),
        ("https://x/file?name=a.gz", "text/csv", download_module.CHUNK_SIZE),
    ],
)
def test_gzip_files_are_read_in_smaller_pieces(url, content_type, size):
    answer = requests.Response()
    answer.url = url
    answer.headers["Content-Type"] = content_type
    assert download_module._read_size(answer) == size


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_a_cut_gzip_body_is_noticed_at_its_end(keep):
    body = gzip.compress(bytes(range(256)) * 400, 6)
    inflater = _Inflater()
    out = b"".join(inflater.feed(body[: int(len(body) * keep)]))
    with pytest.raises(RetriableError, match="truncated download"):
        inflater.finish()
    assert (bytes(range(256)) * 400).startswith(out)


ROUTINE = {  # Dfinery's headers on every answer: the reset is the end of a daily quota period
    "x-ratelimit-limit": "1d",
    "x-ratelimit-remaining": "99999",
}


def far_reset() -> str:
    return str(int((time.time() + 2075) * 1000))


def test_a_500_with_routine_reset_headers_is_retried_with_backoff_not_waited():
    """The reset header of a quota period is a wait only on a rate limit, never on a 5xx."""
    failing = FakeResponse(500, b"boom", {**ROUTINE, "x-ratelimit-reset": far_reset()})
    ok = FakeResponse(200, b"a\n1\n", {**ROUTINE, "x-ratelimit-reset": far_reset()})
    with Script([failing, ok]) as server:
        started = time.monotonic()
        got = download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w")
        assert open(got.path, "rb").read() == b"a\n1\n"
        assert len(server.log) == 2
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {}),  # a 429 waits for the reset, whatever the remaining count says
        (403, {"x-ratelimit-remaining": "0"}),  # remaining at 0: the quota is used up
    ],
)
def test_rate_limit_answers_wait_for_the_reset(status, headers):
    reset = str(int((time.time() + 1.5) * 1000))
    limited = FakeResponse(status, b"slow down", {"x-ratelimit-reset": reset, **headers})
    with Script([limited, FakeResponse(200, b"a\n1\n")]) as server:
        started = time.monotonic()
        download(policy(server), RequestSpec("GET", server.base_url + "/x"), what="w").discard()
        assert len(server.log) == 2
    assert time.monotonic() - started >= 1.0


def test_a_rate_limit_pauses_every_worker_of_the_vendor():
    """After one worker's 429 with Retry-After: 1, no worker sends before the second is up."""
    import threading

    sent: list[tuple[str, float]] = []
    answered_429 = threading.Event()

    def answer(request):
        sent.append((request.path, time.monotonic()))
        if request.path == "/a" and not answered_429.is_set():
            answered_429.set()
            return FakeResponse(429, b"", {"Retry-After": "1"})
        return FakeResponse(200, b"a\n1\n")

    with Script([answer]) as server:
        shared = policy(server)
        first = threading.Thread(
            target=lambda: download(shared, RequestSpec("GET", server.base_url + "/a"), what="a")
        )
        first.start()
        assert answered_429.wait(5)
        time.sleep(0.05)
        for _ in range(3):
            download(shared, RequestSpec("GET", server.base_url + "/b"), what="b").discard()
        first.join()
    limited_at = next(at for path, at in sent if path == "/a")
    others = [at for path, at in sent if path == "/b"]
    assert len(others) == 3
    assert min(others) - limited_at >= 0.95


def test_a_vendor_quota_body_on_200_waits_as_it_says():
    class Quota(Dialect):
        def body_failure(self, body):
            if isinstance(body, dict) and body.get("code") == 429:
                return BodyFailure(True, "429 quota", wait=1.2, rate_limited=True)
            return None

    with Script(
        [
            FakeResponse(200, b'{"code":429}', {"Content-Type": "application/json"}),
            FakeResponse(200, b'{"code":200}', {"Content-Type": "application/json"}),
        ]
    ) as server:
        shared = HttpPolicy(Quota(), timeout=2, max_retries=3, base_url=server.base_url)
        started = time.monotonic()
        shared.request(RequestSpec("GET", server.base_url + "/q"), what="q")
        assert len(server.log) == 2
    assert time.monotonic() - started >= 1.2


def test_refusals_carry_their_http_status():
    with Script([FakeResponse(404, b"gone")]) as server:
        with pytest.raises(VendorError) as raised:
            policy(server).request(RequestSpec("GET", server.base_url + "/x"), what="w")
    assert raised.value.status == 404
