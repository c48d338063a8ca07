"""Scale-free neighbour definitions (N nearest, relative cutoff), radial columns and FeatureSets,
against a brute-force sum over explicit periodic images, known lattice values and
chemical orderings with known neighbour counts."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ovito.io.ase import ase_to_ovito
from scipy.special import sph_harm_y
from sklearn.tree import DecisionTreeClassifier

from ovito_atomclass import FeatureSet, FeatureSpec, compute_features, load_model
from ovito_atomclass.crystals import l12_ni3al
from ovito_atomclass.model import save_model
from ovito_atomclass.samples import random_alloy
from ovito_atomclass.spec import spec_from_dict, spec_from_json
from ovito_atomclass.training import parse_config

CHANNEL_MASKS = {"all": lambda same: np.ones_like(same), "like": lambda same: same, "unlike": lambda same: ~same}


def bonds(positions, cell, pbc, reach):
    """Per atom: every periodic copy of every atom within ``reach`` Å, sorted by distance then
    atom index, as (atom indices, bond vectors, distances); images counted explicitly."""
    cell = np.asarray(cell, dtype=float)
    spacing = [abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
               if pbc[i] else np.inf for i in range(3)]
    reps = [int(np.ceil(reach / s)) + 1 if pbc[i] else 0 for i, s in enumerate(spacing)]
    shifts = np.array(np.meshgrid(*[np.arange(-r, r + 1) for r in reps], indexing="ij")).reshape(3, -1).T @ cell
    out = []
    for p in positions:
        d = (positions[None, :, :] + shifts[:, None, :] - p).reshape(-1, 3)
        j = np.tile(np.arange(len(positions)), len(shifts))
        r = np.linalg.norm(d, axis=1)
        keep = (r > 1e-10) & (r <= reach)
        order = np.lexsort((j[keep], r[keep]))
        out.append((j[keep][order], d[keep][order], r[keep][order]))
    return out


def members(spec: FeatureSpec, r: np.ndarray) -> tuple[int, float]:
    """How many of the sorted distances ``r`` are the definition's neighbours, and the local length."""
    if spec.cutoff is not None:
        inside = int(np.sum(r <= spec.cutoff))
        return inside, r[:inside].mean() if inside else 0.0
    length = r[: spec.num_neighbors].mean()
    if spec.relative_cutoff is None:
        return spec.num_neighbors, length
    return int(np.sum(r <= spec.relative_cutoff * length)), length


def brute_force(positions, cell, pbc, species, spec: FeatureSpec, reach: float = 9.0) -> dict[str, np.ndarray]:
    """Every column of ``spec`` except w_l, by name, from scipy's Y_lm over explicit images."""
    species = np.asarray(species)
    found = bonds(positions, cell, pbc, reach)
    n = len(positions)
    qlm = {(c, l): np.zeros((n, 2 * l + 1), complex) for c in spec.channels for l in spec.degrees}
    count = {c: np.zeros(n, int) for c in spec.channels}
    neighbours, out = [], {}
    for i, (j, d, r) in enumerate(found):
        m, length = members(spec, r)
        assert m < len(r) or not any(pbc), "the brute-force reach is too short"
        j, d, r_in = j[:m], d[:m], r[:m]
        neighbours.append(j)
        theta, phi = np.arccos(d[:, 2] / r_in), np.arctan2(d[:, 1], d[:, 0])
        for c in spec.channels:
            mask = CHANNEL_MASKS[c](species[j] == species[i])
            count[c][i] = mask.sum()
            for l in spec.degrees:
                if mask.any():
                    qlm[c, l][i] = [sph_harm_y(l, mm, theta[mask], phi[mask]).mean() for mm in range(-l, l + 1)]
        for k in range(spec.radial):
            out.setdefault(f"r{k + 1}", np.zeros(n))[i] = r[k] / length

    def q_of(z, l):
        return np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(z) ** 2, axis=-1))

    for c in spec.channels:
        for l in spec.degrees:
            out[f"q{l}_{c}"] = q_of(qlm[c, l], l)
            if spec.averaged:
                in_channel = [j[CHANNEL_MASKS[c](species[j] == species[i])] for i, j in enumerate(neighbours)]
                mean = np.array([(qlm[c, l][i] + qlm[c, l][j].sum(axis=0)) / (len(j) + 1)
                                 for i, j in enumerate(in_channel)])
                out[f"qbar{l}_{c}"] = q_of(mean, l)
        out[f"n_{c}"] = count[c]
    return out


def columns(atoms, spec) -> dict[str, np.ndarray]:
    """Our features of ``atoms`` by column name."""
    return dict(zip(spec.feature_names, compute_features(atoms, spec).T, strict=True))


def assert_matches_brute_force(ours: dict[str, np.ndarray], atoms, spec: FeatureSpec, prefix: str = "") -> None:
    """``ours`` holds ``spec``'s columns (named with ``prefix``) as the brute force has them:
    q̄_l to 1e-7, since the engine keeps the neighbours' q_lm in single precision."""
    ref = brute_force(atoms.positions, atoms.cell.array, atoms.pbc, atoms.get_chemical_symbols(), spec)
    for name in spec.feature_names:
        if not name.startswith("w"):
            np.testing.assert_allclose(ours[prefix + name], ref[name], rtol=0,
                                       atol=1e-7 if name.startswith("qbar") else 1e-10, err_msg=name)


RELATIVE = dict(cutoff=None, num_neighbors=12, relative_cutoff=1.2)


@pytest.mark.parametrize("spec", [
    FeatureSpec(**RELATIVE, degrees=(4, 6), averaged=True, counts=True, radial=14),
    FeatureSpec(cutoff=None, num_neighbors=8, relative_cutoff=1.45, degrees=(6,), averaged=True, counts=True),
    FeatureSpec(cutoff=3.2, degrees=(4,), counts=True, radial=5),  # r_k beyond the cutoff; l over the cutoff's
], ids=["n12-rc1.2", "n8-rc1.45", "cutoff-radial"])
def test_relative_cutoff_and_radial_columns_match_brute_force_in_every_channel(spec):
    atoms = random_alloy(n_cells=2, seed=21)
    atoms.rattle(0.05, seed=1)
    ours = columns(atoms, spec)
    assert_matches_brute_force(ours, atoms, spec)
    assert ours["n_all"].min() < ours["n_all"].max()  # a varying number of neighbours: a real check
    assert ours["n_like"].max() > 0 and ours["n_unlike"].max() > 0


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_relative_cutoff_in_small_triclinic_cells_and_open_boundaries(pbc):
    # plane spacings below 3 Å: atoms see their own images; open directions leave some atoms
    # far from any other, so the search radius has to grow
    rng = np.random.default_rng(8)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.8, 0.0], [-0.6, 0.7, 3.3]])
    atoms = Atoms("NiAlNiAlNi", scaled_positions=rng.random((5, 3)), cell=cell, pbc=pbc)
    spec = FeatureSpec(cutoff=None, num_neighbors=4 if not any(pbc) else 12, relative_cutoff=1.3, degrees=(4, 6),
                       averaged=True, counts=True, radial=4)
    assert_matches_brute_force(columns(atoms, spec), atoms, spec)


def test_a_free_surface_needs_a_larger_search_and_gets_it():
    # a slab open along z: surface atoms' 12 nearest reach into the second layer, farther than
    # the bulk estimate of the search radius, which grows; in small blocks too
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (3, 3, 3)
    atoms.pbc = (True, True, False)
    atoms.rattle(0.02, seed=3)
    spec = FeatureSpec(cutoff=None, num_neighbors=12, relative_cutoff=1.5, degrees=(6,), averaged=True,
                       counts=True, radial=13)
    ours = columns(atoms, spec)
    assert_matches_brute_force(ours, atoms, spec)
    assert ours["n_all"].max() > 12
    np.testing.assert_array_equal(compute_features(atoms, spec, block_size=10), compute_features(atoms, spec))


@pytest.mark.parametrize("atoms, spec, expected", [
    (bulk("Ni", "fcc", a=3.52, cubic=True), RELATIVE, {"n_all": 12, "q4_all": 0.19094, "q6_all": 0.57452}),
    (bulk("Mg", "hcp", a=3.21, c=3.21 * np.sqrt(8 / 3)), RELATIVE, {"n_all": 12, "q6_all": 0.48476}),
    (bulk("Fe", "bcc", a=2.87, cubic=True), dict(cutoff=None, num_neighbors=8, relative_cutoff=1.1),
     {"n_all": 8, "q4_all": 0.50918, "q6_all": 0.62854}),
    (bulk("Fe", "bcc", a=2.87, cubic=True), dict(cutoff=None, num_neighbors=14, relative_cutoff=1.2),
     {"n_all": 14, "q4_all": 0.03637, "q6_all": 0.51069}),
    (bulk("Fe", "bcc", a=2.87, cubic=True), dict(cutoff=None, num_neighbors=8, relative_cutoff=1.2),
     {"n_all": 14, "q4_all": 0.03637}),  # 1.2 x the first shell takes in the second (at 1.155)
    (bulk("Si", "diamond", a=5.43, cubic=True), dict(cutoff=None, num_neighbors=4, relative_cutoff=1.2),
     {"n_all": 4, "q3_all": 0.74536, "q4_all": 0.50918, "q6_all": 0.62854}),
], ids=["fcc", "hcp", "bcc-8", "bcc-14", "bcc-8-rc1.2", "diamond"])
def test_perfect_lattices_have_their_known_values(atoms, spec, expected):
    spec = FeatureSpec(**spec, degrees=(3, 4, 6), channels=("all",), counts=True)
    f = compute_features(atoms * (2, 2, 2), spec)
    for name, value in expected.items():
        np.testing.assert_allclose(f[:, spec.feature_names.index(name)], value, atol=5e-6, err_msg=name)


SCALE_FREE = FeatureSet((
    FeatureSpec(**RELATIVE, averaged=True, counts=True, radial=14, label="cp"),
    FeatureSpec(cutoff=None, num_neighbors=14, relative_cutoff=1.25, degrees=(4, 6), channels=("all", "unlike"),
                averaged=True, wigner=True, label="bcc"),
    FeatureSpec(cutoff=None, num_neighbors=4, degrees=(3, 4), counts=True, radial=4, label="tet"),
))


@pytest.mark.parametrize("atoms", [
    bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3),
    random_alloy(n_cells=3, seed=4),
], ids=["fcc", "random-alloy"])
def test_features_do_not_depend_on_the_lattice_constant(atoms):
    atoms = atoms.copy()
    atoms.rattle(0.08, seed=2)
    scaled = atoms.copy()
    scaled.set_cell(atoms.cell.array * 4.05 / 3.52, scale_atoms=True)
    ours = compute_features(atoms, SCALE_FREE)
    assert np.ptp(ours, axis=0).max() > 0.1  # the atoms do differ from each other
    np.testing.assert_allclose(compute_features(scaled, SCALE_FREE), ours, rtol=0, atol=1e-9)


def test_orderings_split_their_shells_into_like_and_unlike():
    spec = FeatureSpec(**RELATIVE, counts=True)
    atoms = l12_ni3al(repeat=2)
    f = compute_features(atoms, spec)
    n = {c: f[:, spec.feature_names.index(f"n_{c}")] for c in ("like", "unlike")}
    al = np.array(atoms.get_chemical_symbols()) == "Al"
    assert (n["unlike"][al] == 12).all() and (n["like"][al] == 0).all()
    assert (n["like"][~al] == 8).all() and (n["unlike"][~al] == 4).all()
    b2 = bulk("NiAl", "cesiumchloride", a=2.88) * (3, 3, 3)
    for near, rc, like, unlike in ((8, 1.1, 0, 8), (14, 1.2, 6, 8)):
        spec = FeatureSpec(cutoff=None, num_neighbors=near, relative_cutoff=rc, counts=True)
        f = compute_features(b2, spec)
        assert (f[:, spec.feature_names.index("n_like")] == like).all()
        assert (f[:, spec.feature_names.index("n_unlike")] == unlike).all()
    # the unlike neighbours are B2's first shell, a cube: q6_unlike is that of bcc's 8 nearest
    np.testing.assert_allclose(f[:, spec.feature_names.index("q6_unlike")], 0.62854, atol=5e-6)


def test_feature_set_columns_are_its_definitions_one_after_the_other():
    atoms = random_alloy(n_cells=2, seed=6)
    atoms.rattle(0.05, seed=5)
    ours = compute_features(atoms, SCALE_FREE)
    alone = np.hstack([compute_features(atoms, s) for s in SCALE_FREE.specs])
    np.testing.assert_allclose(ours, alone, rtol=0, atol=1e-12)
    names = SCALE_FREE.feature_names
    assert names[:3] == ["cp.q4_all", "cp.q6_all", "cp.q8_all"] and names[-4:] == ["tet.r1", "tet.r2", "tet.r3",
                                                                                     "tet.r4"]
    assert names == [f"{s.label}.{n}" for s in SCALE_FREE.specs for n in s.feature_names]
    assert ours.shape == (len(atoms), len(names)) == (len(atoms), 35 + 12 + 13)
    for spec in SCALE_FREE.specs:  # and each definition is right, not only consistent
        assert_matches_brute_force(dict(zip(names, ours.T, strict=True)), atoms, spec, f"{spec.label}.")
    np.testing.assert_allclose(compute_features(atoms, SCALE_FREE, block_size=5), ours, rtol=0, atol=1e-12)


def test_feature_set_round_trips_and_old_specs_still_load():
    assert spec_from_json(SCALE_FREE.to_json()) == SCALE_FREE
    assert json.loads(SCALE_FREE.to_json())["sets"][1]["label"] == "bcc"
    old = {"averaged": True, "channels": ["all", "like", "unlike"], "counts": True, "cutoff": 4.0,
           "degrees": [4, 6, 8], "num_neighbors": None, "wigner": False}  # default.onnx's spec before the new fields
    assert spec_from_dict(old) == FeatureSpec(averaged=True, counts=True)
    assert FeatureSet.from_dict(SCALE_FREE.to_dict()).needs_species and not FeatureSet(
        (FeatureSpec(channels=("all",), label="a"),)).needs_species


@pytest.mark.parametrize("kwargs, message", [
    (dict(relative_cutoff=1.2), "relative_cutoff needs num_neighbors"),
    (dict(cutoff=None, num_neighbors=12, relative_cutoff=0.0), "relative_cutoff must be a positive"),
    (dict(cutoff=None, num_neighbors=12, relative_cutoff=float("nan")), "relative_cutoff must be a positive"),
    (dict(cutoff=None, num_neighbors=12, relative_cutoff=float("inf")), "relative_cutoff must be a positive"),
    (dict(cutoff=float("nan")), "cutoff must be a positive"),
    (dict(cutoff=None, num_neighbors=12.5), "num_neighbors must be an integer"),
    (dict(radial=-1), "radial must be an integer of at least 0"),
    (dict(radial=2.5), "radial must be an integer"),
    (dict(label="a.b"), "label must be"),
])
def test_bad_definitions_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec(**kwargs)


@pytest.mark.parametrize("specs, message", [
    ((FeatureSpec(label="a"), FeatureSpec(cutoff=3.0, label="a")), r"unique, \['a'\] repeat"),
    ((FeatureSpec(label="a"), FeatureSpec(cutoff=3.0)), "needs a label"),
    ((), "one or more"),
])
def test_bad_feature_sets_are_refused_clearly(specs, message):
    with pytest.raises(ValueError, match=message):
        FeatureSet(specs)


def test_training_config_with_feature_tables(tmp_path):
    classes = [{"name": "fccNi"}, {"name": "bccFe"}]
    # TOML has no null: a table with num_neighbors and no cutoff has none
    tables = [{"label": "cp", "num_neighbors": 12, "relative_cutoff": 1.2, "radial": 2},
              {"label": "n4", "cutoff": None, "num_neighbors": 4}]
    config = parse_config({"classes": classes, "features": tables}, tmp_path / "c.toml")
    assert config.spec == FeatureSet((FeatureSpec(cutoff=None, **tables[0]), FeatureSpec(**tables[1])))
    tables[1]["relative"] = 1.2
    with pytest.raises(ValueError, match=r"\[\[features\]\] table 2 \(n4\): .*\['relative'\]"):
        parse_config({"classes": classes, "features": tables}, tmp_path / "c.toml")
    with pytest.raises(ValueError, match="needs a label"):
        parse_config({"classes": classes, "features": [{"cutoff": 3.0}]}, tmp_path / "c.toml")


def test_a_feature_set_model_runs_in_the_modifier(tmp_path):
    from ovito_atomclass import AtomClassifierModifier

    fcc = bulk("Cu", "fcc", a=3.61, cubic=True) * (3, 3, 3)
    bcc = bulk("W", "bcc", a=3.16, cubic=True) * (4, 4, 4)
    X = np.vstack([compute_features(a, SCALE_FREE) for a in (fcc, bcc)])
    y = np.repeat([0, 1], [len(fcc), len(bcc)])
    path = save_model(DecisionTreeClassifier(random_state=0).fit(X, y), SCALE_FREE, ["fcc", "bcc"],
                      [(0, 1, 0), (1, 0, 0)], tmp_path / "set.onnx")
    assert load_model(path).spec == SCALE_FREE
    # other elements, other lattice constants: the same structures
    ni = bulk("Ni", "fcc", a=3.52, cubic=True) * (3, 3, 3)
    fe = bulk("Fe", "bcc", a=2.87, cubic=True) * (3, 3, 3)
    for atoms, expected in ((ni, 1), (fe, 2)):
        data = ase_to_ovito(atoms)
        data.apply(AtomClassifierModifier(model_file=str(path)))
        assert (np.asarray(data.particles["Structure Type"]) == expected).all()


def test_the_neighbour_store_widens_when_neighbours_do_not_fit(monkeypatch):
    # the q̄_l pass reads each atom's neighbours as stored by the bond pass; a store too narrow
    # for a block is widened and the block done again, keeping what earlier blocks stored
    from ovito_atomclass.neighbors import Definitions

    atoms = random_alloy(n_cells=3, seed=9)
    spec = FeatureSet((FeatureSpec(averaged=True, counts=True, label="cut"),
                       FeatureSpec(**RELATIVE, averaged=True, channels=("like",), label="rel")))
    expected = compute_features(atoms, spec)
    monkeypatch.setattr(Definitions, "typical_neighbors", lambda self, which, grid: 3)
    np.testing.assert_array_equal(compute_features(atoms, spec, block_size=40), expected)


def test_work_arrays_kept_between_frames_carry_no_values_over():
    # the engine keeps its large work arrays for the next frame: a frame after a different one
    # must give what it gives in fresh memory
    from ovito_atomclass import features

    dense = random_alloy(n_cells=3, seed=12)
    small = random_alloy(n_cells=2, seed=13)
    small.rattle(0.05, seed=2)
    specs = [FeatureSpec(averaged=True, counts=True), SCALE_FREE]
    features._kept.clear()
    fresh = [compute_features(small, s) for s in specs]
    for spec, expected in zip(specs, fresh, strict=True):
        compute_features(dense, SCALE_FREE)
        compute_features(dense, FeatureSpec(averaged=True, counts=True))
        assert features._kept  # memory was kept, and is now reused
        np.testing.assert_array_equal(compute_features(small, spec), expected)
