"""The first run after installing: numba compiles the feature kernels, then caches them.

Compiling takes seconds to a minute (README, "Install"); loading the compiled kernels from
numba's cache a fraction of a second.  :func:`prepare` compiles or loads every kernel a
feature spec needs, once per process, by computing the features of a tiny frame;
:func:`preparing` does the same in a background thread and yields while it runs, so the
OVITO modifier can show a status message and keep OVITO Pro responsive; :func:`on_compile`
calls back when numba really compiles (a cache miss), so the command line can say why it
waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from .features import compute_features
from .spec import FeatureSpec

COMPILING = "compiling the feature kernels: once after installing, up to a minute; later runs load them"

_READY: set[str] = set()  # the specs (as JSON) whose kernels this process has compiled or loaded
_JOBS: dict[str, _Job] = {}
_LOCK = threading.Lock()


@contextmanager
def on_compile(callback: Callable[[], None]) -> Iterator[None]:
    """Within the block, call ``callback()`` once, when numba first starts compiling a
    function in any thread (loading a compiled function from the cache does not count)."""
    from numba.core import event

    class Listener(event.Listener):
        fired = False

        def on_start(self, _event) -> None:
            if not self.fired:
                self.fired = True
                callback()

        def on_end(self, _event) -> None:
            pass

    listener = Listener()
    event.register("numba:compile", listener)
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)


def tiny_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A periodic two-species frame of 32 atoms (fcc, a = 3.52 Å, 2×2×2 cells, every fourth
    atom Al) as ``(positions, cell, pbc, species)``; its cell is smaller than twice the
    usual cutoffs, so atoms see their own periodic images."""
    base = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    cells = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], dtype=float)
    positions = 3.52 * (cells[:, None, :] + base[None]).reshape(-1, 3)
    species = np.where(np.arange(len(positions)) % 4 == 0, "Al", "Ni")
    return positions, 7.04 * np.eye(3), np.ones(3, dtype=bool), species


def prepare(spec: FeatureSpec) -> None:
    """Compile, or load from numba's cache, every kernel that ``spec``'s features need
    (a no-op once done in this process)."""
    key = spec.to_json()
    if key not in _READY:
        compute_features(tiny_frame(), spec)
        _READY.add(key)


class _Job(threading.Thread):
    """:func:`prepare` in a daemon thread; ``compiling`` turns True when numba compiles."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__(name="atomclass-kernels", daemon=True)
        self.spec, self.compiling, self.error = spec, False, None

    def run(self) -> None:
        try:
            with on_compile(self._compiles):
                prepare(self.spec)
        except Exception as exc:  # handed to the waiting caller
            self.error = exc

    def _compiles(self) -> None:
        self.compiling = True


def preparing(spec: FeatureSpec, poll: float = 0.1) -> Iterator[bool]:
    """:func:`prepare` ``spec`` in a background thread, yielding every ``poll`` seconds
    while it runs: True once numba compiles, else False.  Yields nothing if the kernels
    are ready; a caller that stops iterating leaves the thread to finish, and the next
    call waits for the same thread.  An error of :func:`prepare` is raised here."""
    key = spec.to_json()
    if key in _READY:
        return
    with _LOCK:
        job = _JOBS.get(key)
        if job is None or (not job.is_alive() and job.error is not None):
            job = _JOBS[key] = _Job(spec)
            job.start()
    while job.is_alive():
        yield job.compiling
        job.join(poll)
    with _LOCK:
        _JOBS.pop(key, None)
    if job.error is not None:
        raise job.error
