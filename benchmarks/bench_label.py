"""Labelling benchmark: ``atomclass label`` on a LAMMPS dump of fcc Ni with thermal noise,
with 1 and 2 local workers, against the modifier in a plain OVITO script loop.

    python benchmarks/bench_label.py                      # 200 frames of 32,000 atoms
    python benchmarks/bench_label.py --frames 20 --cells 10   # a quick look

The trajectory (``4 * cells**3`` atoms, a = 3.52 Å, Gaussian displacements of 0.1 Å rms per
axis, new ones each frame, seed 0) is written once to ``out/bench-label/`` (git-ignored)
and reused.  The model is ``--model``, else the shipped ``models/default.onnx``, else the
tiny four-class random forest of ``ovito_atomclass.samples``, trained here in a few seconds.

Rates are wall-clock frames per second over the whole command (reading the frame index of
the file, starting workers, writing every frame, the CSV and the plot).  The plain loop is
``pipeline.compute(frame)`` of an ``import_file`` pipeline with ``AtomClassifierModifier``
appended, timed per frame with and without writing the frame, after one untimed frame.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

A_NI = 3.52
NOISE = 0.1


def write_trajectory(path: Path, cells: int, frames: int) -> None:
    """A LAMMPS text dump of ``frames`` noisy copies of a ``cells**3`` cubic fcc Ni block."""
    from ase.build import bulk

    atoms = bulk("Ni", "fcc", a=A_NI, cubic=True) * (cells, cells, cells)
    length = A_NI * cells
    ids = np.arange(1, len(atoms) + 1)
    rng = np.random.default_rng(0)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as fh:
        for step in range(frames):
            fh.write(f"ITEM: TIMESTEP\n{100 * step}\nITEM: NUMBER OF ATOMS\n{len(atoms)}\n"
                     f"ITEM: BOX BOUNDS pp pp pp\n" + f"0 {length}\n" * 3 + "ITEM: ATOMS id type x y z\n")
            xyz = atoms.positions + rng.normal(0.0, NOISE, atoms.positions.shape)
            np.savetxt(fh, np.column_stack([ids, np.ones_like(ids), xyz]), fmt="%d %d %.5f %.5f %.5f")
    os.replace(partial, path)


def model_path(requested: str | None, folder: Path) -> Path:
    from ovito_atomclass.model import default_model_path

    if requested:
        return Path(requested)
    if default_model_path().is_file():
        return default_model_path()
    from ovito_atomclass.samples import train_tiny_model

    return train_tiny_model(folder / "tiny.onnx")


def time_label(trajectory: Path, model: Path, workers: int, out: Path) -> float:
    """Wall seconds of ``atomclass label`` over the whole trajectory, run as the command line."""
    from ovito_atomclass.cli import main as atomclass

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if atomclass(["label", str(trajectory), "-o", str(out), "-m", str(model), "-j", str(workers), "-q"]) != 0:
        raise RuntimeError(f"atomclass label failed with {workers} worker(s)")
    return time.perf_counter() - start


def time_plain_loop(trajectory: Path, model: Path, frames: int, out: Path) -> dict[str, float]:
    """Median seconds per frame of the modifier in a plain pipeline loop, without and with
    writing the labelled frame."""
    from ovito.io import import_file

    from ovito_atomclass.labelling import export_frame
    from ovito_atomclass.modifier import AtomClassifierModifier

    out.mkdir(parents=True, exist_ok=True)
    pipeline = import_file(str(trajectory))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(model)))
    pipeline.compute(0)
    compute, write = [], []
    for frame in range(1, frames + 1):
        start = time.perf_counter()
        data = pipeline.compute(frame)
        compute.append(time.perf_counter() - start)
        export_frame(data, out / f"frame_{frame:06d}.dump", "lammps/dump")
        write.append(time.perf_counter() - start)
    return {"compute": statistics.median(compute), "compute_and_write": statistics.median(write)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20, help="fcc cells per edge (atoms = 4 cells^3)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loop-frames", type=int, default=20, help="frames timed in the plain OVITO loop")
    parser.add_argument("--model", help="ONNX model (default: models/default.onnx, else a tiny test model)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    folder = ROOT / "out" / "bench-label"
    folder.mkdir(parents=True, exist_ok=True)
    trajectory = folder / f"ni_fcc_{4 * args.cells ** 3}_x{args.frames}.dump"
    if not trajectory.exists():
        print(f"writing {trajectory} ...", flush=True)
        write_trajectory(trajectory, args.cells, args.frames)
    model = model_path(args.model, folder)
    results = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "cores": os.cpu_count(),
               "atoms": 4 * args.cells ** 3, "frames": args.frames, "model": model.name,
               "load_average_before": os.getloadavg()[0]}
    for workers in args.workers:
        seconds = time_label(trajectory, model, workers, folder / f"run-{workers}")
        results[f"label_{workers}_workers"] = {"seconds": seconds, "frames_per_second": args.frames / seconds}
        print(f"atomclass label, {workers} worker(s): {seconds:.1f} s, {args.frames / seconds:.2f} frames/s",
              flush=True)
    loop = time_plain_loop(trajectory, model, min(args.loop_frames, args.frames - 1), folder / "loop")
    results["plain_loop_seconds_per_frame"] = loop
    print(f"plain OVITO loop: {loop['compute']:.3f} s/frame to classify, {loop['compute_and_write']:.3f} s/frame "
          f"with writing the frame ({1 / loop['compute_and_write']:.2f} frames/s)")
    for workers in args.workers:
        per_frame = 1 / results[f"label_{workers}_workers"]["frames_per_second"]
        print(f"atomclass label, {workers} worker(s): {per_frame:.3f} s/frame "
              f"({per_frame / loop['compute_and_write']:.2f} x the plain loop with writing)")
    results["load_average_after"] = os.getloadavg()[0]
    print(f"1-minute load average: {results['load_average_before']:.1f} before, "
          f"{results['load_average_after']:.1f} after (other processes share the cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
