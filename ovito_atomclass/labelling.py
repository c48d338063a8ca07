"""Batch labelling of MD trajectories: ``atomclass label``.

Every frame is read and classified by :class:`~ovito_atomclass.modifier.AtomClassifierModifier`
in an OVITO pipeline, then written to its own output file (temporary file, then rename), so
that resuming and parallel runs are exact.  The per-frame counts and fractions of the classes
go to a CSV file and a PNG plot.  Frames are numbered from 0 across all input files, in order;
a resumed run checks that every frame already labelled is still the same frame of the same
file, and that the model and options are those recorded by the run that began the folder.

OVITO binds itself to the thread that first imports it, so nothing here imports ``ovito`` at
module level: local workers are spawned processes, and on a Dask worker all OVITO work runs
in one dedicated thread.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .cli import Interrupted, UsageError, deferred_interrupts, ignore_interrupts
from .files import writable_folder, write_atomically
from .frame_index import frame_starts, guess_reader, read_span, text_size
from .model import DEFAULT_THRESHOLD, check_threshold, counts_from_attributes, load_model
from .warmup import prepare

# output formats able to carry the Structure Type column, with their file name extensions
FORMATS = {"lammps/dump": ".dump", "xyz": ".xyz"}
# the output format for each OVITO reader; frames from other readers are written as xyz
_FORMAT_OF_READER = {"LAMMPSTextDumpImporter": "lammps/dump", "LAMMPSBinaryDumpImporter": "lammps/dump",
                     "LAMMPSDataImporter": "lammps/dump", "XYZImporter": "xyz"}
# readers of formats whose columns carry no type: OVITO reads the columns it does not know as floats
_UNTYPED_COLUMNS = ("LAMMPSTextDumpImporter",)
_SCAN_ABORTED = re.compile(r'Scanning of the trajectory file "(.*)" aborted prematurely after \d+ frames '
                           r'due to an error: "(.*)"')
_FRAME_NAME = "frame_*"
_FLUSH_SECONDS = 10.0
# how often a run waiting for frames asks whether a (deferred) interrupt came, in s
POLL_SECONDS = 0.2
_LOCK_NAME = ".atomclass-label.lock"


@dataclass(frozen=True)
class Settings:
    """What every frame is labelled with: the model (file and SHA-256 of its content), the
    modifier's parameters and the output format."""

    model_file: str
    model_sha256: str = ""
    threshold: float = DEFAULT_THRESHOLD
    probabilities: bool = False
    only_selected: bool = False
    format: str = "xyz"


@dataclass(frozen=True)
class Task:
    """Frame ``frame`` (from 0) of ``file``, frame ``index`` of the whole run, to be written
    to ``output``.  ``error`` is set for a frame known to be unreadable; ``span`` (start,
    stop), bytes of the file's text, for a frame after a damaged one, which OVITO's index
    of the file does not reach; ``unreachable`` if the frames after this one could not be
    found."""

    index: int
    file: str
    frame: int
    output: str = ""
    error: str | None = None
    span: tuple[int, int] | None = None
    unreachable: bool = False


@dataclass(frozen=True)
class Result:
    """The outcome of one :class:`Task`: the counts per class name, or the error."""

    task: Task
    timestep: int | None = None
    atoms: int = 0
    class_counts: dict[str, int] | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- one frame


def _new_pipeline(file: str, settings: Settings):
    """An OVITO pipeline reading ``file`` with the classifier appended."""
    from ovito.io import import_file

    from .modifier import AtomClassifierModifier

    pipeline = import_file(file)
    pipeline.modifiers.append(AtomClassifierModifier(model_file=settings.model_file, threshold=settings.threshold,
                                                     output_probabilities=settings.probabilities,
                                                     only_selected=settings.only_selected))
    return pipeline


# one pipeline per process, rebuilt when the file changes
_pipeline = lru_cache(maxsize=1)(_new_pipeline)


def export_frame(data, path: Path, fmt: str, whole_numbers: bool = False) -> None:
    """Write every particle property of ``data`` (OVITO DataCollection) to ``path`` in
    format ``fmt``, through a temporary file beside it and a rename.  With ``whole_numbers``
    (columns read from a format that declares no types), user properties whose values are
    all whole numbers are written as integers.  A LAMMPS dump gets the names of the particle
    types as an ``element`` column."""
    from ovito.io import export_file

    columns = []
    for name, prop in data.particles.items():
        columns += [f"{name}.{c}" for c in prop.component_names] if prop.component_names else [name]
    if whole_numbers:
        _whole_numbers_as_integers(data)
    partial = path.with_name(f".{path.name}.partial")
    try:
        export_file(data, str(partial), fmt, columns=columns)
        elements = _element_names(data) if fmt == "lammps/dump" else None
        if elements is not None:
            _append_column(partial, "element", elements)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _whole_numbers_as_integers(data) -> None:
    """Turn user-defined float particle properties holding only whole numbers into Int64."""
    particles = data.particles_
    for name, prop in list(particles.items()):
        values = np.asarray(prop)
        if prop.type_id == 0 and values.dtype.kind == "f" and len(values) and \
                np.all((np.abs(values) < 2.0**53) & (values == np.round(values))):
            components = list(prop.component_names) or None
            del particles[name]
            particles.create_property(name, dtype=np.int64, components=components, data=values.astype(np.int64))


def _element_names(data) -> np.ndarray | None:
    """The name of each particle's type (N,) as bytes, or None unless every type has a name."""
    if "Particle Type" not in data.particles:
        return None
    ptypes = data.particles.particle_types
    names = {t.id: t.name for t in ptypes.types}
    ids = np.asarray(ptypes)
    if not len(ids) or not all(names.get(int(i)) and " " not in names[int(i)] for i in np.unique(ids)):
        return None
    lookup = np.empty(max(names) + 1, dtype=object)
    for i, name in names.items():
        lookup[i] = name.encode()
    return lookup[ids]


def _append_column(path: Path, name: str, values: np.ndarray) -> None:
    """Append column ``name`` with ``values`` (bytes, one per atom) to the one-frame LAMMPS
    dump at ``path``."""
    lines = path.read_bytes().split(b"\n")
    header = next(i for i, line in enumerate(lines) if line.startswith(b"ITEM: ATOMS"))
    lines[header] += b" " + name.encode()
    body = slice(header + 1, header + 1 + len(values))
    lines[body] = [line + b" " + value for line, value in zip(lines[body], values, strict=True)]
    path.write_bytes(b"\n".join(lines))


def label_frame(task: Task, settings: Settings) -> Result:
    """Classify one frame and write it; errors come back in the result, in one line that
    names the file and the frame."""
    if task.error is not None:
        return Result(task, error=task.error)
    where = f"{task.file}, frame {task.frame}"
    try:
        if task.span is None:
            with _scan_warnings([]):  # already reported by scan() as a frame of its own
                pipeline = _pipeline(task.file, settings)
                data = pipeline.compute(task.frame)
        else:
            where += " (read on its own: line numbers count from its first line)"
            pipeline, data = _compute_span(task, settings)
        reader = type(pipeline.source.importer).__name__
        export_frame(data, Path(task.output), settings.format, whole_numbers=reader in _UNTYPED_COLUMNS)
    except Exception as exc:  # a reader or the classifier failed on this frame: report it, go on
        message = " ".join(str(exc).split()) or type(exc).__name__
        return Result(task, error=f"{where}: {message}")
    timestep = data.attributes.get("Timestep")
    return Result(task, None if timestep is None else int(timestep), data.particles.count,
                  counts_from_attributes(data.attributes))


def _compute_span(task: Task, settings: Settings):
    """The pipeline and the labelled data of a frame cut out of its file (``task.span``)."""
    with tempfile.TemporaryDirectory(prefix="atomclass-frame-") as folder:
        path = Path(folder) / Path(task.file).name.removesuffix(".gz")
        path.write_bytes(read_span(task.file, *task.span))
        found: list[re.Match] = []
        with _scan_warnings(found):
            pipeline = _new_pipeline(str(path), settings)
            frames = pipeline.source.num_frames
        if found or frames != 1:
            raise ValueError(f"truncated or corrupt: {found[0].group(2) if found else f'{frames} frames found'}")
        return pipeline, pipeline.compute(0)


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
    follows numba's count), and OVITO, which reads its count when first imported.  Workers
    ignore SIGINT and SIGTERM: the parent stops them."""
    import numba

    threads = max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    os.environ["OVITO_THREAD_COUNT"] = str(threads)
    ignore_interrupts()


def available_cores() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------------------- many frames


def stream_results(tasks: Iterable[Task], submit: Callable[[Task], object], wait: Callable, window: int,
                   stop: threading.Event, arrived: Callable[[], int | None] = lambda: None) -> Iterator[Result]:
    """Yield the results of ``tasks`` as they complete, with at most ``window`` submitted
    and not yet done; no task is submitted once ``stop`` is set.  ``submit`` returns a
    future; ``wait`` is ``concurrent.futures.wait`` or ``distributed.wait``.

    An interrupt stops the run: a KeyboardInterrupt raised while waiting, or a signal that
    ``arrived`` reports (:func:`cli.deferred_interrupts`), asked every ``POLL_SECONDS``.  The
    tasks not yet started are cancelled and those running are waited for and yielded, then
    the interrupt goes on; a second KeyboardInterrupt stops at once."""
    todo, pending = iter(tasks), set()
    interrupted = None

    def stop_for(exc: BaseException) -> None:
        nonlocal interrupted
        interrupted = exc
        stop.set()
        for future in pending:
            future.cancel()

    while True:
        while len(pending) < window and not stop.is_set() and (task := next(todo, None)) is not None:
            pending.add(submit(task))
        if not pending:
            break
        try:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        except TimeoutError:  # distributed.wait raises where concurrent.futures.wait returns
            done = set()
        except KeyboardInterrupt as exc:
            if interrupted is not None or arrived() is not None:  # a second interrupt: stop at once
                raise
            stop_for(exc)
            continue
        pending = set(pending)
        if interrupted is None and (signum := arrived()) is not None:
            stop_for(Interrupted(signum))
        for future in sorted((f for f in done if not f.cancelled()), key=lambda f: f.result().task.index):
            yield future.result()
    if interrupted is not None:
        raise interrupted


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
                             initargs=(max(1, available_cores() // workers),)) as pool:
        try:
            yield (lambda task: pool.submit(label_frame, task, settings)), wait, 2 * workers
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


# ---------------------------------------------------------------------------- inputs and plan


def input_files(patterns: list[str]) -> list[Path]:
    """Existing files named by ``patterns`` (names, or wildcards where no file has that
    name), wildcard matches in natural order (``dump.2`` before ``dump.10``); a file named
    twice is refused."""
    files = []
    for pattern in patterns:
        if Path(pattern).is_file():  # a name such as dump[1].lammpstrj is a file, not a pattern
            files.append(pattern)
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern), key=_natural_key)
            if not matches:
                raise UsageError(f"no file matches {pattern!r}")
            files += matches
        else:
            raise UsageError(f"input file not found: {pattern}")
    resolved = [Path(f).resolve() for f in files]
    twice = next((f for i, f in enumerate(resolved) if f in resolved[:i]), None)
    if twice:
        raise UsageError(f"the input {twice} is named twice")
    return resolved


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


def scan(file: Path) -> tuple[list[Task], str]:
    """The frames of one input file, as tasks whose run index and output are still unset,
    and the output format matching its reader.

    OVITO indexes a file up to its first damaged frame.  The frames after it are found by
    :func:`~ovito_atomclass.frame_index.frame_starts` and cut out one by one; where they
    cannot be found (other formats), the damaged frame is marked ``unreachable``."""
    from ovito.io import import_file

    found: list[re.Match] = []
    try:
        with _scan_warnings(found):
            source = import_file(str(file)).source
            frames = source.num_frames
        reader, damage = type(source.importer).__name__, found[0].group(2) if found else None
    except RuntimeError as exc:  # the first frame is damaged
        reader, frames, damage = guess_reader(file), 0, " ".join(str(exc).split())
        if reader is None:
            raise ValueError(f"{file}: cannot read it: {damage}") from None
    tasks = [Task(-1, str(file), k) for k in range(frames)]
    if damage is not None:
        error = f"{file}, frame {frames}: truncated or corrupt: {damage}"
        starts = frame_starts(file, reader)
        if starts is None or len(starts) <= frames:
            tasks.append(Task(-1, str(file), frames, error=f"{error}; the frames after it, if any, cannot be found",
                              unreachable=True))
        else:
            bounds = [*starts[frames + 1:], text_size(file)]
            tasks.append(Task(-1, str(file), frames, error=error))
            tasks += [Task(-1, str(file), k, span=span)
                      for k, span in enumerate(zip(bounds[:-1], bounds[1:], strict=True), frames + 1)]
    return tasks, _FORMAT_OF_READER.get(reader, "xyz")


def parse_frames(text: str) -> slice:
    """``START:STOP:STEP`` (any part may be empty, Python slice rules) or a single frame
    ``N`` as a slice."""
    parts = text.split(":")
    try:
        if len(parts) > 3 or not text.strip():
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


@dataclass(frozen=True)
class Plan:
    """What a run labels: ``tasks`` (the selected frames), ``frames`` (the (file, frame in
    file) of every frame of the inputs, by run index), the output ``format``, the output
    path ``pattern`` and the path of the per-frame ``table`` (the counts CSV)."""

    tasks: list[Task]
    frames: list[tuple[str, int]]
    format: str
    pattern: Path
    table: Path


def plan(args: argparse.Namespace, files: list[Path]) -> Plan:
    """The frames of ``files`` and those ``args`` select; refuse to write over an input or
    a selection without frames."""
    selection, named = _frame_slice(args)
    if "*" not in Path(args.output).name and Path(args.output).is_file():
        raise UsageError(f"the output {args.output} is a file: give a folder, or a file pattern with * for the "
                         "frame number")
    scans = [scan(f) for f in files]
    fmt = args.format or scans[0][1]
    pattern = output_pattern(args.output, FORMATS[fmt])
    found = [task for tasks, _ in scans for task in tasks]
    tasks = [replace(t, index=i, output=str(frame_path(pattern, i))) for i, t in list(enumerate(found))[selection]]
    if not tasks:
        raise UsageError(f"{named} selects none of the {len(found)} frames (0 to {len(found) - 1}) of the input"
                         f"{'s' * (len(files) > 1)}" if found else "the input holds no frame")
    table = Path(args.counts).expanduser().resolve() if args.counts else pattern.parent / "counts.csv"
    clash = {str(f) for f in files} & ({t.output for t in tasks} | {str(p) for p in _side_files(table)})
    if clash:
        raise UsageError(f"refusing to overwrite the input {sorted(clash)[0]}: choose another output")
    return Plan(tasks, [(t.file, t.frame) for t in found], fmt, pattern, table)


# ---------------------------------------------------------------------------- the per-frame table (counts.csv)


def table_columns(names: list[str]) -> list[str]:
    """The columns of the per-frame table (counts CSV) for the structure types ``names``."""
    return (["frame", "file", "frame_in_file", "timestep", "atoms"] + [f"count_{n}" for n in names]
            + [f"fraction_{n}" for n in names])


def table_row(result: Result, names: list[str]) -> dict[str, str]:
    """The CSV row of a labelled frame; fractions are of the classified atoms."""
    counts = [result.class_counts.get(name, 0) for name in names]
    total = sum(counts)
    row = {"frame": result.task.index, "file": result.task.file, "frame_in_file": result.task.frame,
           "timestep": "" if result.timestep is None else result.timestep, "atoms": result.atoms}
    row.update({f"count_{n}": c for n, c in zip(names, counts, strict=True)})
    row.update({f"fraction_{n}": f"{c / total:.6f}" if total else "0" for n, c in zip(names, counts, strict=True)})
    return {k: str(v) for k, v in row.items()}


def read_table(path: Path, names: list[str]) -> dict[int, dict[str, str]]:
    """Rows of an existing counts CSV by frame.  A last row cut short (the file does not end
    with a line break: a full disk, a killed copy) is dropped with a warning, so that its
    frame is labelled again; any other malformed row, or a CSV written for other classes,
    is refused with the file and line."""
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        print(f"atomclass label: warning: {path}, line {len(lines)}: the last row is cut short: dropped, its frame "
              "is labelled again", file=sys.stderr)
        lines.pop()
    if not lines:
        return {}
    reader = csv.DictReader(lines)
    columns = table_columns(names)
    if reader.fieldnames != columns:
        raise UsageError(f"{path} has the columns {reader.fieldnames}, not those of this model's classes "
                         f"{names}: label into another output folder")
    rows: dict[int, dict[str, str]] = {}
    for row in reader:
        line = reader.line_num
        try:
            if None in row or None in row.values():
                fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None, ()))
                raise ValueError(f"{fields} fields, not {len(columns)}")
            frame, _ = (_whole(row[key], key) for key in ("frame", "frame_in_file"))
            for key in ["atoms", *(f"count_{n}" for n in names)]:
                _whole(row[key], key)
            if row["timestep"]:
                int(row["timestep"])
            for n in names:
                float(row[f"fraction_{n}"])
            if frame in rows:
                raise ValueError(f"frame {frame} has a row already")
        except ValueError as exc:
            raise ValueError(f"{path}, line {line}: {exc}: correct or delete the row (its frame is then labelled "
                             "again), or relabel everything with --overwrite") from None
        rows[frame] = row
    return rows


def _whole(text: str, key: str) -> int:
    """``text`` as a whole number >= 0; ValueError naming column ``key`` otherwise."""
    if not text.isdigit():
        raise ValueError(f"{key} is {text!r}, not a whole number")
    return int(text)


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


# ---------------------------------------------------------------------------- the output folder


@contextmanager
def _locked(folders: set[Path], record_path: Path):
    """Hold an exclusive lock on each of ``folders`` (created if needed) for the block, so
    that a second run into the same folder fails at once instead of mixing its rows in.
    The lock files stay empty: the process holding them is named in ``record_path``."""
    import fcntl

    with ExitStack() as stack:
        for folder in sorted(folders):
            writable_folder(folder, "labelled frames")
            lock = stack.enter_context(open(folder / _LOCK_NAME, "ab"))
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    owner = f" (process {json.loads(record_path.read_text())['process']})"
                except (OSError, ValueError, KeyError):
                    owner = ""
                raise RuntimeError(f"another atomclass label run{owner} is writing into {folder}: wait for it to "
                                   "end, or label into another folder") from None
        yield


# fields of the record that a resumed run does not compare
_INFORMATIONAL = ("model_file", "process")


def _record(settings: Settings, plan: Plan) -> dict:
    """What the run that begins an output folder records there (the ``.run.json`` file),
    for a resumed run to compare: everything but the model's path and the process must be
    equal (the folder may have been moved, so frame files count by name)."""
    return {**asdict(settings), "frame_files": plan.pattern.name, "process": f"{os.getpid()} on {platform.node()}"}


def _check_record(path: Path, record: dict, table_exists: bool) -> None:
    """Refuse to resume a run recorded in ``path`` with other settings than ``record``."""
    if not path.exists():
        if table_exists:
            raise UsageError(f"{path} is missing: the model and options the frames were labelled with are unknown; "
                             "relabel with --overwrite, or label into another folder")
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}): relabel with --overwrite, or label into another "
                         "folder") from None
    changed = [f"{key} {before.get(key)!r}, now {value!r}" for key, value in record.items()
               if key not in _INFORMATIONAL and before.get(key) != value]
    if changed:
        raise UsageError(f"cannot resume: the run recorded in {path} used other settings ({'; '.join(changed)}): "
                         "resume with the same model and options, relabel with --overwrite, or label into another "
                         "folder")


def done_rows(args: argparse.Namespace, plan: Plan, names: list[str], record: dict) -> dict[int, dict[str, str]]:
    """The CSV rows of the frames already labelled, by frame: with ``--resume`` those of the
    existing CSV whose frame file exists, after checking that the run recorded in the folder
    used the same settings and that every row still names the frame of that number;
    refuse to overwrite outputs without ``--overwrite``."""
    table, _, _, record_path = _side_files(plan.table)
    if args.resume:
        _check_record(record_path, record, table.exists())
        rows = read_table(table, names) if table.exists() else {}
        for i, row in rows.items():
            now = plan.frames[i] if i < len(plan.frames) else None
            if now is not None and now != (row["file"], int(row["frame_in_file"])):
                raise UsageError(f"cannot resume: frame {i} was frame {row['frame_in_file']} of {row['file']} and is "
                                 f"now frame {now[1]} of {now[0]} (the inputs or their frames changed); relabel with "
                                 "--overwrite, or label into another folder")
        return {i: row for i, row in rows.items() if frame_path(plan.pattern, i).exists()}
    if not args.overwrite:
        existing = next((p for p in [table, record_path, *(Path(t.output) for t in plan.tasks)] if p.exists()), None)
        if existing:
            raise UsageError(f"{existing} exists: pass --resume to continue the run or --overwrite to relabel")
    return {}


def _side_files(table: Path) -> tuple[Path, Path, Path, Path]:
    """The per-frame table (counts CSV), its plot, its error list and the record of the run's settings."""
    return table, table.with_suffix(".png"), table.with_suffix(".errors.csv"), table.with_suffix(".run.json")


# ---------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``atomclass label`` to ``parser`` (``-q`` and ``-v`` come from :mod:`.cli`)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="trajectory files or wildcard patterns, anything OVITO reads (LAMMPS dump/data, "
                             "extxyz, POSCAR, ...); multi-frame files are split into frames")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (frames written as frame_NNNNNN.<ext>) or a file pattern with * "
                             "standing for the zero-padded frame number, e.g. out/lab_*.xyz")
    parser.add_argument("-m", "--model", default="", help="ONNX model file (default: the shipped default.onnx)")
    parser.add_argument("--format", choices=sorted(FORMATS),
                        help="output format (default: the input's, or xyz if it cannot hold the labels)")
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
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
    run_group.add_argument("-j", "--workers", type=int,
                           help="local worker processes (default and at most: the number of cores, and of frames)")
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


def _frame_slice(args: argparse.Namespace) -> tuple[slice, str]:
    """The selected frames as a slice, and the options that select them."""
    if args.frames is not None:
        if any(v is not None for v in (args.start, args.stop, args.every)):
            raise UsageError("give either --frames or --start/--stop/--every, not both")
        return parse_frames(args.frames), f"--frames {args.frames}"
    if args.every is not None and args.every <= 0:
        raise UsageError(f"--every must be positive, got {args.every}")
    named = [f"--{key} {value}" for key, value in (("start", args.start), ("stop", args.stop), ("every", args.every))
             if value is not None]
    return slice(args.start, args.stop, args.every), " ".join(named)


def _workers(args: argparse.Namespace, frames: int) -> int:
    """The number of local worker processes: ``-j``, at most the cores and the frames (a note
    says so when ``-j`` asked for more)."""
    cores = available_cores()
    workers = min(args.workers or cores, cores, max(1, frames))
    if args.workers and workers < args.workers and frames and not args.quiet:
        print(f"atomclass label: note: {workers} worker process{'es' * (workers > 1)}, not {args.workers}: "
              f"{cores} core{'s' * (cores > 1)}, {frames} frame{'s' * (frames != 1)} to label", file=sys.stderr)
    return workers


def run(args: argparse.Namespace) -> int:
    """Run ``atomclass label`` with the parsed ``args``; returns the exit code."""
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    try:
        model = load_model(args.model)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    names, colors = [t.name for t in model.structure_types], [t.color for t in model.structure_types]
    files = input_files(args.inputs)
    work = plan(args, files)
    settings = Settings(str(model.path), model.digest, args.threshold, args.probabilities, args.only_selected,
                        work.format)
    table_path, plot_path, errors_path, record_path = _side_files(work.table)
    with _locked({work.pattern.parent, work.table.parent}, record_path):
        record = _record(settings, work)
        rows = done_rows(args, work, names, record)
        write_atomically(record_path, (json.dumps(record, indent=1) + "\n").encode())
        todo = [t for t in work.tasks if t.index not in rows]
        skipped = len(work.tasks) - len(todo)
        workers = 1 if args.scheduler else _workers(args, len(todo))
        started = time.monotonic()
        if args.verbose:
            print(f"model {model.path}: classes {', '.join(model.classes)}; features {model.spec.to_json()}\n"
                  f"{len(work.tasks)} frames selected in {len(files)} files, {skipped} already labelled; "
                  f"{workers} workers", file=sys.stderr)
        if todo:  # compile (or load) the kernels once here, not in every worker at the same time
            prepare(model.spec)
        failures, labelled = _label(todo, settings, workers, args, rows, names, table_path, errors_path)
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
        _summary(rows, names, labelled, skipped, failures, time.monotonic() - started, workers, args.scheduler,
                 table_path, plot_path)
    if any(f.task.unreachable for f in failures) or (failures and not args.keep_going):
        return 1
    return 0


def _label(todo: list[Task], settings: Settings, workers: int, args: argparse.Namespace,
           rows: dict[int, dict[str, str]], names: list[str], table_path: Path,
           errors_path: Path) -> tuple[list[Result], int]:
    """Label ``todo``, adding the CSV row of each labelled frame to ``rows``; the CSV is
    written every few seconds and at the end, also when interrupted.  Returns the failed
    frames and the number labelled."""
    def save_table() -> None:
        write_csv(table_path, table_columns(names), (rows[i] for i in sorted(rows)))

    failures: list[Result] = []
    labelled = 0
    stop = threading.Event()
    last_flush = time.monotonic()
    progress = tqdm(total=len(todo), unit="frame", disable=args.quiet, dynamic_ncols=True)
    try:
        # a first Ctrl-C stops the run between frames: the frames in progress are finished and recorded
        with deferred_interrupts() as arrived, _executor(workers, args.scheduler, settings) as (submit, wait, window):
            for result in stream_results(todo, submit, wait, window, stop, arrived):
                progress.update()
                if result.error is None:
                    rows[result.task.index] = table_row(result, names)
                    labelled += 1
                    if args.verbose:
                        progress.write(f"frame {result.task.index} ({result.task.file}, frame {result.task.frame}): "
                                       + ", ".join(f"{n} {c}" for n, c in result.class_counts.items() if c),
                                       file=sys.stderr)
                else:
                    failures.append(result)
                    if not args.keep_going:
                        stop.set()
                    progress.write(f"atomclass label: {'skipping' if args.keep_going else 'error'}: {result.error}",
                                   file=sys.stderr)
                if time.monotonic() - last_flush > _FLUSH_SECONDS:
                    save_table()
                    last_flush = time.monotonic()
    finally:
        progress.close()
        save_table()
        write_errors(errors_path, failures)
    return failures, labelled


def _summary(rows, names, labelled, skipped, failures, seconds, workers, scheduler, table_path, plot_path) -> None:
    where = f"Dask cluster {scheduler}" if scheduler else f"{workers} worker{'s' * (workers > 1)}"
    print(f"labelled {labelled} frames in {seconds:.1f} s ({labelled / max(seconds, 1e-9):.2f} frames/s, {where}); "
          f"{skipped} already done, {len(failures)} failed")
    if rows:
        mean = {n: sum(float(r[f"fraction_{n}"]) for r in rows.values()) / len(rows) for n in names}
        print("mean fractions over", len(rows), "frames:", ", ".join(f"{n} {mean[n]:.3f}" for n in names))
    print(f"counts: {table_path}" + (f"  plot: {plot_path}" if plot_path else ""))
