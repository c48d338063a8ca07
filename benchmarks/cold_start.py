"""The first run after installing: how long until the first labelled frame, and where the time goes.

Runs ``atomclass label`` on one frame in a fresh process, first with an empty numba cache
(``NUMBA_CACHE_DIR`` and the generated-kernel cache point to empty folders: what a new install
sees), then again with the cache that run left (every later run).  For the cold run it lists
the time numba spends compiling each kernel (wall and CPU time of the compiling thread), from
numba's ``numba:compile`` events, and the compiler passes that take longest (``numba:run_pass``
events: CPU time per function and pass; a pass that compiles a callee includes the callee's
passes).  Prints Markdown tables; ``--json FILE`` keeps the numbers.

By default the child is this interpreter (with its ``PYTHONPATH``: the project's venv, an
editable install).  ``--fresh-venv`` measures what a new user gets instead: it builds a wheel of
the checkout this script lives in (``python -m build``: sdist, then the wheel from it), installs
it with its runtime dependencies (no extras; pip's cache and index) into a new venv in a
temporary folder, and runs the child there in isolated mode (``python -I``: no ``PYTHONPATH``,
user site or current folder), from a folder outside the checkout.  The build and install times
are printed apart: they are not part of the figure.  The venv is removed at the end unless
``--keep-venv DIR`` puts it in ``DIR``.

    python benchmarks/cold_start.py                       # default.onnx, a 4000-atom fcc frame
    python benchmarks/cold_start.py --model models/seed.onnx --runs 3
    python benchmarks/cold_start.py --fresh-venv          # the same, installed from a wheel into a new venv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# the child: label one frame, recording numba's compilations (outermost only) and the time of
# each, and the CPU time of each compiler pass per function
CHILD = textwrap.dedent("""
    import json, re, sys, time
    from collections import defaultdict
    from numba.core import event

    compiles, stack, passes, pass_stack = [], [], defaultdict(float), []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append((time.perf_counter(), time.thread_time()))

        def on_end(self, ev):
            wall, cpu = stack.pop()
            if not stack:
                f = ev.data["dispatcher"].py_func
                compiles.append((f"{f.__module__}.{f.__qualname__}", time.perf_counter() - wall,
                                 time.thread_time() - cpu))

    class Passes(event.Listener):
        def on_start(self, ev):
            pass_stack.append(time.thread_time())

        def on_end(self, ev):
            # parfor gufuncs are named by an address: one line for all of them, comparable between runs
            name = re.sub("0x[0-9a-f]+", "*", ev.data["qualname"].split(".")[-1] + ": " + ev.data["name"])
            passes[name] += time.thread_time() - pass_stack.pop()

    event.register("numba:compile", Listener())
    event.register("numba:run_pass", Passes())
    import ovito_atomclass
    from ovito_atomclass.cli import main

    code = main(sys.argv[1:])
    print(json.dumps({"code": code, "compiles": compiles, "passes": passes, "python": sys.executable,
                      "package": ovito_atomclass.__path__[0]}))
""")


def make_frame(path: Path, cells: int) -> None:
    """A LAMMPS dump of rattled fcc Ni with 25 % Al, ``4 cells³`` atoms."""
    import numpy as np
    from ovito.data import DataCollection
    from ovito.io import export_file

    rng = np.random.default_rng(0)
    a = 3.52
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    positions = ((grid + base).reshape(-1, 3) * a + rng.normal(0, 0.05, (4 * cells**3, 3))) % (a * cells)
    data = DataCollection()
    data.create_cell(np.eye(3) * a * cells, pbc=(True, True, True))
    particles = data.create_particles(count=len(positions))
    particles.create_property("Position", data=positions)
    types = particles.create_property("Particle Type", data=1 + (rng.random(len(positions)) < 0.25))
    types.add_type_id(1, particles, name="Ni")
    types.add_type_id(2, particles, name="Al")
    export_file(data, str(path), "lammps/dump", columns=["Particle Type", "Position.X", "Position.Y", "Position.Z"])


def call(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``, its output captured; exit with its stderr if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stdout}{done.stderr}")
    return done


def fresh_venv(venv: Path, wheels: Path) -> dict[str, float]:
    """A new venv at ``venv`` with a wheel of this checkout and its runtime dependencies; the
    seconds the wheel and the install took."""
    checkout = Path(__file__).resolve().parents[1]
    left = set(checkout.glob("*.egg-info"))
    start = time.perf_counter()
    try:
        call([sys.executable, "-m", "build", "--outdir", str(wheels), str(checkout)], "building the wheel")
    finally:  # the sdist step writes NAME.egg-info into the checkout: leave it as it was
        for leftover in set(checkout.glob("*.egg-info")) - left:
            shutil.rmtree(leftover)
    built = time.perf_counter()
    (wheel,) = wheels.glob("*.whl")
    call([sys.executable, "-m", "venv", str(venv)], "creating the venv")
    # -I: a PYTHONPATH holding the checkout would make pip think the package is installed already
    call([str(venv / "bin" / "python"), "-I", "-m", "pip", "install", str(wheel)], "installing the wheel")
    return {"wheel": built - start, "install": time.perf_counter() - built}


def run(python: list[str], frame: Path, model: str, out: Path, cache: Path, threads: int) -> dict:
    """One ``atomclass label`` of ``frame`` by the interpreter command ``python`` in a fresh
    process with the numba cache ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache / "numba"), "OVITO_ATOMCLASS_CACHE": str(cache / "kernels"),
           "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "OVITO_THREAD_COUNT": str(threads)}
    argv = ["label", str(frame), "-o", str(out), "-j", "1", "-q", "--overwrite"] + (["-m", model] if model else [])
    start_wall = time.perf_counter()
    start_cpu = os.times()
    # from the output folder: the ovito_atomclass this interpreter finds (PYTHONPATH, installed), not the checkout
    child = call([*python, "-c", CHILD, *argv], "atomclass label", env=env, cwd=out.parent)
    end_cpu = os.times()
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start_wall
    result["cpu"] = (end_cpu.children_user - start_cpu.children_user) + (end_cpu.children_system
                                                                         - start_cpu.children_system)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model file (default: the shipped default.onnx)")
    parser.add_argument("--cells", type=int, default=10, help="fcc cells per edge of the frame (4 N³ atoms)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="numba / OVITO threads")
    parser.add_argument("--runs", type=int, default=1, help="cold runs (each with a new empty cache)")
    parser.add_argument("--passes", type=int, default=12, help="how many of the longest compiler passes to list")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--fresh-venv", action="store_true",
                        help="run in a new venv with a wheel of this checkout (needs `build`)")
    parser.add_argument("--keep-venv", metavar="DIR", help="with --fresh-venv: create the venv in DIR and keep it")
    args = parser.parse_args(argv)
    if args.keep_venv and (not args.fresh_venv or Path(args.keep_venv).exists()):
        parser.error("--keep-venv DIR needs --fresh-venv and a DIR that does not exist yet")
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="atomclass-cold-") as tmp:
        tmp = Path(tmp)
        python = [sys.executable]
        if args.fresh_venv:
            venv = Path(args.keep_venv or tmp / "venv").absolute()
            setup = fresh_venv(venv, tmp / "wheels")
            python = [str(venv / "bin" / "python"), "-I"]
        frame = tmp / "frame.dump"
        make_frame(frame, args.cells)
        cold, warm = [], []
        for k in range(args.runs):
            cache = tmp / f"cache{k}"
            cold.append(run(python, frame, args.model, tmp / "out", cache, args.threads))
            warm.append(run(python, frame, args.model, tmp / "out", cache, args.threads))
    kernels: dict[str, list[tuple[float, float]]] = {}
    for r in cold:
        for name, wall, cpu in r["compiles"]:
            kernels.setdefault(name, []).append((wall, cpu))
    median = statistics.median
    print(f"`atomclass label` of one {4 * args.cells**3}-atom frame, {args.threads} threads, "
          f"{args.model or 'default.onnx'}, medians of {args.runs}; {' '.join(python)} ({cold[0]['python']}), "
          f"ovito_atomclass from {cold[0]['package']}; load average {os.getloadavg()[0]:.1f}\n")
    if setup:
        print(f"Fresh venv (not in the figures): wheel built in {setup['wheel']:.1f} s, venv created and "
              f"the wheel installed with its dependencies in {setup['install']:.1f} s\n")
    print("| run | wall (s) | CPU (s) | numba compiling, wall (s) |\n|---|---|---|---|")
    for name, runs in (("cold: empty cache (first run after installing)", cold), ("warm: cached kernels", warm)):
        compiling = median([sum(c[1] for c in r["compiles"]) for r in runs])
        print(f"| {name} | {median([r['wall'] for r in runs]):.1f} | {median([r['cpu'] for r in runs]):.1f} | "
              f"{compiling:.1f} |")
    print("\n| kernel compiled in the cold run | wall (s) | CPU (s) |\n|---|---|---|")
    for name, times in sorted(kernels.items(), key=lambda kv: -median([t[0] for t in kv[1]])):
        print(f"| `{name}` | {median([t[0] for t in times]):.2f} | {median([t[1] for t in times]):.2f} |")
    passes: dict[str, list[float]] = {}
    for r in cold:
        for name, cpu in r["passes"].items():
            passes.setdefault(name, []).append(cpu)
    print("\n| function: compiler pass (cold run, nested) | CPU (s) |\n|---|---|")
    for name, times in sorted(passes.items(), key=lambda kv: -median(kv[1]))[: args.passes]:
        print(f"| `{name}` | {median(times):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cold": cold, "warm": warm, "setup": setup, "args": vars(args)},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
