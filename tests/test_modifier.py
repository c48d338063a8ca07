"""The OVITO modifier: outputs, options, errors, and use in pipelines, trajectories and sessions."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import ovito
import pytest
from ase.build import bulk
from ovito.data import DataCollection
from ovito.io import export_file, import_file
from ovito.io.ase import ase_to_ovito
from ovito.modifiers import (
    ColorByTypeModifier,
    ExpressionSelectionModifier,
    PolyhedralTemplateMatchingModifier,
    SelectTypeModifier,
)
from ovito.pipeline import Pipeline, PipelineSourceInterface, PythonSource, StaticSource

from ovito_atomclass import compute_features
from ovito_atomclass import model as model_module
from ovito_atomclass import modifier as modifier_module
from ovito_atomclass.crystals import PRECIPITATE_REFERENCE, l12_ni3al, precipitate
from ovito_atomclass.model import assign, counts_from_attributes, load_model, models_dir, type_ids
from ovito_atomclass.modifier import TABLE_ID, AtomClassifierModifier
from ovito_atomclass.samples import TINY_CLASSES, TINY_COLORS, tiny_templates

FCC, GAMMA, GAMMA_PRIME, BCC = 1, 2, 3, 4  # Structure Type ids of the tiny model's classes


def classify(data: DataCollection, model, **params) -> DataCollection:
    out = data.clone()
    out.apply(AtomClassifierModifier(model_file=str(model), **params))
    return out


def counts(data: DataCollection) -> dict:
    return counts_from_attributes(data.attributes)


@pytest.fixture(scope="module")
def l12():
    return ase_to_ovito(l12_ni3al(repeat=3))  # 108 atoms


def test_pure_phases_get_their_class_types_and_counts(tiny_model):
    for expected, atoms in enumerate(tiny_templates(seed=3), start=1):
        out = classify(ase_to_ovito(atoms), tiny_model)
        structure = np.asarray(out.particles["Structure Type"])
        assert structure.dtype.kind == "i" and (structure == expected).mean() >= 0.98
        assert counts(out)[TINY_CLASSES[expected - 1]] == (structure == expected).sum()
        assert sum(counts(out).values()) == len(atoms)
    types = out.particles["Structure Type"].types
    assert [(t.id, t.name) for t in types] == [(0, "Other"), *[(i + 1, c) for i, c in enumerate(TINY_CLASSES)]]
    np.testing.assert_allclose([t.color for t in types[1:]], TINY_COLORS)
    assert "Structure Probability" not in out.particles and "Confidence" not in out.particles


def test_bar_chart_table_matches_counts(tiny_model, l12):
    out = classify(l12, tiny_model)
    table = out.tables[TABLE_ID]
    assert table.plot_mode == table.PlotMode.BarChart
    assert [t.name for t in table.x.types] == ["Other", *TINY_CLASSES]
    np.testing.assert_array_equal(table.xy(), [[0, 0], [1, 0], [2, 0], [3, 108], [4, 0]])


def test_probabilities_and_confidence(tiny_model):
    atoms = l12_ni3al(repeat=3)
    atoms.rattle(0.15, seed=1)
    out = classify(ase_to_ovito(atoms), tiny_model, output_probabilities=True)
    proba = np.asarray(out.particles["Structure Probability"])
    assert proba.shape == (108, 4)
    assert out.particles["Structure Probability"].component_names == tuple(TINY_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.particles["Confidence"], proba.max(axis=1))
    np.testing.assert_array_equal(out.particles["Structure Type"], np.argmax(proba, axis=1) + 1)


def test_threshold_sends_unsure_atoms_to_other(tiny_model):
    atoms = l12_ni3al(repeat=3)
    atoms.rattle(0.15, seed=1)
    data = ase_to_ovito(atoms)
    confidence = np.asarray(classify(data, tiny_model, output_probabilities=True).particles["Confidence"])
    threshold = float(np.median(confidence))
    assert 0.0 < threshold < 1.0
    out = classify(data, tiny_model, threshold=threshold)
    other = np.asarray(out.particles["Structure Type"]) == 0
    np.testing.assert_array_equal(other, confidence < threshold)
    assert counts(out)["Other"] == other.sum() > 0


def test_assign_and_type_ids():
    assert type_ids(["a", "Other", "b"]).tolist() == [1, 0, 2]
    proba = np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    assert assign(proba, np.array([1, 2]), threshold=0.55).tolist() == [1, 2, 0]


def test_model_class_named_other_is_id_zero(tiny_model, tmp_path):
    proto = onnx.load(str(tiny_model))
    renamed = ["fccNi", "Other", "gamma_prime", "bccFe"]
    next(p for p in proto.metadata_props if p.key == "atomclass.classes").value = json.dumps(renamed)
    path = tmp_path / "with_other.onnx"
    path.write_bytes(proto.SerializeToString())
    gamma, l12 = tiny_templates(seed=3)[1:3]
    out = classify(ase_to_ovito(gamma), path)
    assert (np.asarray(out.particles["Structure Type"]) == 0).mean() >= 0.98
    types = out.particles["Structure Type"].types
    assert [(t.id, t.name) for t in types] == [(0, "Other"), (1, "fccNi"), (2, "gamma_prime"), (3, "bccFe")]
    np.testing.assert_allclose(types[0].color, TINY_COLORS[1])  # the model's colour for its Other class
    assert (np.asarray(classify(ase_to_ovito(l12), path).particles["Structure Type"]) == 2).all()


def test_replaces_an_existing_structure_type(tiny_model, l12):
    pipeline = Pipeline(source=StaticSource(data=l12))
    pipeline.modifiers.append(PolyhedralTemplateMatchingModifier())
    assert "FCC" in [t.name for t in pipeline.compute().particles["Structure Type"].types]
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tiny_model)))
    out = pipeline.compute()
    assert [t.name for t in out.particles["Structure Type"].types] == ["Other", *TINY_CLASSES]
    assert (np.asarray(out.particles["Structure Type"]) == GAMMA_PRIME).all()


def test_only_selected(tiny_model, l12):
    pipeline = Pipeline(source=StaticSource(data=l12))
    pipeline.modifiers.append(SelectTypeModifier(property="Particle Type", types={"Al"}))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tiny_model), only_selected=True,
                                                     output_probabilities=True))
    out = pipeline.compute()
    al = np.asarray(out.particles["Particle Type"]) == out.particles["Particle Type"].type_by_name("Al").id
    structure = np.asarray(out.particles["Structure Type"])
    assert al.sum() == 27 and (structure[al] == GAMMA_PRIME).all() and (structure[~al] == 0).all()
    assert (np.asarray(out.particles["Structure Probability"])[~al] == 0).all()
    assert counts(out) == {"Other": 0, "fccNi": 0, "gamma": 0, "gamma_prime": 27, "bccFe": 0}


def test_only_selected_without_selection_is_an_error(tiny_model, l12):
    with pytest.raises(ValueError, match="no 'Selection' property"):
        classify(l12, tiny_model, only_selected=True)


def test_works_with_select_expression_and_color_by_type(tiny_model):
    mixed = ase_to_ovito(l12_ni3al(repeat=3))
    pipeline = Pipeline(source=StaticSource(data=mixed))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tiny_model)))
    pipeline.modifiers.append(ExpressionSelectionModifier(expression=f"StructureType == {GAMMA_PRIME}"))
    assert pipeline.compute().attributes["ExpressionSelection.count"] == 108
    pipeline.modifiers[-1] = SelectTypeModifier(property="Structure Type", types={"gamma_prime"})
    assert pipeline.compute().attributes["SelectType.num_selected"] == 108
    pipeline.modifiers[-1] = ColorByTypeModifier(property="Structure Type")
    colors = np.asarray(pipeline.compute().particles["Color"])
    np.testing.assert_allclose(colors, np.tile(TINY_COLORS[GAMMA_PRIME - 1], (108, 1)))


class TwoPhases(PipelineSourceInterface):
    """Frame 0: L1_2 Ni3Al; frame 1: bcc Fe."""

    def compute_trajectory_length(self, **kwargs):
        return 2

    def create(self, data, *, frame, **kwargs):
        atoms = l12_ni3al(repeat=3) if frame == 0 else bulk("Fe", "bcc", a=2.87, cubic=True) * 4
        ase_to_ovito(atoms, data)


def test_multi_frame_extxyz(tiny_model, tmp_path):
    path = tmp_path / "traj.xyz"
    export_file(Pipeline(source=PythonSource(delegate=TwoPhases())), str(path), "xyz",
                columns=["Particle Type", "Position.X", "Position.Y", "Position.Z"], multiple_frames=True)
    pipeline = import_file(str(path))
    assert pipeline.num_frames == 2
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tiny_model)))
    assert counts(pipeline.compute(0))["gamma_prime"] == 108
    assert counts(pipeline.compute(1))["bccFe"] == 128


def test_session_state_round_trip(tiny_model, l12, tmp_path):
    pipeline = Pipeline(source=StaticSource(data=l12))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tiny_model), threshold=0.25,
                                                     output_probabilities=True))
    expected = np.asarray(pipeline.compute().particles["Structure Type"])
    pipeline.add_to_scene()
    path = tmp_path / "session.ovito"
    try:
        ovito.scene.save(str(path))
    finally:
        pipeline.remove_from_scene()
    ovito.scene.load(str(path))
    try:
        restored = ovito.scene.pipelines[0]
        delegate = restored.modifiers[0].delegate
        assert isinstance(delegate, AtomClassifierModifier)
        assert (delegate.model_file, delegate.threshold, delegate.output_probabilities) == (str(tiny_model), 0.25, True)
        np.testing.assert_array_equal(restored.compute().particles["Structure Type"], expected)
    finally:
        ovito.scene.pipelines.clear()


def test_model_is_parsed_once_per_content_and_reloaded_when_the_file_changes(tiny_model, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(tiny_model.read_bytes())
    first = load_model(path)
    assert load_model(str(path)) is first and first.classes == TINY_CLASSES
    # the same size and modification time, other content: a cache keyed on (size, mtime) would miss it
    proto = onnx.load(str(path))
    renamed = ["fccXx", "gammX", "gamma_Xrime", "bccXx"]
    next(p for p in proto.metadata_props if p.key == "atomclass.classes").value = json.dumps(renamed)
    payload = proto.SerializeToString()
    assert len(payload) == path.stat().st_size
    stat = path.stat()
    path.write_bytes(payload)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_model(path)
    assert second is not first and second.classes == renamed
    for i in range(model_module._CACHE_SIZE + 2):  # the cache is bounded
        other = tmp_path / f"copy{i}.onnx"
        other.write_bytes(tiny_model.read_bytes())
        load_model(other)
    assert len(model_module._CACHE) == model_module._CACHE_SIZE


def test_metadata_naming_more_classes_than_the_network_outputs_is_refused(tiny_model, tmp_path):
    proto = onnx.load(str(tiny_model))
    classes = next(p for p in proto.metadata_props if p.key == "atomclass.classes")
    colors = next(p for p in proto.metadata_props if p.key == "atomclass.colors")
    classes.value = json.dumps([*TINY_CLASSES, "extra"])
    colors.value = json.dumps([*TINY_COLORS, (0.1, 0.1, 0.1)])
    path = tmp_path / "extra.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="names 5 classes but the network outputs 4 probabilities"):
        load_model(path)


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5])
def test_a_threshold_that_is_no_probability_is_refused(tiny_model, l12, threshold):
    modifier = AtomClassifierModifier(model_file=str(tiny_model))
    modifier.__dict__["threshold"] = threshold  # the GUI's Range trait stops these; a script's setattr may not
    with pytest.raises(ValueError, match="threshold must be a probability between 0 and 1"):
        list(modifier.modify(l12.clone(), frame=0))


def test_empty_model_file_means_the_shipped_default(tiny_model, l12, monkeypatch):
    monkeypatch.setattr(model_module, "default_model_path", lambda: tiny_model)
    out = l12.clone()
    out.apply(AtomClassifierModifier())
    assert counts(out)["gamma_prime"] == 108


def test_empty_frame(tiny_model):
    data = DataCollection()
    data.create_cell(np.eye(3) * 10.0, pbc=(True, True, True))
    data.create_particles(count=0)
    out = classify(data, tiny_model, output_probabilities=True)
    assert len(out.particles["Structure Type"]) == 0
    assert counts(out) == dict.fromkeys(["Other", *TINY_CLASSES], 0)
    assert out.tables[TABLE_ID].y[...].tolist() == [0, 0, 0, 0, 0]


def _without_types(l12):
    data = DataCollection()
    data.create_cell(np.asarray(l12.cell)[:, :3], pbc=(True, True, True))
    data.create_particles(count=l12.particles.count).create_property("Position", data=l12.particles.positions)
    return data


def _undefined_type(l12):
    data = l12.clone()
    data.particles_.particle_types_[5] = 7
    return data


def _degenerate_cell(l12):
    data = l12.clone()
    data.cell_[:, 2] = data.cell[:, 1]
    return data


@pytest.mark.parametrize("make_model, make_data, error, message", [
    (lambda p, t: t / "missing.onnx", None, FileNotFoundError, "model file not found"),
    (lambda p, t: (t / "junk.onnx").write_bytes(b"no model here") and t / "junk.onnx", None, ValueError,
     "is not an ONNX model"),
    (lambda p, t: _strip_metadata(p, t / "bare.onnx"), None, ValueError, "without ovito-atomclass metadata"),
    (None, _without_types, ValueError, "need the chemical species of every atom"),
    (None, _undefined_type, ValueError, r"type id\(s\) \[7\] are used by atoms but not defined"),
    (None, _degenerate_cell, ValueError, "degenerate"),
], ids=["missing", "not-onnx", "no-metadata", "no-species", "undefined-type", "degenerate-cell"])
def test_errors_are_clear_and_leave_the_data_untouched(tiny_model, l12, tmp_path, make_model, make_data, error,
                                                       message):
    model = make_model(tiny_model, tmp_path) if make_model else tiny_model
    data = make_data(l12) if make_data else l12.clone()
    before = (set(data.particles.keys()), dict(data.attributes), set(data.tables.keys()))
    with pytest.raises(error, match=message):
        for _ in AtomClassifierModifier(model_file=str(model)).modify(data, frame=0):
            pass
    assert (set(data.particles.keys()), dict(data.attributes), set(data.tables.keys())) == before


def _strip_metadata(model, path):
    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    path.write_bytes(proto.SerializeToString())
    return path


def test_pipeline_reports_the_error(tiny_model, l12, tmp_path):
    pipeline = Pipeline(source=StaticSource(data=l12))
    pipeline.modifiers.append(AtomClassifierModifier(model_file=str(tmp_path / "nowhere.onnx")))
    with pytest.raises(FileNotFoundError, match="model file not found"):
        pipeline.compute()


DEMO = Path(__file__).resolve().parent.parent / "examples" / "precipitate.py"


def run_demo(*args: str) -> subprocess.CompletedProcess:
    """The precipitate demo run as a user runs it, in its own process."""
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OVITO_THREAD_COUNT": "1"})


def test_demo_labels_the_precipitate_and_exports_it(tiny_model, tmp_path):
    run = run_demo("--model", str(tiny_model), "--out", str(tmp_path), "--no-render")
    assert run.returncode == 0, run.stderr
    labelled = import_file(str(tmp_path / "precipitate_labelled.xyz")).compute()
    structure = np.asarray(labelled.particles["Structure Type"])
    assert len(structure) == 4000 and set(np.unique(structure)) <= {0, FCC, GAMMA, GAMMA_PRIME, BCC}
    # the printed percentages are those of the labelled file, next to the study's
    for name, type_id in {"fccNi": FCC, "gamma": GAMMA, "gamma_prime": GAMMA_PRIME}.items():
        ours = 100.0 * (structure == type_id).mean()
        assert f"{name:<14}{ours:11.2f}%{PRECIPITATE_REFERENCE[name]:11.2f}%" in run.stdout
    assert f"selected {(structure == GAMMA).sum()} gamma atoms" in run.stdout
    assert (np.asarray(labelled.particles["Selection"]) == (structure == GAMMA)).all()


@pytest.mark.skipif(Path("/usr/lib/x86_64-linux-gnu/libvulkan.so.1").exists(), reason="this machine can render")
def test_demo_without_vulkan_explains_and_succeeds(tiny_model, tmp_path):
    run = run_demo("--model", str(tiny_model), "--out", str(tmp_path))
    assert run.returncode == 0 and "apt-get install libvulkan1 mesa-vulkan-drivers" in run.stderr
    # a picture all the same: the slice through the centre, drawn by matplotlib
    picture = tmp_path / "precipitate_slice.png"
    assert f"picture without rendering: {picture}" in run.stdout
    assert picture.read_bytes().startswith(b"\x89PNG") and picture.stat().st_size > 10_000


def test_demo_without_a_model_fails_clearly(tmp_path):
    run = run_demo("--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path))
    assert run.returncode == 1 and "model file not found" in run.stderr


def test_ovito_pro_finds_the_modifier_through_its_entry_point():
    entry = {e.name: e for e in importlib.metadata.entry_points(group="OVITO.Modifier")}
    assert entry["Atom Structure Classifier (ML)"].load() is AtomClassifierModifier


def test_seed_model_reproduces_the_reference_precipitate_fractions():
    data = ase_to_ovito(precipitate())
    data.apply(AtomClassifierModifier(model_file=str(models_dir() / "seed.onnx")))
    percent = {name: 100.0 * n / 4000 for name, n in counts(data).items()}
    for name, reference in PRECIPITATE_REFERENCE.items():
        assert percent[name] == pytest.approx(reference, abs=0.05), name  # one atom is 0.025 %
    assert sum(percent[name] for name in PRECIPITATE_REFERENCE) == pytest.approx(100.0)


def test_averaged_model_in_small_blocks_with_a_selection_labels_the_right_atoms(monkeypatch):
    # q-bar features come in blocks of Morton-ordered atoms: every result must land on its atom
    default = str(models_dir() / "reference10.onnx")
    data = ase_to_ovito(precipitate())
    whole = np.asarray(classify(data, default, output_probabilities=True).particles["Structure Probability"])
    monkeypatch.setattr(modifier_module, "BLOCK_SIZE", 300)
    selected = np.random.default_rng(0).random(len(whole)) < 0.5
    data.particles_.create_property("Selection", data=selected.astype(np.int32))
    out = classify(data, default, only_selected=True, output_probabilities=True)
    proba = np.asarray(out.particles["Structure Probability"])
    np.testing.assert_allclose(proba[selected], whole[selected], atol=1e-6)  # onnxruntime's order of sums
    assert not proba[~selected].any()
    structure = np.asarray(out.particles["Structure Type"])
    assert (structure[~selected] == 0).all() and len(np.unique(structure[selected])) == 3  # fccNi, gamma, gamma_prime


def test_reports_progress_block_by_block(tiny_model, l12, monkeypatch):
    monkeypatch.setattr(modifier_module, "BLOCK_SIZE", 40)
    data = l12.clone()
    reports = list(AtomClassifierModifier(model_file=str(tiny_model)).modify(data, frame=0))
    fractions = [r for r in reports if not isinstance(r, str)]  # after the status messages
    assert all(isinstance(r, str) for r in reports[: len(reports) - len(fractions)])
    assert fractions == pytest.approx([40 / 108, 80 / 108, 1.0])
    assert (np.asarray(data.particles["Structure Type"]) == GAMMA_PRIME).all()


def test_types_of_one_name_are_one_species(tiny_model, l12):
    """Two type ids named alike are one species: the frame gets the features, hence the
    labels, of the frame with one type for them (OVITO frames pass species codes, not names)."""
    split = l12.clone()
    types = split.particles_.particle_types_
    ni = types.type_by_name("Ni").id
    types.add_type_id(9, split.particles_, name="Ni")
    types.marray[np.flatnonzero(np.asarray(types) == ni)[::2]] = 9  # half the Ni atoms get the second type
    spec = load_model(tiny_model).spec
    np.testing.assert_array_equal(compute_features(split, spec), compute_features(l12, spec))
    assert np.unique(compute_features(l12, spec)[:, 1]).size > 1  # like/unlike columns that tell Ni from Al
