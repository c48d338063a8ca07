"""Small sample structures and a tiny model, shared by the tests, the benchmarks and quick
trials: a random alloy, four crystal templates, and a forest trained on them in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from .crystals import l12_ni3al
from .features import compute_features
from .spec import FeatureSpec

TINY_CLASSES = ["fccNi", "gamma", "gamma_prime", "bccFe"]
TINY_COLORS = [(0.4, 1.0, 0.4), (0.2, 0.4, 1.0), (1.0, 0.6, 0.1), (0.9, 0.1, 0.1)]


def random_alloy(n_cells: int = 3, seed: int = 0, a: float = 3.52, x_al: float = 0.3) -> Atoms:
    """A random two-species (Ni, Al) configuration at the density of fcc Ni with lattice
    constant ``a`` (Å), ``4 n_cells³`` atoms in a periodic cubic cell."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Ni", "fcc", a=a, cubic=True) * (n_cells, n_cells, n_cells)
    atoms.positions = rng.random((len(atoms), 3)) @ atoms.cell.array
    atoms.set_chemical_symbols(np.where(rng.random(len(atoms)) < x_al, "Al", "Ni"))
    return atoms


def tiny_templates(seed: int = 0) -> list[Atoms]:
    """One periodic template per class of :data:`TINY_CLASSES`, in that order: fcc Ni,
    random fcc Ni with 25 % Al, L1_2 Ni3Al (a = 3.52 Å) and bcc Fe (a = 2.87 Å)."""
    rng = np.random.default_rng(seed)
    gamma = bulk("Ni", "fcc", a=3.52, cubic=True) * (4, 4, 4)
    gamma.set_chemical_symbols(np.where(rng.random(len(gamma)) < 0.25, "Al", "Ni"))
    return [
        bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3),
        gamma,
        l12_ni3al(a=3.52, repeat=3),
        bulk("Fe", "bcc", a=2.87, cubic=True) * (4, 4, 4),
    ]


def tiny_training_set(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, F) and labels (n,) of the ideal :func:`tiny_templates` and three rattled
    copies of each (0.03, 0.06, 0.09 Å)."""
    X, y = [], []
    for label, atoms in enumerate(tiny_templates()):
        for k, stdev in enumerate((0.0, 0.03, 0.06, 0.09)):
            copy = atoms.copy()
            if stdev:
                copy.rattle(stdev=stdev, seed=10 * label + k)
            X.append(compute_features(copy, spec))
            y.append(np.full(len(copy), label))
    return np.vstack(X), np.concatenate(y)


def train_tiny_model(path: str | os.PathLike) -> Path:
    """Write a tiny model (classes :data:`TINY_CLASSES`, the nine features of
    ``FeatureSpec()``: a 20-tree forest) to ``path`` and return the path."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .model import save_model

    spec = FeatureSpec()
    X, y = tiny_training_set(spec)
    estimator = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0))
    return save_model(estimator.fit(X, y), spec, TINY_CLASSES, TINY_COLORS, path,
                      {"trained_on": "ovito_atomclass.samples.tiny_templates"})
