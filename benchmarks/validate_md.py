"""Validate a model on real molecular dynamics and compare it with PTM and adaptive CNA.

The frames come from short Langevin runs with ASE's EMT calculator (asap3 has no wheel
here), generated once and cached under ``out/md/``:

* EMT Ni's melting point T_m, measured by solid-liquid coexistence;
* fcc Ni at 0.2, 0.45, 0.7 and 0.9 T_m, each at its own equilibrium lattice constant;
* an fcc Ni box holding a coherent L1_2 Ni3Al sphere at 0.2, 0.55 and 0.9 T_m;
* liquid Ni, melted at 2 T_m (a short run at 1.3 T_m leaves a superheated crystal), at 1.1
  and 1.0 T_m.

Scores are fractions of atoms with the right label: ``fccNi`` in the Ni frames and in the
matrix > 4 Å outside the sphere, ``gamma_prime`` > 4 Å inside it, ``Other`` in the liquid.
The same frames go through OVITO's PTM (ordering on: fcc + L1_2 -> gamma_prime, fcc + pure
-> fccNi) and adaptive CNA (fcc only, blind to ordering).

    python benchmarks/validate_md.py                   # models/reference10.onnx -> results/md_validation.md
    python benchmarks/validate_md.py --model my.onnx --output /tmp/my.md
    python benchmarks/validate_md.py --study           # augmentation study -> results/augmentation_study.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ovito_atomclass import load_model
from ovito_atomclass.augment import REFERENCE_RATTLE, Augmentation
from ovito_atomclass.crystals import REFERENCE_CLASSES, DisorderedClass, precipitate
from ovito_atomclass.dataset import build_dataset, stratified_sample
from ovito_atomclass.model import OTHER, models_dir, save_model, write_atomically
from ovito_atomclass.spec import FeatureSpec

ROOT = Path(__file__).resolve().parent.parent
FCC_NI, GAMMA_PRIME = "fccNi", "gamma_prime"
TIMESTEP = 5.0 * units.fs
FRICTION = 0.02 / units.fs  # a 50 fs thermostat: equilibrated within a few hundred fs
BULK_MODULUS = 150.0 * units.GPa  # EMT Ni, softened at high temperature: only steers the barostat
SHELL = 4.0  # Å: atoms this far from the precipitate's surface count as core or matrix
NI_FRACTIONS = (0.2, 0.45, 0.7, 0.9)
PRECIPITATE_FRACTIONS = (0.2, 0.55, 0.9)
LIQUID_FRACTIONS = (1.0, 1.1)
MELT = 2.0  # x T_m: the liquid's starting crystal melts within 1 ps


# --- molecular dynamics -------------------------------------------------------------


def _thermalise(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann velocities at 2 T for a crystal at rest: equipartition halves them."""
    MaxwellBoltzmannDistribution(atoms, temperature_K=2.0 * temperature, rng=rng)
    Stationary(atoms)


def _langevin(atoms: Atoms, temperature: float, rng: np.random.Generator) -> Langevin:
    if atoms.calc is None:
        atoms.calc = EMT()
    return Langevin(atoms, TIMESTEP, temperature_K=temperature, friction=FRICTION, rng=rng)


def relax_volume(atoms: Atoms, temperature: float, rng: np.random.Generator, chunks: int = 6,
                 steps: int = 20) -> float:
    """NVT Langevin in ``chunks`` of ``steps``; after each, stretch every cell axis so that
    its mean normal pressure over the chunk (ideal gas included) goes to zero.  A slow, cheap
    barostat: the stress is evaluated every 5 steps instead of every step.  Returns the mean
    pressure (GPa) of the last chunk."""
    dyn = _langevin(atoms, temperature, rng)
    pressures = []
    dyn.attach(lambda: pressures.append(-np.diag(atoms.get_stress(voigt=False, include_ideal_gas=True))), interval=5)
    for _ in range(chunks):
        pressures.clear()
        dyn.run(steps)
        strain = 1.0 + np.mean(pressures, axis=0) / (3.0 * BULK_MODULUS)
        atoms.set_cell(atoms.cell.array * strain[:, None], scale_atoms=True)
    return float(np.mean(pressures)) / units.GPa


def sample(atoms: Atoms, temperature: float, rng: np.random.Generator, frames: int = 6, every: int = 20) -> list[Atoms]:
    """``frames`` snapshots ``every`` steps of NVT Langevin at ``temperature`` (K)."""
    dyn = _langevin(atoms, temperature, rng)
    out = []
    for _ in range(frames):
        dyn.run(every)
        snap = atoms.copy()
        snap.calc = None
        snap.info["temperature"] = float(temperature)
        out.append(snap)
    return out


def melting_point(rng: np.random.Generator, temperatures=(1650.0, 1750.0, 1850.0)) -> dict:
    """EMT Ni's T_m (K) by coexistence: a 4x4x10 fcc box with its upper half melted, run at
    each temperature for 2 ps under the barostat of :func:`relax_volume`; the crystal (atoms
    that adaptive CNA calls fcc) grows below T_m and shrinks above.  T_m is where a linear fit
    of the growth rate against temperature crosses zero."""
    start = bulk("Ni", "fcc", a=ni_lattice_guess(temperatures[0]), cubic=True) * (4, 4, 10)
    _thermalise(start, temperatures[0], rng)
    relax_volume(start, temperatures[0], rng)
    start.set_constraint(FixAtoms(mask=start.get_scaled_positions()[:, 2] < 0.5))
    _langevin(start, 3500.0, rng).run(100)
    start.set_constraint()
    rates = []
    for temperature in temperatures:
        atoms = start.copy()
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        relax_volume(atoms, temperature, rng, chunks=3)
        solid = [np.mean(cna_labels(atoms) == FCC_NI)]
        for _ in range(8):
            relax_volume(atoms, temperature, rng, chunks=1, steps=50)
            solid.append(np.mean(cna_labels(atoms) == FCC_NI))
        t_ps = np.arange(len(solid)) * 50 * TIMESTEP / (1000 * units.fs)
        rates.append(float(np.polyfit(t_ps, solid, 1)[0]))
        print(f"  coexistence at {temperature:.0f} K: fcc fraction {solid[0]:.2f} -> {solid[-1]:.2f}, "
              f"{rates[-1]:+.3f} / ps", flush=True)
    slope, intercept = np.polyfit(temperatures, rates, 1)
    return {"T_m": float(-intercept / slope), "temperatures": list(temperatures), "fcc_fraction_per_ps": rates}


def ni_lattice_guess(temperature: float) -> float:
    """EMT Ni's lattice constant (Å): 3.487 Å at 0 K, expanding by 5.4e-5 Å/K (a first NPT
    run); the barostat of :func:`relax_volume` corrects the rest."""
    return 3.487 + 5.4e-5 * temperature


def precipitate_frame(a: float, cells: int = 8, radius: float = 9.5) -> Atoms:
    """:func:`ovito_atomclass.crystals.precipitate` (Å) with a per-atom ``region``: +1 in the
    core (> SHELL inside the sphere), -1 in the matrix (> SHELL outside, minimum image), 0 near
    the interface."""
    atoms = precipitate(a, cells, radius)
    box = atoms.cell.lengths()
    d = atoms.positions - box / 2
    r = np.linalg.norm(d - box * np.round(d / box), axis=1)
    atoms.arrays["region"] = np.where(r < radius - SHELL, 1, np.where(r > radius + SHELL, -1, 0))
    return atoms


def generate(folder: Path, seed: int = 1) -> dict:
    """Run the MD once and cache the frames (extxyz) and T_m (JSON) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    info_path = folder / "melting.json"
    if not info_path.is_file():
        print("measuring EMT Ni's melting point by coexistence", flush=True)
        t0 = time.perf_counter()
        info = melting_point(rng)
        info["seconds"] = time.perf_counter() - t0
        write_atomically(info_path, json.dumps(info, indent=1).encode())
    tm = json.loads(info_path.read_text())["T_m"]
    print(f"EMT Ni: T_m = {tm:.0f} K", flush=True)
    jobs = [(f"ni_{f:.2f}Tm", f, lambda a: bulk("Ni", "fcc", a=a, cubic=True) * (6, 6, 6)) for f in NI_FRACTIONS]
    jobs += [(f"precipitate_{f:.2f}Tm", f, precipitate_frame) for f in PRECIPITATE_FRACTIONS]
    for name, fraction, build in jobs:
        path = folder / f"{name}.extxyz"
        if path.is_file():
            continue
        t0 = time.perf_counter()
        temperature = fraction * tm
        atoms = build(ni_lattice_guess(temperature))
        _thermalise(atoms, temperature, rng)
        pressure = relax_volume(atoms, temperature, rng)
        print(f"  {name}: {pressure:+.2f} GPa in the last barostat chunk", flush=True)
        _write_frames(path, sample(atoms, temperature, rng), fraction, time.perf_counter() - t0)
    liquid_paths = [folder / f"liquid_{f:.2f}Tm.extxyz" for f in LIQUID_FRACTIONS]
    if not all(p.is_file() for p in liquid_paths):
        t0 = time.perf_counter()
        atoms = bulk("Ni", "fcc", a=1.02 * ni_lattice_guess(MELT * tm), cubic=True) * (6, 6, 6)
        sites = atoms.get_scaled_positions(wrap=False)
        _thermalise(atoms, MELT * tm, rng)
        relax_volume(atoms, MELT * tm, rng, chunks=10)
        for fraction, path in sorted(zip(LIQUID_FRACTIONS, liquid_paths, strict=True), reverse=True):
            pressure = relax_volume(atoms, fraction * tm, rng, chunks=16)
            frames = sample(atoms, fraction * tm, rng)
            moved = np.linalg.norm((atoms.get_scaled_positions(wrap=False) - sites) @ atoms.cell.array, axis=1)
            print(f"  liquid at {fraction:.2f} T_m: {pressure:+.2f} GPa, atoms moved {np.median(moved):.1f} Å "
                  f"(median) from their lattice sites, a-CNA calls {np.mean(cna_labels(atoms) == FCC_NI):.1%} fcc",
                  flush=True)
            _write_frames(path, frames, fraction, time.perf_counter() - t0)
    return {"T_m": tm}


def _write_frames(path: Path, frames: list[Atoms], fraction: float, seconds: float) -> None:
    for frame in frames:
        frame.info["fraction_Tm"] = fraction
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)
    edge = frames[-1].cell.lengths()[0]
    print(f"  {path.name}: {len(frames)} frames of {len(frames[0])} atoms, box {edge:.3f} Å, {seconds:.0f} s",
          flush=True)


# --- scoring ------------------------------------------------------------------------


def load_frames(folder: Path) -> dict[str, list[Atoms]]:
    """Cached frames by run name, in the order of the table."""
    names = ([f"ni_{f:.2f}Tm" for f in NI_FRACTIONS] + [f"precipitate_{f:.2f}Tm" for f in PRECIPITATE_FRACTIONS]
             + [f"liquid_{f:.2f}Tm" for f in LIQUID_FRACTIONS])
    return {name: read(folder / f"{name}.extxyz", index=":") for name in names}


def checks(name: str, frame: Atoms) -> list[tuple[str, np.ndarray, str]]:
    """``(region, atom mask, expected label)`` of a frame of the run ``name``."""
    if name.startswith("ni_"):
        return [("fcc Ni", np.ones(len(frame), bool), FCC_NI)]
    if name.startswith("precipitate_"):
        region = frame.arrays["region"]
        return [("γ' core", region == 1, GAMMA_PRIME), ("matrix", region == -1, FCC_NI)]
    return [("liquid", np.ones(len(frame), bool), OTHER)]


def structure_types(frame: Atoms, modifier) -> tuple[np.ndarray, object]:
    """Apply an OVITO ``modifier`` that writes ``Structure Type`` to ``frame``; the name of
    each atom's type (N,) and the resulting DataCollection."""
    from ovito.io.ase import ase_to_ovito

    data = ase_to_ovito(frame)
    data.apply(modifier)
    prop = data.particles["Structure Type"]
    names = {t.id: t.name for t in prop.types}
    lookup = np.array([names.get(i, OTHER) for i in range(max(names) + 1)], dtype=object)
    return lookup[np.asarray(prop)], data


def model_labeller(path: Path):
    """Labels (N,) of a frame from the model file at ``path``, through the OVITO modifier."""
    from ovito_atomclass.modifier import AtomClassifierModifier

    missing = {FCC_NI, GAMMA_PRIME} - set(load_model(path).classes)
    if missing:  # a model without Other still gets a score: 0 % on the liquid
        raise ValueError(f"{path} has no class(es) {sorted(missing)}; the validation needs them")
    return lambda frame: structure_types(frame, AtomClassifierModifier(model_file=str(path)))[0]


def ptm_labels(frame: Atoms, rmsd_cutoff: float = 0.1) -> np.ndarray:
    """PTM with ordering (OVITO's default RMSD cutoff 0.1; 0 = none): fcc + L1_2 -> gamma_prime,
    fcc + pure -> fccNi, fcc otherwise ordered -> FCC, other structures by OVITO's name."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    labels, data = structure_types(frame, PTM(output_ordering=True, rmsd_cutoff=rmsd_cutoff))
    ordering = np.asarray(data.particles["Ordering Type"])
    fcc = labels == "FCC"
    labels[fcc & (ordering == PTM.OrderingType.PURE)] = FCC_NI
    labels[fcc & np.isin(ordering, [PTM.OrderingType.L12_A, PTM.OrderingType.L12_B])] = GAMMA_PRIME
    return labels


def cna_labels(frame: Atoms) -> np.ndarray:
    """Adaptive CNA: fcc -> fccNi (it cannot see chemical order), other structures by name."""
    from ovito.modifiers import CommonNeighborAnalysisModifier as CNA

    labels = structure_types(frame, CNA())[0]
    labels[labels == "FCC"] = FCC_NI
    return labels


def score(frames: dict[str, list[Atoms]], labeller) -> dict[tuple[str, str], tuple[float, int]]:
    """Fraction of correctly labelled atoms and their number, per (run, region)."""
    hits: dict[tuple[str, str], list[int]] = {}
    for name, run in frames.items():
        for frame in run:
            labels = labeller(frame)
            for region, mask, expected in checks(name, frame):
                tally = hits.setdefault((name, region), [0, 0])
                tally[0] += int(np.count_nonzero(labels[mask] == expected))
                tally[1] += int(np.count_nonzero(mask))
    return {key: (good / max(total, 1), total) for key, (good, total) in hits.items()}


TARGETS = {"fcc Ni": 0.97, "γ' core": 0.97, "matrix": 0.97, "liquid": 0.95}


def validation_table(frames: dict[str, list[Atoms]], tm: float, columns: dict[str, dict]) -> str:
    """Markdown table: one row per (run, region), one column per method."""
    head = "| frames | T (K) | region | atoms × frames | target | " + " | ".join(columns) + " |"
    lines = [head, "|" + "---|" * (5 + len(columns))]
    for (name, region), (_, count) in next(iter(columns.values())).items():
        fraction = frames[name][0].info["fraction_Tm"]
        cells = []
        for method, scores in columns.items():
            value = scores[(name, region)][0]
            blind = method == "a-CNA" and region == "γ' core"
            cells.append("n/a (no ordering)" if blind else f"{100 * value:.1f} %")
        lines.append(f"| {name.split('_')[0]} {fraction:.2f} T_m | {fraction * tm:.0f} | {region} | "
                     f"{count // len(frames[name])} × {len(frames[name])} | ≥ {100 * TARGETS[region]:.0f} % | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the augmentation study -----------------------------------------------------------

BASE = FeatureSpec()
WIDE_RATTLE = REFERENCE_RATTLE + (0.05, 0.1, 0.15, 0.2)
STRAINED = Augmentation(WIDE_RATTLE, draws=5, strain=0.03)
ALL = FeatureSpec(averaged=True, wigner=True, counts=True)
VARIANTS = {  # name -> (augmentation, feature spec)
    "(i) rattle 0.001-0.03 Å": (Augmentation(draws=8), BASE),
    "(ii) + rattle 0.05-0.2 Å": (Augmentation(WIDE_RATTLE, draws=5), BASE),
    "(iii) + strain ±3 %": (STRAINED, BASE),
    "(iv) (iii) + qbar_l": (STRAINED, FeatureSpec(averaged=True)),
    "(iv) (iii) + qbar_l + counts": (STRAINED, FeatureSpec(averaged=True, counts=True)),
    "(iv) (iii) + w_l + counts": (STRAINED, FeatureSpec(wigner=True, counts=True)),
    "(iv) (iii) + qbar_l + w_l + counts": (STRAINED, ALL),
    "(v) qbar_l + w_l + counts, rattle 0.001-0.03 Å": (Augmentation(draws=8), ALL),
    "(v) qbar_l + w_l + counts, rattle 0.001-0.2 Å": (Augmentation(WIDE_RATTLE, draws=5), ALL),
}


def study_model(augmentation: Augmentation, spec: FeatureSpec, path: Path, seed: int = 0,
                per_class: int = 1500) -> Path:
    """Train a quick model (scaler + MLP (64, 64)) on ``per_class`` atoms per class of the ten
    reference crystals and ``Other``, augmented by ``augmentation``; save it to ``path``."""
    classes = [*REFERENCE_CLASSES.values(), DisorderedClass(crystals=tuple(REFERENCE_CLASSES.values()))]
    data = build_dataset(classes, spec, augmentation, seed=seed, progress=False)
    rows = stratified_sample(data.y, per_class, np.random.default_rng(seed))
    estimator = make_pipeline(StandardScaler(), MLPClassifier((64, 64), max_iter=400, early_stopping=True,
                                                               random_state=seed))
    estimator.fit(data.X[rows], data.y[rows])
    summary = {"augmentation": augmentation.to_dict(), "per_class": per_class, "study": "validate_md"}
    return save_model(estimator, spec, data.class_names, data.colors, path, summary)


def study(frames: dict[str, list[Atoms]], folder: Path, variants: list[str]) -> str:
    """Train every variant (models under ``folder``), score it on the MD frames; a Markdown table."""
    rows = []
    for name in variants:
        augmentation, spec = VARIANTS[name]
        path = study_model(augmentation, spec, folder / f"study_{list(VARIANTS).index(name)}.onnx")
        scores = score(frames, model_labeller(path))
        worst = [min(v for (_, r), (v, _) in scores.items() if r == region) for region in TARGETS]
        rows.append(f"| {name} | {len(spec.feature_names)} | " + " | ".join(f"{100 * v:.1f} %" for v in worst) + " |")
        print(rows[-1], flush=True)
    head = "| variant | features | " + " | ".join(f"{r} (min over T)" for r in TARGETS) + " |"
    return "\n".join([head, "|" + "---|" * (2 + len(TARGETS)), *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=ROOT / "out" / "md", help="cache of the MD frames")
    parser.add_argument("--model", type=Path, default=None, help="model file (default: models/reference10.onnx)")
    parser.add_argument("--output", type=Path, default=None,
                        help="Markdown result (default: benchmarks/results/md_validation.md, with --study "
                             "benchmarks/results/augmentation_study.md)")
    parser.add_argument("--study", nargs="*", metavar="N", type=int, default=None,
                        help=f"run the augmentation study instead, all variants or those numbered: "
                             f"{'; '.join(f'{i} {name}' for i, name in enumerate(VARIANTS))}".replace("%", "%%"))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.study or ()) - set(range(len(VARIANTS))))
    if unknown:
        parser.error(f"no study variant numbered {unknown}; they are 0 to {len(VARIANTS) - 1}")
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"validate_md: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    results = ROOT / "benchmarks" / "results"
    if args.study is not None:
        tm = generate(args.frames)["T_m"]
        names = [list(VARIANTS)[i] for i in (args.study or range(len(VARIANTS)))]
        table = study(load_frames(args.frames), args.frames, names)
        text = (f"# Augmentation study on EMT molecular dynamics\n\n{time.strftime('%Y-%m-%d', time.gmtime())}, "
                f"`python benchmarks/validate_md.py --study`; EMT Ni T_m = {tm:.0f} K. Scaler + MLP (64, 64) on "
                f"1500 atoms per class (ten reference crystals and Other); worst fraction correct over the "
                f"temperatures of each region (fcc Ni to 0.9 T_m, precipitate to 0.9 T_m, liquid 1.0-1.1 T_m)."
                f"\n\n{table}\n")
        write_atomically(args.output or results / "augmentation_study.md", text.encode())
        return 0
    path = Path(args.model or models_dir() / "reference10.onnx").resolve()
    methods = (("ML", model_labeller(path)), ("PTM", ptm_labels),  # a bad model fails before the MD
               ("PTM, no RMSD cutoff", partial(ptm_labels, rmsd_cutoff=0.0)), ("a-CNA", cna_labels))
    tm = generate(args.frames)["T_m"]
    frames = load_frames(args.frames)
    columns = {}
    for method, labeller in methods:
        t0 = time.perf_counter()
        columns[method] = score(frames, labeller)
        print(f"{method}: scored in {time.perf_counter() - t0:.1f} s", flush=True)
    table = validation_table(frames, tm, columns)
    model_name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    text = (f"# Validation on EMT molecular dynamics\n\n{time.strftime('%Y-%m-%d', time.gmtime())}, "
            f"model `{model_name}`, EMT Ni T_m = {tm:.0f} K (coexistence). ML = the model through "
            f"the OVITO modifier; PTM = OVITO's PTM with ordering (fcc + L1_2 = gamma_prime, fcc + pure = fccNi) "
            f"at its default RMSD cutoff 0.1 and without a cutoff; a-CNA = adaptive CNA (fcc = fccNi).\n\n{table}\n")
    write_atomically(args.output or results / "md_validation.md", text.encode())
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
