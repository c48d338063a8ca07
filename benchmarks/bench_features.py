"""Feature-engine benchmark: our nine features (q4, q6, q8 x all, like, unlike) against
OVITO's Steinhardt modifier, pyscal3 and freud, a scale-free FeatureSet of several neighbour
definitions, plus our peak memory on a large frame.

    python benchmarks/bench_features.py                # 256,000 atoms, 1 and 2 threads, memory at 2,048,000
    python benchmarks/bench_features.py --cells 20 --memory-cells 0 --repeats 3   # a quick look

Two systems of ``4 * cells**3`` atoms: fcc Ni (a = 3.52 Å) and a random two-species
configuration at the same density (``ovito_atomclass.samples.random_alloy``); cutoff 4.0 Å.
OVITO reads its thread count once, from ``OVITO_THREAD_COUNT``, when it is imported, so
each thread count runs in its own worker process; inside it all codes are timed on
the same frame with numba, pyscal3 and freud set to the same count.  Each code first runs
untimed on a 256-atom frame (JIT compilation, plugin loading), then ``--repeats`` times on
the system; the table shows medians of wall time and of process CPU time (all threads;
less sensitive to other load on a shared machine).

- ours: ``compute_features(data, FeatureSpec())`` on the OVITO ``DataCollection``;
- ours-set: the same with :func:`scale_free_set` (one neighbour search for all definitions);
- OVITO: a fresh ``Pipeline`` with ``SteinhardtParametersModifier`` (cutoff, max_l = 8:
  q2..q8, all neighbours) for every repeat, so nothing is cached;
- pyscal3: ``find_neighbors(cutoff, store_rows=False)`` + ``steinhardt_parameter([4, 6, 8])``;
- freud: ``Steinhardt([4, 6, 8])`` with an ``AABBQuery`` cutoff query (single precision).

Memory: for the nine features and for the set, a separate process builds a
``4 * memory_cells**3``-atom random alloy as plain arrays, runs the features once on a small
frame (loads the compiled kernels), resets the kernel's peak-RSS counter and reports the peak
increase over the loaded frame.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovito_atomclass.samples import random_alloy

ROOT = Path(__file__).resolve().parents[1]

CUTOFF = 4.0
DEGREES = [4, 6, 8]
CODES = ("ours", "ours-set", "OVITO", "pyscal3", "freud")


def scale_free_set():
    """The FeatureSet of the shipped default model, or until it has one a stand-in: the 12 and
    the 14 nearest atoms (close-packed and bcc shells), q4, q6, q8 and their neighbour averages
    over all / like / unlike neighbours (36 features; the general model's draft)."""
    from ovito_atomclass import FeatureSet, FeatureSpec, load_model
    from ovito_atomclass.model import default_model_path

    spec = load_model(default_model_path()).spec
    if isinstance(spec, FeatureSet):
        return spec
    return FeatureSet(tuple(FeatureSpec(cutoff=None, num_neighbors=k, degrees=tuple(DEGREES), averaged=True,
                                        label=f"n{k}") for k in (12, 14)))


def fcc_ni(cells: int):
    from ase.build import bulk

    return bulk("Ni", "fcc", a=3.52, cubic=True) * (cells, cells, cells)


def timed(run: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall and process-CPU seconds of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def runners(atoms) -> dict[str, Callable[[], object]]:
    """One zero-argument call per code, each computing its features of ``atoms`` from scratch."""
    import freud
    import pyscal3
    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import SteinhardtParametersModifier
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_atomclass import FeatureSpec, compute_features

    data = ase_to_ovito(atoms)
    spec = FeatureSpec(cutoff=CUTOFF, degrees=tuple(DEGREES))
    scale_free = scale_free_set()

    def ovito():
        pipeline = Pipeline(source=StaticSource(data=data))
        pipeline.modifiers.append(SteinhardtParametersModifier(
            neighbor_mode=SteinhardtParametersModifier.NeighborMode.Cutoff, cutoff=CUTOFF, max_l=8))
        return pipeline.compute().particles["Steinhardt"]

    def pyscal():
        pyscal3.find_neighbors(atoms, method="cutoff", cutoff=CUTOFF, store_rows=False)
        return pyscal3.steinhardt_parameter(atoms, DEGREES)

    box = freud.box.Box.from_matrix(atoms.cell.array.T)
    points = box.wrap(atoms.positions)

    def freud_q():
        return freud.order.Steinhardt(DEGREES).compute((box, points), dict(r_max=CUTOFF, exclude_ii=True)).ql

    return {"ours": lambda: compute_features(data, spec), "ours-set": lambda: compute_features(data, scale_free),
            "OVITO": ovito, "pyscal3": pyscal, "freud": freud_q}


def parallel_control() -> Callable[[], object]:
    """A pure numba loop over 64 independent tasks: its CPU / wall ratio shows how many cores
    the threads really got while the codes were timed."""
    import numba

    @numba.njit(parallel=True)
    def spin(n):
        out = np.zeros(64)
        for task in numba.prange(64):
            for i in range(n):
                out[task] += np.sin(i * 1e-3 + task)
        return out

    return lambda: spin(200_000)


def time_worker(cells: int, threads: int, repeats: int, codes: list[str]) -> list[dict]:
    """Time every code on both systems with ``threads`` threads (OVITO's set by the parent)."""
    import freud
    import numba
    import pyscal3
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")  # numpy's matrix products would start their own threads
    numba.set_num_threads(threads)
    pyscal3.set_num_threads(threads)
    freud.parallel.set_num_threads(threads)
    warm_up = runners(random_alloy(n_cells=4, seed=1))  # JIT compilation, plugin loading: not timed
    for code in codes:
        warm_up[code]()
    control = parallel_control()
    control()
    rows = [{"system": "before", "atoms": 0, "threads": threads, "code": "control", **timed(control, repeats)}]
    for system, atoms in (("fcc Ni", fcc_ni(cells)), ("random alloy", random_alloy(n_cells=cells, seed=0))):
        calls = runners(atoms)
        for code in codes:
            rows.append({"system": system, "atoms": len(atoms), "threads": threads, "code": code,
                         **timed(calls[code], repeats)})
            print(f"  {system:12s} {threads} thread(s) {code:8s} {rows[-1]['wall']:8.3f} s", file=sys.stderr)
    rows.append({**rows[0], "system": "after", **timed(control, repeats)})
    return rows


def rss_kib(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_worker(cells: int, which: str) -> dict:
    """Peak RSS increase (MiB) while computing the nine features (``which`` = "nine") or the
    scale-free set ("set") of a large random alloy."""
    from ovito_atomclass import FeatureSpec, compute_features

    spec = FeatureSpec(cutoff=CUTOFF, degrees=tuple(DEGREES)) if which == "nine" else scale_free_set()
    small = random_alloy(n_cells=3, seed=0)
    compute_features((small.positions, small.cell.array, True, np.array(small.get_chemical_symbols())), spec)
    rng = np.random.default_rng(0)
    length = 3.52 * cells
    n = 4 * cells**3
    frame = (rng.random((n, 3)) * length, np.eye(3) * length, True, np.where(rng.random(n) < 0.3, "Al", "Ni"))
    baseline = rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    if rss_kib("VmHWM") > baseline + 1024:
        raise RuntimeError("could not reset the peak-RSS counter (/proc/self/clear_refs)")
    start = time.perf_counter()
    features = compute_features(frame, spec)
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM")
    return {"atoms": n, "features": features.shape[1], "seconds": seconds, "baseline_mib": baseline / 1024,
            "peak_mib": peak / 1024, "increase_mib": (peak - baseline) / 1024,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_worker(args: list[str], env: dict[str, str] | None = None):
    """Run this script with ``args`` in a fresh process and return the JSON it prints."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.splitlines()[-1])


def table(rows: list[dict]) -> str:
    """Markdown table, a row per system and thread count: each code's median wall time,
    its CPU time in brackets and its wall time relative to OVITO's."""
    rows = [r for r in rows if r["code"] in CODES]
    codes = [c for c in CODES if any(r["code"] == c for r in rows)]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    cases = sorted(dict.fromkeys((r["system"], r["atoms"], r["threads"]) for r in rows),
                   key=lambda case: (systems.index(case[0]), case[2]))
    lines = ["| system | threads | " + " | ".join(codes) + " |", "|---|---|" + "---|" * len(codes)]
    for system, atoms, threads in cases:
        found = {r["code"]: r for r in rows if (r["system"], r["atoms"], r["threads"]) == (system, atoms, threads)}
        ovito = found.get("OVITO", {}).get("wall")
        cells = ["–" if c not in found else f"{found[c]['wall']:.2f} s ({found[c]['cpu']:.2f})"
                 + (f" {found[c]['wall'] / ovito:.2f}×" if ovito else "") for c in codes]
        lines.append(f"| {system}, {atoms:,} atoms | {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=40, help="fcc cells per edge (4 * cells^3 atoms), default 40")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per code (median), default 3")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts, default 1 2")
    parser.add_argument("--codes", nargs="+", default=list(CODES), choices=CODES, help="codes to time")
    parser.add_argument("--memory-cells", type=int, default=80,
                        help="cells per edge of the memory frame (default 80: 2,048,000 atoms); 0 skips it")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--worker", choices=["time", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--memory-spec", choices=["nine", "set"], default="nine", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cells < 1 or args.repeats < 1 or min(args.threads) < 1 or args.memory_cells < 0:
        parser.error("--cells, --repeats and --threads must be positive, --memory-cells not negative")
    if args.worker == "time":
        print(json.dumps(time_worker(args.cells, args.threads[0], args.repeats, args.codes)))
        return 0
    if args.worker == "memory":
        print(json.dumps(memory_worker(args.memory_cells, args.memory_spec)))
        return 0

    started = time.perf_counter()
    rows = []
    for n in args.threads:
        rows += in_worker(["--worker", "time", "--cells", str(args.cells), "--threads", str(n),
                           "--repeats", str(args.repeats), "--codes", *args.codes], {"OVITO_THREAD_COUNT": str(n)})
    print(f"\nmedians of {args.repeats} repeats, cutoff {CUTOFF} Å, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: wall time (CPU time of all threads) "
          "and wall time relative to OVITO\n")
    print(table(rows))
    print("\ncores a pure numba loop kept busy (CPU / wall) before and after the timings: " + "; ".join(
        f"{n} thread(s) " + " / ".join(f"{r['cpu'] / r['wall']:.2f}" for r in rows
                                       if r["code"] == "control" and r["threads"] == n) for n in args.threads))
    memory = {}
    if args.memory_cells:
        for which in ("nine", "set"):
            memory[which] = m = in_worker(["--worker", "memory", "--memory-cells", str(args.memory_cells),
                                           "--memory-spec", which])
            print(f"\nmemory, {m['atoms']:,} atoms, {m['features']} features ({which}): peak RSS "
                  f"{m['peak_mib']:.0f} MiB over a loaded frame of {m['baseline_mib']:.0f} MiB "
                  f"(+{m['increase_mib']:.0f} MiB), {m['seconds']:.1f} s")
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"timings": rows, "memory": memory}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
