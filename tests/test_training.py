"""The training core: crystal library, augmentation, data sets, configurations, `atomclass
train`, and the shipped models."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from ovito_atomclass import FeatureSpec, compute_features, load_model
from ovito_atomclass.augment import REFERENCE_RATTLE, Augmentation, perturb, random_strain, rattle
from ovito_atomclass.cli import main
from ovito_atomclass.crystals import REFERENCE_CLASSES, DisorderedClass, l12_ni3al, precipitate, supercell
from ovito_atomclass.dataset import MEMBERS, build_dataset, stratified_sample
from ovito_atomclass.model import OTHER, models_dir
from ovito_atomclass.training import parse_config, read_config, train

RNG = np.random.default_rng
REFERENCE_NAMES = ["NaCl", "bccFe", "diamond", "fccAl", "fccNi", "gamma", "gamma_prime", "hcpMg", "rutile",
                   "skutterudite"]


def composition(atoms) -> dict[str, int]:
    return dict(Counter(atoms.get_chemical_symbols()))


def widths(atoms) -> np.ndarray:
    cell = atoms.cell.array
    return abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


# --- crystal library ----------------------------------------------------------------


def test_reference_library_names_compositions_and_widths():
    assert list(REFERENCE_CLASSES) == REFERENCE_NAMES
    expected = {"NaCl": {"Na": 32, "Cl": 32}, "bccFe": {"Fe": 128}, "diamond": {"C": 216}, "fccAl": {"Al": 108},
                "fccNi": {"Ni": 108}, "gamma": {"Ni": 86, "Al": 22}, "gamma_prime": {"Ni": 81, "Al": 27},
                "hcpMg": {"Mg": 48}, "rutile": {"Ti": 32, "O": 64}, "skutterudite": {"Co": 8, "Sb": 24}}
    for name, cls in REFERENCE_CLASSES.items():
        atoms = cls.template(RNG(0), min_width=9.0)
        assert composition(atoms) == expected[name], name
        assert (widths(atoms) >= 9.0 - 1e-9).all() and atoms.pbc.all(), name
        assert len(cls.color) == 3 and all(0 <= v <= 1 for v in cls.color)


@pytest.mark.parametrize("name, nearest", [("NaCl", 2.82), ("bccFe", 2.87 * np.sqrt(3) / 2),
                                           ("diamond", 3.57 * np.sqrt(3) / 4), ("fccAl", 4.05 / np.sqrt(2)),
                                           ("hcpMg", 3.20), ("rutile", 1.95), ("skutterudite", 2.52)])
def test_reference_nearest_neighbour_distances(name, nearest):
    atoms = REFERENCE_CLASSES[name].template(RNG(0))
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    assert d.min() == pytest.approx(nearest, abs=0.02)


def test_l12_has_al_on_the_cube_corners_only():
    atoms = l12_ni3al(a=3.52, repeat=2)
    al = np.array(atoms.get_chemical_symbols()) == "Al"
    on_corner = np.all(np.isclose((atoms.positions / 3.52) % 1.0, 0.0, atol=1e-6)
                       | np.isclose((atoms.positions / 3.52) % 1.0, 1.0, atol=1e-6), axis=1)
    assert al.mean() == 0.25 and (al == on_corner).all()


def test_gamma_is_a_fresh_random_20_percent_al_fcc_for_every_draw():
    gamma = REFERENCE_CLASSES["gamma"]
    a, b, again = gamma.template(RNG(1)), gamma.template(RNG(2)), gamma.template(RNG(1))
    for atoms in (a, b):
        assert composition(atoms) == {"Ni": 86, "Al": 22}
        np.testing.assert_allclose(atoms.positions, bulk("Ni", "fcc", a=3.52, cubic=True).repeat(3).positions)
    assert a.get_chemical_symbols() != b.get_chemical_symbols()
    assert a.get_chemical_symbols() == again.get_chemical_symbols()


def test_precipitate_is_an_l12_sphere_in_fcc_ni():
    atoms = precipitate()
    assert len(atoms) == 4000 and atoms.cell.lengths() == pytest.approx([35.2] * 3)
    al = np.array(atoms.get_chemical_symbols()) == "Al"
    r = np.linalg.norm(atoms.positions - 17.6, axis=1)
    assert al.sum() == 93 and (r[al] < 10.0).all()
    # every cube-corner site inside the sphere is Al, every other site Ni
    corner = np.all(np.isclose(np.round(atoms.positions / 3.52), atoms.positions / 3.52, atol=1e-6), axis=1)
    assert (al == (corner & (r < 10.0))).all()


def test_supercell_repeats_until_the_faces_are_far_enough_apart():
    atoms = bulk("Ni", "fcc", a=3.52)  # primitive cell: face distance 2.03 Å
    big = supercell(atoms, 9.0)
    assert len(big) == 125 and widths(big).min() >= 9.0 and widths(supercell(atoms, 8.0)).min() < 9.0


def test_disordered_packings_keep_their_density_and_minimum_distance():
    other = DisorderedClass(density=(0.08, 0.08), guest_fractions=(0.5,))
    atoms = other.template(RNG(3), min_width=12.0)
    assert len(atoms) == round(0.08 * 12.0**3) and atoms.cell.lengths() == pytest.approx([12.0] * 3)
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.95 * 0.8 * (np.sqrt(2) / 0.08) ** (1 / 3)
    assert 0.35 < np.mean(np.array(atoms.get_chemical_symbols()) == "Al") < 0.65


def test_disordered_class_displaces_its_crystals_far_beyond_thermal_vibration():
    fcc = REFERENCE_CLASSES["fccNi"]
    other = DisorderedClass(crystals=(fcc,), displacement=(0.5, 0.5))
    ideal = fcc.template(RNG(0)).positions
    templates = [other.template(RNG(seed)) for seed in range(6)]
    displaced = [t.positions - ideal for t in templates if len(t) == len(ideal)]
    assert 0 < len(displaced) < 6  # half packings, half displaced crystals
    assert all(np.std(d) == pytest.approx(0.5, rel=0.15) for d in displaced)


# --- augmentation -------------------------------------------------------------------


def test_reference_rattle_and_augmentation_counts():
    assert REFERENCE_RATTLE == pytest.approx(np.linspace(0.001, 0.03, 6))
    aug = Augmentation()
    assert aug.copies == 120 and aug.stdevs().tolist() == np.repeat(REFERENCE_RATTLE, 20).tolist()
    with pytest.raises(ValueError, match="draws"):
        Augmentation(draws=0)
    with pytest.raises(ValueError, match="rattle"):
        Augmentation(rattle=[-0.1])
    with pytest.raises(ValueError, match="does not know"):
        Augmentation.from_dict({"rattles": [0.1]})


def test_rattle_and_strain_have_the_requested_size():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat(6)
    shaken = rattle(atoms, 0.1, RNG(0))
    assert np.std(shaken.positions - atoms.positions) == pytest.approx(0.1, rel=0.05)
    eps = random_strain(0.03, RNG(1))
    assert np.allclose(eps, eps.T) and np.abs(eps).max() <= 0.03 and np.abs(eps).max() > 0.005
    strained = perturb(atoms, 0.0, 0.03, RNG(1))
    np.testing.assert_allclose(strained.cell.array, atoms.cell.array @ (np.eye(3) + eps).T)
    np.testing.assert_allclose(strained.get_scaled_positions(), atoms.get_scaled_positions(), atol=1e-12)
    assert atoms.positions == pytest.approx(bulk("Ni", "fcc", a=3.52, cubic=True).repeat(6).positions)


# --- data sets ----------------------------------------------------------------------

SMALL = [REFERENCE_CLASSES["fccNi"], REFERENCE_CLASSES["gamma"], REFERENCE_CLASSES["bccFe"]]


def test_dataset_is_reproducible_and_labelled_by_class():
    aug = Augmentation(rattle=(0.01, 0.05), draws=2, strain=0.02)
    spec = FeatureSpec()
    a = build_dataset(SMALL, spec, aug, seed=5, progress=False)
    b = build_dataset(SMALL, spec, aug, seed=5, progress=False)
    c = build_dataset(SMALL, spec, aug, seed=6, progress=False)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert a.class_sizes() == {"fccNi": 432, "gamma": 432, "bccFe": 512}
    assert a.feature_names == spec.feature_names and a.class_names == ["fccNi", "gamma", "bccFe"]
    assert a.draw.max() == 11 and np.unique(a.stdev).tolist() == [0.01, 0.05]
    # every row of a draw has its class, and each draw is one template's worth of features
    first = a.draw == 0
    expected = compute_features(REFERENCE_CLASSES["fccNi"].template(RNG(0)), spec)
    assert first.sum() == 108 and (a.y[first] == 0).all()
    assert np.abs(a.X[first].mean(0) - expected.mean(0)).max() < 0.05


class _SlabInterior:
    """A class whose templates mark only the atoms of the middle layers as members."""

    name, color = "interior", (0.1, 0.2, 0.3)

    def template(self, rng, min_width):
        atoms = REFERENCE_CLASSES["fccNi"].template(rng, min_width)
        z = atoms.get_scaled_positions()[:, 2]
        atoms.arrays[MEMBERS] = (z > 0.3) & (z < 0.7)
        return atoms


def test_dataset_keeps_only_the_marked_members_with_features_of_the_whole_template():
    spec = FeatureSpec()
    data = build_dataset([_SlabInterior(), REFERENCE_CLASSES["bccFe"]], spec, Augmentation(rattle=(0.0,), draws=1),
                         progress=False)
    atoms = _SlabInterior().template(RNG(0), 9.0)
    members = atoms.arrays[MEMBERS]
    assert data.class_sizes() == {"interior": int(members.sum()), "bccFe": 128} and 0 < members.sum() < len(atoms)
    np.testing.assert_allclose(data.X[data.y == 0], compute_features(atoms, spec)[members])
    atoms.arrays[MEMBERS][:] = False
    empty = type("Empty", (), {"name": "empty", "color": (0, 0, 0), "template": lambda self, rng, w: atoms})()
    with pytest.raises(ValueError, match="'empty': a template marks none"):
        build_dataset([empty], spec, Augmentation(rattle=(0.0,), draws=1), progress=False)


def test_stratified_sample_is_exact():
    y = np.repeat([0, 1, 2], [50, 20, 30])
    rows = stratified_sample(y, 20, RNG(0))
    assert len(rows) == 60 and len(set(rows.tolist())) == 60
    assert np.bincount(y[rows]).tolist() == [20, 20, 20]
    np.testing.assert_array_equal(rows, stratified_sample(y, 20, RNG(0)))
    with pytest.raises(ValueError, match="fewer rows"):
        stratified_sample(y, 21, RNG(0))


# --- configurations -----------------------------------------------------------------

TINY = """
seed = 3
[features]
cutoff = 4.0
[augmentation]
rattle = [0.01, 0.04]
draws = 3
[sampling]
per_class = 90
[models]
ann = {clf__hidden_layer_sizes = [[12]], clf__alpha = [1e-3]}
[[classes]]
name = "fccNi"
[[classes]]
name = "bccCu"
color = [0.8, 0.5, 0.2]
bulk = {name = "Cu", crystalstructure = "bcc", a = 2.9, cubic = true}
[[classes]]
name = "Other"
color = [0.7, 0.7, 0.7]
other = {crystals = ["fccNi", "bccCu"]}
"""


def write_config(folder: Path, text: str, name: str = "c.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_config_with_library_bulk_file_and_other_classes(tmp_path):
    write(tmp_path / "mg.cif", bulk("Mg", "hcp", a=3.21, c=5.21))
    text = TINY + '[[classes]]\nname = "fromfile"\ncolor = [0, 0, 1]\nfile = "mg.cif"\nsubstitute = ["Mg", "Al", 0.5]\n'
    config = read_config(write_config(tmp_path, text))
    assert [c.name for c in config.classes] == ["fccNi", "bccCu", "Other", "fromfile"]
    assert config.per_class == 90 and config.seed == 3 and config.models == {"ann": {
        "clf__hidden_layer_sizes": [[12]], "clf__alpha": [1e-3]}}
    assert composition(config.classes[1].template(RNG(0))) == {"Cu": 128}
    assert composition(config.classes[3].template(RNG(0), 6.0)) == {"Mg": 18, "Al": 18}
    assert [c.name for c in config.classes[2].crystals] == ["fccNi", "bccCu"]


def test_yaml_config(tmp_path):
    text = ("seed: 1\nfeatures: {cutoff: 3.0}\nclasses:\n  - name: fccNi\n  - name: Other\n    color: [0.5, 0.5, 0.5]\n"
            "    other: {}\n")
    config = read_config(write_config(tmp_path, text, "c.yaml"))
    assert config.spec.cutoff == 3.0 and [c.name for c in config.classes] == ["fccNi", OTHER]


@pytest.mark.parametrize("change, message", [
    ("seeds = 1\n", r"unknown key\(s\) \['seeds'\]"),
    ('[[classes]]\nname = "fccNi"\n', "appears twice"),
    ('[[classes]]\nname = "x"\ncolor = [0, 0, 1]\nfile = "missing.cif"\n', "structure file not found"),
    ('[[classes]]\nname = "x"\ncolor = [0, 0, 1]\nfile = "c.toml"\n', "cannot read structure file"),
    ('[[classes]]\nname = "fcc"\n', "not in the library"),
    ('[[classes]]\nname = "x"\ncolor = [0, 0, 2]\nbulk = {name = "Cu"}\n', "RGB"),
    ('[[classes]]\nname = "x"\ncolor = [0, 0, 1]\nbulk = {name = "Cu", crystalstructure = "xyz"}\n',
     "bulk recipe fails"),
    ('[[classes]]\nname = "x"\ncolour = [0, 0, 1]\n', r"unknown key\(s\) \['colour'\]"),
])
def test_bad_configs_are_refused_with_the_reason(tmp_path, change, message):
    text = TINY.replace("seed = 3\n", change) if change.startswith("seeds") else TINY + change
    with pytest.raises(ValueError, match=message):
        read_config(write_config(tmp_path, text))


def test_bad_sections_are_refused(tmp_path):
    for raw, message in [({"classes": [{"name": "fccNi"}], "models": {"svm": {}}}, "unknown or no model"),
                         ({"classes": [{"name": "fccNi"}]}, "at least two classes"),
                         ({"classes": [{"name": "fccNi"}, {"name": "gamma"}], "features": {"cutof": 4}},
                          "does not know"),
                         ({"classes": [{"name": "fccNi"}, {"name": "gamma"}], "sampling": {"per_class": 5}},
                          "per_class")]:
        with pytest.raises(ValueError, match=message):
            parse_config(raw, tmp_path / "x.toml")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config(write_config(tmp_path, "seed = = 1"))
    with pytest.raises(FileNotFoundError):
        read_config(tmp_path / "absent.toml")


# --- atomclass train ------------------------------------------------------------------


def test_tiny_end_to_end_training_exports_an_agreeing_model(tmp_path, capsys):
    config = read_config(write_config(tmp_path, TINY))
    estimator, summary = train(config, tmp_path / "m.onnx", progress=False)
    model = load_model(tmp_path / "m.onnx")
    assert model.classes == ["fccNi", "bccCu", "Other"] and model.colors[1] == (0.8, 0.5, 0.2)
    assert model.spec == FeatureSpec(cutoff=4.0) and model.summary["chosen"] == "ann"
    assert summary["n_train"] == 162 and summary["n_test"] == 108
    assert summary["test"]["macro_auc"] > 0.95
    # fresh atoms, never seen in training: ONNX and scikit-learn agree
    X = np.vstack([compute_features(perturb(c.template(RNG(99)), 0.03, 0.01, RNG(7)), config.spec)
                   for c in config.classes])
    onnx, sk = model.predict_proba(X), estimator.predict_proba(X)
    assert np.mean(onnx.argmax(1) == sk.argmax(1)) >= 0.999 and np.abs(onnx - sk).max() < 1e-4
    card = (tmp_path / "m.md").read_text()
    assert "| 1 | bccCu |" in card and "ann" in card
    # the command line: same seed, same model; bad input gives exit code 1 or 2
    capsys.readouterr()
    assert main(["train", str(config.path), "-o", str(tmp_path / "cli.onnx"), "-v", "--report",
                 str(tmp_path / "report")]) == 0
    shown = capsys.readouterr().out.splitlines()  # -v: a line per model tried, then the summary
    assert shown[0].startswith("  ann       test macro ROC AUC")
    assert shown[-1].startswith(f"{tmp_path / 'cli.onnx'}: ann")
    np.testing.assert_allclose(load_model(tmp_path / "cli.onnx").predict_proba(X), onnx, atol=1e-6)
    assert "ann" in (tmp_path / "report" / "summary.md").read_text() and (tmp_path / "report" / "roc").is_dir()
    assert main(["train", str(config.path), "-o", str(config.path), "--quiet"]) == 1
    assert "overwrite the configuration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["train", str(config.path)])
    assert usage.value.code == 2


def test_a_model_skl2onnx_cannot_export_is_named_and_the_next_best_is_taken(tmp_path, monkeypatch, capsys):
    import ovito_atomclass.zoo as zoo

    text = TINY.replace("[models]\n", "[models]\nforest = {clf__max_depth = [4], clf__min_samples_leaf = [1]}\n")
    config = read_config(write_config(tmp_path, text))
    real_save, refused = zoo.save_model, []

    def save_all_but_the_first(estimator, *args, **kwargs):
        if not refused:
            refused.append(type(estimator[-1]).__name__)
            raise ValueError(f"skl2onnx cannot export {refused[0]}: no converter")
        return real_save(estimator, *args, **kwargs)

    monkeypatch.setattr(zoo, "save_model", save_all_but_the_first)  # the export check goes first
    assert main(["train", str(config.path), "-o", str(tmp_path / "m.onnx"), "--quiet"]) == 0
    first = {"MLPClassifier": "ann", "RandomForestClassifier": "forest"}[refused[0]]
    assert load_model(tmp_path / "m.onnx").summary["chosen"] == ({"ann", "forest"} - {first}).pop()
    assert f"skl2onnx cannot export to ONNX: {first}: skl2onnx cannot export" in capsys.readouterr().err
    assert f"cannot export, skipped: {first}:" in (tmp_path / "m.md").read_text()


# --- shipped models -------------------------------------------------------------------


def test_reference10_model_labels_fresh_hot_templates_of_every_class():
    # templates it never saw: a new seed, rattled by 0.1 Å and strained by up to 2 %
    model = load_model(models_dir() / "reference10.onnx")
    assert model.classes == [*REFERENCE_NAMES, OTHER]
    rng = RNG(123)
    for name, cls in REFERENCE_CLASSES.items():
        atoms = perturb(cls.template(rng, 12.0), 0.1, 0.02, rng)
        predicted = np.array(model.classes)[model.predict(compute_features(atoms, model.spec))]
        assert np.mean(predicted == name) >= 0.98, name
