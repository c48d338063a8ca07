"""The general library (any species, any lattice constant), its training configuration, and
the shipped general model's answers on ASE-built structures of real elements."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.neighborlist import neighbor_list
from ovito.io.ase import ase_to_ovito
from ovito.modifiers import CommonNeighborAnalysisModifier as CNA

from ovito_atomclass import compute_features, load_model
from ovito_atomclass.augment import NN_DISTANCE, Augmentation, copies
from ovito_atomclass.crystals import (
    GENERAL_CLASSES,
    MEMBERS,
    ORIGIN,
    WIDTH_IN_NN,
    bulk_template,
    polycrystal_template,
    squeezed_template,
    stacking_moves,
    stacking_template,
    supercell,
    surface_template,
)
from ovito_atomclass.dataset import build_dataset
from ovito_atomclass.model import DEFAULT_THRESHOLD, models_dir
from ovito_atomclass.spec import FeatureSpec
from ovito_atomclass.training import parse_config

RNG = np.random.default_rng
GENERAL_NAMES = ["fcc", "hcp", "bcc", "diamond", "L1_2", "L1_0", "B2", "D0_3", "D0_19", "Other"]


def shells(atoms, d: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Like and unlike neighbours of every atom (N,) within ``upper`` nearest-neighbour distances ``d`` (Å)."""
    i, j = neighbor_list("ij", atoms, upper * d)
    symbols = np.array(atoms.get_chemical_symbols())
    like = np.bincount(i, weights=symbols[i] == symbols[j], minlength=len(atoms)).astype(int)
    return like, np.bincount(i, minlength=len(atoms)) - like


def by_species(atoms) -> dict[int, np.ndarray]:
    """Atom masks of the majority (0) and minority (1) species of a two-species template."""
    symbols = np.array(atoms.get_chemical_symbols())
    names, counts = np.unique(symbols, return_counts=True)
    return {rank: symbols == names[k] for rank, k in enumerate(np.argsort(-counts))}


# --- the library ---------------------------------------------------------------------


def test_general_library_names_and_templates():
    assert list(GENERAL_CLASSES) == GENERAL_NAMES
    rng = RNG(0)
    for name, cls in GENERAL_CLASSES.items():
        for _ in range(3):
            atoms = cls.template(rng, min_width=9.0)
            d = atoms.info[NN_DISTANCE]
            assert 2.0 <= d <= 3.5 and atoms.info[ORIGIN].endswith(")"), name
            members = atoms.arrays.get(MEMBERS, np.ones(len(atoms), bool))
            assert members.any(), (name, atoms.info[ORIGIN])
            if atoms.pbc.all():  # polycrystals are open clusters with a margin
                widths = atoms.cell.volume / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]], atoms.cell[[2, 0, 1]]),
                                                            axis=1)
                assert widths.min() >= min(WIDTH_IN_NN * d, 9.0) - 1e-6, (name, atoms.info[ORIGIN])


@pytest.mark.parametrize("kind, first", [("fcc", 12), ("hcp", 12), ("bcc", 8), ("diamond", 4)])
def test_lattices_have_the_drawn_nearest_neighbour_distance(kind, first):
    atoms = bulk_template(RNG(1), 2.7, 12.0, kind, "pure")
    like, unlike = shells(atoms, 2.7, 1.04)
    assert (like == first).all() and not unlike.any()
    assert len(set(atoms.get_chemical_symbols())) == 1


@pytest.mark.parametrize("kind, ratio, majority, minority", [
    # (like, unlike) nearest neighbours of the majority and the minority species
    ("L1_2", 3, {(8, 4)}, {(0, 12)}),
    ("L1_0", 1, {(4, 8)}, {(4, 8)}),
    ("B2", 1, {(0, 8)}, {(0, 8)}),
    ("D0_3", 3, {(8, 0), (4, 4)}, {(0, 8)}),
    ("D0_19", 3, {(8, 4)}, {(0, 12)}),
])
def test_orderings_have_their_composition_and_like_unlike_neighbours(kind, ratio, majority, minority):
    atoms = bulk_template(RNG(2), 2.5, 12.0, kind, "ordered")
    species = by_species(atoms)
    assert species[0].sum() == ratio * species[1].sum()
    like, unlike = shells(atoms, 2.5, 1.04 if kind not in ("L1_0", "D0_19") else 1.08)  # tetragonal, real c/a
    assert set(zip(like[species[0]], unlike[species[0]], strict=True)) == majority
    assert set(zip(like[species[1]], unlike[species[1]], strict=True)) == minority


def test_b2_and_d0_3_second_shells():
    # B2: the 6 second neighbours are like; D0_3: the minority atom's 14 first and second are all unlike
    b2 = bulk_template(RNG(3), 2.5, 12.0, "B2", "ordered")
    like, unlike = shells(b2, 2.5, 1.2)
    assert (like == 6).all() and (unlike == 8).all()
    d03 = bulk_template(RNG(3), 2.5, 12.0, "D0_3", "ordered")
    like, unlike = shells(d03, 2.5, 1.2)
    assert (unlike[by_species(d03)[1]] == 14).all()


def test_solid_solutions_mix_two_or_three_species_at_any_composition():
    fractions, kinds = [], set()
    rng = RNG(4)
    for _ in range(40):
        symbols = np.array(bulk_template(rng, 2.5, 12.0, "fcc", "solution").get_chemical_symbols())
        _, counts = np.unique(symbols, return_counts=True)
        kinds.add(len(counts))
        fractions.append(counts.min() / len(symbols))
    assert kinds == {2, 3} and min(fractions) < 0.1 and max(fractions) > 0.3


def test_stacking_sequences_close_and_mark_the_layers_adaptive_cna_calls_hcp():
    rng = RNG(5)
    for base in ("fcc", "hcp"):
        for layers in (6, 7, 13):
            assert stacking_moves(base, layers, 0.3, rng).sum() % 3 == 0
    for members in ("hcp", "fcc"):
        atoms = stacking_template(RNG(6), 2.55, 15.0, "fcc", members, "pure", fault_probability=(0.2, 0.2))
        data = ase_to_ovito(Atoms(atoms.symbols, atoms.positions, cell=atoms.cell, pbc=True))  # no bool arrays
        data.apply(CNA())
        cna = np.asarray(data.particles["Structure Type"])
        expected = CNA.Type.HCP if members == "hcp" else CNA.Type.FCC
        assert atoms.arrays[MEMBERS].any() and not atoms.arrays[MEMBERS].all()
        np.testing.assert_array_equal(atoms.arrays[MEMBERS], cna == expected)


def test_surfaces_mark_the_outermost_layer():
    atoms = surface_template(RNG(7), 2.5, 15.0, "fcc", "pure", miller=(1, 1, 1))
    z = atoms.positions[:, 2]
    layers = np.unique(np.round(z, 3))
    outer = np.isclose(z, layers[0]) | np.isclose(z, layers[-1])
    np.testing.assert_array_equal(atoms.arrays[MEMBERS], outer)
    assert np.ptp(z) >= 15.0 and atoms.cell[2, 2] - np.ptp(z) >= 15.0  # as much vacuum as slab


def test_polycrystal_grain_boundaries_are_inside_the_margin_and_nothing_overlaps():
    atoms = polycrystal_template(RNG(8), 2.5, 8.0, "bcc", "pure")
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 0.7 * 2.5 and not atoms.pbc.any()
    members = atoms.arrays[MEMBERS]
    inside = np.all((atoms.positions >= 10.0) & (atoms.positions < atoms.cell.lengths() - 10.0), axis=1)
    assert 0 < members.sum() < inside.sum() and (inside[members]).all()


def test_squeezed_atoms_sit_at_half_the_nearest_neighbour_distance():
    atoms = squeezed_template(RNG(9), 2.5, 12.0, "fcc")
    i, d = neighbor_list("id", atoms, 1.3)
    marked = np.flatnonzero(atoms.arrays[MEMBERS])
    assert np.isin(np.unique(i), marked).all() and np.allclose(d, 1.25)
    assert len(marked) == 3 * np.count_nonzero(np.bincount(i, minlength=len(atoms)) == 2)


def test_relative_rattling_scales_with_the_nearest_neighbour_distance():
    augmentation = Augmentation(rattle=(0.05,), draws=1, relative=True)
    for d in (2.2, 3.3):
        ideal = bulk_template(RNG(10), d, 20.0, "fcc", "pure")
        ideal.info[NN_DISTANCE] = d
        (_, shaken), = copies(lambda r, a=ideal: a.copy(), augmentation, RNG(11))
        assert np.std(shaken.positions - ideal.positions) == pytest.approx(0.05 * d, rel=0.05)
    with pytest.raises(ValueError, match="nearest-neighbour distance"):
        next(copies(lambda r: bulk("Cu", "fcc", a=3.6), augmentation, RNG(0)))


def test_general_config_and_data_set_sources(tmp_path):
    raw = {"library": "general", "features": {"num_neighbors": 12, "averaged": True},
           "augmentation": {"rattle": [0.02], "draws": 2, "relative": True},
           "classes": [{"name": "fcc"}, {"name": "Other", "color": [0.5, 0.5, 0.5]}]}
    config = parse_config(raw, tmp_path / "c.toml")
    assert config.spec == FeatureSpec(cutoff=None, num_neighbors=12, averaged=True)
    assert [c.name for c in config.classes] == ["fcc", "Other"] and config.classes[1].color == (0.5, 0.5, 0.5)
    data = build_dataset(config.classes, config.spec, config.augmentation, seed=0, progress=False)
    sources = data.source_counts()
    assert sum(n for n, _ in sources["fcc"].values()) == 2 and all(s.endswith(")") for s in sources["Other"])
    assert {c: sum(rows for _, rows in s.values()) for c, s in sources.items()} == data.class_sizes()
    for bad, message in (({"library": "mine"}, "library must be one of"),
                         ({"classes": [{"name": "fccNi"}, {"name": "fcc"}]}, "not in the library 'general'"),
                         ({"classes": [{"name": "fcc", "substitute": ["Ni", "Al", 0.1]}, {"name": "bcc"}]},
                          "no substitute")):
        with pytest.raises(ValueError, match=message):
            parse_config({**raw, **bad}, tmp_path / "c.toml")


# --- the shipped general model --------------------------------------------------------


def _l10(a: float, c: float):
    """CuAu L1_0: Au on the z = c/2 planes of a tetragonal fcc cell (Å)."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.set_cell(np.diag([a, a, c]), scale_atoms=True)
    atoms.symbols[np.isclose(atoms.get_scaled_positions()[:, 2], 0.5)] = "Au"
    return atoms


def _l12(a: float):
    """Cu3Au L1_2: Au on the cube corners (Å)."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.symbols[0] = "Au"
    return atoms


REAL_CRYSTALS = {  # name: (unit cell, repeats, expected class)
    "fcc Cu": (bulk("Cu", "fcc", a=3.615, cubic=True), 4, "fcc"),
    "fcc Pb": (bulk("Pb", "fcc", a=4.95, cubic=True), 3, "fcc"),
    "bcc W": (bulk("W", "bcc", a=3.165, cubic=True), 5, "bcc"),
    "bcc Nb": (bulk("Nb", "bcc", a=3.30, cubic=True), 5, "bcc"),
    "hcp Ti": (bulk("Ti", "hcp", a=2.951, c=4.686, orthorhombic=True), 4, "hcp"),
    "hcp Zr": (bulk("Zr", "hcp", a=3.232, c=5.147, orthorhombic=True), 4, "hcp"),
    "diamond Si": (bulk("Si", "diamond", a=5.431, cubic=True), 3, "diamond"),
    "diamond Ge": (bulk("Ge", "diamond", a=5.658, cubic=True), 3, "diamond"),
    "L1_2 Cu3Au": (_l12(3.75), 4, "L1_2"),
    "L1_0 CuAu": (_l10(3.96, 3.67), 4, "L1_0"),
    "B2 NiAl": (bulk("NiAl", "cesiumchloride", a=2.887), 5, "B2"),
}
@pytest.fixture(scope="module")
def general():
    model = load_model(models_dir() / "default.onnx")
    assert model.classes == GENERAL_NAMES
    return model


def classify(model, atoms) -> tuple[np.ndarray, np.ndarray]:
    """Class names (N,) and confidence (N,) of the general model, as the modifier gives them
    (below the default threshold = Other)."""
    proba = model.predict_proba(compute_features(atoms, model.spec))
    labels = np.array(model.classes)[proba.argmax(axis=1)]
    return np.where(proba.max(axis=1) >= DEFAULT_THRESHOLD, labels, "Other"), proba.max(axis=1)


@pytest.mark.parametrize("name", list(REAL_CRYSTALS))
def test_general_model_names_perfect_and_rattled_crystals_of_real_elements(general, name):
    cell, repeats, expected = REAL_CRYSTALS[name]
    atoms = cell * (repeats, repeats, repeats)
    labels, confidence = classify(general, atoms)
    # > 0.7: the 12 and 14 nearest cut through the second shell of diamond, whose ties break by rounding
    assert (labels == expected).all() and confidence.min() > 0.7, (name, confidence.min())
    d = neighbor_list("d", atoms, 4.0).min()
    hot = atoms.copy()
    hot.positions += RNG(1).normal(0.0, 0.06 * d, hot.positions.shape)  # a Lindemann ratio of 0.10
    assert np.mean(classify(general, hot)[0] == expected) >= 0.98, name


def test_general_model_finds_the_intrinsic_stacking_fault_and_the_free_surface(general):
    a = 3.615
    fault = fcc111("Cu", size=(4, 6, 12), a=a, orthogonal=True, periodic=True)
    upper = fault.positions[:, 2] > 0.5 * fault.cell[2, 2] - 0.1
    partial = np.array([0.0, -a / np.sqrt(6), 0.0])  # a/6 <112>: the upper half slips, and the cell with it
    fault.positions[upper] += partial
    fault.set_cell(fault.cell.array + [[0, 0, 0], [0, 0, 0], partial])
    fault.wrap()
    data = ase_to_ovito(fault)
    data.apply(CNA())
    hcp = np.asarray(data.particles["Structure Type"]) == CNA.Type.HCP
    assert hcp.sum() == 2 * 24  # the two planes of the fault
    labels, _ = classify(general, fault)
    assert (labels[hcp] == "hcp").all() and (labels[~hcp] == "fcc").all()
    slab = fcc111("Cu", size=(6, 6, 12), a=a, vacuum=10.0, orthogonal=True)
    slab.pbc = True
    slab.positions += RNG(2).normal(0.0, 0.03 * a / np.sqrt(2), slab.positions.shape)
    labels, _ = classify(general, slab)
    layer = slab.get_tags()
    assert np.mean(labels[np.isin(layer, [1, 12])] == "Other") >= 0.9
    assert np.mean(labels[(layer >= 3) & (layer <= 10)] == "fcc") >= 0.99


def test_general_model_is_not_confident_about_what_it_does_not_know(general):
    from ase.spacegroup import crystal

    unknown = {  # crystals outside the library and its training data
        "fluorite": bulk("CaF2", "fluorite", a=5.46),
        "alpha-U": crystal("U", [(0, 0.1025, 0.25)], spacegroup=63, cellpar=[2.854, 5.869, 4.955, 90, 90, 90]),
        "perovskite": crystal(["Sr", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                              cellpar=[3.905] * 3 + [90] * 3),
        "simple hexagonal": crystal("Mg", [(0, 0, 0)], spacegroup=191, cellpar=[2.6, 2.6, 2.6, 90, 90, 120]),
    }
    for name, cell in unknown.items():
        labels, _ = classify(general, supercell(cell, 16.0))
        assert np.mean(labels == "Other") >= 0.9, name
    squeezed = squeezed_template(RNG(3), 2.55, 16.0, "fcc")  # extra atoms at half the bond length
    labels, _ = classify(general, squeezed)
    assert np.mean(labels[squeezed.arrays[MEMBERS]] == "Other") >= 0.9
