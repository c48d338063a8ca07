"""The OVITO modifier: classify every atom of a frame with an ovito-atomclass model.

Appears in OVITO Pro as "Atom Structure Classifier (ML)" (entry point ``OVITO.Modifier``);
in a script, append :class:`AtomClassifierModifier` to ``pipeline.modifiers``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from ovito.data import DataCollection, DataTable
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath
from traits.api import Bool, Range

from .features import feature_blocks
from .model import OTHER, AtomClassifier, default_model_path, load_model
from .systems import as_frame

ATTRIBUTE_PREFIX = "AtomClassifier.counts."
TABLE_ID = "atomclass-structures"
OTHER_COLOR = (0.95, 0.95, 0.95)
BLOCK_SIZE = 32768


def type_ids(classes: list[str]) -> np.ndarray:
    """``Structure Type`` id (K,) of each model class: a class named ``Other`` gets 0, the
    others 1, 2, ... in model order."""
    ids, next_id = [], 1
    for name in classes:
        ids.append(0 if name == OTHER else next_id)
        next_id += name != OTHER
    return np.array(ids, dtype=np.int32)


def assign(proba: np.ndarray, ids: np.ndarray, threshold: float) -> np.ndarray:
    """Structure type (n,) from class probabilities (n, K): the id of the most probable
    class, or 0 (``Other``) where that probability is below ``threshold``."""
    best = np.argmax(proba, axis=1)
    confident = proba[np.arange(len(proba)), best] >= threshold
    return np.where(confident, ids[best], 0).astype(np.int32)


@lru_cache(maxsize=8)
def _cached_model(path: str, mtime_ns: int, size: int) -> AtomClassifier:
    return load_model(path)


def resolve_model(model_file: str | os.PathLike = "") -> AtomClassifier:
    """The model at ``model_file`` ("" = the shipped ``models/default.onnx``), parsed once
    per file version and reused for every frame."""
    path = Path(model_file or default_model_path()).expanduser().resolve()
    if not path.is_file():
        return load_model(path)  # raises FileNotFoundError naming the path
    stat = path.stat()
    return _cached_model(str(path), stat.st_mtime_ns, stat.st_size)


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
    threshold = Range(0.0, 1.0, 0.0, label="Minimum probability (else Other)", ovito_group="Classification")
    output_probabilities = Bool(False, label="Output probabilities and confidence", ovito_group="Output")
    only_selected = Bool(False, label="Classify selected particles only", ovito_group="Classification")

    def modify(self, data: DataCollection, *, frame: int = 0, **kwargs) -> Iterator[float | str]:
        yield "Atom classifier: loading model"
        model = resolve_model(self.model_file)
        frame_arrays = as_frame(data)
        n = len(frame_arrays.positions)
        if n and model.spec.needs_species and frame_arrays.species is None:
            raise ValueError(f"the model {model.path} uses like/unlike features and needs each particle's "
                             "chemical species, but the frame has no 'Particle Type' property")
        selected = self._selection(data, n)
        ids = type_ids(model.classes)
        structure = np.zeros(n, dtype=np.int32)
        proba = np.zeros((n, len(model.classes)), dtype=np.float32) if self.output_probabilities else None
        yield "Atom classifier: computing features and classifying"
        done = 0
        for atoms, features in feature_blocks(frame_arrays, model.spec, BLOCK_SIZE) if n else ():
            keep = selected[atoms]
            rows = atoms[keep]
            block_proba = model.predict_proba(features if len(rows) == len(atoms) else features[keep])
            structure[rows] = assign(block_proba, ids, self.threshold)
            if proba is not None:
                proba[rows] = block_proba
            done += len(atoms)
            yield done / n
        _write(data, model, ids, structure, proba, selected)

    def _selection(self, data: DataCollection, n: int) -> np.ndarray:
        """Boolean mask (N,) of the atoms to classify."""
        if not self.only_selected:
            return np.ones(n, dtype=bool)
        if n and "Selection" not in data.particles:
            raise ValueError("'Classify selected particles only' is on, but the frame has no 'Selection' property")
        return np.asarray(data.particles["Selection"]) != 0 if n else np.zeros(0, dtype=bool)


def _write(data: DataCollection, model: AtomClassifier, ids: np.ndarray, structure: np.ndarray,
           proba: np.ndarray | None, selected: np.ndarray) -> None:
    """Store the per-atom results, the counts attributes and the bar-chart table in ``data``."""
    names = {0: OTHER, **{int(i): c for i, c in zip(ids, model.classes, strict=True)}}
    colors = {0: OTHER_COLOR, **{int(i): tuple(c) for i, c in zip(ids, model.colors, strict=True)}}
    order = sorted(names)
    if data.particles is not None:
        particles = data.particles_
        for name in ("Structure Type", "Structure Probability", "Confidence"):
            if name in particles:
                del particles[name]
        prop = particles.create_property("Structure Type", data=structure)
        for i in order:
            prop.add_type_id(i, particles, name=names[i]).color = colors[i]
        if proba is not None:
            particles.create_property("Structure Probability", data=proba, components=list(model.classes))
            particles.create_property("Confidence", data=proba.max(axis=1, initial=0.0))
    counts = np.bincount(structure[selected], minlength=len(order))
    for i in order:
        data.attributes[ATTRIBUTE_PREFIX + names[i]] = int(counts[i])
    table = data.tables.create(identifier=TABLE_ID, plot_mode=DataTable.PlotMode.BarChart,
                               title="Structure counts (ML classifier)")
    table.x = table.create_property("Structure Type", data=np.array(order, dtype=np.int32))
    for i in order:
        table.x.add_type_id(i, table, name=names[i]).color = colors[i]
    table.y = table.create_property("Count", data=counts[order].astype(np.int64))
