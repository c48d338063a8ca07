"""The class library: the ten reference crystal classes as ASE templates, the ``Other``
class of disordered configurations, and the Ni / Ni3Al precipitate of the reference study.

Every class has a ``name``, a ``color`` (RGB in 0..1) and a method ``template(rng,
min_width)`` returning a periodic ASE ``Atoms`` at least ``min_width`` (Å) wide in every
direction.  A :class:`CrystalClass` repeats a conventional cell, with an optional random
substitution (``gamma`` is fcc Ni with 20 % of the sites Al, redrawn for every template);
:class:`DisorderedClass` makes random dense packings and heavily displaced crystals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal
from scipy.spatial import cKDTree

from .augment import rattle

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
