"""Small test structures."""

import numpy as np
from ase.build import bulk

from ovito_atomclass.crystals import l12_ni3al  # noqa: F401  (re-exported for the tests)


def random_alloy(n_cells: int = 3, seed: int = 0, a: float = 3.52, x_al: float = 0.3):
    """A random two-species configuration at fcc Ni density, in a periodic cubic cell."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (n_cells, n_cells, n_cells)
    atoms.positions = rng.random((len(atoms), 3)) @ atoms.cell.array
    atoms.set_chemical_symbols(np.where(rng.random(len(atoms)) < x_al, "Al", "Ni"))
    return atoms
