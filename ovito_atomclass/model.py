"""Model files: a scikit-learn pipeline exported to ONNX, with the feature spec, class
names and colours in the file's metadata, and inference through onnxruntime."""

from __future__ import annotations

import json
import os
import site
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import write_atomically
from .spec import FeatureSet, FeatureSpec, spec_from_json

FORMAT = "ovito-atomclass/1"
_KEYS = ("atomclass.format", "atomclass.spec", "atomclass.classes", "atomclass.colors", "atomclass.summary")
OTHER = "Other"

# onnxruntime sessions are not picklable: they live here, never in a modifier's traits
_SESSIONS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def models_dir() -> Path:
    """Folder of the shipped models: ``models/`` of a source checkout, else the copy that
    pip installed under ``share/ovito_atomclass/models`` of the environment's prefix or,
    for ``pip install --user``, of the user base (setup.cfg keys turn - into _)."""
    here = Path(__file__).resolve().parent.parent / "models"
    installed = [Path(base) / "share" / "ovito_atomclass" / "models" for base in (sys.prefix, site.USER_BASE) if base]
    return next((p for p in (here, *installed) if p.is_dir()), installed[0])


def default_model_path() -> Path:
    return models_dir() / "default.onnx"


@dataclass
class AtomClassifier:
    """A loaded model: ``spec`` (:class:`FeatureSpec` or :class:`FeatureSet`), ``classes`` (names, in the order
    of the probability columns), ``colors`` (RGB in 0..1 per class), ``summary`` (dict)."""

    path: Path
    spec: FeatureSpec | FeatureSet
    classes: list[str]
    colors: list[tuple[float, float, float]]
    summary: dict = field(default_factory=dict)

    def _session(self):
        import numba
        import onnxruntime as ort

        # inference uses as many threads as the feature engine, so worker processes that share
        # the cores (atomclass label -j N) do not oversubscribe them
        threads = numba.get_num_threads()
        stat = self.path.stat()
        key = (str(self.path), stat.st_mtime_ns, stat.st_size, threads)
        with _LOCK:
            if key not in _SESSIONS:
                options = ort.SessionOptions()
                options.log_severity_level = 3
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # idle threads sleep instead of spinning: the feature kernels run between two calls
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                _SESSIONS[key] = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            return _SESSIONS[key]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, len(classes)) for features X (n, len(spec.feature_names))."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.spec.feature_names):
            raise ValueError(f"the model expects {len(self.spec.feature_names)} features per atom, got shape {X.shape}")
        if len(X) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        session = self._session()
        outputs = session.run(["probabilities"], {session.get_inputs()[0].name: X})
        return outputs[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Index (n,) into ``classes`` of the most probable class."""
        return np.argmax(self.predict_proba(X), axis=1)


def load_model(path: str | os.PathLike | None = None) -> AtomClassifier:
    """Load an ovito-atomclass ONNX model (default: the shipped ``default.onnx``); raise
    FileNotFoundError or ValueError with the reason if it cannot be used."""
    import onnx

    path = Path(default_model_path() if path is None else path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for garbage
        raise ValueError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in _KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} is an ONNX model without ovito-atomclass metadata (missing {', '.join(missing)})")
    if meta["atomclass.format"] != FORMAT:
        raise ValueError(f"{path} has model format {meta['atomclass.format']!r}; this version reads {FORMAT!r}")
    try:
        spec = spec_from_json(meta["atomclass.spec"])
        classes = [str(c) for c in json.loads(meta["atomclass.classes"])]
        colors = [tuple(float(v) for v in c) for c in json.loads(meta["atomclass.colors"])]
        summary = json.loads(meta["atomclass.summary"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} has unreadable ovito-atomclass metadata: {exc}") from None
    if len(colors) != len(classes) or len(set(classes)) != len(classes):
        raise ValueError(f"{path}: {len(classes)} class names (must be unique) but {len(colors)} colours")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 2 or (dims[1].dim_value and dims[1].dim_value != len(spec.feature_names)):
        raise ValueError(f"{path}: the network's input does not take the {len(spec.feature_names)} features "
                         f"its spec names")
    return AtomClassifier(path, spec, classes, colors, summary)


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
