"""Shared fixtures: a small model trained in a few seconds on four ASE crystal templates."""

import pytest

from ovito_atomclass.samples import train_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the tiny ONNX model of :mod:`ovito_atomclass.samples` (classes fccNi, gamma,
    gamma_prime, bccFe; cutoff 4 Å, the nine default features)."""
    return train_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")
