"""Modifier benchmark: the whole AtomClassifierModifier (features, inference, output) against
OVITO's PolyhedralTemplateMatchingModifier with ``output_ordering=True`` and its adaptive
CommonNeighborAnalysisModifier on the same frame.

    python benchmarks/bench_modifier.py --threads 1   # 256,000-atom fcc Ni, shipped models, one thread
    python benchmarks/bench_modifier.py --cells 20    # a quick look

Models: the shipped ``default.onnx`` and ``seed.onnx``, and a model of a scale-free FeatureSet
(``bench_features.scale_free_set``): the shipped default itself once it has one, else a stand-in
50-tree forest (depth 20, as the general model's draft) trained here in a few seconds on
rattled fcc, hcp, bcc, diamond, L1_2, B2 and random packings, which stands in for the general
model's inference cost.  Each modifier runs once untimed on a small frame (JIT compilation,
model loading), then ``--repeats`` times in a fresh pipeline on the frame, the modifiers taking
turns: medians of wall and process-CPU time.  ``--threads N`` runs the whole benchmark in a
process with OVITO, numba and onnxruntime limited to N threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_features import fcc_ni, scale_free_set, timed  # noqa: E402

THREAD_VARIABLES = ("OVITO_THREAD_COUNT", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


def stand_in_model(spec, path: Path) -> Path:
    """A 50-tree forest on ``spec``'s features of rattled crystals and random packings, saved to ``path``."""
    import numpy as np
    from ase.build import bulk
    from sklearn.ensemble import RandomForestClassifier

    from ovito_atomclass import compute_features
    from ovito_atomclass.crystals import l12_ni3al, random_packing
    from ovito_atomclass.model import save_model

    rng = np.random.default_rng(0)
    templates = {
        "fcc": (bulk("Cu", "fcc", a=3.61, cubic=True) * (4, 4, 4), 2.55),
        "hcp": (bulk("Mg", "hcp", a=3.21, c=5.21) * (5, 5, 4), 3.2),
        "bcc": (bulk("W", "bcc", a=3.16, cubic=True) * (5, 5, 5), 2.74),
        "diamond": (bulk("Si", "diamond", a=5.43, cubic=True) * (3, 3, 3), 2.35),
        "L1_2": (l12_ni3al(a=3.75, repeat=4), 2.65),
        "B2": (bulk("NiAl", "cesiumchloride", a=2.88) * (6, 6, 6), 2.49),
        "Other": (random_packing(256, 14.0, 2.2, rng), 2.5),
    }
    X, y = [], []
    for label, (atoms, nearest) in enumerate(templates.values()):
        for width in np.linspace(0.02, 0.12, 6) * nearest:
            copy = atoms.copy()
            copy.rattle(width, seed=int(rng.integers(1 << 30)))
            X.append(compute_features(copy, spec))
            y.append(np.full(len(copy), label))
    forest = RandomForestClassifier(n_estimators=50, max_depth=20, random_state=0, n_jobs=1)
    forest.fit(np.vstack(X), np.concatenate(y))
    colors = [tuple(rng.random(3)) for _ in templates]
    return save_model(forest, spec, list(templates), colors, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=40, help="fcc cells per edge (4 * cells^3 atoms), default 40")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median), default 3")
    parser.add_argument("--rattle", type=float, default=0.0, help="Gaussian displacement of the atoms (Å)")
    parser.add_argument("--threads", type=int, help="threads of OVITO, numba and onnxruntime (default: all cores)")
    args = parser.parse_args(argv)
    if args.cells < 1 or args.repeats < 1 or args.rattle < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--cells, --repeats and --threads must be positive, --rattle not negative")
    if args.threads and any(os.environ.get(v) != str(args.threads) for v in THREAD_VARIABLES):
        # OVITO reads its thread count once, when it is imported: start afresh with it set
        env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads))}
        return subprocess.run([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])],
                              env=env).returncode

    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier
    from ovito.pipeline import Pipeline, StaticSource

    from ovito_atomclass import AtomClassifierModifier, load_model
    from ovito_atomclass.model import default_model_path, models_dir

    def frame(cells: int):
        atoms = fcc_ni(cells)
        if args.rattle:
            atoms.rattle(args.rattle, seed=1)
        return ase_to_ovito(atoms)

    models = models_dir()
    spec = scale_free_set()
    folder = tempfile.TemporaryDirectory()
    if load_model(default_model_path()).spec == spec:
        set_model, set_name = default_model_path(), "ours, default.onnx (FeatureSet)"
    else:
        set_model = stand_in_model(spec, Path(folder.name) / "stand_in.onnx")
        set_name = f"ours, stand-in FeatureSet model ({len(spec.feature_names)} features, 50 trees of depth 20)"
    makers = {
        "PTM, output_ordering": lambda: PolyhedralTemplateMatchingModifier(output_ordering=True),
        "adaptive CNA": lambda: CommonNeighborAnalysisModifier(),
        "ours, default.onnx": lambda: AtomClassifierModifier(model_file=str(models / "default.onnx")),
        "ours, seed.onnx": lambda: AtomClassifierModifier(model_file=str(models / "seed.onnx")),
        set_name: lambda: AtomClassifierModifier(model_file=str(set_model)),
    }
    if set_model == default_model_path():
        del makers["ours, default.onnx"]

    def run(data, make):
        pipeline = Pipeline(source=StaticSource(data=data))
        pipeline.modifiers.append(make())
        return lambda: pipeline.compute()

    small, data = frame(4), frame(args.cells)
    for make in makers.values():
        run(small, make)()
    # the repeats take turns, so that a change of load on a shared machine hits every modifier alike
    samples = {name: [] for name in makers}
    for _ in range(args.repeats):
        for name, make in makers.items():
            samples[name].append(timed(run(data, make), 1))
    rows = {name: {key: statistics.median(s[key] for s in runs) for key in ("wall", "cpu")}
            for name, runs in samples.items()}
    ptm, cna = rows["PTM, output_ordering"]["wall"], rows["adaptive CNA"]["wall"]
    threads = args.threads or os.cpu_count()
    print(f"\n{data.particles.count:,} atoms (fcc Ni, rattle {args.rattle} Å), {threads} thread(s) on "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, medians of {args.repeats}\n")
    print("| modifier | wall | CPU | PTM's wall / this wall | this wall / a-CNA's wall |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {ptm / r['wall']:.1f}× | {r['wall'] / cna:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
