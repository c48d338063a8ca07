"""Machine-learned per-atom structure identification for OVITO, ASE and scikit-learn.

The run-time surface: :func:`compute_features` with its :class:`FeatureSpec` or
:class:`FeatureSet`, :func:`load_model` and the OVITO modifier :class:`AtomClassifierModifier`.
Training (``atomclass train``, :mod:`ovito_atomclass.training`) needs the ``[train]`` extra.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# each public name and its module, imported on first use: ``atomclass --version`` and
# ``--help`` need neither numba nor OVITO
_HOMES = {"AtomClassifierModifier": "modifier", "FeatureSet": "spec", "FeatureSpec": "spec",
          "compute_features": "features", "load_model": "model"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
