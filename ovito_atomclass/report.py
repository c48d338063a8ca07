"""Evaluation reports: tables (CSV, JSON), plots (PNG) and a Markdown summary of a
:func:`ovito_atomclass.zoo.sample_size_study`.

``write_report(out_dir, records, X, y, class_names, colors, feature_names)`` writes::

    summary.md            the models at the largest sample size, links to everything below
    metrics.json          every record: model, size, best parameters, train and test metrics
    auc.csv               per-class one-vs-rest ROC AUC, train and test, every model and size
    auc_vs_size.csv       macro ROC AUC, accuracy, CV score and fit time per model and size
    precision.csv         per-class test precision per model (largest size)
    confusion/<model>.csv test confusion matrix per model (largest size; rows: true class)
    features.png          distribution of every feature per class
    regions.png           decision regions over two features, every model
    roc/<model>.png       one-vs-rest ROC curves per class, train and test
    auc_vs_size.png       test ROC AUC against atoms per class, one class and the macro mean
    precision.png         test precision per class and model

Plots are drawn with matplotlib's Agg canvas (no display needed); every file is written
atomically.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import f_classif
from sklearn.metrics import roc_curve

from .model import write_atomically
from .zoo import probabilities

_RECORD_ARRAYS = ("estimator", "train_index", "test_index")
MAX_POINTS = 60  # atoms per class drawn over the decision regions
AUC_CEILING = 0.9999  # where a perfect ROC AUC is drawn on a logit axis
AUC_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999)


def write_report(out_dir: str | os.PathLike, records: Sequence[dict], X: np.ndarray, y: np.ndarray,
                 class_names: Sequence[str], colors: Sequence, feature_names: Sequence[str],
                 regions: tuple[str, str] | None = None, focus: str | None = None) -> Path:
    """Write the report of ``records`` (from :func:`~ovito_atomclass.zoo.sample_size_study`
    on features X (N, F) and labels y (N,)) into ``out_dir``; return the path of ``summary.md``.

    ``class_names`` and ``colors`` (RGB in 0..1) describe the labels 0..K-1,
    ``feature_names`` the columns of X.  ``regions`` names the two features of the decision
    region plot (default: the two with the largest ANOVA F statistic); ``focus`` the class
    whose AUC is plotted against sample size (default: the one with the lowest mean test AUC).
    """
    if not records:
        raise ValueError("no study records to report on")
    out = Path(out_dir)
    X, y = np.asarray(X), np.asarray(y, dtype=int)
    names, colors, features = list(class_names), [tuple(c) for c in colors], list(feature_names)
    if X.ndim != 2 or X.shape[1] != len(features) or len(y) != len(X) or len(colors) != len(names):
        raise ValueError(f"X {X.shape}, y ({len(y)},), {len(features)} feature names, {len(names)} classes and "
                         f"{len(colors)} colours do not fit together")
    largest = [r for r in records if r["size"] == max(r["size"] for r in records)]
    test_auc = np.nanmean([r["test"]["auc"] for r in records], axis=0)
    focus = names[int(np.nanargmin(test_auc))] if focus is None else focus
    if focus not in names:
        raise ValueError(f"focus class {focus!r} is not one of {names}")
    sample = largest[0]["train_index"]
    if regions is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant features have no F statistic
            f_stat = np.nan_to_num(f_classif(X[sample], y[sample])[0], nan=-1.0)
        regions = tuple(features[i] for i in np.argsort(-f_stat, kind="stable")[:2])
    unknown = [f for f in regions if f not in features]
    if unknown or len(set(regions)) != 2:
        raise ValueError(f"regions must be two different features of {features}, got {regions}")

    _write_tables(out, records, largest, names)
    _save(_features_figure(X, y, names, colors, features), out / "features.png")
    _save(_regions_figure(largest, X, y, names, colors, [features.index(f) for f in regions], regions),
          out / "regions.png")
    for r in largest:
        _save(_roc_figure(r, X, y, names), out / "roc" / f"{r['model']}.png")
    _save(_auc_vs_size_figure(records, names.index(focus), focus), out / "auc_vs_size.png")
    _save(_precision_figure(largest, names), out / "precision.png")
    return _write_text(out / "summary.md", _summary(records, largest, names, focus, regions, len(y)))


def _write_text(path: Path, text: str) -> Path:
    return write_atomically(path, text.encode())


def _save(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomically(path, buffer.getvalue())


def _csv(header: Sequence[str], rows) -> str:
    return "\n".join(",".join(str(v) for v in row) for row in [header, *rows]) + "\n"


def _write_tables(out: Path, records, largest, names) -> None:
    plain = [{k: v for k, v in r.items() if k not in _RECORD_ARRAYS} for r in records]
    _write_text(out / "metrics.json", json.dumps({"classes": names, "records": plain}, indent=1))
    _write_text(out / "auc.csv", _csv(
        ["model", "size", "set", "class", "auc"],
        [(r["model"], r["size"], part, c, f"{a:.6f}") for r in records for part in ("train", "test")
         for c, a in zip(names, r[part]["auc"], strict=True)]))
    _write_text(out / "auc_vs_size.csv", _csv(
        ["model", "size", "n_train", "n_test", "train_macro_auc", "test_macro_auc", "test_accuracy", "cv_score",
         "fit_seconds"],
        [(r["model"], r["size"], r["n_train"], r["n_test"], f"{r['train']['macro_auc']:.6f}",
          f"{r['test']['macro_auc']:.6f}", f"{r['test']['accuracy']:.6f}", f"{r['cv_score']:.6f}",
          f"{r['fit_seconds']:.2f}") for r in records]))
    _write_text(out / "precision.csv", _csv(
        ["model", *names], [(r["model"], *(f"{p:.6f}" for p in r["test"]["precision"])) for r in largest]))
    for r in largest:
        _write_text(out / "confusion" / f"{r['model']}.csv",
                    _csv(["true \\ predicted", *names], [(n, *row) for n, row in zip(names, r["test"]["confusion"],
                                                                                         strict=True)]))


def _features_figure(X, y, names, colors, features) -> Figure:
    """One panel per feature: the per-class histograms (fraction of the class's atoms)."""
    ncols = min(3, len(features))
    nrows = -(-len(features) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j, (ax, feature) in enumerate(zip(axes, features, strict=False)):
        lo, hi = np.percentile(X[:, j], [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 61)
        for k, (name, color) in enumerate(zip(names, colors, strict=True)):
            values = np.clip(X[y == k, j], bins[0], bins[-1])
            weights = np.full(len(values), 1.0 / max(len(values), 1))
            ax.hist(values, bins, weights=weights, histtype="step", color=color, lw=1.4, label=name)
        ax.set_xlabel(feature)
        ax.set_ylabel("fraction of atoms")
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1.2)
    for ax in axes[len(features):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(names), 6),
               frameon=False)
    fig.suptitle("Feature distributions per class (all atoms of the training set)")
    return fig


def _regions_figure(largest, X, y, names, colors, columns, regions) -> Figure:
    """Per model: regions of the plane of two features where a copy of the tuned model,
    refitted on those two features only, predicts each class; test atoms on top."""
    ncols = min(5, len(largest))
    nrows = -(-len(largest) // ncols)
    fig = Figure(figsize=(3.4 * ncols, 3.3 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = ListedColormap(colors)
    rng = np.random.default_rng(0)
    for ax, r in zip(axes, largest, strict=False):
        train, test = r["train_index"], r["test_index"]
        plane = X[:, columns]
        lo, hi = plane[train].min(axis=0), plane[train].max(axis=0)
        pad = 0.05 * (hi - lo) + 1e-9
        g0, g1 = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 250),
                             np.linspace(lo[1] - pad[1], hi[1] + pad[1], 250))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = clone(r["estimator"]).fit(plane[train], y[train])
        predicted = np.argmax(probabilities(model, np.column_stack([g0.ravel(), g1.ravel()]), len(names)), axis=1)
        ax.imshow(predicted.reshape(g0.shape), origin="lower", cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5,
                  alpha=0.45, aspect="auto", interpolation="nearest",
                  extent=(g0[0, 0], g0[0, -1], g1[0, 0], g1[-1, 0]))
        shown = np.concatenate([rng.permutation(test[y[test] == k])[:MAX_POINTS] for k in range(len(names))])
        ax.scatter(*plane[shown].T, c=y[shown], cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, s=14,
                   edgecolors="white", linewidths=0.4)
        accuracy = np.mean(np.argmax(probabilities(model, plane[test], len(names)), axis=1) == y[test])
        ax.set_title(f"{r['model']} (2-feature test acc. {accuracy:.2f})", fontsize=9)
        ax.set_xlabel(regions[0])
        ax.set_ylabel(regions[1])
    for ax in axes[len(largest):]:
        ax.set_visible(False)
    handles = [Line2D([], [], ls="", marker="o", color=c, label=n) for n, c in zip(names, colors, strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(names), 6), frameon=False)
    fig.suptitle(f"Decision regions over {regions[0]} and {regions[1]} (models refitted on these two features; "
                 f"dots: test atoms, {largest[0]['size']} per class sampled)")
    return fig


def _roc_figure(record, X, y, names) -> Figure:
    """One panel per class: one-vs-rest ROC curves on the training and the test atoms."""
    ncols = min(5, len(names))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(3.0 * ncols, 2.9 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    parts = {"train": ("tab:blue", "--"), "test": ("tab:green", "-")}
    proba = {part: probabilities(record["estimator"], X[record[f"{part}_index"]], len(names)) for part in parts}
    for k, (ax, name) in enumerate(zip(axes, names, strict=False)):
        for part, (color, style) in parts.items():
            truth = y[record[f"{part}_index"]] == k
            if truth.all() or not truth.any():
                continue
            fpr, tpr, _ = roc_curve(truth, proba[part][:, k])
            ax.plot(fpr, tpr, style, color=color, lw=1.5, label=f"{part} AUC {record[part]['auc'][k]:.3f}")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)  # near-perfect curves differ at small rates
        ax.set_xlim(0.0, 1.0)
        ax.set_title(name, fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("false positive rate (linear below 0.01, logarithmic above)")
    fig.supylabel("true positive rate")
    fig.suptitle(f"{record['model']}: one-vs-rest ROC per class ({record['size']} atoms per class sampled, "
                 f"{record['n_train']} train / {record['n_test']} test)")
    return fig


def _model_styles(models):
    """A distinct (colour, marker) per model name."""
    palette = [f"C{i}" for i in range(10)]
    markers = "osD^vP*Xph"
    return {m: (palette[i % 10], markers[i % len(markers)]) for i, m in enumerate(models)}


def _auc_vs_size_figure(records, focus_index, focus) -> Figure:
    models = list(dict.fromkeys(r["model"] for r in records))
    sizes = sorted({r["size"] for r in records})
    styles = _model_styles(models)
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for model in models:
        rows = sorted((r for r in records if r["model"] == model), key=lambda r: r["size"])
        color, marker = styles[model]
        for ax, values in zip(axes, ([r["test"]["auc"][focus_index] for r in rows],
                                     [r["test"]["macro_auc"] for r in rows]), strict=True):
            ax.plot([r["size"] for r in rows], np.clip(values, 0.0, AUC_CEILING), marker=marker, color=color,
                    label=model)
    for ax, title in zip(axes, (f"test ROC AUC of {focus} (one-vs-rest)", "test ROC AUC, mean over classes"),
                         strict=True):
        ax.set_yscale("logit")  # spreads the values close to 1 where the good models differ
        ax.set_yticks(AUC_TICKS, [str(t) for t in AUC_TICKS], minor=False)
        ax.set_yticks([], minor=True)
        ax.set_ylim(min(0.4, ax.get_ylim()[0]), 0.99995)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("atoms per class sampled (60 % train, 40 % test)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"ROC AUC (logit scale; 1 is drawn at {AUC_CEILING})")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", frameon=False)
    return fig


def _precision_figure(largest, names) -> Figure:
    """Heat map: test precision (%) of every model (rows) for every class (columns)."""
    values = np.array([r["test"]["precision"] for r in largest]) * 100.0
    fig = Figure(figsize=(1.0 * len(names) + 3.0, 0.5 * len(largest) + 2.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=max(0.0, min(50.0, values.min())), vmax=100.0, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.0f}" if v < 99.95 else "100", ha="center", va="center", fontsize=8,
                color="white" if v < 80 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(largest)), [r["model"] for r in largest])
    fig.colorbar(image, ax=ax, label="precision (%)")
    ax.set_title(f"Test precision per class ({largest[0]['size']} atoms per class sampled)")
    return fig


def _summary(records, largest, names, focus, regions, n_atoms) -> str:
    size = largest[0]["size"]
    best = max(largest, key=lambda r: (r["test"]["accuracy"], r["test"]["macro_auc"]))
    lines = [
        "# Classifier zoo report", "",
        f"{len(names)} classes, {n_atoms} atoms in the data set; sample sizes "
        f"{sorted({r['size'] for r in records})} atoms per class, 60/40 train/test split. "
        f"The table is for {size} atoms per class; **best on the test atoms: {best['model']}** "
        f"(accuracy {best['test']['accuracy']:.4f}).", "",
        "| model | test accuracy | test macro AUC | train macro AUC | test macro precision | CV accuracy "
        "| fit (s) | ONNX agreement | best parameters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in largest:
        onnx = r.get("onnx")
        if onnx is None:
            agreement = "not checked"
        elif "error" in onnx:
            agreement = f"**not exportable**: {onnx['error']}"
        else:
            agreement = f"{100 * onnx['labels']:.2f} % labels, Δp ≤ {onnx['max_prob_diff']:.1e}"
        params = ", ".join(f"{k.removeprefix('clf__')}={v}" for k, v in r["best_params"].items())
        lines.append(f"| {r['model']} | {r['test']['accuracy']:.4f} | {r['test']['macro_auc']:.4f} | "
                     f"{r['train']['macro_auc']:.4f} | {r['test']['macro_precision']:.4f} | {r['cv_score']:.4f} | "
                     f"{r['fit_seconds']:.1f} | {agreement} | {params} |")
    lines += [
        "", "## Tables", "",
        "- [metrics.json](metrics.json): every model and size, train and test metrics, best parameters",
        "- [auc.csv](auc.csv): per-class one-vs-rest ROC AUC, train and test",
        "- [auc_vs_size.csv](auc_vs_size.csv): macro ROC AUC, accuracy, CV score, fit time against sample size",
        "- [precision.csv](precision.csv): per-class test precision",
        "- confusion matrices (test, rows: true class): "
        + ", ".join(f"[{r['model']}](confusion/{r['model']}.csv)" for r in largest),
        "", "## Plots", "",
        "### Feature distributions per class", "", "![features](features.png)", "",
        f"### Decision regions over {regions[0]} and {regions[1]}", "", "![regions](regions.png)", "",
        f"### ROC AUC against sample size ({focus} and the mean over classes)", "",
        "![auc vs size](auc_vs_size.png)", "",
        "### Precision per class and model", "", "![precision](precision.png)", "",
        "### ROC curves (train dashed, test solid)", "",
    ]
    lines += [f"- [{r['model']}](roc/{r['model']}.png)" for r in largest]
    lines += ["", f"![ROC of {best['model']}](roc/{best['model']}.png)", ""]
    return "\n".join(lines)
