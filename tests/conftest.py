"""Shared fixtures: a small model trained in a few seconds on four ASE crystal templates."""

import numpy as np
import pytest
from ase.build import bulk
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ovito_atomclass import FeatureSpec, compute_features
from ovito_atomclass.model import save_model

from .structures import l12_ni3al

TINY_CLASSES = ["fccNi", "gamma", "gamma_prime", "bccFe"]
TINY_COLORS = [(0.4, 1.0, 0.4), (0.2, 0.4, 1.0), (1.0, 0.6, 0.1), (0.9, 0.1, 0.1)]


def tiny_templates(seed: int = 0) -> list:
    """One periodic template per class of :data:`TINY_CLASSES`, in that order (Å)."""
    rng = np.random.default_rng(seed)
    gamma = bulk("Ni", "fcc", a=3.52, cubic=True) * (4, 4, 4)
    gamma.set_chemical_symbols(np.where(rng.random(len(gamma)) < 0.25, "Al", "Ni"))
    return [
        bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3),
        gamma,
        l12_ni3al(a=3.52, repeat=3),
        bulk("Fe", "bcc", a=2.87, cubic=True) * (4, 4, 4),
    ]


def _training_set(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the ideal templates and three rattled copies of each."""
    X, y = [], []
    for label, atoms in enumerate(tiny_templates()):
        for k, stdev in enumerate((0.0, 0.03, 0.06, 0.09)):
            copy = atoms.copy()
            if stdev:
                copy.rattle(stdev=stdev, seed=10 * label + k)
            X.append(compute_features(copy, spec))
            y.append(np.full(len(copy), label))
    return np.vstack(X), np.concatenate(y)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of an ONNX model (classes :data:`TINY_CLASSES`, cutoff 4 Å, the nine default
    features) trained on ideal and rattled fcc Ni, random fcc Ni-Al, L1_2 Ni3Al and bcc Fe."""
    spec = FeatureSpec()
    X, y = _training_set(spec)
    estimator = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0))
    estimator.fit(X, y)
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    return save_model(estimator, spec, TINY_CLASSES, TINY_COLORS, path, {"trained_on": "tests/conftest.py templates"})
