"""Interrupting ``atomclass label``: SIGINT sent to a real process whose parent ignores it (a
background job of a script) or to a process group with worker processes (Ctrl-C in a
terminal) ends the run cleanly, with the CSV of the frames on disk saved and the documented
exit code, and ``--resume`` completes the run; SIGTERM ends it the same way; tasks running
when the interrupt comes are waited for, those waiting are cancelled."""

import concurrent.futures
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import ase.io
import pytest

from ovito_atomclass import labelling
from ovito_atomclass.cli import DEFERRED_MESSAGE, deferred_interrupts, interruptible, main
from ovito_atomclass.crystals import l12_ni3al

FRAMES = 100


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory):
    """An extxyz file of FRAMES rattled 500-atom L1_2 frames."""
    path = tmp_path_factory.mktemp("interrupt") / "long.xyz"
    frames = []
    for k in range(FRAMES):
        atoms = l12_ni3al(repeat=5)
        atoms.rattle(0.03, seed=k)
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return path


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signum, workers, parent_ignores_sigint", [
    (signal.SIGINT, 1, True),
    (signal.SIGINT, 2, False),
], ids=["SIGINT-ignored-by-parent", "Ctrl-C-two-workers"])
def test_a_signal_ends_the_run_cleanly(trajectory, tiny_model, tmp_path, signum, workers, parent_ignores_sigint):
    # with two workers the signal goes to the whole process group, as Ctrl-C in a terminal does
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NUMBA_NUM_THREADS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ovito_atomclass", "label", str(trajectory), "-o", str(out), "-m", str(tiny_model),
         "-j", str(workers), "-q"], env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=ignore_sigint if parent_ignores_sigint else None, start_new_session=workers > 1)
    deadline = time.monotonic() + 60
    # frame 3's file: frames 0-2 have their rows (a frame's file is written before its row)
    while not (out / "frame_000003.xyz").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if workers > 1:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert (process.returncode, err.strip().splitlines()[-1:]) == (130, ["atomclass: interrupted"]), err
    with open(out / "counts.csv", newline="") as fh:
        rows = [int(r["frame"]) for r in csv.DictReader(fh)]
    on_disk = sorted(int(p.stem.split("_")[1]) for p in out.glob("frame_*.xyz"))
    # the signal stops the run between frames: every frame written has its row, and no other
    assert 3 <= len(rows) < FRAMES and sorted(rows) == on_disk
    assert not [p.name for p in out.iterdir() if p.name.startswith(".frame")]  # no partial file left
    if parent_ignores_sigint:
        assert main(["label", str(trajectory), "-o", str(out), "-m", str(tiny_model), "-j", "1", "-q",
                     "--resume"]) == 0
        with open(out / "counts.csv", newline="") as fh:
            assert [int(r["frame"]) for r in csv.DictReader(fh)] == list(range(FRAMES))


def test_sigterm_ends_the_run_like_sigint(monkeypatch, capsys):
    def run(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        return 0

    monkeypatch.setattr(labelling, "run", run)
    assert main(["label", "in.dump", "-o", "out"]) == 143
    assert capsys.readouterr().err == "atomclass: interrupted by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_an_interrupt_cancels_waiting_tasks_and_yields_running_ones():
    tasks = [labelling.Task(i, "in.dump", i) for i in range(6)]
    release, waits = threading.Event(), []

    def wait(futures, timeout, return_when):
        waits.append(len(futures))
        if len(waits) == 1:
            raise KeyboardInterrupt  # tasks 0 and 1 run (two threads), 2 and 3 wait
        release.set()
        return concurrent.futures.wait(futures, timeout=timeout, return_when=return_when)

    with ThreadPoolExecutor(2) as pool:
        def submit(task):
            return pool.submit(lambda: release.wait(10) and labelling.Result(task))

        stop, yielded = threading.Event(), []
        with pytest.raises(KeyboardInterrupt):
            for result in labelling.stream_results(tasks, submit, wait, 4, stop):
                yielded.append(result.task.index)
    assert stop.is_set() and waits[0] == 4 and sorted(yielded) == [0, 1]


def test_a_deferred_interrupt_stops_between_frames_and_running_ones_are_yielded():
    tasks = [labelling.Task(i, "in.dump", i) for i in range(6)]
    release, asked = threading.Event(), []

    def arrived():  # the signal came before the first wait ended: tasks 0 and 1 run, 2 and 3 wait
        asked.append(True)
        release.set()
        return signal.SIGINT

    with ThreadPoolExecutor(2) as pool:
        def submit(task):
            return pool.submit(lambda: release.wait(10) and time.sleep(0.05) is None and labelling.Result(task))

        stop, yielded = threading.Event(), []
        with pytest.raises(KeyboardInterrupt) as raised:
            for result in labelling.stream_results(tasks, submit, concurrent.futures.wait, 4, stop, arrived):
                yielded.append(result.task.index)
    assert raised.value.signum == signal.SIGINT and stop.is_set() and sorted(yielded) == [0, 1] and asked


def test_deferred_interrupts_record_the_first_signal_and_raise_on_the_second(capfd):
    with interruptible(uses_ovito=False):
        with pytest.raises(KeyboardInterrupt):
            with deferred_interrupts() as arrived:
                assert arrived() is None
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)  # the handler runs: recorded, not raised
                assert arrived() == signal.SIGTERM
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)
                except KeyboardInterrupt as exc:
                    assert exc.signum == signal.SIGINT  # the second one at once
                    second = True
        assert second
        with pytest.raises(KeyboardInterrupt) as raised:  # one still pending when the block ends
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
        assert raised.value.signum == signal.SIGINT
    assert capfd.readouterr().err == 2 * DEFERRED_MESSAGE.decode()


def test_a_second_interrupt_before_the_first_was_seen_stops_at_once():
    """A deferred signal not yet asked for, then a KeyboardInterrupt while waiting: two
    interrupts, so the run stops without waiting for the running tasks."""
    tasks = [labelling.Task(i, "in.dump", i) for i in range(4)]
    release, waits = threading.Event(), []

    def wait(futures, timeout, return_when):
        waits.append(len(futures))
        if len(waits) == 1:
            raise KeyboardInterrupt
        release.set()  # taken for a first interrupt, the run would wait here for the running tasks
        return concurrent.futures.wait(futures, timeout=timeout, return_when=return_when)

    with ThreadPoolExecutor(2) as pool:
        def submit(task):
            return pool.submit(lambda: release.wait(10) and labelling.Result(task))

        yielded = []
        with pytest.raises(KeyboardInterrupt):
            for result in labelling.stream_results(tasks, submit, wait, 2, threading.Event(), lambda: signal.SIGINT):
                yielded.append(result)
        release.set()
    assert yielded == [] and waits == [2]
