"""The engine's threads: serial kernels that release the GIL, run over chunks of atoms by a pool.

The numba kernels are compiled serial with ``nogil=True`` rather than ``parallel=True``:
they compile in a fraction of the time (the first run after installing), and chunks handed
out one at a time to the threads balance the load without OpenMP's barrier per call.  The
thread count is numba's (``NUMBA_NUM_THREADS``, :func:`numba.set_num_threads`), the one
knob for every stage, inference included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numba

# atoms per chunk: a millisecond or two of kernel time, large enough that the call costs little
CHUNK = 2048

_pool: tuple[ThreadPoolExecutor, int] | None = None  # the pool and its size
_pool_lock = threading.Lock()


def thread_count() -> int:
    """How many threads the engine uses in the calling thread: numba's setting."""
    return numba.get_num_threads()


def _helpers(count: int) -> ThreadPoolExecutor:
    """A pool with at least ``count`` threads (the calling thread works beside them)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] < count:
            _pool = ThreadPoolExecutor(count, thread_name_prefix="atomclass"), count
        return _pool[0]


def run_chunks(kernel: Callable, start: int, stop: int, *args, chunk: int = CHUNK) -> None:
    """Call ``kernel(lo, hi, *args)`` for consecutive ranges [lo, hi) of at most ``chunk``
    covering [start, stop), on :func:`thread_count` threads (the caller's among them).
    Every call has returned when this returns; after an error no further chunk starts, and
    the error is raised then (the calling thread's first)."""
    bounds = iter(range(start, stop, chunk))
    threads = min(thread_count(), -(-(stop - start) // chunk))
    lock = threading.Lock()

    def work() -> None:
        try:
            while True:
                with lock:
                    lo = next(bounds, None)
                if lo is None:
                    return
                kernel(lo, min(lo + chunk, stop), *args)
        except BaseException:  # an error (or an interrupt): no thread starts another chunk
            with lock:
                for _ in bounds:
                    pass
            raise

    if threads <= 1:
        work()
        return
    pool = _helpers(threads - 1)
    futures = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        wait(futures)
    for future in futures:
        future.result()
