"""``atomclass train CONFIG -o MODEL.onnx``: a training configuration to a model file.

The configuration (TOML, or YAML for ``.yaml``/``.yml``) names the classes, the features,
the augmentation, the sample size and the classifiers to try::

    seed = 0
    library = "reference"           # or "general": where classes named without a recipe come from
    [features]                      # FeatureSpec fields
    cutoff = 4.0                    # (or [[features]] tables, each with a label: a FeatureSet)
    [augmentation]                  # Augmentation fields: rattle (Å), draws, strain, relative
    rattle = [0.001, 0.03]
    [sampling]
    per_class = 2000                # atoms per class, split 60/40 into train/test
    [models]                        # zoo names; a table replaces parts of the zoo's grid
    ann = {clf__alpha = [1.0]}
    [[classes]]
    name = "fccNi"                  # a reference class of the library
    [[classes]]
    name = "fccCu"                  # or a recipe: bulk, crystal or file
    color = [0.8, 0.5, 0.2]
    bulk = {name = "Cu", crystalstructure = "fcc", a = 3.61, cubic = true}
    [[classes]]
    name = "Other"                  # random packings and heavily displaced crystals
    other = {crystals = ["fccCu"]}

Pipeline: data set (:func:`.dataset.build_dataset`) -> stratified sample -> 60/40 split ->
grid search of every model (:mod:`.zoo`) -> the best by test ROC AUC (within 0.001), then by
the precision of its worst class ->
ONNX export with a summary in the metadata (:func:`.model.save_model`) -> a model card
``MODEL.md`` beside the model, and with ``--report DIR`` the zoo engineer's report.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .augment import Augmentation
from .crystals import (
    GENERAL_CLASSES,
    PRECIPITATE_REFERENCE,
    REFERENCE_CLASSES,
    CrystalClass,
    DisorderedClass,
    GeneralClass,
    precipitate,
)
from .dataset import Dataset, build_dataset, stratified_sample
from .features import compute_features
from .files import writable_folder, write_atomically
from .model import load_model, save_model
from .spec import FeatureSet, FeatureSpec
from .trajectory import card_lines, trajectory_class

TOP_KEYS = {"seed", "library", "features", "augmentation", "sampling", "models", "classes"}
LIBRARIES = {"reference": REFERENCE_CLASSES, "general": GENERAL_CLASSES}  # where a class named without a recipe is
SAMPLING_KEYS = {"per_class", "test_fraction", "cv"}
CLASS_KEYS = {"name", "color", "bulk", "crystal", "file", "index", "format", "substitute", "other", "trajectory"}
RECIPES = ("bulk", "crystal", "file", "other")
AUC_TIE = 1e-3  # ROC AUCs closer than this do not tell models apart; precision decides


@dataclass
class TrainingConfig:
    """A parsed configuration: ``classes`` (library objects with ``name``, ``color``,
    ``template``), ``spec``, ``augmentation``, ``per_class`` atoms per class,
    ``test_fraction``, ``cv`` folds, ``models`` {zoo name: grid overrides}, ``seed``, and
    the ``raw`` dictionary as read."""

    classes: list
    spec: FeatureSpec | FeatureSet
    augmentation: Augmentation
    per_class: int
    test_fraction: float
    cv: int
    models: dict[str, dict]
    seed: int
    raw: dict
    path: Path


def read_config(path: str | os.PathLike) -> TrainingConfig:
    """Parse and check a training configuration; ValueError names what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FileNotFoundError(f"cannot read the configuration {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = tomllib.loads(text)
    except Exception as exc:  # tomllib and yaml raise their own error types
        raise ValueError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'TOML'}: "
                         f"{exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the configuration must be a table of keys")
    return parse_config(raw, path)


def parse_config(raw: dict, path: Path) -> TrainingConfig:
    """A :class:`TrainingConfig` from the dictionary ``raw`` of the file ``path`` (relative
    structure files are looked up beside it)."""
    _check_keys(raw, TOP_KEYS, str(path))
    if not raw.get("classes"):
        raise ValueError(f"{path}: no [[classes]]: name at least two classes to tell apart")
    try:
        spec = _parse_features(raw.get("features", {}))
        augmentation = Augmentation.from_dict(dict(raw.get("augmentation", {})))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    sampling = dict(raw.get("sampling", {}))
    _check_keys(sampling, SAMPLING_KEYS, f"{path} [sampling]")
    per_class, test_fraction, cv = (sampling.get("per_class", 2000), sampling.get("test_fraction", 0.4),
                                    sampling.get("cv", 3))
    if not isinstance(per_class, int) or per_class < 10:
        raise ValueError(f"{path}: sampling.per_class must be an integer >= 10, got {per_class!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"{path}: sampling.test_fraction must be between 0 and 1, got {test_fraction!r}")
    if not isinstance(cv, int) or cv < 2:
        raise ValueError(f"{path}: sampling.cv must be an integer >= 2, got {cv!r}")
    models = raw.get("models", {"ann": {}})
    if isinstance(models, list):
        models = {name: {} for name in models}
    from .zoo import ZOO

    unknown = [m for m in models if m not in ZOO]
    if unknown or not models:
        raise ValueError(f"{path}: unknown or no model(s) {unknown} in [models]; the zoo has {', '.join(ZOO)}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int):
        raise ValueError(f"{path}: seed must be an integer, got {seed!r}")
    library = raw.get("library", "reference")
    if library not in LIBRARIES:
        raise ValueError(f"{path}: library must be one of {', '.join(LIBRARIES)}, got {library!r}")
    classes: list = []
    for entry in raw["classes"]:
        cls = _parse_class(entry, path.parent, classes, library)
        if cls.name in [c.name for c in classes]:
            raise ValueError(f"{path}: the class name {cls.name!r} appears twice")
        classes.append(cls)
    if len(classes) < 2:
        raise ValueError(f"{path}: a classifier needs at least two classes, got {[c.name for c in classes]}")
    return TrainingConfig(classes, spec, augmentation, per_class, float(test_fraction), cv,
                          {k: dict(v or {}) for k, v in models.items()}, seed, raw, path)


def _parse_features(value) -> FeatureSpec | FeatureSet:
    """``[features]`` (one table) as a FeatureSpec, ``[[features]]`` (labelled tables) as a
    FeatureSet.  A table with ``num_neighbors`` and no ``cutoff`` has none (TOML has no null)."""
    if isinstance(value, dict):
        return FeatureSpec.from_dict(_no_cutoff(value))
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError(f"features must be a [features] table or [[features]] tables, got {value!r}")
    specs = []
    for number, table in enumerate(value, 1):
        try:
            specs.append(FeatureSpec.from_dict(_no_cutoff(table)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[[features]] table {number} ({table.get('label', 'no label')}): {exc}") from None
    return FeatureSet(tuple(specs))


def _no_cutoff(table: dict) -> dict:
    return {"cutoff": None, **table} if "num_neighbors" in table else table


def _check_keys(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")


def _parse_class(entry: dict, folder: Path, earlier: list, library: str = "reference"):
    """One ``[[classes]]`` entry as a class of the library named ``library`` (see
    :data:`LIBRARIES`) or of its recipe."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(f"every [[classes]] entry needs a name, got {entry!r}")
    name = str(entry["name"])
    _check_keys(entry, CLASS_KEYS, f"class {name!r}")
    recipes = [r for r in RECIPES if r in entry]
    if "trajectory" in entry:  # frames of the user's own MD, alone or with the templates of a recipe
        template = {k: v for k, v in entry.items() if k != "trajectory"}
        return trajectory_class(entry, folder, _parse_class(template, folder, earlier) if recipes else None)
    if len(recipes) > 1:
        raise ValueError(f"class {name!r}: give one of {', '.join(RECIPES)}, not {recipes}")
    if not recipes:
        known = LIBRARIES[library]
        if name not in known:
            raise ValueError(f"class {name!r} is not in the library {library!r} ({', '.join(known)}); "
                             f"give a recipe: {', '.join(RECIPES)}")
        if isinstance(known[name], GeneralClass):
            if "substitute" in entry:
                raise ValueError(f"class {name!r}: the general library draws its own species, no substitute")
            return GeneralClass(name, entry.get("color", known[name].color), known[name].sources)
        return CrystalClass(name, entry.get("color", known[name].color), known[name].cell,
                            entry.get("substitute", known[name].substitute))
    color = entry.get("color")
    if color is None:
        raise ValueError(f"class {name!r}: a new class needs a color [r, g, b] in 0..1")
    if recipes == ["other"]:
        return _parse_other(name, color, dict(entry["other"]), earlier)
    if recipes == ["file"]:
        try:
            cell = _read_structure(folder / entry["file"], entry.get("index", 0), entry.get("format"))
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"class {name!r}: {exc}") from None
    else:
        from ase.build import bulk
        from ase.spacegroup import crystal

        cell = functools.partial(bulk if recipes == ["bulk"] else crystal, **entry[recipes[0]])
        try:
            cell()
        except Exception as exc:  # ASE raises many types for a bad recipe
            raise ValueError(f"class {name!r}: the {recipes[0]} recipe fails: {type(exc).__name__}: {exc}") from None
    substitute = entry.get("substitute")
    return CrystalClass(name, color, cell, tuple(substitute) if substitute is not None else None)


def _read_structure(path: Path, index, fmt):
    """A function returning copies of the periodic structure in ``path``."""
    from ase.io import read

    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    try:
        atoms = read(path, index=index, format=fmt)
    except Exception as exc:
        raise ValueError(f"cannot read structure file {path}: {type(exc).__name__}: {exc}") from None
    if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-6 or len(atoms) == 0:
        raise ValueError(f"{path} must hold atoms in a periodic 3D cell to serve as a template")
    return atoms.copy


def _parse_other(name: str, color, options: dict, earlier: list) -> DisorderedClass:
    known = {f.name for f in fields(DisorderedClass)} - {"name", "color"}
    _check_keys(options, known, f"class {name!r} other")
    by_name = {**REFERENCE_CLASSES, **{c.name: c for c in earlier if isinstance(c, CrystalClass)}}
    missing = [c for c in options.get("crystals", []) if c not in by_name]
    if missing:
        raise ValueError(f"class {name!r}: other.crystals names unknown class(es) {missing}")
    options["crystals"] = tuple(by_name[c] for c in options.get("crystals", []))
    for key in ("density", "displacement", "guest_fractions", "species"):
        if key in options:
            options[key] = tuple(options[key])
    return DisorderedClass(name, color, **options)


def train(config: TrainingConfig, output: str | os.PathLike, report_dir: str | os.PathLike | None = None,
          progress: bool = True, command: str = "") -> tuple[object, dict]:
    """Build the data set of ``config``, tune its models, export the best to ``output``
    (ONNX) with a model card beside it; return the chosen fitted scikit-learn estimator and
    the training summary stored in the model."""
    from sklearn.model_selection import train_test_split

    from . import zoo

    output = Path(output)
    if output.resolve() == config.path.resolve():
        raise ValueError(f"the output {output} would overwrite the configuration")
    # a training takes minutes: find an output that cannot be written before it, not after
    if output.is_dir():
        raise ValueError(f"the output {output} is a folder: give the model file to write")
    writable_folder(output.resolve().parent, "model")
    if report_dir is not None:
        writable_folder(report_dir, "report")
    start = time.perf_counter()
    data = build_dataset(config.classes, config.spec, config.augmentation, config.seed, progress)
    short = {name: n for name, n in data.class_sizes().items() if n < config.per_class}
    if short:
        raise ValueError(f"sampling.per_class = {config.per_class} but the data set holds fewer atoms of {short}: "
                         "lower per_class, raise augmentation.draws or select more trajectory frames")
    sample = stratified_sample(data.y, config.per_class, np.random.default_rng(config.seed), data.stratum)
    train_rows, test_rows = train_test_split(sample, test_size=config.test_fraction, stratify=data.y[sample],
                                             random_state=config.seed)
    records = []
    for name, (pipeline, grid) in zoo.make_zoo(list(config.models), config.seed).items():
        grid = {**grid, **{key: [_grid_value(v) for v in values] for key, values in config.models[name].items()}}
        records.append(zoo.tuned_record(name, pipeline, grid, data.X, data.y, train_rows, test_rows, config.seed,
                                        cv=config.cv, size=config.per_class, progress=progress))
    # the best test ROC AUC; among models within AUC_TIE of it, the best worst-class precision
    best_auc = max(r["test"]["macro_auc"] for r in records)
    records.sort(key=lambda r: (r["test"]["macro_auc"] >= best_auc - AUC_TIE, min(r["test"]["precision"]),
                                r["test"]["macro_precision"]), reverse=True)
    summary = {
        "command": command, "config_file": str(config.path), "config": config.raw, "seed": config.seed,
        "augmentation": config.augmentation.to_dict(), "rows_per_class": data.class_sizes(),
        "rows_per_source": data.source_counts(),
        "templates_per_class": config.augmentation.copies, "per_class": config.per_class,
        "sources": {c.name: c.provenance(config.augmentation) for c in config.classes if hasattr(c, "provenance")},
        "n_train": len(train_rows), "n_test": len(test_rows),
        "models": [{key: r[key] for key in ("model", "best_params", "cv_score", "fit_seconds")}
                   | {"test_macro_auc": r["test"]["macro_auc"], "test_macro_precision": r["test"]["macro_precision"],
                      "test_min_precision": min(r["test"]["precision"])} for r in records],
        "versions": _versions(),
    }
    chosen = _export(records, config.spec, data, data.X[test_rows], output, summary, start)
    card = model_card(output, load_model(output).summary, data)
    write_atomically(output.with_suffix(".md"), card.encode())
    if report_dir is not None:
        from .report import write_report

        write_report(report_dir, records, data.X, data.y, data.class_names, data.colors, data.feature_names)
    return chosen["estimator"], load_model(output).summary


def _export(records: list[dict], spec: FeatureSpec | FeatureSet, data: Dataset, X_test: np.ndarray, output: Path,
            summary: dict, start: float) -> dict:
    """Save the best exportable model of ``records`` to ``output`` with ``summary``, after
    comparing its ONNX and scikit-learn answers on ``X_test``; the better models skl2onnx
    cannot export are listed in ``summary["export_failures"]``.  Returns the chosen record."""
    from . import zoo

    failures = []
    for record in records:
        summary.update(chosen=record["model"], best_params=record["best_params"], test=record["test"],
                       train_accuracy=record["train"]["accuracy"], classes=data.class_names,
                       feature_names=data.feature_names, export_failures=failures,
                       precipitate=precipitate_fractions(record["estimator"], spec, data.class_names),
                       seconds=round(time.perf_counter() - start, 1))
        try:
            summary["onnx"] = zoo.onnx_agreement(record["estimator"], X_test, spec, data.class_names)
        except ValueError as exc:
            failures.append(f"{record['model']}: {exc}")
            continue
        save_model(record["estimator"], spec, data.class_names, data.colors, output, summary)
        return record
    raise ValueError("no tuned model can be exported to ONNX by skl2onnx: " + "; ".join(failures))


def model_card(path: Path, summary: dict, data: Dataset) -> str:
    """Markdown description of the model at ``path``: classes, features, data, metrics and
    the command that rebuilds it."""
    test = summary["test"]
    lines = [f"# Model card: {path.name}", "",
             f"Rebuild: `{summary['command'] or 'atomclass train ' + summary['config_file']}` "
             f"({summary['seconds']:.0f} s on the machine that built it, seed {summary['seed']}).", "",
             f"Chosen classifier: **{summary['chosen']}** {json.dumps(summary['best_params'])}, test accuracy "
             f"{test['accuracy']:.4f}, macro ROC AUC {test['macro_auc']:.5f}, macro precision "
             f"{test['macro_precision']:.4f}.", "", "## Classes", "",
             "| id | class | colour (RGB) | atoms in data set | test precision | test ROC AUC |",
             "|---|---|---|---|---|---|"]
    for i, name in enumerate(data.class_names):
        rgb = ", ".join(f"{v:.2f}" for v in data.colors[i])
        lines.append(f"| {i} | {name} | {rgb} | {summary['rows_per_class'][name]} | {test['precision'][i]:.4f} | "
                     f"{test['auc'][i]:.5f} |")
    spec = load_model(path).spec
    aug, sources = summary["augmentation"], summary.get("sources", {})
    augmented = any(read["augment"] for source in sources.values() for read in source["trajectories"])
    templates = (f"{summary['templates_per_class']} perturbed templates per class{' with a recipe' * bool(sources)}"
                 f"{' and per augmented frame' * augmented}: Gaussian rattling with standard deviations "
                 f"{aug['rattle']} {'nearest-neighbour distances' if aug.get('relative') else 'Å'}, {aug['draws']} "
                 "draws each, random homogeneous strain up to "
                 f"±{100 * aug['strain']:g} %. ")
    perturbed = augmented or any(name not in sources or sources[name]["templates"] for name in data.class_names)
    lines += ["", "## Features", "", f"`{type(spec).__name__}` {spec.to_json()}", "",
              f"{len(summary['feature_names'])} columns: {', '.join(summary['feature_names'])}.", "",
              "## Data", "",
              f"{templates * perturbed}{summary['per_class']} atoms per class sampled, "
              f"{summary['n_train']} for training (grid search, cross-validated), {summary['n_test']} for the test.",
              *card_lines(sources), *_sources_table(summary.get("rows_per_source", {})),
              "", "## Models tried (test set)", "",
              "| model | best parameters | CV accuracy | macro ROC AUC | macro precision | min precision | fit s |",
              "|---|---|---|---|---|---|---|"]
    for r in summary["models"]:
        lines.append(f"| {r['model']} | {json.dumps(r['best_params'])} | {r['cv_score']:.4f} | "
                     f"{r['test_macro_auc']:.5f} | {r['test_macro_precision']:.4f} | {r['test_min_precision']:.4f} | "
                     f"{r['fit_seconds']:.0f} |")
    if summary["export_failures"]:
        lines += ["", "Better models that skl2onnx cannot export, skipped: "
                  + "; ".join(summary["export_failures"]) + "."]
    onnx = summary["onnx"]
    lines += ["", "## ONNX export", "",
              f"onnxruntime and scikit-learn agree on {100 * onnx['labels']:.3f} % of the test labels; largest "
              f"probability difference {onnx['max_prob_diff']:.1e}; file size {onnx['bytes']} bytes."]
    if summary.get("precipitate"):
        fractions = ", ".join(f"{c} {v:.2f} %" for c, v in summary["precipitate"].items())
        lines += ["", "## Reference check", "",
                  f"`crystals.precipitate()` (fcc Ni with an L1_2 Ni3Al sphere of radius 10 Å, 4000 atoms): "
                  f"{fractions}. The reference study reports "
                  + ", ".join(f"{c} {v:.2f} %" for c, v in PRECIPITATE_REFERENCE.items()) + "."]
    versions = ", ".join(f"{k} {v}" for k, v in summary["versions"].items())
    lines += ["", f"Built with {versions}.", ""]
    return "\n".join(lines)


def _sources_table(rows: dict[str, dict[str, list[int]]]) -> list[str]:
    """Markdown lines: the configurations and atoms each template source gave each class
    (nothing when every class has a single source)."""
    if all(len(sources) <= 1 for sources in rows.values()):
        return []
    lines = ["", "| class | template source | configurations | atoms |", "|---|---|---|---|"]
    for name, sources in rows.items():
        lines += [f"| {name} | `{source}` | {n} | {atoms} |" for source, (n, atoms) in sources.items()]
    return lines


def precipitate_fractions(estimator, spec: FeatureSpec | FeatureSet, class_names: list[str]) -> dict[str, float] | None:
    """Percent of the atoms of :func:`.crystals.precipitate` in each predicted class, if
    the model knows fccNi, gamma and gamma_prime (the reference study's check), else None."""
    if not set(PRECIPITATE_REFERENCE) <= set(class_names):
        return None
    predicted = estimator.predict(compute_features(precipitate(), spec))
    counts = np.bincount(predicted, minlength=len(class_names))
    return {c: round(100.0 * n / len(predicted), 2) for c, n in zip(class_names, counts, strict=True) if n}


def _grid_value(value):
    """A grid value from TOML/YAML as scikit-learn takes it (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _versions() -> dict[str, str]:
    import onnxruntime
    import skl2onnx
    import sklearn

    from . import __name__ as package

    versions = {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "python": sys.version.split()[0]}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions["ovito-atomclass"] = version(package.replace("_", "-"))
    return versions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``atomclass train`` to ``parser``."""
    parser.add_argument("config", help="training configuration (.toml, or .yaml/.yml)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.onnx); MODEL.md goes beside it")
    parser.add_argument("--report", metavar="DIR", help="also write the report (metrics, ROC curves) into DIR")
    parser.add_argument("--seed", type=int, help="override the configuration's seed")


def run(args: argparse.Namespace) -> int:
    """Run ``atomclass train`` with the parsed ``args``; returns the exit code."""
    config = read_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    command = " ".join(["atomclass train", args.config, "-o", args.output]
                       + (["--seed", str(args.seed)] if args.seed is not None else []))
    with open(os.devnull, "w") if args.quiet else contextlib.nullcontext(sys.stderr) as bars, \
            contextlib.redirect_stderr(bars):
        _, summary = train(config, args.output, args.report, progress=not args.quiet, command=command)
    for failure in summary["export_failures"]:
        print(f"atomclass train: skipped a better model that skl2onnx cannot export to ONNX: {failure}",
              file=sys.stderr)
    if args.verbose:
        for r in summary["models"]:
            print(f"  {r['model']:<9} test macro ROC AUC {r['test_macro_auc']:.5f}, min precision "
                  f"{r['test_min_precision']:.4f}, CV accuracy {r['cv_score']:.4f}, {r['fit_seconds']:.0f} s, "
                  f"{json.dumps(r['best_params'])}")
    test = summary["test"]
    if not args.quiet:
        print(f"{args.output}: {summary['chosen']} on {len(summary['classes'])} classes, test accuracy "
              f"{test['accuracy']:.4f}, macro ROC AUC {test['macro_auc']:.5f}, min precision "
              f"{min(test['precision']):.4f} ({summary['seconds']:.0f} s); model card "
              f"{Path(args.output).with_suffix('.md')}")
    return 0
