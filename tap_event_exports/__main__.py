"""``python -m tap_event_exports`` and the ``tap-event-exports`` command."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import stat
import sys
import typing as t

ARROW_ALLOCATOR = "narenas:1,tcache:false"
"""Arrow's jemalloc settings (read when pyarrow loads): one arena and no thread caches keep the
parquet writer thread from holding memory of its own; a user's ``JE_ARROW_MALLOC_CONF`` wins."""
ARROW_POOL = "jemalloc"
"""Arrow's C++ default pool (read when pyarrow loads). pyarrow's default pool, set to jemalloc
in ``engine.columnar``, only serves what pyarrow allocates itself; the rest of Arrow's C++
(the parquet writer's encoders among it) takes the C++ default, mimalloc, which kept about
20 MiB of freed pages in a 1M-row parquet run. A user's ``ARROW_DEFAULT_MEMORY_POOL`` wins."""


MALLOC_ARENAS = 1
"""glibc malloc arenas: each worker thread would otherwise get an arena of its own, which keeps
the memory it once used (20 downloads in flight cost about 25 MiB more without this); a second
arena shared by the workers still kept about 6 MiB of download buffers in a 1M-row myTracker
run. Python allocates under the GIL, so the threads hardly ever wait for the one arena."""
M_ARENA_MAX = -8


def _limit_malloc_arenas() -> None:
    """Cap glibc's arenas and put all of Arrow on jemalloc (Linux; users' settings win).

    Before pyarrow loads: Arrow reads its pool setting once, at import.
    """
    if not sys.platform.startswith("linux"):
        return
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_POOL)
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, MALLOC_ARENAS)


PIPE_BYTES = 1 << 20
"""Capacity asked for a pipe on stdout (Linux's default is 64 KiB; 1 MiB is what an unprivileged
process may ask for by default): RECORD blocks are written in one call, and the reader wakes
once per block rather than once per 64 KiB."""


def _widen_stdout_pipe() -> None:
    """Give a pipe on stdout (``tap | target``) room for a whole block of records (Linux)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        return
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is None:
        return
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdout.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, set_size, PIPE_BYTES)


def _stopped_early(signum: int, _frame: t.Any) -> None:
    """SIGTERM while starting up: nothing was extracted yet; exit as a stopped run (128 + 15)."""
    sys.exit(128 + signum)


def main() -> None:
    """Run the tap; a SIGTERM during startup (imports take ~0.3 s) still exits 143, not -15."""
    signal.signal(signal.SIGTERM, _stopped_early)
    _limit_malloc_arenas()
    _widen_stdout_pipe()
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", ARROW_ALLOCATOR)
    gc.disable()  # imports make objects that live as long as the run: no cycles to collect
    quick = _discover_without_sdk()
    if quick is not None:
        _leave(quick)
    from tap_event_exports.tap import TapEventExports  # noqa: PLC0415 - after the handler

    _keep_imports_out_of_collections()
    code: t.Any = 0
    try:
        TapEventExports.cli()
    except SystemExit as exc:
        code = exc.code
    _leave(code)


def _keep_imports_out_of_collections() -> None:
    """Move what the imports made out of the collector's sight, then collect as usual.

    Collections during the imports (one full one, 20-40 ms before the first request) and
    every later full collection would otherwise walk the modules' objects, which live as long
    as the process.
    """
    gc.freeze()
    gc.enable()


def _discover_without_sdk() -> int | None:
    """``--discover`` from the tap's declarations (milliseconds, not the SDK's import).

    ``None`` where the command line, config or environment is one the SDK must answer.
    """
    from tap_event_exports.discover_command import discover  # noqa: PLC0415 - after the handler

    return discover(sys.argv[1:], os.environ)


def _leave(code: t.Any) -> t.NoReturn:
    """Exit without the interpreter's finalization once everything is written.

    Finalization puts the default signal handlers back, so a SIGTERM arriving in that last
    moment would end the process by the signal (-15) instead of the stopped run's 143.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
