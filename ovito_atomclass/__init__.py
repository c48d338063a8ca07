"""Machine-learned per-atom structure identification for OVITO, ASE and scikit-learn."""

from .features import compute_features
from .model import load_model
from .spec import FeatureSet, FeatureSpec

__all__ = ["AtomClassifierModifier", "FeatureSet", "FeatureSpec", "compute_features", "load_model"]


def __getattr__(name: str):
    # the modifier pulls in OVITO's pipeline classes: import it only when asked for
    if name == "AtomClassifierModifier":
        from .modifier import AtomClassifierModifier

        return AtomClassifierModifier
    raise AttributeError(name)
