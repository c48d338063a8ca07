"""Small test structures."""

import numpy as np
from ase.build import bulk


def l12_ni3al(a: float = 3.52, repeat: int = 2):
    """L1_2 Ni3Al: Al on the cube corners of an fcc Ni lattice."""
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (repeat, repeat, repeat)
    corner = np.all(np.isclose((atoms.get_scaled_positions() * repeat) % 1.0, 0.0, atol=1e-6), axis=1)
    symbols = np.where(corner, "Al", "Ni")
    atoms.set_chemical_symbols(symbols)
    return atoms


def random_alloy(n_cells: int = 3, seed: int = 0, a: float = 3.52, x_al: float = 0.3):
    """A random two-species configuration at fcc Ni density, in a periodic cubic cell."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (n_cells, n_cells, n_cells)
    atoms.positions = rng.random((len(atoms), 3)) @ atoms.cell.array
    atoms.set_chemical_symbols(np.where(rng.random(len(atoms)) < x_al, "Al", "Ni"))
    return atoms
