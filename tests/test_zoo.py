"""The classifier zoo: every model exports to ONNX faithfully; tuning and metrics give known values."""

import json
import warnings

import numpy as np
import onnx
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning

from ovito_atomclass import FeatureSpec
from ovito_atomclass.model import load_model, save_model
from ovito_atomclass.report import write_report
from ovito_atomclass.zoo import ZOO, evaluate, make_zoo, onnx_agreement, sample_size_study, tune, tuned_record

SPEC = FeatureSpec()  # 9 features, as the synthetic problem
CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(400, len(SPEC.feature_names), n_informative=6, n_classes=len(CLASSES),
                               n_clusters_per_class=1, class_sep=1.5, random_state=1)
    return X[:240], y[:240], X[240:], y[240:]


@pytest.mark.parametrize("name", ZOO)
def test_every_model_fits_and_exports_to_onnx(name, problem, tmp_path):
    X, y, X_test, y_test = problem
    pipeline, grid = make_zoo([name], seed=0)[name]
    assert list(pipeline.named_steps) == ["scale", "clf"] and grid and all(k.startswith("clf__") for k in grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLPs, on 240 samples
        pipeline.fit(X, y)
    proba = pipeline.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert evaluate(pipeline, X_test, y_test, len(CLASSES))["accuracy"] > 0.5  # chance is 0.25
    agreement = onnx_agreement(pipeline, X_test, SPEC, CLASSES)
    assert agreement["labels"] >= 0.999
    assert agreement["max_prob_diff"] <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # skl2onnx reads the SVMs' deprecated probA_/probB_
        exported = save_model(pipeline, SPEC, CLASSES, [(0.5,) * 3] * len(CLASSES), tmp_path / "m.onnx")
    assert agreement["bytes"] == exported.stat().st_size


@pytest.mark.parametrize("name", ["tree", "forest", "adaboost"])
def test_tree_models_agree_with_onnx_on_split_thresholds_a_float32_scaler_would_cross(name):
    # tight clusters (1e-6 wide, like q_l of a barely rattled crystal) with mixed classes: full-depth
    # trees split 1e-7 apart, and standardising in float32 (ONNX) instead of float64 flips 3 % of the labels
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2400)
    X = 0.3 + 0.2 * (y[:, None] % 2) + rng.normal(0, 1e-6, (len(y), len(SPEC.feature_names)))
    pipeline, _ = make_zoo([name])[name]
    if name != "tree":
        pipeline.set_params(clf__n_estimators=20)
    agreement = onnx_agreement(pipeline.fit(X[:1200], y[:1200]), X[1200:], SPEC, CLASSES)
    assert agreement["labels"] == 1.0 and agreement["max_prob_diff"] <= 1e-6


@pytest.mark.parametrize("n_classes", [2, 4])
def test_forest_export_keeps_only_the_nonzero_leaf_weights(n_classes, tmp_path):
    # pure leaves carry one weight instead of one per class, and onnxruntime still gives
    # scikit-learn's probabilities; two classes (one weight per leaf, onnxruntime's binary mode) stay as they are
    X, y = make_classification(600, len(SPEC.feature_names), n_informative=6, n_classes=n_classes,
                               n_clusters_per_class=1, random_state=2)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X[:400], y[:400])
    names = CLASSES[:n_classes]
    path = save_model(forest, SPEC, names, [(0.5, 0.5, 0.5)] * n_classes, tmp_path / "forest.onnx")
    ensemble = onnx.load(str(path)).graph.node[0]
    assert ensemble.op_type == "TreeEnsembleClassifier"
    weights = next(a.floats for a in ensemble.attribute if a.name == "class_weights")
    values = np.concatenate([tree.tree_.value[tree.tree_.children_left < 0] for tree in forest.estimators_])
    assert len(weights) == (np.count_nonzero(values) if n_classes > 2 else len(values))
    np.testing.assert_allclose(load_model(path).predict_proba(X[400:]), forest.predict_proba(X[400:]), atol=1e-6)


def test_make_zoo_names_and_order():
    assert list(make_zoo()) == list(ZOO)
    assert list(make_zoo(["knn", "tree"])) == ["knn", "tree"]
    with pytest.raises(ValueError, match="unknown.*'svm'"):
        make_zoo(["svm"])


def test_tune_finds_the_grid_point_that_can_separate_three_classes():
    # a depth-1 tree (one split) can tell at most two classes apart
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    X = np.column_stack([y * 10.0 + rng.normal(0, 0.1, len(y)), rng.normal(size=len(y))])
    pipeline, _ = make_zoo(["tree"])["tree"]
    search = tune("tree", pipeline, {"clf__max_depth": [1, 3]}, X, y, seed=0)
    assert search.best_params_ == {"clf__max_depth": 3}
    assert search.best_score_ == 1.0
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [2 / 3, 1.0], atol=0.05)
    assert (search.predict(X) == y).all()


def test_tune_refuses_classes_smaller_than_the_folds():
    pipeline, grid = make_zoo(["bayes"])["bayes"]
    with pytest.raises(ValueError, match="at least 3 samples of every class, the rarest has 2"):
        tune("bayes", pipeline, grid, np.zeros((8, 2)), np.array([0, 0, 0, 0, 0, 0, 1, 1]), seed=0)


class Fixed:
    """A 'fitted classifier' answering fixed probabilities."""

    def __init__(self, proba, classes):
        self.proba, self.classes_ = np.asarray(proba, dtype=float), np.asarray(classes)

    def predict_proba(self, X):
        return self.proba


def test_evaluate_a_perfect_classifier():
    y = np.array([0, 0, 1, 1, 2, 2])
    metrics = evaluate(Fixed(np.eye(3)[y] * 0.8 + 0.2 / 3, [0, 1, 2]), np.zeros((6, 1)), y, 3)
    assert metrics["auc"] == [1.0, 1.0, 1.0] and metrics["precision"] == [1.0, 1.0, 1.0]
    assert metrics["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert metrics["accuracy"] == metrics["macro_auc"] == metrics["macro_precision"] == 1.0


def test_evaluate_known_confusion_auc_and_missing_class():
    y = np.array([0, 0, 1, 1, 1, 2])
    # predicted: 0, 1, 1, 1, 0, 0; the model never saw class 3, which is absent from y too
    proba = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1], [0.6, 0.1, 0.3]]
    m = evaluate(Fixed(proba, [0, 1, 2]), np.zeros((6, 1)), y, 4)
    assert m["confusion"] == [[1, 1, 0, 0], [1, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["precision"] == pytest.approx([1 / 3, 2 / 3, 0.0, 0.0])
    assert m["accuracy"] == pytest.approx(0.5)
    # AUC = fraction of (positive, negative) pairs ranked right, ties count 1/2
    # class 0: positives 0.7, 0.3 vs negatives 0.1, 0.2, 0.5, 0.6 -> 4 + 2 of 8
    # class 1: positives 0.8, 0.5, 0.4 vs negatives 0.2, 0.6, 0.1 -> 3 + 2 + 2 of 9
    # class 2: positive 0.3 vs negatives 0.1, 0.1, 0.1, 0.3, 0.1 -> 4 + 1/2 of 5
    assert m["auc"][:3] == pytest.approx([6 / 8, 7 / 9, 4.5 / 5])
    assert np.isnan(m["auc"][3])
    assert m["macro_auc"] == pytest.approx((6 / 8 + 7 / 9 + 4.5 / 5) / 3)
    with pytest.raises(ValueError, match="integers 0..3"):
        evaluate(Fixed(proba, [0, 1, 2]), np.zeros((6, 1)), y + 2, 4)


@pytest.fixture(scope="module")
def study(problem):
    X, y = np.vstack(problem[::2]), np.concatenate(problem[1::2])
    return X, y, sample_size_study(X, y, [12, 30], ["bayes", "tree"], seed=3, spec=SPEC, classes=CLASSES)


def test_sample_size_study_is_reproducible_and_splits_60_40(study):
    X, y, records = study
    assert [(r["model"], r["size"], r["n_train"], r["n_test"]) for r in records] == [
        ("bayes", 12, 28, 20), ("tree", 12, 28, 20), ("bayes", 30, 72, 48), ("tree", 30, 72, 48)]
    for r in records:
        both = np.concatenate([r["train_index"], r["test_index"]])
        assert len(np.unique(both)) == len(both) and (np.bincount(y[both]) == r["size"]).all()
        assert sum(map(sum, r["test"]["confusion"])) == r["n_test"]
    assert "onnx" not in records[0] and records[-1]["onnx"]["labels"] == 1.0
    pipeline, grid = make_zoo(["tree"], seed=3)["tree"]
    one = tuned_record("tree", pipeline, grid, X, y, records[1]["train_index"], records[1]["test_index"], seed=3,
                       progress=False)
    assert one["size"] == 7 and one["test"] == records[1]["test"]  # 7 of the 12 atoms per class train
    again = sample_size_study(X, y, [12], ["tree"], seed=3, progress=False)
    assert again[0]["test"] == records[1]["test"] and again[0]["best_params"] == records[1]["best_params"]
    np.testing.assert_array_equal(again[0]["test_index"], records[1]["test_index"])


def test_report_writes_tables_plots_and_summary(study, tmp_path):
    X, y, records = study
    colors = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0.5)]
    summary = write_report(tmp_path / "r", records, X, y, CLASSES, colors, SPEC.feature_names, focus="b")
    out = tmp_path / "r"
    expected = {"summary.md", "metrics.json", "auc.csv", "auc_vs_size.csv", "precision.csv", "features.png",
                "regions.png", "auc_vs_size.png", "precision.png", "confusion/bayes.csv", "confusion/tree.csv",
                "roc/bayes.png", "roc/tree.png"}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == expected
    assert summary == out / "summary.md"
    for png in out.rglob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = summary.read_text()
    assert all(f"]({name})" in text for name in expected - {"summary.md"})
    assert "| bayes | " in text and "100.00 % labels" in text
    auc = (out / "auc.csv").read_text().splitlines()
    assert auc[0] == "model,size,set,class,auc" and len(auc) == 1 + 4 * 2 * len(CLASSES)
    assert auc[1] == f"bayes,12,train,a,{records[0]['train']['auc'][0]:.6f}"
    confusion = np.loadtxt(out / "confusion" / "tree.csv", delimiter=",", skiprows=1, usecols=range(1, 5))
    np.testing.assert_array_equal(confusion, records[3]["test"]["confusion"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == CLASSES and metrics["records"][2]["test"] == records[2]["test"]
    with pytest.raises(ValueError, match="regions must be two different features"):
        write_report(tmp_path / "bad", records, X, y, CLASSES, colors, SPEC.feature_names, regions=("q4_all",) * 2)
    assert not (tmp_path / "bad").exists()
