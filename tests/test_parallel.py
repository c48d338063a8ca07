"""The engine's thread pool: every chunk runs once, errors come back after every chunk has
returned, and the results do not depend on the number of threads."""

import threading
import time

import numba
import numpy as np
import pytest

from ovito_atomclass import compute_features, load_model
from ovito_atomclass.parallel import run_chunks
from ovito_atomclass.samples import random_alloy

TWO_THREADS = numba.config.NUMBA_NUM_THREADS >= 2
needs_two = pytest.mark.skipif(not TWO_THREADS, reason="needs NUMBA_NUM_THREADS >= 2 (a machine with 2 cores)")


@pytest.fixture
def threads():
    """Set numba's thread count in the test (run_chunks follows it), restored afterwards."""
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


@needs_two
def test_every_index_is_in_exactly_one_chunk_and_both_threads_work(threads):
    threads(2)
    seen = np.zeros(10_001, dtype=int)
    names, lock = set(), threading.Lock()

    def kernel(lo, hi, out):
        with lock:
            names.add(threading.current_thread().name)
        out[lo:hi] += 1
        time.sleep(0.001)  # long enough that the helper thread takes chunks too

    run_chunks(kernel, 3, 10_001, seen, chunk=100)
    assert (seen[:3] == 0).all() and (seen[3:] == 1).all()
    assert len(names) == 2


def test_one_thread_runs_every_chunk_in_the_calling_thread(threads):
    threads(1)
    calls = []
    run_chunks(lambda lo, hi: calls.append((lo, hi, threading.current_thread().name)), 0, 250, chunk=100)
    assert calls == [(0, 100, "MainThread"), (100, 200, "MainThread"), (200, 250, "MainThread")]


@needs_two
def test_an_error_is_raised_once_every_chunk_has_returned_and_no_new_chunk_starts(threads):
    threads(2)
    done, lock = [], threading.Lock()

    def kernel(lo, hi):
        if lo == 500:
            raise ValueError("chunk at 500")
        time.sleep(0.002)
        with lock:
            done.append(lo)

    with pytest.raises(ValueError, match="chunk at 500"):
        run_chunks(kernel, 0, 100_000, chunk=100)
    finished = len(done)
    time.sleep(0.05)
    assert len(done) == finished < 999  # nothing still running, and the rest was not handed out


@needs_two
def test_features_and_probabilities_do_not_depend_on_the_thread_count(threads):
    atoms = random_alloy(n_cells=12, seed=3)  # 6912 atoms: several chunks
    atoms.rattle(0.1, seed=4)
    model = load_model("")
    results = []
    for n in (1, 2):
        threads(n)
        features = compute_features(atoms, model.spec)
        results.append((features, model.predict_proba(features)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
