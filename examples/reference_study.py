"""The reference study end to end: ten crystals, the classifier zoo, a report with plots.

Builds the training set of the reference blog post (NaCl, bcc Fe, diamond, fcc Al, fcc Ni,
gamma, gamma_prime, hcp Mg, rutile, skutterudite; each template rattled by Gaussians of
0.001 to 0.03 Å, 20 draws per width; features q4, q6, q8 over all / like / unlike neighbours
within 4 Å), draws stratified samples of each size per class, splits them 60/40, tunes every
zoo model by grid search at every size and writes the report (summary.md, CSV tables, PNG
plots) into ``--out``.

    python examples/reference_study.py [--sizes 21 42 100 200 500] [--models ann tree ...]
                                       [--out reports/reference] [--draws 20] [--seed 0]

The reference's largest size, 6000 atoms per class, needs more draws than 20 (skutterudite
templates are small) and far longer SVM fits: ``--sizes ... 6000 --draws 32``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from ovito_atomclass import FeatureSpec
from ovito_atomclass.augment import Augmentation
from ovito_atomclass.crystals import REFERENCE_CLASSES
from ovito_atomclass.dataset import build_dataset
from ovito_atomclass.report import write_report
from ovito_atomclass.zoo import ZOO, sample_size_study

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "reports" / "reference"
FOCUS = "gamma"  # the reference plots the AUC of gamma, the class most easily confused (with gamma_prime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[21, 42, 100, 200, 500],
                        help="atoms per class sampled (default: the reference's sizes up to 500)")
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO, metavar="MODEL",
                        help=f"zoo models to tune (default: all of {' '.join(ZOO)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=20, help="rattled copies per width and class (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of templates, rattling, samples and models")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    spec = FeatureSpec(cutoff=4.0, degrees=(4, 6, 8), channels=("all", "like", "unlike"))
    data = build_dataset(list(REFERENCE_CLASSES.values()), spec, Augmentation(draws=args.draws), seed=args.seed)
    counts = data.class_sizes()
    rarest = min(counts, key=counts.get)
    if max(args.sizes) > counts[rarest]:
        needed = math.ceil(args.draws * max(args.sizes) / counts[rarest])
        print(f"reference_study: error: {max(args.sizes)} atoms per class, but {rarest} has only {counts[rarest]}; "
              f"use --draws {needed} or smaller sizes", file=sys.stderr)
        return 1
    print(f"{len(data)} atoms, {len(counts)} classes, features {', '.join(data.feature_names)} "
          f"({time.perf_counter() - start:.0f} s)")

    records = sample_size_study(data.X, data.y, args.sizes, args.models, seed=args.seed, spec=spec,
                                classes=data.class_names)
    summary = write_report(args.out, records, data.X, data.y, data.class_names, data.colors, data.feature_names,
                           focus=FOCUS)

    focus = data.class_names.index(FOCUS)
    largest = [r for r in records if r["size"] == max(args.sizes)]
    print(f"\n{max(args.sizes)} atoms per class ({largest[0]['n_train']} train, {largest[0]['n_test']} test):")
    print(f"{'model':10s} {'test acc':>9s} {'macro AUC':>10s} {'AUC ' + FOCUS:>10s} {'fit s':>7s}  ONNX")
    for r in largest:
        onnx = r["onnx"]
        check = f"{100 * onnx['labels']:.2f} % same labels" if "labels" in onnx else f"NOT EXPORTABLE: {onnx['error']}"
        print(f"{r['model']:10s} {r['test']['accuracy']:9.4f} {r['test']['macro_auc']:10.4f} "
              f"{r['test']['auc'][focus]:10.4f} {r['fit_seconds']:7.1f}  {check}")
    print(f"\nreport: {summary} ({time.perf_counter() - start:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
