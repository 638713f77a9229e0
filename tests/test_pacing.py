"""Client-side pacing: requests stay under the quotas, and the one needed soonest goes first.

The order is what a data engineer sees as time to the next window's records: a job's creation
first (the vendor starts working), then requests in emission order; and while an export needed
sooner is being fetched, later exports leave one request of each quota free for it.
"""

from __future__ import annotations

import contextlib
import threading
import time

from tap_event_exports.engine.pacing import RateLimiter, creating_job, export_rank


def _blocked_requests(limiter: RateLimiter, who: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
    """Start one waiting request per (rank, creating) while the quota is full; their order."""
    granted: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def request(rank: int, creating: bool) -> None:
        with export_rank(rank), creating_job() if creating else contextlib.nullcontext():
            limiter.acquire()
        with lock:
            granted.append((rank, creating))

    threads = []
    for rank, creating in who:  # they arrive in this order, all while the quota is used up
        thread = threading.Thread(target=request, args=(rank, creating))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)
    for thread in threads:
        thread.join(10)
    return granted


def test_waiting_requests_go_in_emission_order_with_job_creations_first():
    limiter = RateLimiter(((1, 0.15),), threading.Event(), vendor="mytracker")
    limiter.acquire()  # the quota (one request per window) is used up
    arrivals = [(3, False), (2, False), (5, True), (0, False), (1, False), (4, True)]
    assert _blocked_requests(limiter, arrivals) == [
        (4, True),  # creations first, in emission order
        (5, True),
        (0, False),
        (1, False),
        (2, False),
        (3, False),
    ]


def test_a_later_export_leaves_room_for_one_still_being_fetched():
    limiter = RateLimiter(((3, 0.6),), threading.Event(), vendor="mytracker")
    sooner_fetched = threading.Event()
    done = threading.Event()

    def sooner() -> None:  # an export emitted first, between two of its requests
        with export_rank(0):
            limiter.acquire()
            sooner_fetched.wait(5)
            started = time.monotonic()
            limiter.acquire()  # its next request finds the slot kept for it
            waited.append(time.monotonic() - started)
        done.set()

    waited: list[float] = []
    thread = threading.Thread(target=sooner)
    thread.start()
    time.sleep(0.02)
    with export_rank(1):
        started = time.monotonic()
        limiter.acquire()  # a second slot of three: fine
        limiter.acquire()  # the third is kept for rank 0: waits for the window to move on
        later_waited = time.monotonic() - started
    sooner_fetched.set()
    thread.join(5)
    assert done.is_set()
    assert later_waited >= 0.5
    assert len(waited) == 1, "rank 0 made its second request"
    assert waited[0] < 0.3  # rank 0's request found the slot the later export left free


def test_nothing_is_kept_back_once_the_sooner_export_is_fetched():
    limiter = RateLimiter(((2, 0.5),), threading.Event(), vendor="mytracker")
    with export_rank(0):
        limiter.acquire()
    with export_rank(1):
        started = time.monotonic()
        limiter.acquire()  # rank 0 is done: the whole quota is rank 1's
        assert time.monotonic() - started < 0.2


def test_the_soonest_export_uses_the_whole_quota():
    limiter = RateLimiter(((2, 0.5),), threading.Event(), vendor="mytracker")
    with export_rank(1):  # a later export, still being fetched
        limiter.acquire()
        with export_rank(0):
            started = time.monotonic()
            limiter.acquire()  # the last slot: nothing is kept back from the soonest export
            assert time.monotonic() - started < 0.2


def test_requests_outside_exports_are_not_held_back():
    limiter = RateLimiter(((2, 0.5),), threading.Event(), vendor="mytracker")
    with export_rank(0):
        limiter.acquire()
        started = time.monotonic()
        with export_rank(-1):  # a connection check, say, made while rank 0 is fetched
            limiter.acquire()
        assert time.monotonic() - started < 0.2


def test_a_stop_releases_a_waiting_request():
    stop = threading.Event()
    limiter = RateLimiter(((1, 30.0),), stop, vendor="mytracker")
    limiter.acquire()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started < 2
