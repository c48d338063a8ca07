"""The class libraries: the ten reference crystal classes as ASE templates, the ``Other``
class of disordered configurations, and the Ni / Ni3Al precipitate of the reference study;
and the general library (:data:`GENERAL_CLASSES`) of lattices and orderings of any species
and lattice constant, with their defects, for scale-free features.

Every class has a ``name``, a ``color`` (RGB in 0..1) and a method ``template(rng,
min_width)`` returning an ASE ``Atoms`` at least ``min_width`` (Å) wide in every direction.
A :class:`CrystalClass` repeats a conventional cell, with an optional random substitution
(``gamma`` is fcc Ni with 20 % of the sites Al, redrawn for every template);
:class:`DisorderedClass` makes random dense packings and heavily displaced crystals; a
:class:`GeneralClass` draws each template from one of its sources (random species, a random
nearest-neighbour distance, atoms of the class marked in ``atoms.arrays[MEMBERS]``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal
from scipy.spatial import cKDTree

from .augment import NN_DISTANCE, rattle

Color = tuple[float, float, float]


def check_color(name: str, color) -> Color:
    """``color`` as an RGB tuple of floats in 0..1, or a ValueError naming class ``name``."""
    try:
        rgb = tuple(float(v) for v in color)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise ValueError(f"class {name!r}: colour must be three RGB values in 0..1, got {color!r}")
    return rgb


@dataclass(frozen=True)
class CrystalClass:
    """A named, coloured class of atoms whose templates come from ``cell()``.

    ``color`` is RGB in 0..1; ``substitute`` is ``(host, guest, fraction)``: that fraction
    of the ``host`` atoms of every template (rounded to whole atoms) becomes ``guest``, at
    random.
    """

    name: str
    color: Color
    cell: Callable[[], Atoms]
    substitute: tuple[str, str, float] | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a class needs a non-empty name, got {self.name!r}")
        object.__setattr__(self, "color", check_color(self.name, self.color))
        if self.substitute is not None:
            host, guest, fraction = self.substitute
            if not 0.0 <= float(fraction) <= 1.0:
                raise ValueError(f"class {self.name!r}: substitution fraction must be in 0..1, got {fraction!r}")
            object.__setattr__(self, "substitute", (str(host), str(guest), float(fraction)))

    def template(self, rng: np.random.Generator, min_width: float = 9.0) -> Atoms:
        """A periodic template at least ``min_width`` (Å) wide in every direction."""
        atoms = supercell(self.cell(), min_width)
        if self.substitute is not None:
            host, guest, fraction = self.substitute
            sites = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == host)
            if len(sites) == 0:
                raise ValueError(f"class {self.name!r}: the cell has no {host} atoms to substitute")
            chosen = rng.choice(sites, size=round(fraction * len(sites)), replace=False)
            symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
            symbols[chosen] = guest
            atoms.set_chemical_symbols(list(symbols))
        return atoms


@dataclass(frozen=True)
class DisorderedClass:
    """Configurations that are none of the crystals ("Other"): half of the templates are
    random dense packings (number density uniform in ``density`` [Å⁻³], no two atoms closer
    than ``min_distance`` times the fcc nearest-neighbour distance at that density, a
    fraction of the atoms from ``guest_fractions`` of a second species), the other half are
    templates of ``crystals`` displaced by Gaussian noise of a width uniform in
    ``displacement`` (Å), far beyond thermal vibrations of a solid."""

    name: str = "Other"
    color: Color = (0.75, 0.75, 0.75)
    density: tuple[float, float] = (0.05, 0.10)
    min_distance: float = 0.8
    guest_fractions: tuple[float, ...] = (0.0, 0.0, 0.2, 0.25, 0.5)
    species: tuple[str, str] = ("Ni", "Al")
    crystals: tuple[CrystalClass, ...] = ()
    displacement: tuple[float, float] = (0.4, 0.7)

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", check_color(self.name, self.color))
        lo, hi = self.density
        if not 0.0 < lo <= hi:
            raise ValueError(f"class {self.name!r}: density must be a range (low, high) > 0 in Å⁻³, got {self.density}")

    def template(self, rng: np.random.Generator, min_width: float = 9.0) -> Atoms:
        """A periodic template at least ``min_width`` (Å) wide: half the time a listed crystal
        displaced far beyond thermal vibration, else a random packing (see the class)."""
        if self.crystals and rng.random() < 0.5:
            source = self.crystals[rng.integers(len(self.crystals))]
            return rattle(source.template(rng, min_width), rng.uniform(*self.displacement), rng)
        density = rng.uniform(*self.density)
        box = max(min_width, 10.0)
        guests = rng.choice(self.guest_fractions)
        atoms = random_packing(round(density * box**3), box, self.min_distance * (np.sqrt(2) / density) ** (1 / 3), rng)
        symbols = np.where(rng.random(len(atoms)) < guests, self.species[1], self.species[0])
        atoms.set_chemical_symbols(list(symbols))
        return atoms


def random_packing(n: int, box: float, min_distance: float, rng: np.random.Generator, sweeps: int = 200) -> Atoms:
    """``n`` atoms in a periodic cube of edge ``box`` (Å), placed at random and pushed apart
    until (nearly) no pair is closer than ``min_distance`` (Å): a liquid-like packing."""
    positions = rng.random((n, 3)) * box
    for _ in range(sweeps):
        positions %= box
        pairs = cKDTree(positions, boxsize=box).query_pairs(min_distance, output_type="ndarray")
        if len(pairs) == 0:
            break
        delta = positions[pairs[:, 1]] - positions[pairs[:, 0]]
        delta -= box * np.round(delta / box)
        distance = np.linalg.norm(delta, axis=1, keepdims=True)
        push = 0.5 * (min_distance - distance) * delta / np.maximum(distance, 1e-9)
        np.add.at(positions, pairs[:, 1], push)
        np.subtract.at(positions, pairs[:, 0], push)
    return Atoms("X" * n, positions=positions % box, cell=[box, box, box], pbc=True)


def supercell(atoms: Atoms, min_width: float) -> Atoms:
    """``atoms`` repeated along each periodic cell vector until the distance between
    opposite cell faces is at least ``min_width`` (Å)."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    if volume <= 0.0:
        raise ValueError("the structure has a degenerate cell; a template needs a periodic 3D cell")
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return atoms * tuple(int(np.ceil(min_width / w - 1e-9)) if p else 1 for w, p in zip(widths, atoms.pbc, strict=True))


def l12_ni3al(a: float = 3.52, repeat: int = 1) -> Atoms:
    """L1_2 Ni3Al (``gamma_prime``), ``repeat`` cubic cells of edge ``a`` (Å) per direction:
    Al on the cube corners, Ni on the face centres."""
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (repeat, repeat, repeat)
    corner = _on_cube_corners(atoms.get_scaled_positions() * repeat)
    atoms.set_chemical_symbols(np.where(corner, "Al", "Ni"))
    return atoms


# % of the atoms of precipitate() in each class, found by the reference study (the blog post)
PRECIPITATE_REFERENCE = {"fccNi": 84.03, "gamma_prime": 9.83, "gamma": 6.15}


def precipitate(a: float = 3.52, cells: int = 10, radius: float = 10.0) -> Atoms:
    """The reference structure: fcc Ni, ``cells`` cubic cells of edge ``a`` (Å) per
    direction, whose atoms within ``radius`` (Å) of the box centre form coherent L1_2
    Ni3Al (Al on the cube-corner sites).  4000 atoms by default."""
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (cells, cells, cells)
    centre = atoms.cell.array.sum(axis=0) / 2
    inside = np.linalg.norm(atoms.positions - centre, axis=1) < radius
    corner = _on_cube_corners(atoms.get_scaled_positions() * cells)
    atoms.set_chemical_symbols(np.where(inside & corner, "Al", "Ni"))
    return atoms


def _on_cube_corners(cell_coordinates: np.ndarray) -> np.ndarray:
    """True (N,) where coordinates in units of the cubic cell edge are whole numbers."""
    frac = cell_coordinates % 1.0
    return np.all(np.minimum(frac, 1.0 - frac) < 1e-6, axis=1)


def _hcp_mg() -> Atoms:
    return bulk("Mg", "hcp", a=3.21, c=5.21, orthorhombic=True)


def _rutile() -> Atoms:
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.3, 0.3, 0)], spacegroup=136,
                   cellpar=[4.6, 4.6, 2.95, 90, 90, 90])


def _skutterudite() -> Atoms:
    # Im-3 (No. 204): Co on 8c (1/4, 1/4, 1/4), Sb on 24g (0, y, z)
    return crystal(["Co", "Sb"], basis=[(0.25, 0.25, 0.25), (0, 0.335, 0.158)], spacegroup=204,
                   cellpar=[9.04, 9.04, 9.04, 90, 90, 90])


REFERENCE_CLASSES: dict[str, CrystalClass] = {c.name: c for c in (
    CrystalClass("NaCl", (0.60, 0.40, 0.80), lambda: bulk("NaCl", "rocksalt", a=5.64, cubic=True)),
    CrystalClass("bccFe", (0.85, 0.15, 0.15), lambda: bulk("Fe", "bcc", a=2.87, cubic=True)),
    CrystalClass("diamond", (0.35, 0.35, 0.35), lambda: bulk("C", "diamond", a=3.57, cubic=True)),
    CrystalClass("fccAl", (0.55, 0.80, 0.95), lambda: bulk("Al", "fcc", a=4.05, cubic=True)),
    CrystalClass("fccNi", (0.40, 0.90, 0.40), lambda: bulk("Ni", "fcc", a=3.52, cubic=True)),
    CrystalClass("gamma", (0.20, 0.40, 1.00), lambda: bulk("Ni", "fcc", a=3.52, cubic=True), ("Ni", "Al", 0.2)),
    CrystalClass("gamma_prime", (1.00, 0.60, 0.10), l12_ni3al),
    CrystalClass("hcpMg", (0.95, 0.85, 0.20), _hcp_mg),
    CrystalClass("rutile", (0.90, 0.45, 0.65), _rutile),
    CrystalClass("skutterudite", (0.45, 0.25, 0.10), _skutterudite),
)}


# --- the general library: any species, any lattice constant --------------------------------

ORIGIN = "atomclass_origin"
"""``atoms.info`` key of a general template: which source built it, e.g.
``"stacking_template(base=fcc, members=hcp, chemistry=pure)"``."""

MEMBERS = "atomclass_members"
"""Per-atom boolean array of a template (``atoms.arrays[MEMBERS]``): only these atoms belong
to its class; the others are there as neighbours (the fcc around a stacking fault, a slab's
interior)."""

NN_RANGE = (2.0, 3.5)
"""Nearest-neighbour distances (Å) of general templates, drawn uniformly: C (1.54 Å) to Pb (3.50 Å)
and beyond; the scale-free features do not see it, the template widths do."""

ELEMENTS = ("Ni", "Al", "Cu", "Au", "Fe", "Cr", "W", "Nb", "Mo", "Ta", "V", "Ti", "Zr", "Mg", "Co", "Pt", "Pd",
            "Ag", "Pb", "Sn", "Zn", "Si", "Ge", "C")
"""Species names drawn for general templates: the features see only whether two are equal."""

WIDTH_IN_NN = 6.0
"""General templates are at least this many nearest-neighbour distances wide, so that no
atom sees its own image among the neighbours of a scale-free feature definition."""

IDEAL_C_OVER_A = float(np.sqrt(8.0 / 3.0))
HCP_C_OVER_A = (1.57, 1.65)  # real hcp metals: Be 1.57, Ti 1.59, Zr 1.59, Mg 1.62, Co 1.62
L10_C_OVER_A = (0.92, 1.04)  # CuAu 0.93, FePt 0.96, TiAl 1.02


def _lattice(kind: str, d: float, rng: np.random.Generator) -> Atoms:
    """The conventional cell of lattice ``kind`` with nearest-neighbour distance ``d`` (Å);
    the atomic numbers 1, 2, ... number the sublattices of an ordering (1 alone for a
    plain lattice)."""
    cubic = {"fcc": d * np.sqrt(2.0), "bcc": 2.0 * d / np.sqrt(3.0), "diamond": 4.0 * d / np.sqrt(3.0)}
    if kind in cubic:
        return bulk("H", kind, a=cubic[kind], cubic=True)
    if kind in OUTSIDE_LIBRARY:
        numbers, basis, spacegroup, cellpar, setting = OUTSIDE_LIBRARY[kind]
        atoms = crystal([int(z) for z in numbers], basis=basis, spacegroup=spacegroup, cellpar=cellpar, setting=setting)
        nearest = neighbor_list("d", atoms, 1.5 * atoms.cell.lengths().max()).min()
        atoms.set_cell(atoms.cell.array * (d / nearest), scale_atoms=True)
        return atoms
    if kind == "hcp":
        c_over_a = IDEAL_C_OVER_A if rng.random() < 0.25 else rng.uniform(*HCP_C_OVER_A)
        return bulk("H", "hcp", a=d, c=c_over_a * d, orthorhombic=True)
    if kind == "L1_2":  # A3B: B on the cube corners, A on the face centres
        atoms = _lattice("fcc", d, rng)
        atoms.numbers = np.where(_on_cube_corners(atoms.get_scaled_positions()), 2, 1)
        return atoms
    if kind == "L1_0":  # AB: alternate (001) planes, tetragonal
        atoms = _lattice("fcc", d, rng)
        atoms.numbers = np.where(np.isclose(atoms.get_scaled_positions()[:, 2], 0.5), 2, 1)
        atoms.set_cell(atoms.cell.array @ np.diag([1.0, 1.0, rng.uniform(*L10_C_OVER_A)]), scale_atoms=True)
        return atoms
    if kind == "B2":  # AB: B in the cube centres
        atoms = _lattice("bcc", d, rng)
        atoms.numbers = np.where(_on_cube_corners(atoms.get_scaled_positions()), 1, 2)
        return atoms
    if kind == "D0_3":  # A3B (Fe3Al): B on the cube corners of even index sum in a 2x2x2 bcc cell
        atoms = _lattice("bcc", d, rng) * (2, 2, 2)
        index = atoms.get_scaled_positions() * 2
        corner = _on_cube_corners(index)
        atoms.numbers = np.where(corner & (np.round(index).sum(axis=1).astype(int) % 2 == 0), 2, 1)
        return atoms
    if kind == "D0_19":  # A3B (Ni3Sn, Ti3Al) on hcp: P6_3/mmc, B on 2c, A on 6h (x = 5/6)
        c_over_a = rng.uniform(*HCP_C_OVER_A)
        atoms = crystal(["He", "H"], basis=[(1 / 3, 2 / 3, 0.25), (5 / 6, 2 / 3, 0.25)], spacegroup=194,
                        cellpar=[2 * d, 2 * d, c_over_a * d, 90, 90, 120])
        return atoms
    raise ValueError(f"unknown lattice {kind!r}")


OUTSIDE_LIBRARY = {
    # name: (sublattice of each Wyckoff site, its coordinates, space group, cell (Å, degrees), setting);
    # built with ase.spacegroup.crystal and scaled to the nearest-neighbour distance drawn
    "sc": ((1,), [(0, 0, 0)], 221, [1, 1, 1, 90, 90, 90], 1),
    "rocksalt": ((1, 2), [(0, 0, 0), (0.5, 0.5, 0.5)], 225, [1, 1, 1, 90, 90, 90], 1),
    "A15": ((2, 1), [(0, 0, 0), (0.25, 0, 0.5)], 223, [1, 1, 1, 90, 90, 90], 1),  # Cr3Si, beta-W
    "hexagonal_diamond": ((1,), [(1 / 3, 2 / 3, 1 / 16)], 194, [1.633, 1.633, 2.667, 90, 90, 120], 1),
    "beta_Sn": ((1,), [(0, 0, 0)], 141, [5.83, 5.83, 3.18, 90, 90, 90], 1),
    "A7": ((1,), [(0, 0, 0.227)], 166, [3.76, 3.76, 10.55, 90, 90, 120], 1),  # alpha-As, Sb, Bi
    "beta_Mn": ((1, 2), [(0.0636, 0.0636, 0.0636), (0.125, 0.2022, 0.4522)], 213, [6.315, 6.315, 6.315, 90, 90, 90],
                1),
    "NiAs": ((1, 2), [(0, 0, 0), (1 / 3, 2 / 3, 0.25)], 194, [3.62, 3.62, 5.03, 90, 90, 120], 1),
    "C15": ((1, 2), [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5)], 227, [7.05, 7.05, 7.05, 90, 90, 90], 2),  # MgCu2
    "graphite": ((1, 1), [(0, 0, 0.25), (1 / 3, 2 / 3, 0.25)], 194, [2.46, 2.46, 6.71, 90, 90, 120], 1),
}
"""Crystals outside the library (``Other``): elemental and ordered structures that are none of
the library's lattices and orderings."""


FIRST_SHELL = {"fcc": 12, "hcp": 12, "bcc": 8, "diamond": 4, "L1_2": 12, "L1_0": 12, "B2": 8, "D0_3": 8,
               "D0_19": 12}
"""Nearest neighbours of every atom of each lattice of the general library."""


def _species(atoms: Atoms, chemistry: str, rng: np.random.Generator) -> Atoms:
    """``atoms`` with random element names: ``pure`` one species; ``solution`` two species
    (the minority at 3-50 %) or three (any composition) at random sites; ``ordered`` a
    different species on each sublattice (atomic numbers 1, 2, ...)."""
    if chemistry == "ordered":
        names = rng.choice(ELEMENTS, size=atoms.numbers.max(), replace=False)
        atoms.set_chemical_symbols(names[atoms.numbers - 1])
    elif chemistry == "pure":
        atoms.set_chemical_symbols([rng.choice(ELEMENTS)] * len(atoms))
    elif chemistry == "solution":
        k = 2 if rng.random() < 0.7 else 3
        names = rng.choice(ELEMENTS, size=k, replace=False)
        fractions = [1.0 - (x := rng.uniform(0.03, 0.5)), x] if k == 2 else rng.dirichlet(np.ones(k))
        atoms.set_chemical_symbols(rng.choice(names, size=len(atoms), p=fractions))
    else:
        raise ValueError(f"unknown chemistry {chemistry!r}; choose pure, solution or ordered")
    return atoms


def coordination(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Number of atoms within ``cutoff`` (Å) of every atom (N,), periodic images included."""

    return np.bincount(neighbor_list("i", atoms, cutoff), minlength=len(atoms))


def _shell_cutoff(kind: str, d: float) -> float:
    """A distance (Å) between the first and the second neighbour shell of ``kind``."""
    return d * {"bcc": 1.07, "B2": 1.07, "D0_3": 1.07, "diamond": 1.3}.get(kind, 1.2)


def bulk_template(rng: np.random.Generator, d: float, width: float, kind: str, chemistry: str) -> Atoms:
    """A periodic crystal of lattice ``kind`` at least ``width`` (Å) wide with
    nearest-neighbour distance ``d`` (Å), species by ``chemistry`` (see :func:`_species`)."""
    return _species(supercell(_lattice(kind, d, rng), width), chemistry, rng)


def stacking_moves(base: str, layers: int, fault_probability: float, rng: np.random.Generator) -> np.ndarray:
    """Shifts (+1 or -1: A->B->C or back) between consecutive close-packed layers of a
    periodic stack of ``layers``: fcc (all +1) or hcp (alternating) with every shift
    reversed with probability ``fault_probability``, then one or two more reversed so that
    the stack closes (the shifts sum to a multiple of 3)."""
    moves = np.ones(layers, dtype=int) if base == "fcc" else np.where(np.arange(layers) % 2 == 0, 1, -1)
    moves = np.where(rng.random(layers) < fault_probability, -moves, moves)
    while moves.sum() % 3:  # reversing a -1 adds 2 (fixes a remainder 1), reversing a +1 fixes 2
        candidates = np.flatnonzero(moves == (-1 if moves.sum() % 3 == 1 else 1))
        flip = rng.choice(candidates if len(candidates) else np.arange(layers))
        moves[flip] = -moves[flip]
    return moves


def stacking_template(rng: np.random.Generator, d: float, width: float, base: str, members: str,
                      chemistry: str, fault_probability: tuple[float, float] = (0.05, 0.3)) -> Atoms:
    """Close-packed layers stacked by :func:`stacking_moves` (stacking faults, twins and
    their mixtures in fcc or hcp), ``d`` the nearest-neighbour distance (Å).  A layer whose
    neighbouring layers sit on the same sites (ABA) has the hcp environment, others (ABC)
    the fcc one; the atoms of the layers with environment ``members`` are marked."""
    c_over_a = IDEAL_C_OVER_A if base == "fcc" else rng.uniform(*HCP_C_OVER_A)
    spacing = 0.5 * c_over_a * d
    layers = max(int(np.ceil(width / spacing)), 6)
    moves = stacking_moves(base, layers, rng.uniform(*fault_probability), rng)
    while not np.any((moves != np.roll(moves, 1)) == (members == "hcp")):  # no layer of the kind wanted
        moves = stacking_moves(base, layers, rng.uniform(*fault_probability), rng)
    sites = np.concatenate([[0], np.cumsum(moves)[:-1]]) % 3
    hcp_like = moves != np.roll(moves, 1)  # the shift into a layer reverses the shift out of it
    a1, a2 = d * np.array([1.0, 0.0, 0.0]), d * np.array([0.5, np.sqrt(3.0) / 2, 0.0])
    positions = [s * (a1 + a2) / 3 + [0.0, 0.0, j * spacing] for j, s in enumerate(sites)]
    atoms = Atoms("H" * layers, positions=positions, cell=[a1, a2, [0.0, 0.0, layers * spacing]], pbc=True)
    atoms.arrays[MEMBERS] = hcp_like == (members == "hcp")
    return _species(supercell(atoms, width), chemistry, rng)


SURFACES = ((1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 1, 0), (2, 1, 1), (3, 1, 0), (3, 1, 1))
"""Miller indices of the surfaces of the general library's slabs (hcp: of its orthorhombic cell)."""


def surface_template(rng: np.random.Generator, d: float, width: float, kind: str, chemistry: str,
                     miller: tuple[int, int, int] | None = None) -> Atoms:
    """A slab of lattice ``kind`` with a surface of Miller indices ``miller`` (default: one of
    :data:`SURFACES` at random) on each side, at least ``width`` (Å) thick, with as much
    vacuum, periodic along the surface; the outermost atoms (fewer nearest neighbours than in
    the bulk) are marked."""
    from ase.build import surface

    miller = miller or SURFACES[rng.integers(len(SURFACES))]
    cell = _lattice(kind, d, rng)
    layers = 2
    while np.ptp((slab := surface(cell, miller, layers, vacuum=0.5 * width)).positions[:, 2]) < width:
        layers *= 2
    slab = supercell(slab, width)
    slab.arrays[MEMBERS] = coordination(slab, _shell_cutoff(kind, d)) < FIRST_SHELL[kind]
    return _species(slab, chemistry, rng)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def polycrystal_template(rng: np.random.Generator, d: float, width: float, kind: str, chemistry: str,
                         grains: int = 3) -> Atoms:
    """``grains`` randomly oriented grains of lattice ``kind`` (fcc, bcc or hcp) filling the
    Voronoi cells of random centres in a cube, not periodic: ``width`` (Å) plus 4 ``d`` (the
    nearest-neighbour distance, Å) of margin on every side; of two atoms closer than 0.7
    ``d`` one is removed.  The atoms that both adaptive CNA and PTM (RMSD cutoff 0.15) call
    ``Other`` (grain boundaries and triple lines; an atom whose own neighbours still form a
    nearly perfect crystal next to a boundary is left out: unrelaxed, it would teach that such
    a crystal is ``Other``) and that lie at least 4 ``d`` inside the cube are marked."""
    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier

    margin = 4.0 * d
    box = width + 2.0 * margin
    centres = margin + rng.random((grains, 3)) * width
    cell = _lattice(kind, d, rng)
    corners = np.array(np.meshgrid([0.0, box], [0.0, box], [0.0, box], indexing="ij")).reshape(3, -1).T
    positions = []
    for g in range(grains):
        rotation = _random_rotation(rng)
        # the cells whose atoms can land in the cube: cell indices of its corners in the grain's frame
        index = (corners - centres[g]) @ rotation @ np.linalg.inv(cell.cell.array)
        axes = [np.arange(np.floor(lo) - 1, np.ceil(hi) + 1) for lo, hi in zip(index.min(0), index.max(0), strict=True)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        lattice = ((grid @ cell.cell.array)[:, None, :] + cell.positions[None, :, :]).reshape(-1, 3)
        points = lattice @ rotation.T + centres[g]
        points = points[np.all((points >= 0) & (points < box), axis=1)]
        nearest = np.argmin(np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2), axis=1)
        positions.append(points[nearest == g])
    atoms = Atoms("H" * sum(map(len, positions)), positions=np.vstack(positions), cell=[box] * 3, pbc=False)
    pairs = cKDTree(atoms.positions).query_pairs(0.7 * d, output_type="ndarray")
    keep = np.ones(len(atoms), dtype=bool)
    for i, j in pairs:
        if keep[i] and keep[j]:
            keep[j] = False
    atoms = atoms[keep]
    defect = np.ones(len(atoms), dtype=bool)
    for method in (CommonNeighborAnalysisModifier(), PolyhedralTemplateMatchingModifier(rmsd_cutoff=0.15)):
        data = ase_to_ovito(atoms)
        data.apply(method)
        defect &= np.asarray(data.particles["Structure Type"]) == 0  # OTHER in both
    inside = np.all((atoms.positions >= margin) & (atoms.positions < box - margin), axis=1)
    atoms.arrays[MEMBERS] = defect & inside
    return _species(atoms, chemistry, rng)


def liquid_template(rng: np.random.Generator, d: float, width: float) -> Atoms:
    """A liquid-like random packing (see :func:`random_packing`) at 85-100 % of the fcc density
    of nearest-neighbour distance ``d`` (Å), no two atoms closer than 0.75-0.9 ``d``, with
    one to three species at any composition."""
    density = rng.uniform(0.85, 1.0) * np.sqrt(2.0) / d**3
    atoms = random_packing(round(density * width**3), width, rng.uniform(0.75, 0.9) * d, rng)
    return _species(atoms, "pure" if rng.random() < 0.4 else "solution", rng)


def lennard_jones_md(atoms: Atoms, sigma: float, temperatures: np.ndarray, rng: np.random.Generator,
                     dt: float = 0.004) -> Atoms:
    """``atoms`` (a periodic cube) moved by molecular dynamics with the Lennard-Jones potential
    of length ``sigma`` (Å; cut off at 2.5 sigma), one velocity-Verlet step of ``dt`` (in
    units of the Lennard-Jones time, unit mass and energy) per entry of ``temperatures``
    (Lennard-Jones units), the velocities rescaled to that temperature after every step: a
    quick way to a liquid (or, cooled, a glass) made of whatever the potential likes."""
    box = atoms.cell.lengths()[0] / sigma
    x = atoms.positions / sigma % box
    v = rng.normal(0.0, np.sqrt(temperatures[0]), x.shape)

    def forces(x):
        pairs = cKDTree(x, boxsize=box).query_pairs(2.5, output_type="ndarray")
        delta = x[pairs[:, 1]] - x[pairs[:, 0]]
        delta -= box * np.round(delta / box)
        inv2 = 1.0 / np.maximum(np.einsum("ij,ij->i", delta, delta), 0.5)
        inv6 = inv2**3
        f = (24.0 * inv2 * inv6 * (2.0 * inv6 - 1.0))[:, None] * delta  # on the second atom of each pair
        out = np.zeros_like(x)
        np.add.at(out, pairs[:, 1], f)
        np.subtract.at(out, pairs[:, 0], f)
        return out

    f = forces(x)
    for temperature in temperatures:
        v += 0.5 * dt * f
        x = (x + dt * v) % box
        f = forces(x)
        v += 0.5 * dt * f
        v *= np.sqrt(temperature / max(np.mean(v**2), 1e-12))
    out = atoms.copy()
    out.positions = x * sigma
    return out


def melt_template(rng: np.random.Generator, d: float, width: float) -> Atoms:
    """A Lennard-Jones liquid (80-95 % of close packing, reduced temperature 0.8-2, 400 steps)
    or glass (the liquid then cooled to 0.1-0.4 in 400 more steps) whose nearest-neighbour
    peak sits at ``d`` (Å), from a :func:`random_packing` start, with one to three species at
    random.  The atoms that both adaptive CNA and PTM call ``Other`` are marked (a glass may
    grow crystal nuclei)."""
    from ovito.io.ase import ase_to_ovito
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier

    sigma = d / 2 ** (1 / 6)
    density = rng.uniform(0.8, 0.95) / sigma**3  # reduced density 0.8-0.95
    atoms = random_packing(round(density * width**3), width, 0.85 * sigma, rng)
    hot = rng.uniform(0.8, 2.0)
    temperatures = np.full(400, hot)
    if rng.random() < 0.5:
        temperatures = np.concatenate([temperatures, np.linspace(hot, rng.uniform(0.1, 0.4), 400)])
    atoms = lennard_jones_md(atoms, sigma, temperatures, rng)
    liquid = np.ones(len(atoms), dtype=bool)
    for method in (CommonNeighborAnalysisModifier(), PolyhedralTemplateMatchingModifier()):
        data = ase_to_ovito(atoms)
        data.apply(method)
        liquid &= np.asarray(data.particles["Structure Type"]) == 0  # OTHER in both
    atoms.arrays[MEMBERS] = liquid
    return _species(atoms, "pure" if rng.random() < 0.4 else "solution", rng)


def displaced_template(rng: np.random.Generator, d: float, width: float) -> Atoms:
    """A crystal of the general library displaced by Gaussian noise of 15-30 % of ``d`` per
    component (Å), far beyond thermal vibration."""
    kind = rng.choice(list(FIRST_SHELL))
    atoms = bulk_template(rng, d, width, kind, "ordered" if kind not in ("fcc", "hcp", "bcc", "diamond") else "pure")
    return rattle(atoms, rng.uniform(0.15, 0.3) * d, rng)


def squeezed_template(rng: np.random.Generator, d: float, width: float, kind: str) -> Atoms:
    """A crystal with extra atoms at the midpoints of a few random nearest-neighbour bonds:
    each extra atom and the two it squeezes (half the nearest-neighbour distance ``d``, Å)
    are marked."""
    atoms = bulk_template(rng, d, width, kind, "pure")
    i, j, vectors = neighbor_list("ijD", atoms, 1.05 * d)
    bonds = rng.choice(len(i), size=max(1, len(atoms) // 30), replace=False)
    squeezed = np.zeros(len(atoms), dtype=bool)
    squeezed[i[bonds]] = squeezed[j[bonds]] = True
    extra = Atoms([atoms[0].symbol] * len(bonds), positions=atoms.positions[i[bonds]] + 0.5 * vectors[bonds])
    atoms.arrays[MEMBERS] = squeezed
    extra.arrays[MEMBERS] = np.ones(len(bonds), dtype=bool)
    return atoms + extra


Source = Callable[[np.random.Generator, float, float], Atoms]


@dataclass(frozen=True)
class GeneralClass:
    """A class of the general library.  Each template comes from one of ``sources``, drawn
    with probability proportional to its weight: a function ``(rng, d, width)`` that builds
    a periodic template with nearest-neighbour distance ``d`` (Å, drawn from
    :data:`NN_RANGE`), at least ``width`` (Å) wide, with random species; atoms not marked
    in its ``MEMBERS`` array (if it has one) are only neighbours.  ``d`` is stored in
    ``atoms.info[NN_DISTANCE]``."""

    name: str
    color: Color
    sources: tuple[tuple[float, Source], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "color", check_color(self.name, self.color))

    def template(self, rng: np.random.Generator, min_width: float = 9.0) -> Atoms:
        """A template from one of ``sources`` (drawn by weight) at a nearest-neighbour distance
        drawn from ``NN_RANGE`` (Å), at least ``min_width`` (Å) wide in every direction."""
        weights = np.array([w for w, _ in self.sources], dtype=float)
        source = self.sources[rng.choice(len(weights), p=weights / weights.sum())][1]
        d = rng.uniform(*NN_RANGE)
        atoms = source(rng, d, max(min_width, WIDTH_IN_NN * d))
        atoms.info[NN_DISTANCE] = d
        atoms.info[ORIGIN] = source_name(source)
        return atoms


def source_name(source: Source) -> str:
    """``"function(key=value, ...)"`` of a source."""
    func = getattr(source, "func", source)
    keywords = ", ".join(f"{k}={v}" for k, v in getattr(source, "keywords", {}).items())
    return f"{func.__name__}({keywords})"


def _bulk(kind: str, chemistry: str) -> Source:
    return functools.partial(bulk_template, kind=kind, chemistry=chemistry)


def _general_classes() -> dict[str, GeneralClass]:
    # Source weights are per template; templates mark very different numbers of members (a
    # polycrystal ~140 of ~3800 atoms, a bulk crystal all ~400), so the weights are the share
    # of the class's rows each source should give, divided by its typical number of members:
    # Other = 30 % liquids (a third random packings, two thirds Lennard-Jones melts), 10 % displaced
    # crystals, 15 % unknown crystals, 20 % surfaces, 15 % grain boundaries, 10 % squeezed atoms;
    # hcp = 55 % bulk, 35 % stacking faults in fcc, 10 % faulted hcp; fcc = 70 % bulk, 30 % next to
    # stacking faults.
    from functools import partial as p

    def chemistries(kind: str) -> tuple[str, ...]:
        return ("pure", "solution") if kind in ("fcc", "bcc", "hcp") else ("pure",) if kind == "diamond" \
            else ("ordered",)

    other = [(0.4, liquid_template), (0.8, melt_template), (0.23, displaced_template)]
    outside = [(kind, "pure") for kind in OUTSIDE_LIBRARY] + [(kind, "ordered") for kind, (numbers, *_) in
                                                              OUTSIDE_LIBRARY.items() if max(numbers) > 1]
    other += [(0.65 / len(outside), _bulk(kind, chem)) for kind, chem in outside]
    other += [(0.13, p(surface_template, kind=k, chemistry=c)) for k in FIRST_SHELL for c in chemistries(k)]
    other += [(0.18, p(polycrystal_template, kind=k, chemistry=c)) for k in ("fcc", "bcc", "hcp")
              for c in ("pure", "solution")]
    other += [(0.6, p(squeezed_template, kind=k)) for k in ("fcc", "bcc", "hcp", "diamond")]
    faulted = functools.partial(stacking_template, base="fcc")
    classes = (
        GeneralClass("fcc", (0.40, 0.90, 0.40), (
            (0.7, _bulk("fcc", "pure")), (0.7, _bulk("fcc", "solution")),
            (0.8, p(faulted, members="fcc", chemistry="pure")),
            (0.34, p(faulted, members="fcc", chemistry="solution")))),
        GeneralClass("hcp", (1.00, 0.40, 0.40), (
            (0.78, _bulk("hcp", "pure")), (0.65, _bulk("hcp", "solution")),
            (2.55, p(faulted, members="hcp", chemistry="pure")), (1.0, p(faulted, members="hcp", chemistry="solution")),
            (0.4, p(stacking_template, base="hcp", members="hcp", chemistry="pure")))),
        GeneralClass("bcc", (0.40, 0.40, 1.00), ((1.0, _bulk("bcc", "pure")), (1.0, _bulk("bcc", "solution")))),
        GeneralClass("diamond", (0.07, 0.35, 0.35), ((1.0, _bulk("diamond", "pure")),
                                                     (0.5, _bulk("diamond", "solution")))),
        GeneralClass("L1_2", (1.00, 0.60, 0.10), ((1.0, _bulk("L1_2", "ordered")),)),
        GeneralClass("L1_0", (0.90, 0.80, 0.20), ((1.0, _bulk("L1_0", "ordered")),)),
        GeneralClass("B2", (0.60, 0.20, 0.80), ((1.0, _bulk("B2", "ordered")),)),
        GeneralClass("D0_3", (0.30, 0.70, 0.90), ((1.0, _bulk("D0_3", "ordered")),)),
        GeneralClass("D0_19", (0.80, 0.50, 0.60), ((1.0, _bulk("D0_19", "ordered")),)),
        GeneralClass("Other", (0.95, 0.95, 0.95), tuple(other)),
    )
    return {c.name: c for c in classes}


GENERAL_CLASSES: dict[str, GeneralClass] = _general_classes()
"""The general library: fcc, hcp, bcc, diamond (pure and random solid solutions, stacking
faults), the orderings L1_2, L1_0, B2, D0_3, D0_19 of any two species, and ``Other`` (liquid-like
packings, heavily displaced crystals, crystals outside the library, outermost surface atoms,
grain boundaries, squeezed atoms)."""
