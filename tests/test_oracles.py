"""The feature engine against independent implementations: OVITO's Steinhardt modifier,
pyscal3 and freud, on random two-species configurations (256 atoms) in cubic and
triclinic cells.

OVITO and pyscal3 compute in double precision and must agree to 1e-6.  freud holds
positions, bond vectors and q_lm in single precision (epsilon 6e-8): on these systems its
own rounding reaches 3e-6, so it is held to 1e-5; pyscal3 checks the same channels to 1e-6.
pyscal3 and freud see the like/unlike channels through their own neighbour lists filtered by
species; OVITO, which has no channels, checks the all channel and the Snapshot adapter.
"""

import freud
import numpy as np
import pyscal3
import pytest
from ase import Atoms
from ovito.io.ase import ase_to_ovito
from ovito.modifiers import SteinhardtParametersModifier

from ovito_atomclass import FeatureSpec, compute_features
from ovito_atomclass.samples import random_alloy

ATOL = 1e-6
FREUD_ATOL = 1e-5
DEGREES = (4, 6, 8)
CHANNEL_SPEC = FeatureSpec(cutoff=4.0, degrees=DEGREES, averaged=True, wigner=True, counts=True)
# a lower-triangular cell (LAMMPS style, as freud wants it) with plane spacings above 2 x 4 Å
TRICLINIC = np.array([[14.08, 0.0, 0.0], [2.1, 13.5, 0.0], [-1.3, 1.7, 14.2]])


def cubic_alloy() -> Atoms:
    return random_alloy(n_cells=4, seed=11)


def triclinic_alloy() -> Atoms:
    atoms = random_alloy(n_cells=4, seed=12)
    atoms.set_cell(TRICLINIC, scale_atoms=True)
    return atoms


ALLOYS = pytest.mark.parametrize("atoms", [cubic_alloy(), triclinic_alloy()], ids=["cubic", "triclinic"])


def column(features: np.ndarray, spec: FeatureSpec, name: str) -> np.ndarray:
    return features[:, spec.feature_names.index(name)]


def channel_mask(species: np.ndarray, centre: np.ndarray, neighbour: np.ndarray, channel: str) -> np.ndarray:
    """Which bonds (centre -> neighbour atom indices) belong to ``channel``."""
    same = species[centre] == species[neighbour]
    return {"all": np.ones_like(same), "like": same, "unlike": ~same}[channel]


def ovito_steinhardt(atoms: Atoms, **neighbours) -> tuple[np.ndarray, np.ndarray]:
    """OVITO's q_l and qbar_l (N, 3) for l = 4, 6, 8."""
    data = ase_to_ovito(atoms)
    data.apply(SteinhardtParametersModifier(max_l=8, compute_averaged=True, **neighbours))
    names = list(data.particles["Steinhardt"].component_names)
    cols = [names.index(f"q{l}") for l in DEGREES]
    return np.asarray(data.particles["Steinhardt"])[:, cols], np.asarray(data.particles["Smooth Steinhardt"])[:, cols]


def assert_all_channel_matches_ovito(atoms: Atoms, spec: FeatureSpec, **neighbours) -> None:
    ours = compute_features(atoms, spec)
    q, qbar = ovito_steinhardt(atoms, **neighbours)
    assert q.min() > 0.01  # every atom has neighbours: a real comparison, not zeros against zeros
    np.testing.assert_allclose(ours[:, :3], q, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours[:, 3:], qbar, rtol=0, atol=ATOL)


@ALLOYS
def test_ovito_cutoff_mode_matches_the_all_channel(atoms):
    spec = FeatureSpec(cutoff=4.0, degrees=DEGREES, channels=("all",), averaged=True)
    assert_all_channel_matches_ovito(atoms, spec, neighbor_mode=SteinhardtParametersModifier.NeighborMode.Cutoff,
                                     cutoff=4.0)


@ALLOYS
@pytest.mark.parametrize("k", [8, 12])
def test_ovito_nearest_neighbours_mode_matches_num_neighbors(atoms, k):
    spec = FeatureSpec(cutoff=None, num_neighbors=k, degrees=DEGREES, channels=("all",), averaged=True)
    assert_all_channel_matches_ovito(atoms, spec, num_neighbors=k,
                                     neighbor_mode=SteinhardtParametersModifier.NeighborMode.NearestNeighbors)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_ovito_matches_in_a_cell_smaller_than_the_cutoff(pbc):
    # plane spacings below 3 Å with a 4.2 Å cutoff: atoms see several of their own images
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.8, 0.0], [-0.6, 0.7, 3.3]])
    rng = np.random.default_rng(5)
    atoms = Atoms("NiAlNiAl", scaled_positions=rng.random((4, 3)), cell=cell, pbc=pbc)
    mode = SteinhardtParametersModifier.NeighborMode
    spec = FeatureSpec(cutoff=4.2, degrees=DEGREES, channels=("all",), averaged=True)
    assert_all_channel_matches_ovito(atoms, spec, neighbor_mode=mode.Cutoff, cutoff=4.2)
    spec = FeatureSpec(cutoff=None, num_neighbors=12, degrees=DEGREES, channels=("all",), averaged=True)
    assert_all_channel_matches_ovito(atoms, spec, neighbor_mode=mode.NearestNeighbors, num_neighbors=12)


def test_data_collection_gives_the_same_features_as_ase_atoms():
    atoms = triclinic_alloy()
    origin = np.array([-7.5, 3.25, 100.0])
    shifted = atoms.copy()
    # unwrapped positions and a cell origin away from zero: only positions relative to the cell count
    shifted.positions += origin + TRICLINIC[0] * np.where(np.arange(len(atoms)) % 3 == 0, -1, 1)[:, None]
    shifted.info["cell_origin"] = origin
    data = ase_to_ovito(shifted)
    np.testing.assert_allclose(np.asarray(data.cell)[:, 3], origin)
    ours_ase = compute_features(atoms, CHANNEL_SPEC)
    np.testing.assert_allclose(compute_features(data, CHANNEL_SPEC), ours_ase, rtol=0, atol=1e-9)
    assert column(ours_ase, CHANNEL_SPEC, "n_like").min() > 0 and column(ours_ase, CHANNEL_SPEC, "n_unlike").min() > 0


def pyscal3_channel(atoms: Atoms, spec: FeatureSpec, channel: str) -> dict[str, list[np.ndarray]]:
    """pyscal3's q_l, qbar_l and normalised w_l (lists over l of (N,) arrays) with pyscal3's
    own neighbours (``spec``'s cutoff or nearest N, of all species) restricted to ``channel``."""
    found = atoms.copy()
    if spec.cutoff is None:
        pyscal3.find_neighbors(found, method="number", nmax=spec.num_neighbors)
    else:
        pyscal3.find_neighbors(found, method="cutoff", cutoff=spec.cutoff)
    offsets, nbr = found.info["pyscal_bond_offsets"], found.info["pyscal_bond_neighbors"]
    centre = np.repeat(np.arange(len(atoms)), np.diff(offsets))
    keep = channel_mask(np.array(atoms.get_chemical_symbols()), centre, nbr, channel)
    filtered = atoms.copy()
    filtered.info["pyscal_bond_offsets"] = np.concatenate([[0], np.cumsum(np.bincount(centre[keep],
                                                                                       minlength=len(atoms)))])
    for key in ("neighbors", "distance", "weight", "vector", "theta", "phi"):
        filtered.info[f"pyscal_bond_{key}"] = found.info[f"pyscal_bond_{key}"][keep]
    return {"q": pyscal3.steinhardt_parameter(filtered, list(DEGREES)),
            "qbar": pyscal3.steinhardt_parameter(filtered, list(DEGREES), averaged=True),
            "w": pyscal3.wigner_w_parameter(filtered, list(DEGREES), normalized=True)}


NEAREST_SPEC = FeatureSpec(cutoff=None, num_neighbors=12, degrees=DEGREES, averaged=True, wigner=True, counts=True)


@ALLOYS
@pytest.mark.parametrize("spec", [CHANNEL_SPEC, NEAREST_SPEC], ids=["cutoff", "nearest"])
@pytest.mark.parametrize("channel", ["all", "like", "unlike"])
def test_pyscal3_matches_every_channel(atoms, spec, channel):
    # with num_neighbors the 12 nearest of any species are split into channels afterwards, so
    # a few atoms have no like or no unlike neighbour: pyscal3 gives NaN there, we give 0, and
    # its NaN spreads into the qbar of their neighbours, where we count their q_lm as 0
    ours = compute_features(atoms, spec)
    ref = pyscal3_channel(atoms, spec, channel)
    empty = column(ours, spec, f"n_{channel}") == 0
    for kind, values in ref.items():
        for l, value in zip(DEGREES, values, strict=True):
            name = f"{kind}{l}_{channel}"
            mine = column(ours, spec, name)
            assert (mine[empty] == 0).all(), name
            if kind == "q":
                np.testing.assert_array_equal(np.isnan(value), empty, err_msg=name)
            known = ~np.isnan(value)
            assert known.mean() > 0.95, name
            np.testing.assert_allclose(mine[known], value[known], rtol=0, atol=ATOL, err_msg=name)


def freud_system(atoms: Atoms):
    """freud's box and positions (wrapped into its centred box) and its cutoff neighbour list."""
    cell = atoms.cell.array
    assert np.allclose(np.triu(cell, 1), 0.0), "freud needs cell vectors in lower-triangular rows"
    box = freud.box.Box.from_matrix(cell.T)
    points = box.wrap(atoms.positions)
    query = freud.locality.AABBQuery(box, points)
    nlist = query.query(points, dict(r_max=CHANNEL_SPEC.cutoff, exclude_ii=True)).toNeighborList()
    return box, points, nlist


@ALLOYS
def test_freud_matches_every_channel_to_single_precision(atoms):
    ours = compute_features(atoms, CHANNEL_SPEC)
    box, points, nlist = freud_system(atoms)
    species = np.array(atoms.get_chemical_symbols())
    centre, nbr = nlist.query_point_indices, nlist.point_indices
    kinds = {"q": {}, "qbar": dict(average=True), "w": dict(wl=True, wl_normalize=True)}
    for channel in ("all", "like", "unlike"):
        keep = channel_mask(species, centre, nbr, channel)
        sub = freud.locality.NeighborList.from_arrays(len(points), len(points), centre[keep], nbr[keep],
                                                      nlist.vectors[keep])
        np.testing.assert_array_equal(column(ours, CHANNEL_SPEC, f"n_{channel}"), sub.neighbor_counts)
        for kind, options in kinds.items():
            for l in DEGREES:
                ref = freud.order.Steinhardt(l, **options).compute((box, points), neighbors=sub).particle_order
                np.testing.assert_allclose(column(ours, CHANNEL_SPEC, f"{kind}{l}_{channel}"), ref, rtol=0,
                                           atol=FREUD_ATOL, err_msg=f"{kind}{l}_{channel}")
