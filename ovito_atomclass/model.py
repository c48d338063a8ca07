"""Model files and their outward vocabulary.

A model is a scikit-learn pipeline exported to ONNX, with the feature spec, class names and
colours in the file's metadata; inference runs in onnxruntime.  This module is the one home
of what a model becomes outside: :func:`load_model` (the shipped default when no path is
given, one cache keyed by file content), the ``Structure Type`` table (ids, names, colours,
``Other`` = 0), the rule from probabilities to types (:func:`assign`), and the codec of the
per-class counts attributes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .files import write_atomically
from .parallel import run_chunks
from .spec import FeatureSet, FeatureSpec, spec_from_json

FORMAT = "ovito-atomclass/1"
_KEYS = ("atomclass.format", "atomclass.spec", "atomclass.classes", "atomclass.colors", "atomclass.summary")
OTHER = "Other"
OTHER_COLOR = (0.95, 0.95, 0.95)
COUNTS_ATTRIBUTE = "AtomClassifier.counts."
# an atom whose most probable class is less likely than this is Other: the general model's
# confident atoms (crystals to 0.9 T_m) stay above it, unknown environments fall below
# (benchmarks/results/general_study.md); the seed and reference10 models lose no atom of the
# reference precipitate to it
DEFAULT_THRESHOLD = 0.4
_CACHE_SIZE = 8
# rows per onnxruntime call: a millisecond or two of inference
INFERENCE_CHUNK = 4096


def counts_attribute(name: str) -> str:
    """The global attribute that holds the number of atoms of structure ``name``."""
    return COUNTS_ATTRIBUTE + name


def counts_from_attributes(attributes: Mapping) -> dict[str, int]:
    """The per-structure atom counts {name: count} found among a frame's global attributes."""
    return {key[len(COUNTS_ATTRIBUTE):]: int(value) for key, value in attributes.items()
            if key.startswith(COUNTS_ATTRIBUTE)}


def check_threshold(value: float) -> float:
    """``value`` as a probability threshold in 0..1; ValueError otherwise (NaN included)."""
    value = float(value)
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise ValueError(f"the threshold must be a probability between 0 and 1, got {value}")
    return value


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


def models_dir() -> Path:
    """Folder of the shipped models (``*.onnx``, with their model cards ``*.md``): the
    package data ``ovito_atomclass/models`` of an installed package (any of ``pip install``,
    ``--user``, ``--target``), else ``models/`` beside the package in a source checkout
    (an editable install, or the checkout on ``PYTHONPATH``), where the models are built."""
    packaged = resources.files(__package__) / "models"
    return Path(packaged) if packaged.is_dir() else Path(__file__).resolve().parent.parent / "models"


def default_model_path() -> Path:
    """The shipped default model file, ``default.onnx`` in :func:`models_dir`; the modifier
    and ``atomclass label`` use it when no model file is given."""
    return models_dir() / "default.onnx"


@dataclass(frozen=True)
class StructureType:
    """One entry of the ``Structure Type`` table: integer ``id``, ``name``, RGB ``color`` in 0..1."""

    id: int
    name: str
    color: tuple[float, float, float]


@dataclass
class AtomClassifier:
    """A loaded model: ``spec`` (:class:`FeatureSpec` or :class:`FeatureSet`), ``classes``
    (names, in the order of the probability columns), ``colors`` (RGB in 0..1 per class),
    ``summary`` (dict); ``digest`` is the SHA-256 of the file's content."""

    path: Path
    spec: FeatureSpec | FeatureSet
    classes: list[str]
    colors: list[tuple[float, float, float]]
    summary: dict = field(default_factory=dict)
    digest: str = ""
    _payload: bytes = field(default=b"", repr=False)
    # the onnxruntime session: not picklable, so never kept in a modifier's traits
    _inference: object = field(default=None, repr=False)

    @property
    def type_ids(self) -> np.ndarray:
        """``Structure Type`` id (K,) of each class (see :func:`type_ids`)."""
        return type_ids(self.classes)

    @property
    def structure_types(self) -> list[StructureType]:
        """The ``Structure Type`` table, by id: 0 = ``Other``, then the model's other classes."""
        table = {0: StructureType(0, OTHER, OTHER_COLOR)}
        for i, name, color in zip(self.type_ids, self.classes, self.colors, strict=True):
            table[int(i)] = StructureType(int(i), name, tuple(color))
        return [table[i] for i in sorted(table)]

    def _session(self):
        import onnxruntime as ort

        # one thread per call: calls on chunks of rows run side by side (parallel.run_chunks), which
        # scales with the threads where onnxruntime's own threads do not for tree ensembles
        with _LOCK:
            if self._inference is None:
                options = ort.SessionOptions()
                options.log_severity_level = 3
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                self._inference = ort.InferenceSession(self._payload, options, providers=["CPUExecutionProvider"])
            return self._inference

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, len(classes)) for features X (n, len(spec.feature_names)),
        computed on chunks of rows by the engine's threads (:mod:`parallel`)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.spec.feature_names):
            raise ValueError(f"the model expects {len(self.spec.feature_names)} features per atom, got shape {X.shape}")
        session = self._session()
        name = session.get_inputs()[0].name
        proba = np.empty((len(X), len(self.classes)), dtype=np.float32)

        def predict(lo: int, hi: int) -> None:
            # converted chunk by chunk: in parallel, and while the chunk is in the cache
            proba[lo:hi] = session.run(["probabilities"], {name: X[lo:hi].astype(np.float32)})[0]

        run_chunks(predict, 0, len(X), chunk=INFERENCE_CHUNK)
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Index (n,) into ``classes`` of the most probable class."""
        return np.argmax(self.predict_proba(X), axis=1)


_CACHE: OrderedDict[tuple[str, str], AtomClassifier] = OrderedDict()
_LOCK = threading.RLock()


def load_model(path: str | os.PathLike | None = None) -> AtomClassifier:
    """Load an ovito-atomclass ONNX model (None or "": the shipped ``default.onnx``); raise
    FileNotFoundError or ValueError with the reason if it cannot be used.  Models are kept
    in a small cache keyed by path and content, so a file replaced by another is reloaded
    and every frame of a trajectory reuses the same onnxruntime session."""
    path = Path(path or default_model_path()).expanduser().resolve()
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {path}") from None
    except OSError as exc:
        raise FileNotFoundError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    key = (str(path), hashlib.sha256(payload).hexdigest())
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        model = _parse(path, payload, key[1])
        _CACHE[key] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return model


def _parse(path: Path, payload: bytes, digest: str) -> AtomClassifier:
    """The :class:`AtomClassifier` in ``payload`` (the bytes of ``path``), its metadata checked."""
    model = AtomClassifier(path, FeatureSpec(), [], [], digest=digest, _payload=payload)
    try:
        session = model._session()
    except Exception as exc:  # onnxruntime raises its own types for garbage
        raise ValueError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    meta = session.get_modelmeta().custom_metadata_map
    missing = [k for k in _KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} is an ONNX model without ovito-atomclass metadata (missing {', '.join(missing)})")
    if meta["atomclass.format"] != FORMAT:
        raise ValueError(f"{path} has model format {meta['atomclass.format']!r}; this version reads {FORMAT!r}")
    try:
        model.spec = spec_from_json(meta["atomclass.spec"])
        model.classes = [str(c) for c in json.loads(meta["atomclass.classes"])]
        model.colors = [tuple(float(v) for v in c) for c in json.loads(meta["atomclass.colors"])]
        model.summary = json.loads(meta["atomclass.summary"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} has unreadable ovito-atomclass metadata: {exc}") from None
    if len(model.colors) != len(model.classes) or len(set(model.classes)) != len(model.classes):
        raise ValueError(f"{path}: {len(model.classes)} class names (must be unique) but {len(model.colors)} colours")
    inputs = session.get_inputs()[0].shape
    if len(inputs) != 2 or (isinstance(inputs[1], int) and inputs[1] != len(model.spec.feature_names)):
        raise ValueError(f"{path}: the network's input does not take the {len(model.spec.feature_names)} features "
                         f"its spec names")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    width = outputs.get("probabilities", [None, None])[-1]
    if "probabilities" not in outputs or (isinstance(width, int) and width != len(model.classes)):
        raise ValueError(f"{path}: the metadata names {len(model.classes)} classes but the network outputs "
                         f"{width if 'probabilities' in outputs else 'no'} probabilities")
    return model


def save_model(estimator, spec: FeatureSpec | FeatureSet, classes: list[str], colors: list, path: str | os.PathLike,
               summary: dict | None = None) -> Path:
    """Export a fitted scikit-learn classifier (trained on ``spec``'s features with labels
    0..len(classes)-1) to ONNX with our metadata; written atomically."""
    from skl2onnx import to_onnx

    fitted = list(getattr(estimator, "classes_", range(len(classes))))
    if fitted != list(range(len(classes))):
        raise ValueError(f"the estimator was fitted on labels {fitted}; expected 0..{len(classes) - 1}")
    example = np.zeros((1, len(spec.feature_names)), dtype=np.float32)
    try:
        proto = to_onnx(estimator, example, options={"zipmap": False})
    except Exception as exc:
        raise ValueError(f"skl2onnx cannot export {type(estimator).__name__}: {exc}") from exc
    _drop_zero_leaf_weights(proto)
    values = (FORMAT, spec.to_json(), json.dumps(list(classes)),
              json.dumps([[float(v) for v in c] for c in colors]), json.dumps(summary or {}))
    del proto.metadata_props[:]
    for key, value in zip(_KEYS, values, strict=True):
        proto.metadata_props.add(key=key, value=value)
    return write_atomically(Path(path), proto.SerializeToString())


def _drop_zero_leaf_weights(proto) -> None:
    """Remove the zero class weights that skl2onnx writes for every leaf of a tree ensemble.

    A leaf of a fully grown forest is usually pure, yet carries one weight per class, and
    onnxruntime adds each of them to the row's scores: dropping the zeros leaves the
    probabilities bit for bit the same and makes a 100-tree, 11-class forest 1.5x faster.
    Two-class ensembles are left alone: they hold one weight per leaf, and onnxruntime tells
    their binary mode from the set of class ids, which must not change."""
    for node in proto.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attrs = {a.name: a for a in node.attribute}
        weights = list(attrs["class_weights"].floats)
        keep = [i for i, w in enumerate(weights) if w != 0.0]
        ids = list(attrs["class_ids"].ints)
        if len(set(ids)) < 3 or {ids[i] for i in keep} != set(ids):
            continue
        for name in ("class_ids", "class_nodeids", "class_treeids"):
            values = list(attrs[name].ints)
            attrs[name].ints[:] = [values[i] for i in keep]
        attrs["class_weights"].floats[:] = [weights[i] for i in keep]
