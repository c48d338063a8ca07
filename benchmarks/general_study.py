"""Which features and which augmentation for the general model: a study.

Every candidate is a FeatureSet that could be shipped.  The general library's data set is
built once per augmentation with the union of all candidate neighbour definitions
(:data:`SUPERSET`: every extra switched on) and cached in ``out/general_study/``; a candidate
takes its own columns from it.  For each candidate a random forest (the shipped classifier's
settings) is trained on a stratified sample of the seed-0 data and scored

* on held-out data (seed 1 of the shipped augmentation whatever the training augmentation: other
  templates, species, lattice constants and draws): the worst
  class recall and precision on a stratified sample, the accuracy on the hottest templates
  (rattled by >= 0.06 nearest-neighbour distances), and the accuracy per defect source;
* on molecular dynamics frames with a per-atom ``truth`` column (the extxyz cache of
  ``benchmarks/validate_lammps.py``, ``out/lammps/``): the fraction of scored atoms right in
  every case, the worst case, and the worst case against PTM;
* on perfect crystals of real elements, each built from two different cells (an N-nearest
  definition that cuts through a shell breaks its ties by rounding): the fraction right and
  the lowest confidence;
* on speed: the candidate's feature CPU time on a 108,000-atom hot fcc frame over OVITO's
  adaptive CNA's on the same frame.

    python benchmarks/general_study.py --threshold           # everything -> results/general_study.md (~40 min)
    python benchmarks/general_study.py --candidates rel12 n12,n14 --augmentations general.toml --output /tmp/s.md
    python benchmarks/general_study.py --candidates --threshold --output /tmp/t.md   # the threshold only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from ovito_atomclass.augment import Augmentation
from ovito_atomclass.crystals import GENERAL_CLASSES, OUTSIDE_LIBRARY, source_name, supercell
from ovito_atomclass.dataset import Dataset, build_dataset, stratified_sample
from ovito_atomclass.features import compute_features
from ovito_atomclass.files import write_atomically
from ovito_atomclass.spec import FeatureSet, FeatureSpec
from ovito_atomclass.training import read_config

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "out" / "general_study"
HELD_OUT = "general.toml"  # every candidate and augmentation is scored on this augmentation's seed-1 data set
HOT = 0.06  # rattling (nearest-neighbour distances) from which a held-out template counts as hot
TEST_PER_CLASS = 2000  # held-out atoms per class for recall and precision
DEGREES = (4, 6, 8, 10, 12)


def _definition(label: str, n: int, relative: float | None = None, **extras) -> FeatureSpec:
    return FeatureSpec(cutoff=None, num_neighbors=n, relative_cutoff=relative, label=label, **extras)


SUPERSET = FeatureSet(tuple(
    _definition(label, n, relative, degrees=DEGREES, averaged=True, counts=True, radial=16)
    for label, n, relative in (("n12", 12, None), ("n14", 14, None), ("rel12", 12, 1.25))))
"""Every neighbour definition of the study with every extra; candidates are subsets."""


def _candidate(*definitions: FeatureSpec) -> FeatureSet:
    return FeatureSet(tuple(definitions))


BASIC = {"averaged": True}  # q4, q6, q8 and their averages over all, like, unlike
CANDIDATES: dict[str, FeatureSet] = {
    "n12": _candidate(_definition("n12", 12, **BASIC)),
    "n14": _candidate(_definition("n14", 14, **BASIC)),
    "n14+r16": _candidate(_definition("n14", 14, radial=16, **BASIC)),
    "n12,n14": _candidate(_definition("n12", 12, **BASIC), _definition("n14", 14, **BASIC)),
    "n12+r16,n14": _candidate(_definition("n12", 12, radial=16, **BASIC), _definition("n14", 14, **BASIC)),
    "n12+counts+r16,n14": _candidate(_definition("n12", 12, radial=16, counts=True, **BASIC),
                                     _definition("n14", 14, **BASIC)),
    "n12,n14(all)": _candidate(_definition("n12", 12, **BASIC), _definition("n14", 14, channels=("all",), **BASIC)),
    "n12,n14(all)+r16": _candidate(_definition("n12", 12, **BASIC),
                                   _definition("n14", 14, channels=("all",), radial=16, **BASIC)),
    "n12,n14(all)+r14": _candidate(_definition("n12", 12, **BASIC),
                                   _definition("n14", 14, channels=("all",), radial=14, **BASIC)),
    "n12+r16,n14(all)": _candidate(_definition("n12", 12, radial=16, **BASIC),
                                   _definition("n14", 14, channels=("all",), **BASIC)),
    "n12+r14,n14(all)": _candidate(_definition("n12", 12, radial=14, **BASIC),
                                   _definition("n14", 14, channels=("all",), **BASIC)),
    "n12,n14(q only)": _candidate(_definition("n12", 12, **BASIC), _definition("n14", 14)),
    "n12(q only),n14": _candidate(_definition("n12", 12), _definition("n14", 14, **BASIC)),
    "n12,n14, l=4,6": _candidate(_definition("n12", 12, degrees=(4, 6), **BASIC),
                                 _definition("n14", 14, degrees=(4, 6), **BASIC)),
    "rel12": _candidate(_definition("rel12", 12, 1.25, **BASIC)),
    "rel12+counts+r16": _candidate(_definition("rel12", 12, 1.25, counts=True, radial=16, **BASIC)),
    "rel12+counts+r16, l<=12": _candidate(_definition("rel12", 12, 1.25, degrees=DEGREES, counts=True, radial=16,
                                                      **BASIC)),
    "rel12+counts+r16,n12": _candidate(_definition("rel12", 12, 1.25, counts=True, radial=16, **BASIC),
                                       _definition("n12", 12, **BASIC)),
    "rel12,n12": _candidate(_definition("rel12", 12, 1.25, **BASIC), _definition("n12", 12, **BASIC)),
}

GENERAL = read_config(ROOT / "configs" / "general.toml")  # the shipped model's configuration
CANDIDATES["general.toml"] = GENERAL.spec


def _uniform(top: float) -> Augmentation:
    """Rattling uniform from 0 to ``top`` nearest-neighbour distances in steps of 0.01, as many
    templates per class as the shipped augmentation, otherwise the same."""
    rattle = tuple(float(v) for v in np.round(np.arange(0.0, top + 1e-9, 0.01), 3))
    return replace(GENERAL.augmentation, rattle=rattle, draws=int(np.ceil(GENERAL.augmentation.copies / len(rattle))))


AUGMENTATIONS = {  # rattling in nearest-neighbour distances; Lindemann ratio = width * sqrt(3)
    "general.toml": GENERAL.augmentation,
    "hot06": _uniform(0.06), "hot08": _uniform(0.08), "hot10": _uniform(0.10), "hot12": _uniform(0.12),
}


# --- data --------------------------------------------------------------------------------


def dataset(augmentation: str, seed: int) -> Dataset:
    """The general library's data set with all :data:`SUPERSET` columns (float32), cached."""
    path = CACHE / f"{augmentation}_seed{seed}.npz"
    key = json.dumps({"spec": SUPERSET.to_dict(), "augmentation": AUGMENTATIONS[augmentation].to_dict(),
                      "classes": {name: [(w, source_name(s)) for w, s in c.sources]
                                  for name, c in GENERAL_CLASSES.items()},
                      "outside": list(OUTSIDE_LIBRARY)}, sort_keys=True)
    if path.is_file():
        cached = np.load(path, allow_pickle=False)
        if str(cached["key"]) == key:
            return Dataset(cached["X"], cached["y"], list(cached["class_names"]), [], list(SUPERSET.feature_names),
                           cached["draw"], cached["stdev"], list(cached["origins"]))
    t0 = time.perf_counter()
    data = build_dataset(list(GENERAL_CLASSES.values()), SUPERSET, AUGMENTATIONS[augmentation], seed=seed)
    print(f"data set {augmentation}, seed {seed}: {len(data)} atoms in {time.perf_counter() - t0:.0f} s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, X=data.X.astype(np.float32), y=data.y, class_names=data.class_names, draw=data.draw,
             stdev=data.stdev, origins=data.origins, key=key)
    tmp.replace(path)
    data.X = data.X.astype(np.float32)
    return data


def columns(candidate: FeatureSet) -> np.ndarray:
    """Indices of the candidate's columns in :data:`SUPERSET`'s."""
    names = SUPERSET.feature_names
    missing = [n for n in candidate.feature_names if n not in names]
    if missing:
        raise ValueError(f"the superset has no column(s) {missing[:5]}: add the definition to SUPERSET")
    return np.array([names.index(n) for n in candidate.feature_names])


def forest(seed: int = 0) -> RandomForestClassifier:
    """The shipped classifier: the forest of configs/general.toml."""
    grid = {key.removeprefix("clf__"): values[0] for key, values in GENERAL.models["forest"].items()}
    return RandomForestClassifier(**grid, n_jobs=2, random_state=seed)


# --- scores ------------------------------------------------------------------------------


@dataclass
class Frames:
    """MD frames: ``runs`` {file stem: frames with a per-atom ``truth`` code and
    ``info["temperature"]``}, the class name of each code ``classes`` (-1 = not scored),
    PTM's and a-CNA's fraction right per case ``reference`` {case: {"ptm": f, "cna": f}}, and
    the cases the validation only reports (no target), ``reported``."""

    runs: dict
    classes: tuple[str, ...]
    reference: dict
    reported: set

    def score(self, labeller) -> dict[str, float]:
        """Fraction right per case "stem T K class" of ``labeller(frame)`` (class names (N,))."""
        right: dict[str, list[int]] = {}
        for stem, run in self.runs.items():
            for frame in run:
                truth = frame.arrays["truth"]
                labels = np.asarray(labeller(frame))
                for code in np.unique(truth[truth >= 0]):
                    mask = truth == code
                    tally = right.setdefault(f"{stem} {frame.info.get('temperature', 0):.0f} K {self.classes[code]}",
                                             [0, 0])
                    tally[0] += int(np.count_nonzero(labels[mask] == self.classes[code]))
                    tally[1] += int(np.count_nonzero(mask))
        return {case: good / total for case, (good, total) in right.items()}


def held_out(model, data: Dataset, cols: np.ndarray) -> dict:
    """Scores on held-out data: per-class recall and precision on a stratified sample, hot
    accuracy, accuracy per template source of the defect classes."""
    rows = stratified_sample(data.y, TEST_PER_CLASS, np.random.default_rng(1))
    predicted = model.predict(data.X[rows][:, cols])
    y = data.y[rows]
    k = len(data.class_names)
    recall = [float(np.mean(predicted[y == c] == c)) for c in range(k)]
    precision = [float(np.mean(y[predicted == c] == c)) if np.any(predicted == c) else 0.0 for c in range(k)]
    hot = data.stdev[rows] >= HOT - 1e-9
    origin = np.array(data.origins)[data.draw]
    defects = {}
    for source in ("stacking", "surface", "polycrystal", "squeezed", "liquid", "melt", "displaced"):
        mask = np.char.startswith(origin.astype(str), source + "_template")
        if mask.any():
            defects[source] = float(np.mean(model.predict(data.X[mask][:, cols]) == data.y[mask]))
    return {"recall": recall, "precision": precision, "hot": float(np.mean(predicted[hot] == y[hot])),
            "accuracy": float(np.mean(predicted == y)), "defects": defects}


def on_frames(model, candidate: FeatureSet, class_names: list[str], frames: Frames) -> dict[str, float]:
    """Fraction of the scored atoms of every case whose predicted class is their truth."""
    return frames.score(lambda frame: np.array(class_names)[model.predict(compute_features(frame, candidate))])


def feature_time(candidate: FeatureSet, frame) -> float:
    """Median CPU time (s, all threads) of three feature computations on ``frame``: on a
    shared machine less disturbed than wall time."""
    times = []
    for _ in range(3):
        t0 = time.process_time()
        compute_features(frame, candidate)
        times.append(time.process_time() - t0)
    return float(np.median(times))


def cna_time(frame) -> float:
    """Median CPU time (s) of three adaptive CNA runs on ``frame`` (a fresh copy each)."""
    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import CommonNeighborAnalysisModifier

    data = ase_to_ovito(frame)
    times = []
    for _ in range(3):
        copy = data.clone()
        t0 = time.process_time()
        copy.apply(CommonNeighborAnalysisModifier())
        times.append(time.process_time() - t0)
    return float(np.median(times))


def perfect_crystals() -> list[tuple[str, object, str]]:
    """``(name, atoms, class)`` of perfect crystals of real elements, each built twice: from
    the conventional cell and from the primitive (or another) cell, so that N-nearest
    definitions that cut through a shell break their ties differently."""
    from ase.build import bulk

    def ordered(kind: str, a: float, c: float | None = None):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        if kind == "L1_2":
            atoms.symbols[0] = "Au"
        else:
            atoms.set_cell(np.diag([a, a, c]), scale_atoms=True)
            atoms.symbols[np.isclose(atoms.get_scaled_positions()[:, 2], 0.5)] = "Au"
        return atoms

    crystals = [("Cu", bulk("Cu", "fcc", a=3.615, cubic=True), bulk("Cu", "fcc", a=3.615), "fcc"),
                ("W", bulk("W", "bcc", a=3.165, cubic=True), bulk("W", "bcc", a=3.165), "bcc"),
                ("Ti", bulk("Ti", "hcp", a=2.951, c=4.686, orthorhombic=True), bulk("Ti", "hcp", a=2.951, c=4.686),
                 "hcp"),
                ("Si", bulk("Si", "diamond", a=5.431, cubic=True), bulk("Si", "diamond", a=5.431), "diamond"),
                ("Cu3Au", ordered("L1_2", 3.75), ordered("L1_2", 3.75).repeat((1, 1, 2)), "L1_2"),
                ("CuAu", ordered("L1_0", 3.96, 3.67), ordered("L1_0", 3.96, 3.67).repeat((2, 1, 1)), "L1_0"),
                ("NiAl", bulk("NiAl", "cesiumchloride", a=2.887), bulk("NiAl", "cesiumchloride", a=2.887,
                                                                     orthorhombic=True), "B2")]
    return [(f"{name} {how}", supercell(cell, 16.0), expected) for name, conventional, other, expected in crystals
            for how, cell in (("conventional", conventional), ("other cell", other))]


def on_perfect(model, candidate: FeatureSet, class_names: list[str]) -> tuple[float, float]:
    """Fraction right and the lowest top probability over :func:`perfect_crystals`."""
    right, lowest = [], 1.0
    for _, atoms, expected in perfect_crystals():
        proba = model.predict_proba(compute_features(atoms, candidate))
        right.append(np.mean(np.array(class_names)[proba.argmax(axis=1)] == expected))
        lowest = min(lowest, float(proba.max(axis=1).min()))
    return float(np.mean(right)), lowest


def speed_frame():
    """108,000 atoms of fcc rattled by 0.05 nearest-neighbour distances, two species."""
    from ase.build import bulk

    rng = np.random.default_rng(0)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (30, 30, 30)
    atoms.positions += rng.normal(0.0, 0.05 * 3.61 / np.sqrt(2), atoms.positions.shape)
    atoms.symbols[rng.random(len(atoms)) < 0.25] = "Ni"
    return atoms


# --- MD frames ---------------------------------------------------------------------------


def load_frames(folder: Path, validation: Path) -> Frames | None:
    """The cached cases of ``benchmarks/validate_lammps.py`` (module at ``validation``: its
    ``CLASSES``, ``ptm_labels`` and ``cna_labels``) in ``folder``, with PTM's and adaptive
    CNA's scores; None if there are none yet."""
    if not folder.is_dir() or not validation.is_file():
        return None
    import importlib.util

    from ase.io import read

    spec = importlib.util.spec_from_file_location("validate_lammps", validation)
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_lammps"] = module
    spec.loader.exec_module(module)
    runs = {path.stem: read(path, index=":") for path in sorted(folder.glob("*.extxyz"))}
    if not runs:
        return None
    frames = Frames(runs, tuple(module.CLASSES), {}, set())
    for name in ("ptm", "cna"):
        for case, value in frames.score(getattr(module, f"{name}_labels")).items():
            frames.reference.setdefault(case, {})[name] = value
    untargeted = {(stem, module.CLASSES[code]) for stem, case in module.CASES.items()
                  for code, (_, target) in case.regions.items() if target is None}
    frames.reported = {c for c in frames.reference if (c.split(" ")[0], c.split(" ")[-1]) in untargeted}
    return frames


# --- the threshold ---------------------------------------------------------------------

THRESHOLDS = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def unknown_structures() -> dict[str, tuple[object, np.ndarray | None]]:
    """Structures the general model should not name with confidence: ``{name: (atoms, atoms
    that count or None for all)}``.  Crystals outside its training data, four species on one
    lattice, squeezed atoms, and a perfect crystal squeezed to half its spacing (which
    scale-free features cannot see)."""
    from ase import Atoms
    from ase.build import bulk
    from ase.neighborlist import neighbor_list
    from ase.spacegroup import crystal

    rng = np.random.default_rng(0)
    cubic = [90.0] * 3
    out = {
        "fluorite CaF2": bulk("CaF2", "fluorite", a=5.46),
        "alpha-U": crystal("U", [(0, 0.1025, 0.25)], spacegroup=63, cellpar=[2.854, 5.869, 4.955, *cubic]),
        "perovskite SrTiO3": crystal(["Sr", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                                     cellpar=[3.905] * 3 + cubic),
        "simple hexagonal": crystal("Mg", [(0, 0, 0)], spacegroup=191, cellpar=[2.6, 2.6, 2.6, 90, 90, 120]),
        "C14 Laves MgZn2": crystal(["Mg", "Zn", "Zn"], [(1 / 3, 2 / 3, 0.062), (0, 0, 0), (0.83, 0.66, 0.25)],
                                   spacegroup=194, cellpar=[5.22, 5.22, 8.57, 90, 90, 120]),
        "zincblende GaAs": bulk("GaAs", "zincblende", a=5.65),
        "wurtzite ZnO": bulk("ZnO", "wurtzite", a=3.25, c=5.2),
        "L2_1 Heusler Cu2MnAl": crystal(["Cu", "Mn", "Al"], [(0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)],
                                        spacegroup=225, cellpar=[5.95] * 3 + cubic),
        "quaternary Heusler LiMgPdSn": crystal(["Li", "Mg", "Pd", "Sn"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.25,) * 3,
                                                                          (0.75,) * 3], spacegroup=216,
                                               cellpar=[6.4] * 3 + cubic),
        "fcc, four species ordered": bulk("Cu", "fcc", a=3.6, cubic=True),
        "fcc Cu at half its spacing": bulk("Cu", "fcc", a=3.615 / 2, cubic=True),
    }
    out["fcc, four species ordered"].set_chemical_symbols(["Cu", "Ni", "Co", "Fe"])
    structures = {name: (supercell(atoms, 16.0), None) for name, atoms in out.items()}
    fcc = bulk("Cu", "fcc", a=3.615, cubic=True) * (5, 5, 5)
    i, j, bond = neighbor_list("ijD", fcc, 2.6)
    picked = rng.choice(len(i), 10, replace=False)
    extra = Atoms("Cu10", positions=fcc.positions[i[picked]] + bond[picked] / 2)
    squeezed = np.zeros(len(fcc) + 10, dtype=bool)
    squeezed[i[picked]] = squeezed[j[picked]] = squeezed[len(fcc):] = True
    structures["fcc with atoms at bond midpoints"] = (fcc + extra, squeezed)
    return structures


def threshold_report(path: Path, frames: Frames | None) -> str:
    """Markdown: how the model at ``path`` fares when atoms below a threshold of their highest
    probability become Other, on every MD case and on :func:`unknown_structures`."""
    from ovito_atomclass import load_model

    model = load_model(path)
    names = np.array(model.classes)
    probabilities = {}  # id(frame) -> (N, K): each frame's features once for all thresholds

    def labeller(threshold):
        def labels(atoms):
            if id(atoms) not in probabilities:
                probabilities[id(atoms)] = model.predict_proba(compute_features(atoms, model.spec))
            proba = probabilities[id(atoms)]
            return np.where(proba.max(axis=1) >= threshold, names[proba.argmax(axis=1)], "Other")
        return labels

    head = "| | " + " | ".join(f"t = {t}" for t in THRESHOLDS) + " |"
    lines = [f"## The threshold of `{path.name}`", "",
             "Atoms whose highest class probability is below t become Other (the modifier's `threshold`).", ""]
    if frames is not None:
        scores = {t: frames.score(labeller(t)) for t in THRESHOLDS}
        lines += ["MD cases, % right:", "", head.replace("| |", "| case | PTM |", 1),
                  "|" + "---|" * (2 + len(THRESHOLDS))]
        lines += [f"| {c}{' (reported)' if c in frames.reported else ''} | {100 * frames.reference[c]['ptm']:.1f} | "
                  + " | ".join(f"{100 * scores[t][c]:.1f}" for t in THRESHOLDS) + " |" for c in scores[0.0]]
        lines.append("")
    lines += ["Structures it should not name with confidence, % Other (label Other or below t), and the "
              "class it names most:", "", head.replace("| |", "| structure | most named |", 1),
              "|" + "---|" * (2 + len(THRESHOLDS))]
    for name, (atoms, counted) in unknown_structures().items():
        proba = model.predict_proba(compute_features(atoms, model.spec))
        if counted is not None:
            proba = proba[counted]
        top = names[proba.argmax(axis=1)]
        common, n = np.unique(top, return_counts=True)
        cells = [f"{100 * np.mean((top == 'Other') | (proba.max(axis=1) < t)):.0f}" for t in THRESHOLDS]
        lines.append(f"| {name} | {common[n.argmax()]} ({np.median(proba.max(axis=1)):.2f}) | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"


# --- the study ---------------------------------------------------------------------------


def study(candidates: list[str], augmentations: list[str], frames: Frames | None, compared: list[str],
          written=lambda records: None) -> list[dict]:
    """Train and score every candidate on the first augmentation and the ``compared``
    candidates on the others; the records, each also handed to ``written(records so far)``."""
    timing = speed_frame()
    cna = cna_time(timing)
    records = []
    for aug in augmentations:
        train, test = dataset(aug, 0), dataset(HELD_OUT, 1)
        rows = stratified_sample(train.y, GENERAL.per_class, np.random.default_rng(0))
        for name in candidates if aug == augmentations[0] else compared:
            candidate = CANDIDATES[name]
            cols = columns(candidate)
            t0 = time.perf_counter()
            model = forest().fit(train.X[rows][:, cols], train.y[rows])
            record = {"candidate": name, "augmentation": aug, "features": len(cols),
                      "fit_seconds": time.perf_counter() - t0, "held_out": held_out(model, test, cols),
                      "feature_time": feature_time(candidate, timing), "cna_time": cna}
            record["perfect"] = on_perfect(model, candidate, train.class_names)
            if frames is not None:
                record["frames"] = on_frames(model, candidate, train.class_names, frames)
            records.append(record)
            print(summary_row(record, train.class_names, frames), flush=True)
            written(records)
    return records


def summary_row(record: dict, class_names: list[str], frames: Frames | None) -> str:
    h = record["held_out"]
    worst = int(np.argmin(h["recall"]))
    cells = [record["candidate"], record["augmentation"], str(record["features"]),
             f"{100 * h['accuracy']:.2f}", f"{100 * h['recall'][worst]:.1f} ({class_names[worst]})",
             f"{100 * min(h['precision']):.1f}", f"{100 * h['hot']:.2f}",
             " ".join(f"{k} {100 * v:.0f}" for k, v in h["defects"].items()),
             f"{100 * record['perfect'][0]:.1f} / {record['perfect'][1]:.2f}",
             f"{record['feature_time'] / record['cna_time']:.2f}"]
    if frames is not None:
        scores = {c: v for c, v in record["frames"].items() if c not in frames.reported}
        worst_case = min(scores, key=scores.get)
        margin = {c: scores[c] - frames.reference[c]["ptm"] for c in scores if "ptm" in frames.reference.get(c, {})}
        worst_margin = min(margin, key=margin.get) if margin else None
        cells += [f"{100 * scores[worst_case]:.1f} ({worst_case})",
                  f"{100 * margin[worst_margin]:+.1f} ({worst_margin})" if worst_margin else "n/a"]
    return "| " + " | ".join(cells) + " |"


def report(records: list[dict], class_names: list[str], frames: Frames | None, seconds: float) -> str:
    head = ["candidate", "augmentation", "features", "held-out accuracy %", "worst recall %", "worst precision %",
            "hot accuracy %", "defect sources right %", "perfect crystals right % / lowest confidence",
            "feature time / a-CNA"]
    if frames is not None:
        head += ["worst MD case %", "worst margin over PTM (points)"]
    lines = ["# Feature and augmentation study for the general model\n",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `python benchmarks/general_study.py`, "
             f"{seconds / 60:.0f} min. The shipped random forest ({forest().get_params()['n_estimators']} trees) "
             f"on {GENERAL.per_class} atoms per class of "
             f"the seed-0 data set; held-out scores on {TEST_PER_CLASS} atoms per class of the seed-1 {HELD_OUT} "
             f"data set; hot: "
             f"templates rattled by >= {HOT} nearest-neighbour distances. Timing: CPU time of the features of "
             f"108,000 atoms over OVITO's adaptive CNA on them, on the shared 2-core machine.\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [summary_row(r, class_names, frames) for r in records]
    if frames is not None:
        cases = list(next(iter(records))["frames"])
        runs = [f"{r['candidate']}, {r['augmentation']}" for r in records]
        lines += ["", "## Every MD case (% of scored atoms right)", "",
                  "| case | PTM | a-CNA | " + " | ".join(runs) + " |", "|" + "---|" * (3 + len(runs))]
        lines += [f"| {c}{' (reported, no target)' if c in frames.reported else ''} | "
                  + " | ".join(f"{100 * frames.reference[c].get(m, np.nan):.1f}" for m in ("ptm", "cna"))
                  + " | " + " | ".join(f"{100 * r['frames'][c]:.1f}" for r in records) + " |" for c in cases]
    lines += ["", "## Per-class held-out recall (%)", "",
              "| candidate | augmentation | " + " | ".join(class_names) + " |", "|" + "---|" * (2 + len(class_names))]
    lines += [f"| {r['candidate']} | {r['augmentation']} | "
              + " | ".join(f"{100 * v:.1f}" for v in r["held_out"]["recall"]) + " |" for r in records]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES),
                        metavar="NAME", help=f"feature candidates (default all): {', '.join(CANDIDATES)}")
    parser.add_argument("--augmentations", nargs="+", default=list(AUGMENTATIONS), choices=list(AUGMENTATIONS),
                        metavar="NAME", help=f"augmentations (default all): {', '.join(AUGMENTATIONS)}; every "
                                             "candidate is trained on the first, --compared on the others")
    parser.add_argument("--compared", nargs="*", default=["general.toml"], choices=list(CANDIDATES), metavar="NAME",
                        help="the candidates trained on the other augmentations (default general.toml)")
    parser.add_argument("--frames", type=Path, default=ROOT / "out" / "lammps",
                        help="cache of the LAMMPS validation frames (default out/lammps)")
    parser.add_argument("--validation", type=Path, default=ROOT / "benchmarks" / "validate_lammps.py",
                        help="the validation script that made them (class codes, PTM and a-CNA)")
    parser.add_argument("--threshold", type=Path, metavar="MODEL", nargs="?", const=ROOT / "models" / "default.onnx",
                        help="also measure the threshold of MODEL (default models/default.onnx)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "general_study.md")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    frames = load_frames(args.frames, args.validation)
    if frames is None:
        print(f"no MD frames in {args.frames}: held-out data and speed only", file=sys.stderr)
    def written(records: list[dict]) -> str:
        text = report(records, list(GENERAL_CLASSES), frames, time.perf_counter() - t0)
        write_atomically(args.output, text.encode())  # after every candidate: a crash keeps what is done
        return text

    text = written(study(args.candidates, args.augmentations, frames, args.compared, written)) \
        if args.candidates else ""
    if args.threshold:
        text += "\n" + threshold_report(args.threshold, frames)
    write_atomically(args.output, text.encode())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
