"""Work on several windows at once while records still come out in window order."""

from __future__ import annotations

import queue
import threading
import typing as t
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

In = t.TypeVar("In")
Out = t.TypeVar("Out")


def ordered_prefetch(
    items: Iterable[In],
    work: Callable[[In], Out],
    *,
    in_flight: int,
    stop: threading.Event,
    name: str = "window",
    discard: Callable[[Out], object] | None = None,
) -> Iterator[tuple[In, Out]]:
    """Run ``work`` on up to ``in_flight`` items at a time; yield results in input order.

    The next items' work starts while the caller is still consuming an earlier result. If a
    work item fails, its exception is raised when its turn comes, after every earlier result
    has been yielded. When the consumer stops early, ``stop`` is set so that waiting workers
    give up, unstarted work is cancelled, and ``discard`` releases results never handed over.
    """
    pending: deque[tuple[In, Future[Out]]] = deque()
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix=name)
    try:
        for item in source:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= max(1, in_flight):
                break
        while pending:
            item, future = pending.popleft()
            result = future.result()
            # Top the pipeline up before handing the result over, so work overlaps consumption.
            for nxt in source:
                pending.append((nxt, pool.submit(work, nxt)))
                break
            yield item, result
    finally:
        if pending:
            stop.set()
            for _, future in pending:
                future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for _, future in pending:
            finished = future.done() and not future.cancelled()
            if discard is not None and finished and future.exception() is None:
                discard(future.result())


def read_ahead(items: Iterator[Out], *, depth: int = 1, name: str) -> Generator[Out, None, None]:
    """The items of ``items``, produced on a thread of their own up to ``depth`` ahead.

    For producers that work outside the GIL (pyarrow parsing the next CSV block while the
    caller types the current one). The producer's exception is raised to the consumer in its
    turn; when the consumer stops early, the producer stops and ``items`` is closed.
    """
    ready: queue.Queue[tuple[bool, t.Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def hand_over(entry: tuple[bool, t.Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((True, item)):
                    return
            hand_over((True, end))
        except BaseException as exc:  # handed to the consumer
            hand_over((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            if item is end:
                return
            yield item
    finally:
        stop.set()
        producer.join()


class WriteBehind:
    """Output work done in order on one thread, at most ``depth`` items behind the caller.

    For output that runs outside the GIL (compiled encoders, parquet, gzip, the write system
    calls): the caller types the next block meanwhile. Several writers may share one
    ``pool`` of one thread (their items then run in the order given); each waits for its own
    items only. A failed item's exception is raised by the writer's next call.
    """

    def __init__(self, depth: int, pool: Callable[[], ThreadPoolExecutor]) -> None:
        """Keep at most ``depth`` items in flight on the executor ``pool()`` gives."""
        self._depth = max(1, depth)
        self._pool = pool
        self._in_flight: deque[Future[object]] = deque()

    def submit(self, work: Callable[..., object], *args: t.Any) -> None:
        """Queue ``work(*args)`` after the items already queued (waits while ``depth`` are)."""
        while len(self._in_flight) >= self._depth:
            self._in_flight.popleft().result()
        self._in_flight.append(self._pool().submit(work, *args))

    def wait(self, *, raise_errors: bool = True) -> None:
        """Wait until every queued item is done; the first failure is raised (if asked)."""
        while self._in_flight:
            future = self._in_flight.popleft()
            if raise_errors:
                future.result()
            else:
                future.exception()

    @property
    def idle(self) -> bool:
        """Whether no item is queued (nothing to wait for)."""
        return not self._in_flight


def one_thread(name: str) -> Callable[[], ThreadPoolExecutor]:
    """A getter of one executor of one thread, made at the first call (for :class:`WriteBehind`)."""
    made: list[ThreadPoolExecutor] = []
    lock = threading.Lock()

    def pool() -> ThreadPoolExecutor:
        if not made:
            with lock:
                if not made:
                    made.append(ThreadPoolExecutor(1, thread_name_prefix=name))
        return made[0]

    return pool
