"""read_ahead: items made on a thread of their own, in order, errors in turn, clean stops."""

from __future__ import annotations

import threading

import pytest

from tap_event_exports.engine.concurrency import read_ahead


def test_items_come_in_order_from_another_thread():
    threads = []

    def produce():
        for number in range(50):
            threads.append(threading.current_thread().name)
            yield number

    assert list(read_ahead(produce(), name="maker")) == list(range(50))
    assert set(threads) == {"maker"}


def test_an_error_comes_after_every_earlier_item():
    def produce():
        yield 1
        yield 2
        raise ValueError("block 3 is bad")

    got = []
    with pytest.raises(ValueError, match="block 3 is bad"):
        got.extend(read_ahead(produce(), name="maker"))
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer():
    closed = threading.Event()
    made = []

    def produce():
        try:
            for number in range(1000):
                made.append(number)
                yield number
        finally:
            closed.set()

    items = read_ahead(produce(), depth=1, name="maker")
    assert next(items) == 0
    items.close()
    assert closed.wait(2)
    assert len(made) <= 3, "the producer stays at most a couple of items ahead"
    assert not any(t.name == "maker" for t in threading.enumerate())
