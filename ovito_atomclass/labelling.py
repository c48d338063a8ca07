"""Batch labelling of MD trajectories: ``atomclass label``.

Every frame is read and classified by :class:`~ovito_atomclass.modifier.AtomClassifierModifier`
in an OVITO pipeline, then written to its own output file (temporary file, then rename), so
that resuming and parallel runs are exact.  The per-frame counts and fractions of the classes
go to a CSV file and a PNG plot.  Frames are numbered from 0 across all input files, in order.

OVITO binds itself to the thread that first imports it, so nothing here imports ``ovito`` at
module level: local workers are spawned processes, and on a Dask worker all OVITO work runs
in one dedicated thread.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

from .cli import UsageError
from .files import write_atomically
from .model import check_threshold, counts_from_attributes, load_model
from .warmup import prepare

# output formats able to carry the Structure Type column, with their file name extensions
FORMATS = {"lammps/dump": ".dump", "xyz": ".xyz"}
# the output format for each OVITO reader; frames from other readers are written as xyz
_FORMAT_OF_READER = {"LAMMPSTextDumpImporter": "lammps/dump", "LAMMPSBinaryDumpImporter": "lammps/dump",
                     "LAMMPSDataImporter": "lammps/dump", "XYZImporter": "xyz"}
_SCAN_ABORTED = re.compile(r'Scanning of the trajectory file "(.*)" aborted prematurely after \d+ frames '
                           r'due to an error: "(.*)"')
_FRAME_NAME = "frame_*"
_FLUSH_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    """What every frame is labelled with: the modifier's parameters and the output format."""

    model_file: str
    threshold: float = 0.0
    probabilities: bool = False
    only_selected: bool = False
    format: str = "xyz"


@dataclass(frozen=True)
class Task:
    """Frame ``frame`` (from 0) of ``file``, frame ``index`` of the whole run, to be written
    to ``output``; ``error`` is set for a frame known to be unreadable (a truncated file)."""

    index: int
    file: str
    frame: int
    output: str
    error: str | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of one :class:`Task`: the counts per class name, or the error."""

    task: Task
    timestep: int | None = None
    atoms: int = 0
    counts: dict[str, int] | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- one frame


@lru_cache(maxsize=1)
def _pipeline(file: str, settings: Settings):
    """An OVITO pipeline reading ``file`` with the classifier appended (one per process,
    rebuilt when the file changes)."""
    from ovito.io import import_file

    from .modifier import AtomClassifierModifier

    pipeline = import_file(file)
    pipeline.modifiers.append(AtomClassifierModifier(model_file=settings.model_file, threshold=settings.threshold,
                                                     output_probabilities=settings.probabilities,
                                                     only_selected=settings.only_selected))
    return pipeline


def export_frame(data, path: Path, fmt: str) -> None:
    """Write every particle property of ``data`` (OVITO DataCollection) to ``path`` in
    format ``fmt``, through a temporary file beside it and a rename."""
    from ovito.io import export_file

    columns = []
    for name, prop in data.particles.items():
        columns += [f"{name}.{c}" for c in prop.component_names] if prop.component_names else [name]
    partial = path.with_name(f".{path.name}.partial")
    try:
        export_file(data, str(partial), fmt, columns=columns)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def label_frame(task: Task, settings: Settings) -> Result:
    """Classify one frame and write it; errors come back in the result, in one line that
    names the file and the frame."""
    if task.error is not None:
        return Result(task, error=task.error)
    try:
        with _scan_warnings([]):  # already reported by scan() as a frame of its own
            data = _pipeline(task.file, settings).compute(task.frame)
        export_frame(data, Path(task.output), settings.format)
    except Exception as exc:  # a reader or the classifier failed on this frame: report it, go on
        message = " ".join(str(exc).split()) or type(exc).__name__
        return Result(task, error=f"{task.file}, frame {task.frame}: {message}")
    timestep = data.attributes.get("Timestep")
    return Result(task, None if timestep is None else int(timestep), data.particles.count,
                  counts_from_attributes(data.attributes))


_OVITO_THREAD: list[ThreadPoolExecutor] = []
_OVITO_LOCK = threading.Lock()


def label_frame_on_dask(task: Task, settings: Settings) -> Result:
    """:func:`label_frame` for a Dask worker: run in one dedicated thread of the worker
    process, the thread that imports OVITO there."""
    with _OVITO_LOCK:
        if not _OVITO_THREAD:
            _OVITO_THREAD.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="atomclass-ovito"))
    return _OVITO_THREAD[0].submit(label_frame, task, settings).result()


def _init_worker(numba_threads: int) -> None:
    """Share the cores between the local worker processes: numba and onnxruntime (which
    follows numba's count), and OVITO, which reads its count when first imported."""
    import numba

    threads = max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    os.environ["OVITO_THREAD_COUNT"] = str(threads)


# ---------------------------------------------------------------------------- many frames


def stream_results(tasks: Iterable[Task], submit: Callable[[Task], object], wait: Callable, window: int,
                   stop: threading.Event) -> Iterator[Result]:
    """Yield the results of ``tasks`` as they complete, with at most ``window`` submitted
    and not yet done; no task is submitted once ``stop`` is set.  ``submit`` returns a
    future; ``wait`` is ``concurrent.futures.wait`` or ``distributed.wait``."""
    todo, pending = iter(tasks), set()
    while True:
        while len(pending) < window and not stop.is_set() and (task := next(todo, None)) is not None:
            pending.add(submit(task))
        if not pending:
            return
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        pending = set(pending)
        for future in sorted(done, key=lambda f: f.result().task.index):
            yield future.result()


@contextmanager
def _executor(workers: int, scheduler: str | None, settings: Settings):
    """``(submit, wait, window)`` for the run: in this process, spawned local processes, or
    a Dask cluster."""
    if scheduler:
        try:
            import distributed
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install 'ovito-atomclass[dask]'") from None
        with distributed.Client(scheduler) as client:
            def submit(task):
                return client.submit(label_frame_on_dask, task, settings, pure=False)

            yield submit, distributed.wait, 2 * max(1, sum(client.nthreads().values()))
        return
    if workers == 1:
        def run_here(task):
            future = Future()
            future.set_result(label_frame(task, settings))
            return future

        yield run_here, wait, 1
        return
    # fork would copy this process's OVITO state, which hangs the children: spawn fresh ones
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(max(1, (os.cpu_count() or 1) // workers),)) as pool:
        yield (lambda task: pool.submit(label_frame, task, settings)), wait, 2 * workers


# ---------------------------------------------------------------------------- inputs and plan


def input_files(patterns: list[str]) -> list[Path]:
    """Existing files named by ``patterns`` (names or wildcards), wildcard matches in
    natural order (``dump.2`` before ``dump.10``)."""
    files = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern), key=_natural_key)
            if not matches:
                raise UsageError(f"no file matches {pattern!r}")
            files += matches
        elif not Path(pattern).is_file():
            raise UsageError(f"input file not found: {pattern}")
        else:
            files.append(pattern)
    return [Path(f).resolve() for f in files]


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@contextmanager
def _scan_warnings(found: list[re.Match]):
    """Collect OVITO's warnings about a truncated last frame, which its file readers print
    only to file descriptor 2, into ``found``; pass anything else printed there on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                match = _SCAN_ABORTED.search(line)
                if match:
                    found.append(match)
                else:
                    print(line, file=sys.stderr)


def scan(file: Path) -> tuple[int, str | None, str]:
    """``(frames, error, format)`` of one input file: the number of readable frames, the
    reader's message if the file ends in a truncated frame, and the matching output format."""
    from ovito.io import import_file

    found: list[re.Match] = []
    try:
        with _scan_warnings(found):
            source = import_file(str(file)).source
            frames = source.num_frames
    except RuntimeError as exc:
        raise ValueError(f"{file}: cannot read it: {' '.join(str(exc).split())}") from None
    error = f"{file}, frame {frames}: truncated or corrupt: {found[0].group(2)}" if found else None
    return frames, error, _FORMAT_OF_READER.get(type(source.importer).__name__, "xyz")


def parse_frames(text: str) -> slice:
    """``START:STOP:STEP`` (any part may be empty, Python slice rules) as a slice."""
    parts = text.split(":")
    try:
        if len(parts) > 3:
            raise ValueError
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise UsageError(f"--frames must be START:STOP:STEP with integers, got {text!r}") from None
    if len(values) == 3 and values[2] is not None and values[2] <= 0:
        raise UsageError(f"--frames: STEP must be positive, got {values[2]}")
    return slice(*values) if len(values) > 1 else slice(values[0], values[0] + 1 if values[0] != -1 else None)


def output_pattern(output: str, fmt_ext: str) -> Path:
    """The per-frame output path pattern: ``output`` if it contains ``*``, else
    ``output/frame_*<ext>``."""
    path = Path(output).expanduser().resolve()
    return path if "*" in path.name else path / f"{_FRAME_NAME}{fmt_ext}"


def frame_path(pattern: Path, index: int) -> Path:
    """The output file of frame ``index``: ``*`` replaced by the zero-padded index."""
    return pattern.with_name(pattern.name.replace("*", f"{index:06d}", 1))


# ---------------------------------------------------------------------------- counts table


def counts_columns(names: list[str]) -> list[str]:
    """The columns of the counts CSV for the structure types ``names``."""
    return (["frame", "file", "frame_in_file", "timestep", "atoms"] + [f"count_{n}" for n in names]
            + [f"fraction_{n}" for n in names])


def counts_row(result: Result, names: list[str]) -> dict[str, str]:
    """The CSV row of a labelled frame; fractions are of the classified atoms."""
    counts = [result.counts.get(name, 0) for name in names]
    total = sum(counts)
    row = {"frame": result.task.index, "file": result.task.file, "frame_in_file": result.task.frame,
           "timestep": "" if result.timestep is None else result.timestep, "atoms": result.atoms}
    row.update({f"count_{n}": c for n, c in zip(names, counts, strict=True)})
    row.update({f"fraction_{n}": f"{c / total:.6f}" if total else "0" for n, c in zip(names, counts, strict=True)})
    return {k: str(v) for k, v in row.items()}


def read_counts(path: Path, names: list[str]) -> dict[int, dict[str, str]]:
    """Rows of an existing counts CSV by frame; refuse one written for other classes."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != counts_columns(names):
            raise UsageError(f"{path} has the columns {reader.fieldnames}, not those of this model's classes "
                             f"{names}: label into another output folder")
        return {int(row["frame"]): row for row in reader}


def write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> None:
    """Write ``rows`` (dicts keyed by ``columns``) as a CSV file, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, text.getvalue().encode())


def plot_fractions(path: Path, rows: dict[int, dict[str, str]], names: list[str], colors: list[tuple]) -> None:
    """PNG of the fraction of each class against the frame."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    frames = sorted(rows)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, color in zip(names, colors, strict=True):
        ax.plot(frames, [float(rows[i][f"fraction_{name}"]) for i in frames], ".-", color=color, label=name,
                markeredgecolor="0.3", markeredgewidth=0.3)
    ax.set(xlabel="frame", ylabel="fraction of atoms", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small", ncols=min(len(names), 4))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    write_atomically(path, buffer.getvalue())


def write_errors(path: Path, failures: list[Result]) -> None:
    """One row per failed frame with its one-line message; no file if none failed."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    write_csv(path, ["frame", "file", "frame_in_file", "error"],
              [{"frame": r.task.index, "file": r.task.file, "frame_in_file": r.task.frame, "error": r.error}
               for r in failures])


# ---------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``atomclass label`` to ``parser``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="trajectory files or wildcard patterns, anything OVITO reads (LAMMPS dump/data, "
                             "extxyz, POSCAR, ...); multi-frame files are split into frames")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (frames written as frame_NNNNNN.<ext>) or a file pattern with * "
                             "standing for the zero-padded frame number, e.g. out/lab_*.xyz")
    parser.add_argument("-m", "--model", default="", help="ONNX model file (default: the shipped default.onnx)")
    parser.add_argument("--format", choices=sorted(FORMATS),
                        help="output format (default: the input's, or xyz if it cannot hold the labels)")
    parser.add_argument("--threshold", type=_threshold, default=0.0,
                        help="atoms whose most probable class is less likely than this become Other")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write the per-class Structure Probability and the Confidence columns")
    parser.add_argument("--only-selected", action="store_true",
                        help="classify only atoms with a non-zero Selection property")
    frames = parser.add_argument_group("frames (numbered from 0 across all inputs)")
    frames.add_argument("--frames", metavar="START:STOP:STEP", help="a Python slice of the frames, e.g. ::10")
    frames.add_argument("--start", type=int, help="first frame")
    frames.add_argument("--stop", type=int, help="frame to stop before")
    frames.add_argument("--every", type=int, help="label every N-th frame")
    run_group = parser.add_argument_group("running")
    run_group.add_argument("-j", "--workers", type=int, default=os.cpu_count() or 1,
                           help="local worker processes (default: the number of cores)")
    run_group.add_argument("--scheduler", metavar="ADDRESS",
                           help="label on a Dask cluster, e.g. tcp://host:8786 (the output folder must be on a "
                                "file system the workers share)")
    again = run_group.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="skip frames already labelled in the output")
    again.add_argument("--overwrite", action="store_true", help="relabel frames already in the output")
    run_group.add_argument("--keep-going", action="store_true",
                           help="record unreadable frames (in <counts>.errors.csv) and go on instead of stopping")
    run_group.add_argument("--counts", metavar="CSV",
                           help="per-frame counts and fractions (default: counts.csv beside the frames); "
                                "the plot goes to the same name with .png")


def _threshold(text: str) -> float:
    try:
        return check_threshold(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _frame_slice(args: argparse.Namespace) -> slice:
    if args.frames is not None:
        if any(v is not None for v in (args.start, args.stop, args.every)):
            raise UsageError("give either --frames or --start/--stop/--every, not both")
        return parse_frames(args.frames)
    if args.every is not None and args.every <= 0:
        raise UsageError(f"--every must be positive, got {args.every}")
    return slice(args.start, args.stop, args.every)


def plan(args: argparse.Namespace, files: list[Path]) -> tuple[list[Task], str, Path, Path]:
    """The tasks of the selected frames, the output format, the output path pattern and the
    counts CSV path; refuse to write over an input."""
    selection = _frame_slice(args)
    if "*" not in Path(args.output).name and Path(args.output).is_file():
        raise UsageError(f"the output {args.output} is a file: give a folder, or a file pattern with * for the "
                         "frame number")
    scans = [scan(f) for f in files]
    fmt = args.format or scans[0][2]
    pattern = output_pattern(args.output, FORMATS[fmt])
    frames = []
    for file, (n, error, _) in zip(files, scans, strict=True):
        frames += [(file, k, None) for k in range(n)] + ([(file, n, error)] if error else [])
    tasks = [Task(i, str(file), k, str(frame_path(pattern, i)), error)
             for i, (file, k, error) in list(enumerate(frames))[selection]]
    counts = Path(args.counts).expanduser().resolve() if args.counts else pattern.parent / "counts.csv"
    clash = {str(f) for f in files} & ({t.output for t in tasks} | {str(p) for p in _side_files(counts)})
    if clash:
        raise UsageError(f"refusing to overwrite the input {sorted(clash)[0]}: choose another output")
    return tasks, fmt, pattern, counts


def _side_files(counts: Path) -> tuple[Path, Path, Path]:
    """The counts CSV, its plot and its error list."""
    return counts, counts.with_suffix(".png"), counts.with_suffix(".errors.csv")


def done_rows(args: argparse.Namespace, tasks: list[Task], pattern: Path, counts: Path,
              names: list[str]) -> dict[int, dict[str, str]]:
    """The CSV rows of the frames already labelled, by frame: with ``--resume`` those of the
    existing CSV whose frame file exists; refuse to overwrite outputs without ``--overwrite``."""
    if args.resume:
        rows = read_counts(counts, names) if counts.exists() else {}
        return {i: row for i, row in rows.items() if frame_path(pattern, i).exists()}
    if not args.overwrite:
        existing = next((p for p in [counts] + [Path(t.output) for t in tasks] if p.exists()), None)
        if existing:
            raise UsageError(f"{existing} exists: pass --resume to continue the run or --overwrite to relabel")
    return {}


def run(args: argparse.Namespace) -> int:
    """Run ``atomclass label`` with the parsed ``args``; returns the exit code."""
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    try:
        model = load_model(args.model)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    names, colors = [t.name for t in model.structure_types], [t.color for t in model.structure_types]
    files = input_files(args.inputs)
    tasks, fmt, pattern, counts_path = plan(args, files)
    settings = Settings(str(model.path), args.threshold, args.probabilities, args.only_selected, fmt)
    rows = done_rows(args, tasks, pattern, counts_path, names)
    todo = [t for t in tasks if t.index not in rows]
    skipped = len(tasks) - len(todo)
    for folder in {pattern.parent, counts_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)

    counts_path, plot_path, errors_path = _side_files(counts_path)

    def save_counts() -> None:
        write_csv(counts_path, counts_columns(names), (rows[i] for i in sorted(rows)))

    failures: list[Result] = []
    labelled = 0
    stop = threading.Event()
    started = last_flush = time.monotonic()
    workers = 1 if args.scheduler else min(args.workers, max(1, len(todo)))
    if args.verbose:
        print(f"model {model.path}: classes {', '.join(model.classes)}; features {model.spec.to_json()}\n"
              f"{len(tasks)} frames selected in {len(files)} files, {skipped} already labelled; {workers} workers",
              file=sys.stderr)
    if todo:  # compile (or load) the kernels once here, not in every worker at the same time
        prepare(model.spec)
    progress = tqdm(total=len(todo), unit="frame", disable=args.quiet, dynamic_ncols=True)
    try:
        with _executor(workers, args.scheduler, settings) as (submit, wait, window):
            for result in stream_results(todo, submit, wait, window, stop):
                progress.update()
                if result.error is None:
                    rows[result.task.index] = counts_row(result, names)
                    labelled += 1
                    if args.verbose:
                        progress.write(f"frame {result.task.index} ({result.task.file}, frame {result.task.frame}): "
                                       + ", ".join(f"{n} {c}" for n, c in result.counts.items() if c), file=sys.stderr)
                else:
                    failures.append(result)
                    if not args.keep_going:
                        stop.set()
                    progress.write(f"atomclass label: {'skipping' if args.keep_going else 'error'}: {result.error}",
                                   file=sys.stderr)
                if time.monotonic() - last_flush > _FLUSH_SECONDS:
                    save_counts()
                    last_flush = time.monotonic()
    finally:
        progress.close()
        save_counts()
        write_errors(errors_path, failures)
    if rows:
        try:
            plot_fractions(plot_path, rows, names, colors)
        except ModuleNotFoundError as exc:  # matplotlib comes with the [train] extra
            if not exc.name.startswith("matplotlib"):
                raise
            plot_path = None
            if not args.quiet:
                print("atomclass label: no plot of the fractions: matplotlib is not installed "
                      "(pip install matplotlib)", file=sys.stderr)
    if not args.quiet:
        _summary(rows, names, labelled, skipped, failures, time.monotonic() - started, workers,
                 args.scheduler, counts_path, plot_path)
    if failures and not args.keep_going:
        return 1
    return 0


def _summary(rows, names, labelled, skipped, failures, seconds, workers, scheduler, counts_path, plot_path) -> None:
    where = f"Dask cluster {scheduler}" if scheduler else f"{workers} worker{'s' * (workers > 1)}"
    print(f"labelled {labelled} frames in {seconds:.1f} s ({labelled / max(seconds, 1e-9):.2f} frames/s, {where}); "
          f"{skipped} already done, {len(failures)} failed")
    if rows:
        mean = {n: sum(float(r[f"fraction_{n}"]) for r in rows.values()) / len(rows) for n in names}
        print("mean fractions over", len(rows), "frames:", ", ".join(f"{n} {mean[n]:.3f}" for n in names))
    print(f"counts: {counts_path}" + (f"  plot: {plot_path}" if plot_path else ""))
