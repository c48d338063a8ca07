"""The feature engine against known lattice values and independent implementations."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y

from ovito_atomclass import FeatureSpec, compute_features
from ovito_atomclass.crystals import l12_ni3al
from ovito_atomclass.samples import random_alloy

Q_ONLY = dict(channels=("all",), degrees=(4, 6, 8))


def q(atoms, **spec):
    return compute_features(atoms, FeatureSpec(**spec))


@pytest.mark.parametrize(
    "atoms, k, expected",
    [
        (bulk("Ni", "fcc", a=3.52, cubic=True), 12, {4: 0.19094, 6: 0.57452, 8: 0.40391}),
        (bulk("Fe", "bcc", a=2.87, cubic=True), 8, {6: 0.62854}),
        (bulk("Mg", "hcp", a=3.21, c=3.21 * np.sqrt(8 / 3)), 12, {6: 0.48476}),
        (bulk("Po", "sc", a=3.0), 6, {4: 0.76376}),
    ],
    ids=["fcc", "bcc", "hcp", "sc"],
)
def test_perfect_lattices_nearest_neighbours(atoms, k, expected):
    degrees = tuple(expected)
    f = q(atoms * (2, 2, 2), cutoff=None, num_neighbors=k, channels=("all",), degrees=degrees)
    for j, value in enumerate(expected.values()):
        np.testing.assert_allclose(f[:, j], value, atol=5e-6)


def test_fcc_second_shell_at_4_angstrom_in_a_one_atom_cell():
    # the primitive cell is far smaller than the cutoff: all 18 neighbours are self-images
    atoms = bulk("Ni", "fcc", a=3.52)
    assert len(atoms) == 1
    f = q(atoms, cutoff=4.0, counts=True, **Q_ONLY)
    np.testing.assert_allclose(f[0, :3], [0.12729, 0.26517, 0.50863], atol=5e-6)
    assert f[0, 3] == 18


def test_fcc_wigner_invariants():
    f = q(bulk("Ni", "fcc", a=3.52, cubic=True), cutoff=3.0, channels=("all",), degrees=(4, 6), wigner=True)
    np.testing.assert_allclose(f[:, 2:], [[-0.159317, -0.013161]] * 4, atol=2e-6)


def test_l12_like_and_unlike_neighbour_counts():
    atoms = l12_ni3al()
    spec = FeatureSpec(cutoff=4.0, counts=True)
    f = compute_features(atoms, spec)
    n = {c: f[:, spec.feature_names.index(f"n_{c}")] for c in ("all", "like", "unlike")}
    ni = np.array(atoms.get_chemical_symbols()) == "Ni"
    assert (n["like"][ni] == 14).all() and (n["unlike"][ni] == 4).all()
    assert (n["like"][~ni] == 6).all() and (n["unlike"][~ni] == 12).all()
    assert (n["all"] == 18).all()
    # Al sees 12 Ni at the nearest-neighbour distance: a perfect fcc shell
    np.testing.assert_allclose(f[~ni, spec.feature_names.index("q6_unlike")], 0.57452, atol=5e-6)


def test_rotation_and_relabelling_invariance():
    atoms = random_alloy(n_cells=3, seed=1)
    spec = FeatureSpec(cutoff=4.0, averaged=True, wigner=True, counts=True)
    ref = compute_features(atoms, spec)
    rotated = atoms.copy()
    rotated.set_cell(Rotation.from_euler("zyx", [33, 71, -12], degrees=True).apply(atoms.cell.array),
                     scale_atoms=True)
    # q̄_l and w_l come from q_lm kept in single precision: rounding differs by ~1e-8
    np.testing.assert_allclose(compute_features(rotated, spec), ref, atol=1e-7)
    swapped = atoms.copy()
    sym = np.array(atoms.get_chemical_symbols())
    swapped.set_chemical_symbols(np.where(sym == "Ni", "Al", "Ni"))
    np.testing.assert_allclose(compute_features(swapped, spec), ref, atol=1e-12)


def brute_force_q(positions, cell, pbc, species, cutoff, l):
    """q_l per channel from an explicit sum over periodic images and scipy's Y_lm."""
    reach = [int(np.ceil(cutoff / (abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(i + 1) % 3],
             cell[(i + 2) % 3]))))) + 1 if pbc[i] else 0 for i in range(3)]
    shifts = np.array(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(3, -1).T @ cell
    out = np.zeros((len(positions), 3))
    for i, p in enumerate(positions):
        d = (positions[None, :, :] + shifts[:, None, :] - p).reshape(-1, 3)
        j = np.tile(np.arange(len(positions)), len(shifts))
        r = np.linalg.norm(d, axis=1)
        keep = (r <= cutoff) & (r > 1e-10)
        d, j, r = d[keep], j[keep], r[keep]
        theta, phi = np.arccos(d[:, 2] / r), np.arctan2(d[:, 1], d[:, 0])
        ylm = np.array([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)])
        for c, mask in enumerate([np.ones(len(j), bool), species[j] == species[i], species[j] != species[i]]):
            if mask.any():
                qlm = ylm[:, mask].mean(axis=1)
                out[i, c] = np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(qlm) ** 2))
    return out


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_agrees_with_brute_force_in_a_small_triclinic_cell(pbc):
    rng = np.random.default_rng(5)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.8, 0.0], [-0.6, 0.7, 3.3]])
    positions = rng.random((4, 3)) @ cell
    species = np.array(["A", "B", "A", "B"])
    spec = FeatureSpec(cutoff=4.2, degrees=(4, 6))
    f = compute_features((positions, cell, np.array(pbc), species), spec)
    for l in spec.degrees:
        ref = brute_force_q(positions, cell, np.array(pbc), species, 4.2, l)
        for c, channel in enumerate(spec.channels):
            np.testing.assert_allclose(f[:, spec.feature_names.index(f"q{l}_{channel}")], ref[:, c], atol=1e-10)


def test_radial_columns_are_the_sorted_nearest_distances_over_their_mean():
    atoms = random_alloy(n_cells=2, seed=3)
    f = q(atoms, cutoff=None, num_neighbors=10, radial=12, **Q_ONLY)
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    nearest = np.sort(d, axis=1)[:, :12]
    np.testing.assert_allclose(f[:, 3:], nearest / nearest[:, :10].mean(axis=1, keepdims=True), atol=1e-12)


def test_block_size_does_not_change_results():
    atoms = random_alloy(n_cells=3, seed=2)
    spec = FeatureSpec(cutoff=4.0, averaged=True, wigner=True, counts=True)
    np.testing.assert_allclose(compute_features(atoms, spec, block_size=7), compute_features(atoms, spec), rtol=1e-12)


def test_atom_without_neighbours_in_a_channel_gets_zero():
    atoms = Atoms("NiNiAl", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]], pbc=False)
    spec = FeatureSpec(cutoff=3.0, degrees=(4,), counts=True)
    f = compute_features(atoms, spec)
    al = 2
    assert f[al, spec.feature_names.index("q4_like")] == 0.0
    assert f[al, spec.feature_names.index("n_like")] == 0
    assert f[al, spec.feature_names.index("q4_unlike")] > 0


def test_empty_frame_gives_an_empty_matrix():
    spec = FeatureSpec()
    f = compute_features((np.zeros((0, 3)), np.eye(3) * 10, True, np.array([], dtype=str)), spec)
    assert f.shape == (0, len(spec.feature_names))


@pytest.mark.parametrize(
    "system, message",
    [
        ((np.array([[0, 0, np.nan]]), np.eye(3), True, np.array(["Ni"])), "NaN"),
        ((np.zeros((2, 3)), np.diag([3.0, 3.0, 0.0]), True, np.array(["Ni", "Al"])), "degenerate"),
        ((np.zeros((2, 3)), np.eye(3) * 5, True, None), "species"),
        ((np.zeros((2, 3)), np.eye(3) * 5, True, np.array(["Ni"])), "one entry per atom"),
    ],
)
def test_bad_input_is_refused_clearly(system, message):
    with pytest.raises(ValueError, match=message):
        compute_features(system, FeatureSpec())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cutoff=-1.0), "positive"),
        (dict(cutoff=0.0), "positive"),
        (dict(channels=("all", "similar")), "unknown"),
        (dict(cutoff=None), "exactly one"),
        (dict(degrees=()), "degrees"),
    ],
)
def test_bad_spec_is_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec(**kwargs)


def test_spec_round_trips_through_json_and_names_columns():
    spec = FeatureSpec(cutoff=3.5, degrees=(6, 4), channels=("like", "all"), averaged=True, counts=True)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.feature_names[:4] == ["q6_like", "q4_like", "q6_all", "q4_all"]
    assert spec.feature_names[-2:] == ["n_like", "n_all"]
    assert FeatureSpec().feature_names == [f"q{l}_{c}" for c in ("all", "like", "unlike") for l in (4, 6, 8)]


def test_shipped_bond_code_is_what_the_generator_writes():
    from ovito_atomclass.spec import DEFAULT_DEGREES
    from ovito_atomclass.steinhardt import SHIPPED_YLM, _bond_source

    assert SHIPPED_YLM.read_text() == _bond_source(DEFAULT_DEGREES), (
        f"{SHIPPED_YLM.name} is not what the generator writes: run `python -m ovito_atomclass.steinhardt`")


def test_generated_kernels_are_named_after_the_neighbour_search_they_inline(monkeypatch):
    # numba caches a generated kernel by its own file only: a changed neighbour search must
    # give it a new module name, or the old machine code (with the old search) would run
    import inspect

    from ovito_atomclass import neighbors, steinhardt

    def name():
        steinhardt.bond_kernel_for.cache_clear()
        return steinhardt.bond_kernel_for((6,)).py_func.__module__

    before = name()
    getsource = inspect.getsource
    monkeypatch.setattr(steinhardt.inspect, "getsource",
                        lambda obj: getsource(obj) + ("# changed\n" if obj is neighbors else ""))
    changed = name()
    monkeypatch.undo()
    assert changed != before and name() == before


def test_open_direction_allows_atoms_outside_the_cell():
    # a slab periodic in x and y, with atoms far outside the cell along the open z direction
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True) * (2, 2, 2)
    atoms.pbc = (True, True, False)
    reference = compute_features(atoms, FeatureSpec(**Q_ONLY))
    atoms.positions[:, 2] += 100.0
    np.testing.assert_allclose(compute_features(atoms, FeatureSpec(**Q_ONLY)), reference, atol=1e-12)


def test_block_scratch_does_not_leak_between_blocks():
    # atom 1 (Al) has no like neighbour; with one atom per block it follows a Ni atom that has
    atoms = Atoms("NiAlNi", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]], pbc=False)
    spec = FeatureSpec(cutoff=3.0, degrees=(4, 6), wigner=True)
    np.testing.assert_array_equal(compute_features(atoms, spec, block_size=1), compute_features(atoms, spec))
    assert compute_features(atoms, spec, block_size=1)[1, spec.feature_names.index("w4_like")] == 0.0
