"""Classes taken from labelled trajectory frames: training from them, what the model records
about them, the errors that name the problem, and closing the loop through `atomclass label`."""

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from ovito_atomclass import compute_features, load_model
from ovito_atomclass.augment import Augmentation
from ovito_atomclass.cli import main
from ovito_atomclass.crystals import random_packing
from ovito_atomclass.dataset import build_dataset, even_shares, stratified_sample
from ovito_atomclass.training import read_config, train

A, CELLS = 3.61, 6  # fcc Cu, 864 atoms per frame
CRYSTAL, LIQUID = 1, 2
FRAMES = 4


def crystal(seed: int, rattle: float = 0.08):
    atoms = bulk("Cu", "fcc", a=A, cubic=True) * (CELLS, CELLS, CELLS)
    atoms.positions += np.random.default_rng(seed).normal(0.0, rattle, atoms.positions.shape)
    return atoms


def liquid(seed: int):
    """A liquid-like packing at the density of the crystal, no two atoms closer than 0.8 nn."""
    atoms = random_packing(4 * CELLS**3, A * CELLS, 0.8 * A / np.sqrt(2), np.random.default_rng(seed))
    atoms.set_chemical_symbols(["Cu"] * len(atoms))
    return atoms


@lru_cache
def two_phase(seed: int):
    """Crystal below the middle of the box, liquid above; ``phase`` 1 or 2 (do not modify: cached)."""
    solid, melt = crystal(seed), liquid(seed + 100)
    half = A * CELLS / 2
    below, above = solid.positions[:, 2] % (2 * half) < half, melt.positions[:, 2] >= half
    atoms = solid[below] + melt[above]
    atoms.arrays["phase"] = np.r_[np.full(below.sum(), CRYSTAL), np.full(above.sum(), LIQUID)]
    return atoms


def write_dump(path: Path, frames: list, types: bool = True) -> Path:
    """A LAMMPS text dump of ``frames`` with columns id [type] x y z phase."""
    lines = []
    for step, atoms in enumerate(frames):
        edge = atoms.cell.lengths()
        lines += ["ITEM: TIMESTEP", str(100 * step), "ITEM: NUMBER OF ATOMS", str(len(atoms)),
                  "ITEM: BOX BOUNDS pp pp pp", *(f"0 {e}" for e in edge),
                  "ITEM: ATOMS id " + "type " * types + "x y z phase"]
        lines += [f"{i + 1} {'1 ' * types}{x:.5f} {y:.5f} {z:.5f} {p}"
                  for i, ((x, y, z), p) in enumerate(zip(atoms.positions, atoms.arrays["phase"], strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


CONFIG = """
seed = 0
[features]
cutoff = 3.2
averaged = true
[sampling]
per_class = 300
[models]
forest = {clf__max_depth = [8], clf__min_samples_leaf = [1], clf__n_estimators = [20]}
[[classes]]
name = "crystal"
color = [0.2, 0.8, 0.2]
trajectory = {files = "md/run.*.dump", frames = "0:3", property = "phase", value = 1}
[[classes]]
name = "liquid"
color = [0.2, 0.2, 0.8]
trajectory = {files = "md/run.*.dump", frames = "0:3", select = "phase == 2"}
"""


@pytest.fixture(scope="module")
def md(tmp_path_factory):
    """A folder with two dump files (frames 0-1 and 2-3 of a two-phase run) and the held-out frames."""
    folder = tmp_path_factory.mktemp("traj")
    (folder / "md").mkdir()
    frames = [two_phase(seed) for seed in range(FRAMES)]
    write_dump(folder / "md" / "run.1.dump", frames[:2])
    write_dump(folder / "md" / "run.2.dump", frames[2:])
    write(folder / "heldout.xyz", [crystal(50), liquid(51), two_phase(52)], format="extxyz")
    (folder / "c.toml").write_text(CONFIG)
    return folder


@pytest.fixture(scope="module")
def trained(md):
    """The model trained on the first three frames of ``md``, and its summary."""
    _, summary = train(read_config(md / "c.toml"), md / "m.onnx", progress=False)
    return md / "m.onnx", summary


def test_a_model_trained_on_labelled_frames_classifies_held_out_frames_of_each_phase(md, trained):
    path, _ = trained
    model = load_model(path)
    assert model.classes == ["crystal", "liquid"]
    solid, melt, _ = read(md / "heldout.xyz", index=":")
    for atoms, name in [(solid, "crystal"), (melt, "liquid")]:
        predicted = np.array(model.classes)[model.predict(compute_features(atoms, model.spec))]
        assert np.mean(predicted == name) >= 0.97, name


def test_the_model_records_files_hashes_frames_selections_and_atoms(md, trained):
    path, summary = trained
    assert load_model(path).summary["sources"] == summary["sources"]
    phases = [two_phase(seed).arrays["phase"] for seed in range(FRAMES)]
    for name, phase, selection in [("crystal", CRYSTAL, "phase == 1"), ("liquid", LIQUID, "phase == 2")]:
        (source,) = summary["sources"][name]["trajectories"]
        atoms = [[int(np.sum(p == phase)) for p in phases[:2]], [int(np.sum(p == phase)) for p in phases[2:]]]
        assert source["files"] == [
            {"file": "md/run.1.dump", "sha256": hashlib.sha256((md / "md" / "run.1.dump").read_bytes()).hexdigest(),
             "frames": [0, 1], "atoms": atoms[0]},
            {"file": "md/run.2.dump", "sha256": hashlib.sha256((md / "md" / "run.2.dump").read_bytes()).hexdigest(),
             "frames": [0], "atoms": atoms[1][:1]}]
        assert source["selection"] == selection and source["frames"] == "0:3" and not source["augment"]
        assert source["atoms"] == sum(atoms[0]) + atoms[1][0] == summary["rows_per_class"][name]
        assert summary["sources"][name]["templates"] == 0
    card = path.with_suffix(".md").read_text()
    digest = summary["sources"]["liquid"]["trajectories"][0]["files"][0]["sha256"]
    assert f"| liquid | `md/run.1.dump` | `{digest}` | 0, 1 (`0:3`) | `phase == 2` | no |" in card
    assert "perturbed templates" not in card


def test_features_see_the_whole_frame_and_only_the_selected_atoms_become_rows(md):
    config = read_config(md / "c.toml")
    data = build_dataset(config.classes, config.spec, config.augmentation, progress=False)
    frame = read(md / "md" / "run.1.dump", index=0, format="lammps-dump-text")
    crystal_rows = data.X[data.draw == 0]
    # the frame's own features, neighbours across the phase boundary included
    expected = compute_features(frame, config.spec)[two_phase(0).arrays["phase"] == CRYSTAL]
    np.testing.assert_allclose(crystal_rows, expected, atol=1e-6)
    assert (data.stdev == 0).all() and data.draw.max() == 5 and (data.stratum == data.draw).all()


def test_atoms_are_chosen_by_a_list_of_values_a_text_property_or_a_type_name(md):
    atoms = two_phase(9).copy()
    atoms.arrays["region"] = np.where(atoms.arrays["phase"] == CRYSTAL, "bottom", "top")
    write(md / "text.xyz", atoms, format="extxyz")
    for trajectory, expected, selection in [
            ('{files = "text.xyz", property = "phase", value = [1, 2]}', len(atoms), "phase in [1, 2]"),
            ('{files = "text.xyz", property = "region", value = "top"}', np.sum(atoms.arrays["phase"] == LIQUID),
             "region == 'top'"),
            ('{files = "text.xyz", property = "Particle Type", value = "Cu"}', len(atoms), "Particle Type == 'Cu'")]:
        (cls, _) = read_config(class_config(md, trajectory)).classes
        data = build_dataset([cls], read_config(md / "c.toml").spec, Augmentation(), progress=False)
        assert len(data) == expected and cls.record[0]["selection"] == selection


def test_sampling_is_even_across_frames_and_unchanged_for_template_classes():
    rng = np.random.default_rng
    y = np.zeros(85, dtype=int)
    strata = np.repeat([0, 1, 2], [50, 5, 30])
    rows = stratified_sample(y, 60, rng(0), strata)
    counts = np.bincount(strata[rows])
    assert len(set(rows.tolist())) == 60 and counts[1] == 5 and sorted(counts[[0, 2]].tolist()) == [27, 28]
    # a class whose rows share one stratum (-1: templates) is drawn exactly as without strata
    np.testing.assert_array_equal(stratified_sample(y, 60, rng(1), np.full(85, -1)), stratified_sample(y, 60, rng(1)))
    assert even_shares(np.array([3, 10, 10]), 20, rng(0)).tolist() == [3, 9, 8] or \
        sorted(even_shares(np.array([3, 10, 10]), 20, rng(0))[1:].tolist()) == [8, 9]
    with pytest.raises(ValueError, match="cannot take 24"):
        even_shares(np.array([3, 10, 10]), 24, rng(0))


def test_a_class_combines_augmented_frames_with_the_templates_of_a_recipe(md):
    text = CONFIG.replace('trajectory = {files = "md/run.*.dump", frames = "0:3", property = "phase", value = 1}',
                          'bulk = {name = "Cu", crystalstructure = "fcc", a = 3.61, cubic = true}\n'
                          'trajectory = {files = "md/run.1.dump", property = "phase", value = 1, augment = true}')
    (md / "combined.toml").write_text(text)
    config = read_config(md / "combined.toml")
    augmentation = Augmentation(rattle=(0.0, 0.1), draws=1)
    assert config.classes[0].n_configurations(augmentation) == 2 + 2 * 2
    data = build_dataset(config.classes, config.spec, augmentation, progress=False)
    first = data.y == 0
    # two perturbed templates (108 atoms), then every frame's crystal atoms at 0 and 0.1 Å
    crystal_atoms = [int(np.sum(two_phase(seed).arrays["phase"] == CRYSTAL)) for seed in range(2)]
    per_draw = np.bincount(data.draw[first])
    assert per_draw.tolist() == [108, 108] + [crystal_atoms[0]] * 2 + [crystal_atoms[1]] * 2
    assert [data.stdev[data.draw == d][0] for d in range(6)] == [0.0, 0.1] * 3
    assert config.classes[0].provenance(augmentation)["templates"] == 2
    assert config.classes[0].provenance(augmentation)["trajectories"][0]["augment"] is True


def class_config(md: Path, trajectory: str, features: str = "cutoff = 3.2") -> Path:
    path = md / "bad.toml"
    path.write_text(f'[features]\n{features}\n[[classes]]\nname = "x"\ncolor = [0, 0, 1]\ntrajectory = {trajectory}\n'
                    '[[classes]]\nname = "fccNi"\n')
    return path


@pytest.mark.parametrize("trajectory, message", [
    ('{files = "md/absent.dump"}', "input file not found: .*absent.dump"),
    ('{files = "md/*.lammpstrj"}', r"no file matches '.*\*.lammpstrj'"),
    ('{files = "c.toml"}', r"/.*/c.toml: cannot read it: Could not detect the file format"),
    ('{files = "md/run.1.dump", frames = "5:"}', "frames = '5:' selects none of the 2 frames"),
    ('{files = "md/run.1.dump", frames = "1:x"}', "frames must be START:STOP:STEP"),
    ('{files = "md/run.1.dump", propery = "phase"}', r"trajectory does not know the key\(s\) \['propery'\]"),
    ('{files = "md/run.1.dump", property = "phase"}', "choose the atoms with property and value, or with select"),
    ('{files = "md/run.1.dump", property = "phase", value = {a = 1}}', "trajectory.value must be a number, a name"),
])
def test_bad_trajectory_tables_are_refused_when_the_config_is_read(md, trajectory, message):
    with pytest.raises(ValueError, match=r"class 'x', trajectory 1: " + message):
        read_config(class_config(md, trajectory))


@pytest.mark.parametrize("trajectory, message", [
    ('{files = "md/run.1.dump", property = "grain", value = 1}',
     r"run.1.dump, frame 0: the frame has no particle property 'grain' \(it has .*phase"),
    ('{files = "md/run.1.dump", select = "phase === 1"}',
     r"run.1.dump, frame 0: OVITO rejects the expression 'phase === 1': .*Unexpected operator"),
    ('{files = "md/run.1.dump", property = "phase", value = 7}',
     r"class 'x', trajectory 1: the selection 'phase == 7' matches no atom in the 2 frame\(s\) ':' of md/run.1.dump"),
    ('{files = "md/run.1.dump", property = "Particle Type", value = "Zr"}',
     r"frame 0: the property 'Particle Type' has no type named 'Zr'"),
    ('{files = "md/run.1.dump", property = "Position", value = 1}', "has 3 components"),
])
def test_frames_that_do_not_fit_the_selection_are_named(md, trajectory, message):
    config = read_config(class_config(md, trajectory))
    with pytest.raises(ValueError, match=message):
        build_dataset(config.classes, config.spec, Augmentation(rattle=(0.0,), draws=1), progress=False)


def test_a_frame_without_species_is_refused_for_like_and_unlike_features(md):
    write_dump(md / "untyped.dump", [two_phase(7)], types=False)
    trajectory = '{files = "untyped.dump", property = "phase", value = 1}'
    for features, works in [('channels = ["all", "like", "unlike"]', False), ('channels = ["all"]', True)]:
        config = read_config(class_config(md, trajectory, features))
        build = lambda c=config: build_dataset(c.classes, c.spec, Augmentation(rattle=(0.0,), draws=1),  # noqa: E731
                                               progress=False)
        if works:
            assert build().class_sizes()["x"] == np.sum(two_phase(7).arrays["phase"] == CRYSTAL)
        else:
            refusal = r"untyped.dump, frame 0: .*\['like', 'unlike'\] need the chemical species.*no 'Particle Type'"
            with pytest.raises(ValueError, match=refusal):
                build()


def test_closing_the_loop_unsure_atoms_of_a_labelled_frame_become_training_data(md, trained, capsys):
    path, _ = trained
    out = md / "labelled"
    assert main(["label", str(md / "heldout.xyz"), "-o", str(out), "-m", str(path), "--probabilities",
                 "--frames", "2", "-j", "1", "-q"]) == 0
    labelled = read(out / "frame_000002.xyz")  # ASE reads the columns independently of OVITO
    unsure = labelled.arrays["Confidence"] < 0.9
    liquid_atoms = labelled.arrays["structure_type"] == "liquid"
    assert 0 < unsure.sum() < len(labelled) and 0 < liquid_atoms.sum() < len(labelled)
    (md / "loop.toml").write_text(CONFIG + """[[classes]]
name = "interface"
color = [0.9, 0.6, 0.1]
trajectory = [{files = "labelled/frame_*.xyz", select = "Confidence < 0.9"},
              {files = "labelled/frame_*.xyz", property = "Structure Type", value = "liquid"}]
""")
    config = read_config(md / "loop.toml")
    interface = config.classes[2]
    data = build_dataset([interface], config.spec, config.augmentation, progress=False)
    assert np.bincount(data.draw).tolist() == [unsure.sum(), liquid_atoms.sum()]
    assert [r["selection"] for r in interface.record] == ["Confidence < 0.9", "Structure Type == 'liquid'"]
