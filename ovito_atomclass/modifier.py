"""The OVITO modifier: classify every atom of a frame with an ovito-atomclass model.

Appears in OVITO Pro as "Atom Structure Classifier (ML)" (entry point ``OVITO.Modifier``);
in a script, append :class:`AtomClassifierModifier` to ``pipeline.modifiers``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from ovito.data import DataCollection, DataTable
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath
from traits.api import Bool, Range

from .features import feature_blocks
from .model import DEFAULT_THRESHOLD, AtomClassifier, assign, check_threshold, counts_attribute, load_model
from .systems import as_snapshot
from .warmup import COMPILING, preparing

TABLE_ID = "atomclass-structures"
BLOCK_SIZE = 32768


class AtomClassifierModifier(ModifierInterface):
    """Label every particle with the most probable structure class of an ONNX model.

    Output: the integer particle property ``Structure Type`` (0 = ``Other``, the model's
    classes 1..K in model order, a model class named ``Other`` is 0) with one named,
    coloured type per class; optionally ``Structure Probability`` (N, K) and ``Confidence``
    (N,); the global attributes ``AtomClassifier.counts.<class>`` and the bar-chart table
    ``atomclass-structures``.  With ``only_selected`` the features of selected atoms still see
    unselected neighbours, but unselected atoms are not classified: they get ``Other`` (0),
    probabilities 0, and are left out of the counts.
    """

    model_file = FilePath("", label="Model file (.onnx, empty = shipped default)", ovito_group="Model")
    threshold = Range(0.0, 1.0, DEFAULT_THRESHOLD, label="Minimum probability (else Other)",
                      ovito_group="Classification")
    output_probabilities = Bool(False, label="Output probabilities and confidence", ovito_group="Output")
    only_selected = Bool(False, label="Classify selected particles only", ovito_group="Classification")

    def modify(self, data: DataCollection, *, frame: int = 0, **kwargs) -> Iterator[float | str]:
        """Classify the particles of ``data`` in place; OVITO calls this for every frame.

        Yields status messages (while numba compiles the feature kernels after installing,
        one that says so) and the fraction of atoms done, so OVITO Pro shows progress and
        can cancel; raises ValueError or FileNotFoundError, before writing anything, for a
        model or frame it cannot use."""
        yield "Atom classifier: loading model"
        threshold = check_threshold(self.threshold)
        model = load_model(self.model_file)
        for compiling in preparing(model.spec):
            yield f"Atom classifier: {COMPILING}" if compiling else "Atom classifier: loading the feature kernels"
        snapshot = as_snapshot(data)
        n = len(snapshot.positions)
        selected = self._atom_mask(data, n)
        ids = model.type_ids
        structure = np.zeros(n, dtype=np.int32)
        proba = np.zeros((n, len(model.classes)), dtype=np.float32) if self.output_probabilities else None
        yield "Atom classifier: computing features and classifying"
        done = 0
        for atoms, features in feature_blocks(snapshot, model.spec, BLOCK_SIZE) if n else ():
            keep = selected[atoms]
            rows = atoms[keep]
            block_proba = model.predict_proba(features if len(rows) == len(atoms) else features[keep])
            structure[rows] = assign(block_proba, ids, threshold)
            if proba is not None:
                proba[rows] = block_proba
            done += len(atoms)
            yield done / n
        _write(data, model, structure, proba, selected)

    def _atom_mask(self, data: DataCollection, n: int) -> np.ndarray:
        """Boolean mask (N,) of the atoms to classify."""
        if not self.only_selected:
            return np.ones(n, dtype=bool)
        if n and "Selection" not in data.particles:
            raise ValueError("'Classify selected particles only' is on, but the frame has no 'Selection' property")
        return np.asarray(data.particles["Selection"]) != 0 if n else np.zeros(0, dtype=bool)


def _write(data: DataCollection, model: AtomClassifier, structure: np.ndarray, proba: np.ndarray | None,
           selected: np.ndarray) -> None:
    """Store the per-atom results, the counts attributes and the bar-chart table in ``data``."""
    types = model.structure_types
    ids = [t.id for t in types]
    if data.particles is not None:
        particles = data.particles_
        for name in ("Structure Type", "Structure Probability", "Confidence"):
            if name in particles:
                del particles[name]
        prop = particles.create_property("Structure Type", data=structure)
        for t in types:
            prop.add_type_id(t.id, particles, name=t.name).color = t.color
        if proba is not None:
            particles.create_property("Structure Probability", data=proba, components=list(model.classes))
            particles.create_property("Confidence", data=proba.max(axis=1, initial=0.0))
    class_counts = np.bincount(structure[selected], minlength=len(types))
    for t in types:
        data.attributes[counts_attribute(t.name)] = int(class_counts[t.id])
    table = data.tables.create(identifier=TABLE_ID, plot_mode=DataTable.PlotMode.BarChart,
                               title="Structure counts (ML classifier)")
    table.x = table.create_property("Structure Type", data=np.array(ids, dtype=np.int32))
    for t in types:
        table.x.add_type_id(t.id, table, name=t.name).color = t.color
    table.y = table.create_property("Count", data=class_counts[ids].astype(np.int64))
