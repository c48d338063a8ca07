"""Bad geometry, models and outputs get a clear error before any work: a tiny cutoff, a huge
cell, a stray atom, a left-handed cell (inverted bounds), a model naming fewer classes than
it outputs, and a training whose model or report cannot be written."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from ase.build import bulk

import ovito_atomclass
from ovito_atomclass import FeatureSpec, compute_features, load_model, training
from ovito_atomclass.cli import main
from ovito_atomclass.samples import TINY_CLASSES, TINY_COLORS

CONFIG = Path(ovito_atomclass.__file__).resolve().parent.parent / "configs" / "reference10.toml"


def nickel():
    return bulk("Ni", "fcc", a=3.52, cubic=True) * (2, 2, 2)


def huge_cell():
    atoms = nickel()
    atoms.set_cell(np.eye(3) * 1e7)
    return atoms


def stray_atom():
    atoms = nickel()
    atoms.pbc = False
    atoms.positions[5] = [1e20, 0.0, 0.0]
    return atoms


def inverted_z():
    atoms = nickel()
    cell = atoms.cell.array.copy()
    cell[2] *= -1  # what a LAMMPS box with zlo > zhi becomes
    atoms.set_cell(cell)
    return atoms


@pytest.mark.parametrize("atoms, cutoff, message", [
    (nickel(), 1e-6, r"the periodic cell vectors are \[7.04, 7.04, 7.04\] Å long: more than 1e\+06 times the "
                     r"neighbour cutoff of 1e-06 Å"),
    (huge_cell(), 4.0, r"the periodic cell vectors are \[10000000.0, 10000000.0, 10000000.0\] Å long"),
    (stray_atom(), 4.0, r"the atoms spread over 1e\+20 Å \(atom index 5 is at \[1e\+20, 0.0, 0.0\] Å\)"),
    (inverted_z(), 4.0, r"the cell is left-handed .* inverted box bounds such as zlo > zhi"),
], ids=["tiny-cutoff", "huge-cell", "stray-atom", "inverted-bounds"])
def test_geometry_that_cannot_be_searched_is_named(atoms, cutoff, message):
    with pytest.raises(ValueError, match=message):
        compute_features(atoms, FeatureSpec(cutoff=cutoff))


@pytest.mark.parametrize("where, message", [
    (["-o", "{file}/m.onnx"], "cannot write the model into {file}"),
    (["-o", "{tmp}/m.onnx", "--report", "{file}/report"], "cannot write the report into {file}/report"),
    (["-o", "{tmp}"], "the output {tmp} is a folder"),
], ids=["model", "report", "folder"])
def test_training_refuses_an_unwritable_output_before_training(tmp_path, monkeypatch, capsys, where, message):
    def build_dataset(*args, **kwargs):
        raise AssertionError("the training started")

    monkeypatch.setattr(training, "build_dataset", build_dataset)
    (tmp_path / "plain").write_text("a file, not a folder")
    names = {"file": tmp_path / "plain", "tmp": tmp_path}
    assert main(["train", str(CONFIG), "--quiet", *[w.format(**names) for w in where]]) == 1
    assert message.format(**names) in capsys.readouterr().err


def test_a_model_naming_fewer_classes_than_its_network_outputs_is_refused(tiny_model, tmp_path):
    proto = onnx.load(str(tiny_model))
    for key, value in (("atomclass.classes", TINY_CLASSES[:3]), ("atomclass.colors", TINY_COLORS[:3])):
        next(p for p in proto.metadata_props if p.key == key).value = json.dumps(value)
    path = tmp_path / "fewer.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="the metadata names 3 classes but the network outputs 4 probabilities"):
        load_model(path)
