"""Adapters that turn an ASE ``Atoms``, an OVITO ``DataCollection`` or a plain tuple into
the arrays the feature engine works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbors import bounds


@dataclass(frozen=True)
class Snapshot:
    """One configuration as plain arrays.

    ``positions`` (N, 3) in Å; ``cell`` (3, 3), the cell vectors as rows in Å (zero rows
    along non-periodic directions are allowed); ``pbc`` (3,) booleans; ``species`` (N,)
    names or integer codes (equal for equal species), or None when the frame carries no
    chemical information.
    """

    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    species: np.ndarray | None

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
        if not np.isfinite(pos).all():
            bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
            raise ValueError(f"{len(bad)} atom(s) have NaN or infinite positions, the first is atom {bad[0]}")
        cell = np.zeros((3, 3)) if self.cell is None else np.asarray(self.cell, dtype=np.float64)
        if cell.shape != (3, 3) or not np.isfinite(cell).all():
            raise ValueError(f"the cell must be a finite (3, 3) matrix of cell vectors, got {cell.tolist()}")
        pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        species = self.species
        if species is not None:
            species = np.asarray(species)
            if species.shape != (len(pos),):
                raise ValueError(f"species must have one entry per atom ({len(pos)}), got shape {species.shape}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "pbc", pbc)
        object.__setattr__(self, "species", species)

    def species_codes(self) -> np.ndarray:
        """Integer code (N,) per atom, equal for equal species; all 0 without species."""
        if self.species is None:
            return np.zeros(len(self.positions), dtype=np.int64)
        if np.issubdtype(self.species.dtype, np.integer):
            return self.species.astype(np.int64, copy=False)
        return np.unique(self.species, return_inverse=True)[1].astype(np.int64)


# the largest extent of a frame, in neighbour radii, that the neighbour search handles: any
# real configuration is far below (a billion atoms span about 600 radii of 4 Å)
MAX_EXTENT_IN_RADII = 1e6


def check_geometry(snapshot: Snapshot, radius: float | None) -> None:
    """Raise ValueError saying what is wrong if ``snapshot`` cannot be searched for neighbours
    within ``radius`` (Å; None for the N nearest): a left-handed cell (inverted bounds such
    as zlo > zhi), or atoms and periodic cell vectors that spread over more than
    :data:`MAX_EXTENT_IN_RADII` radii (a tiny cutoff, a huge cell, a stray atom)."""
    cell, pbc, positions = snapshot.cell, snapshot.pbc, snapshot.positions
    if np.linalg.det(cell) < 0:
        raise ValueError(f"the cell is left-handed (its vectors, as rows, have a negative determinant): "
                         f"{cell.tolist()}; inverted box bounds such as zlo > zhi?")
    if radius is None or not len(positions):
        return
    lo, hi = bounds(positions)
    spread = (hi - lo).max()
    extent = spread + np.linalg.norm(cell[pbc], axis=1).sum()
    if extent > MAX_EXTENT_IN_RADII * radius:
        if spread >= extent / 2:
            far = int(np.argmax(np.abs(positions - np.median(positions, axis=0)).max(axis=1)))
            where = f"the atoms spread over {spread:.4g} Å (atom index {far} is at {positions[far].tolist()} Å)"
        else:
            where = f"the periodic cell vectors are {np.linalg.norm(cell, axis=1)[pbc].round(4).tolist()} Å long"
        raise ValueError(f"{where}: more than {MAX_EXTENT_IN_RADII:.0e} times the neighbour cutoff of {radius:.4g} Å; "
                         "check the coordinates, the cell and the cutoff")


def as_snapshot(system) -> Snapshot:
    """Convert ``system`` (ASE ``Atoms``, OVITO ``DataCollection``, ``Snapshot`` or a tuple
    ``(positions, cell, pbc, species)``) into a :class:`Snapshot`."""
    if isinstance(system, Snapshot):
        return system
    if isinstance(system, tuple):
        if len(system) != 4:
            raise ValueError("a system tuple must be (positions, cell, pbc, species)")
        return Snapshot(*system)
    if hasattr(system, "get_chemical_symbols") and hasattr(system, "get_positions"):
        return Snapshot(system.get_positions(), system.cell.array, system.pbc, np.array(system.get_chemical_symbols()))
    if hasattr(system, "particles") and hasattr(system, "cell"):
        return _from_data_collection(system)
    raise TypeError(f"cannot read atoms from a {type(system).__name__}; pass ASE Atoms, an OVITO DataCollection "
                    "or (positions, cell, pbc, species)")


def particle_species(particles) -> np.ndarray | None:
    """Species code (N,) of each particle from OVITO's ``Particle Type``, equal for types of
    equal name and numbered in the order of the names (types without a name are called
    ``type<id>``), or None if the frame has no such property.  A type id with no defined
    type is refused."""
    ptypes = particles.particle_types if "Particle Type" in particles else None
    if ptypes is None:
        return None
    ids = np.asarray(ptypes)
    names = {t.id: (t.name or f"type{t.id}") for t in ptypes.types}
    used = np.flatnonzero(np.bincount(ids)) if len(ids) and ids.min() >= 0 else np.unique(ids)
    unknown = sorted(set(used.tolist()) - set(names))
    if unknown:
        raise ValueError(f"particle type id(s) {unknown} are used by atoms but not defined in the frame")
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    code = {name: k for k, name in enumerate(sorted(set(names.values())))}
    first = min(min(names), 0)
    lookup = np.zeros(max(names) - first + 1, dtype=np.int64)
    for i, name in names.items():
        lookup[i - first] = code[name]
    return lookup[ids - first]


def _from_data_collection(data) -> Snapshot:
    particles = data.particles
    positions = np.asarray(particles.positions) if particles is not None and particles.count else np.zeros((0, 3))
    species = particle_species(particles) if particles is not None else None
    if data.cell is None:
        return Snapshot(positions, np.zeros((3, 3)), np.zeros(3, dtype=bool), species)
    matrix = np.asarray(data.cell)
    # OVITO's cell matrix holds the cell vectors as columns, then the origin
    return Snapshot(positions - matrix[:, 3], matrix[:, :3].T, np.asarray(data.cell.pbc), species)
