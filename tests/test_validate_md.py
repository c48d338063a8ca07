"""The MD validation's bookkeeping (benchmarks/validate_md.py) on ideal structures: regions
of the precipitate, the PTM / CNA label mapping and the scores."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import bulk

from ovito_atomclass.crystals import l12_ni3al

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "validate_md.py"


@pytest.fixture(scope="module")
def vmd():
    return SimpleNamespace(**runpy.run_path(str(SCRIPT)))


def test_precipitate_regions(vmd):
    atoms = vmd.precipitate_frame(3.52)
    box = atoms.cell.lengths()
    d = atoms.positions - box / 2
    r = np.linalg.norm(d - box * np.round(d / box), axis=1)
    region = atoms.arrays["region"]
    assert len(atoms) == 2048
    assert np.count_nonzero(region == 1) == 55
    assert r[region == 1].max() < 5.5 and r[region == -1].min() > 13.5
    al = np.array(atoms.get_chemical_symbols()) == "Al"
    # Al on the cube corners (i, j, k) a with |(i, j, k)| a < 9.5 Å: 81 lattice points
    assert np.count_nonzero(al) == 81 and r[al].max() < 9.5


def test_ptm_and_cna_labels(vmd):
    ni3al = l12_ni3al(3.52, 3)
    ni = bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3)
    assert set(vmd.ptm_labels(ni3al)) == {"gamma_prime"}
    assert set(vmd.ptm_labels(ni)) == {"fccNi"}
    assert set(vmd.cna_labels(ni3al)) == {"fccNi"}  # blind to chemical order


def test_score_of_ideal_precipitate(vmd):
    frame = vmd.precipitate_frame(3.52)
    frame.info["fraction_Tm"] = 0.0
    scores = vmd.score({"precipitate_0.00Tm": [frame]}, vmd.ptm_labels)
    assert scores[("precipitate_0.00Tm", "γ' core")] == (1.0, 55)
    assert scores[("precipitate_0.00Tm", "matrix")] == (1.0, 1089)
    cna = vmd.score({"precipitate_0.00Tm": [frame]}, vmd.cna_labels)
    assert cna[("precipitate_0.00Tm", "γ' core")] == (0.0, 55)
