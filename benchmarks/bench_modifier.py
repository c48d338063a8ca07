"""Modifier benchmark: the whole AtomClassifierModifier (features, inference, output) against
OVITO's PolyhedralTemplateMatchingModifier with ``output_ordering=True`` on the same frame.

    python benchmarks/bench_modifier.py               # 256,000-atom fcc Ni, shipped models
    python benchmarks/bench_modifier.py --cells 20    # a quick look

Each modifier runs once untimed on a small frame (JIT compilation, model loading), then
``--repeats`` times in a fresh pipeline on the frame: medians of wall and process-CPU time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_features import fcc_ni, timed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=40, help="fcc cells per edge (4 * cells^3 atoms), default 40")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median), default 3")
    parser.add_argument("--rattle", type=float, default=0.0, help="Gaussian displacement of the atoms (Å)")
    args = parser.parse_args(argv)
    if args.cells < 1 or args.repeats < 1 or args.rattle < 0:
        parser.error("--cells and --repeats must be positive, --rattle not negative")

    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import PolyhedralTemplateMatchingModifier
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_atomclass import AtomClassifierModifier
    from ovito_atomclass.model import models_dir

    def frame(cells: int):
        atoms = fcc_ni(cells)
        if args.rattle:
            atoms.rattle(args.rattle, seed=1)
        return ase_to_ovito(atoms)

    models = models_dir()
    makers = {
        "PTM, output_ordering": lambda: PolyhedralTemplateMatchingModifier(output_ordering=True),
        "ours, default.onnx": lambda: AtomClassifierModifier(model_file=str(models / "default.onnx")),
        "ours, seed.onnx": lambda: AtomClassifierModifier(model_file=str(models / "seed.onnx")),
    }

    def run(data, make):
        pipeline = Pipeline(source=StaticSource(data=data))
        pipeline.modifiers.append(make())
        return lambda: pipeline.compute()

    small, data = frame(4), frame(args.cells)
    rows = {}
    for name, make in makers.items():
        run(small, make)()
        rows[name] = timed(lambda make=make: run(data, make)(), args.repeats)
    ptm = rows["PTM, output_ordering"]["wall"]
    print(f"\n{data.particles.count:,} atoms (fcc Ni, rattle {args.rattle} Å), {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, medians of {args.repeats}\n")
    print("| modifier | wall | CPU | PTM's wall / this wall |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {ptm / r['wall']:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
