"""The classifier zoo: scikit-learn pipelines, their grid searches, and their metrics.

:func:`make_zoo` gives, for each name of ``ZOO``, a pipeline ``StandardScaler`` (step
``scale``; the identity for the tree models) + classifier (step ``clf``) and a small
``GridSearchCV`` grid (keys ``clf__...``); every model has ``predict_proba`` and exports to
ONNX with skl2onnx:

======== ==============================================================
svm_ovo  RBF support vector machines, one-vs-one, Platt-calibrated
svm_ovr  RBF support vector machines, one-vs-rest, Platt-calibrated
ann      multi-layer perceptron, one hidden layer
dnn      deeper multi-layer perceptron, three hidden layers
tree     decision tree
forest   random forest
bayes    Gaussian naive Bayes
adaboost AdaBoost over decision trees of depth 1 (stumps) or 3
knn      k nearest neighbours
logreg   multinomial logistic regression
======== ==============================================================

:func:`tune` runs the grid search, :func:`evaluate` the metrics (per-class ROC AUC and
precision, confusion matrix), :func:`onnx_agreement` the ONNX export check,
:func:`tuned_record` one tuned and evaluated model, and :func:`sample_size_study` the
reference study over sample sizes.  Labels ``y`` are always integers 0..K-1 (the order of
the class names).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, get_scorer, precision_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold, train_test_split
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .model import load_model, save_model
from .spec import FeatureSpec

ZOO = ("svm_ovo", "svm_ovr", "ann", "dnn", "tree", "forest", "bayes", "adaboost", "knn", "logreg")


def _classifiers(seed: int) -> dict[str, tuple[object, dict]]:
    svm_grid = {"clf__estimator__estimator__C": [1.0, 10.0, 100.0]}
    mlp = dict(max_iter=300, random_state=seed)
    return {
        "svm_ovo": (CalibratedClassifierCV(OneVsOneClassifier(SVC()), cv=3, ensemble=False), svm_grid),
        "svm_ovr": (CalibratedClassifierCV(OneVsRestClassifier(SVC()), cv=3, ensemble=False), svm_grid),
        "ann": (MLPClassifier(**mlp), {"clf__hidden_layer_sizes": [(32,), (100,)], "clf__alpha": [1e-4, 1e-2]}),
        "dnn": (MLPClassifier((64, 64, 64), **mlp), {"clf__hidden_layer_sizes": [(32, 32, 32), (64, 64, 64)],
                                       "clf__alpha": [1e-4, 1e-2]}),
        "tree": (DecisionTreeClassifier(random_state=seed), {"clf__max_depth": [6, 12, None],
                                                            "clf__min_samples_leaf": [1, 5]}),
        "forest": (RandomForestClassifier(n_estimators=100, random_state=seed),
                   {"clf__max_depth": [8, None], "clf__min_samples_leaf": [1, 3]}),
        "bayes": (GaussianNB(), {"clf__var_smoothing": [1e-9, 1e-6, 1e-3]}),
        # on ten classes, boosted stumps (depth 1, the reference's choice) reach about 30 % accuracy
        "adaboost": (AdaBoostClassifier(DecisionTreeClassifier(max_depth=1, random_state=seed), random_state=seed),
                     {"clf__estimator__max_depth": [1, 3], "clf__n_estimators": [50, 200]}),
        # uniform weights only: with distance weights an atom sitting exactly on a training point gets
        # different answers from scikit-learn (special case) and ONNX (1/0)
        "knn": (KNeighborsClassifier(), {"clf__n_neighbors": [5, 15, 31]}),
        "logreg": (LogisticRegression(max_iter=2000), {"clf__C": [0.1, 1.0, 10.0]}),
    }


def make_zoo(names: Sequence[str] | None = None, seed: int = 0) -> dict[str, tuple[Pipeline, dict]]:
    """The zoo's untrained pipelines ``StandardScaler`` + ``clf`` and their parameter grids,
    for ``names`` (default: all of ``ZOO``, in that order); ``seed`` fixes every random state."""
    names = list(ZOO if names is None else names)
    unknown = [n for n in names if n not in ZOO]
    if unknown or not names:
        raise ValueError(f"unknown or no model name(s) {unknown}; the zoo has {', '.join(ZOO)}")
    classifiers = _classifiers(seed)
    return {n: (Pipeline([("scale", _scaler(n)), ("clf", classifiers[n][0])]), classifiers[n][1]) for n in names}


def _scaler(name: str) -> StandardScaler:
    """Standardisation, except for the tree models: they split one feature at a time and
    need none, and ONNX's float32 scaling would move atoms across their split thresholds
    (probabilities off by a tree's vote).  Their scaler is the identity."""
    trees = name in ("tree", "forest", "adaboost")
    return StandardScaler(with_mean=not trees, with_std=not trees)


def tune(name: str, pipeline: Pipeline, grid: dict, X: np.ndarray, y: np.ndarray, seed: int,
         cv: int = 3, scoring: str = "accuracy", progress: bool = True) -> GridSearchCV:
    """Grid search of ``pipeline`` over ``grid`` with stratified, shuffled ``cv``-fold
    cross-validation on features X (n, F) and labels y (n,), ranked by ``scoring`` (a
    scikit-learn scorer name); returns the fitted ``GridSearchCV`` (best model refitted on
    all of X).  With ``progress``, a tqdm bar named ``name`` counts the fits; a fit that
    fails raises."""
    X, y = np.asarray(X), np.asarray(y)
    smallest = np.unique(y, return_counts=True)[1].min() if len(y) else 0
    if smallest < cv:
        raise ValueError(f"{name}: {cv}-fold cross-validation needs at least {cv} samples of every class, "
                         f"the rarest has {smallest}")
    score = get_scorer(scoring)
    with tqdm(total=len(ParameterGrid(grid)) * cv + 1, desc=name, unit="fit", leave=False, disable=not progress) as bar:

        def counted(estimator, X_part, y_part):
            bar.update()  # the scorer runs once after every cross-validation fit
            return score(estimator, X_part, y_part)

        search = GridSearchCV(pipeline, grid, scoring=counted, cv=StratifiedKFold(cv, shuffle=True, random_state=seed),
                              n_jobs=1, error_score="raise")
        # one BLAS thread: the matrices are small, and threads oversubscribe a busy machine
        with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
            # small grids meet small samples: an unconverged candidate is just a worse candidate
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        bar.update()  # the refit
    return search


def probabilities(estimator, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities (n, n_classes) of ``estimator``; columns of classes the estimator
    never saw in training are 0."""
    proba = np.zeros((len(X), n_classes))
    proba[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(X)
    return proba


def evaluate(estimator, X: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    """Metrics of a fitted classifier on features X (n, F) with true labels y (n,) in 0..K-1.

    Returns ``auc`` (K,) one-vs-rest ROC AUC per class (NaN for a class absent from y or the
    only class present), ``precision`` (K,) per class (0 for a class never predicted),
    ``confusion`` (K, K) counts (row: true class, column: predicted), ``accuracy``,
    ``macro_auc`` and ``macro_precision`` (means over classes, ignoring NaN); plain lists
    and floats, ready for JSON.
    """
    y = np.asarray(y, dtype=int)
    if len(y) == 0 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be a non-empty array of integers 0..{n_classes - 1}")
    proba = probabilities(estimator, X, n_classes)
    predicted = np.argmax(proba, axis=1)
    auc = np.full(n_classes, np.nan)
    for k in range(n_classes):
        positive = y == k
        if 0 < positive.sum() < len(y):
            auc[k] = roc_auc_score(positive, proba[:, k])
    labels = np.arange(n_classes)
    precision = precision_score(y, predicted, labels=labels, average=None, zero_division=0.0)
    return {
        "auc": auc.tolist(),
        "precision": precision.tolist(),
        "confusion": confusion_matrix(y, predicted, labels=labels).tolist(),
        "accuracy": float(np.mean(predicted == y)),
        "macro_auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
        "macro_precision": float(np.mean(precision)),
    }


def onnx_agreement(estimator, X: np.ndarray, spec: FeatureSpec, classes: Sequence[str]) -> dict:
    """Export ``estimator`` (labels 0..len(classes)-1, features of ``spec``) to a temporary
    model file and compare onnxruntime's answers with scikit-learn's on X (n, F).

    Returns ``labels`` (fraction of identical predicted labels), ``max_prob_diff`` (largest
    absolute probability difference) and ``bytes`` (file size).  Raises ``ValueError`` if
    skl2onnx cannot export the model.
    """
    colors = [(0.5, 0.5, 0.5)] * len(classes)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # skl2onnx reads the SVMs' deprecated (and unused) probA_/probB_ attributes
        warnings.filterwarnings("ignore", message="Attribute `prob[AB]_` was deprecated", category=FutureWarning)
        path = save_model(estimator, spec, list(classes), colors, Path(tmp) / "check.onnx")
        onnx_proba = load_model(path).predict_proba(X)
        size = path.stat().st_size
    proba = estimator.predict_proba(X)
    return {"labels": float(np.mean(np.argmax(onnx_proba, 1) == np.argmax(proba, 1))),
            "max_prob_diff": float(np.abs(onnx_proba - proba).max()), "bytes": int(size)}


def sample_size_study(X: np.ndarray, y: np.ndarray, sizes: Sequence[int], names: Sequence[str] | None = None,
                      seed: int = 0, test_size: float = 0.4, cv: int = 3, spec: FeatureSpec | None = None,
                      classes: Sequence[str] | None = None, progress: bool = True) -> list[dict]:
    """Tune and evaluate every zoo model at every sample size.

    For each size n, ``n`` atoms per class are drawn from X (N, F), y (N,) without
    replacement (all of a class if it has fewer), split ``1 - test_size`` / ``test_size``
    stratified, and each model of ``make_zoo(names, seed)`` is tuned on the training part.
    Every record holds ``model``, ``size``, ``n_train``, ``n_test``, ``best_params``,
    ``cv_score``, ``fit_seconds``, ``train`` and ``test`` (:func:`evaluate` dicts),
    ``estimator`` (the refitted best pipeline) and the index arrays ``train_index`` and
    ``test_index`` into X.  With ``spec`` and ``classes`` given, the records of the largest
    size also hold ``onnx``: :func:`onnx_agreement` on the test part, or the export error
    as ``{"error": message}``.  The same seed gives the same samples, splits and models;
    ``progress`` shows tqdm bars over the sizes and the fits.
    """
    from .dataset import stratified_sample

    X, y = np.asarray(X), np.asarray(y, dtype=int)
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 5:
        raise ValueError(f"sample sizes must be at least 5 atoms per class, got {sizes}")
    records = []
    for size in tqdm(sizes, desc="sample sizes", unit="size", disable=not progress):
        rng = np.random.default_rng(seed)
        index = stratified_sample(y, size, rng)
        train, test = train_test_split(index, test_size=test_size, stratify=y[index], random_state=seed)
        for name, (pipeline, grid) in make_zoo(names, seed).items():
            record = tuned_record(name, pipeline, grid, X, y, train, test, seed, cv=cv, size=size, progress=progress)
            if spec is not None and classes is not None and size == sizes[-1]:
                try:
                    record["onnx"] = onnx_agreement(record["estimator"], X[test], spec, classes)
                except ValueError as exc:
                    record["onnx"] = {"error": str(exc)}
            records.append(record)
    return records


def tuned_record(name: str, pipeline: Pipeline, grid: dict, X: np.ndarray, y: np.ndarray, train: np.ndarray,
                 test: np.ndarray, seed: int, cv: int = 3, size: int | None = None, progress: bool = True) -> dict:
    """:func:`tune` ``pipeline`` on the rows ``train`` of X (N, F), y (N,) and evaluate it on
    ``train`` and ``test``; returns one record of :func:`sample_size_study` (``size``, the
    atoms per class sampled, defaults to the training rows of the rarest class)."""
    n_classes = int(y.max()) + 1
    start = time.perf_counter()
    search = tune(name, pipeline, grid, X[train], y[train], seed, cv=cv, progress=progress)
    return {
        "model": name, "size": int(np.bincount(y[train]).min()) if size is None else size,
        "n_train": len(train), "n_test": len(test),
        "best_params": {k: _plain(v) for k, v in search.best_params_.items()},
        "cv_score": float(search.best_score_), "fit_seconds": time.perf_counter() - start,
        "train": evaluate(search.best_estimator_, X[train], y[train], n_classes),
        "test": evaluate(search.best_estimator_, X[test], y[test], n_classes),
        "estimator": search.best_estimator_, "train_index": train, "test_index": test,
    }


def _plain(value):
    """A grid value as JSON can hold it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value

