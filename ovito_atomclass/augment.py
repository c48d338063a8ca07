"""Augmentation: perturbed copies of a template, so that a model trained on ideal crystals
holds on thermally disordered ones.

Two perturbations, both cheap: Gaussian rattling (independent displacements of every atom,
standard deviation in Å per Cartesian component, as in the reference study) and a random
homogeneous strain (thermal expansion, anisotropic and shear deformation).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
from ase import Atoms

NN_DISTANCE = "nn_distance"
"""``atoms.info`` key of a template: its nearest-neighbour distance (Å) before any
perturbation, the unit of relative rattling (:class:`Augmentation`)."""

# the reference study: six Gaussians from 0.001 to 0.03 Å, 20 draws each, not cumulative
REFERENCE_RATTLE = tuple(float(v) for v in np.round(np.linspace(0.001, 0.03, 6), 6))


@dataclass(frozen=True)
class Augmentation:
    """For every standard deviation in ``rattle`` (Å), ``draws`` copies of a freshly built
    template, each displaced by independent Gaussian noise of that width and, if
    ``strain`` > 0, deformed by a random symmetric strain tensor whose six independent
    components are uniform in [-strain, strain] (a fraction: 0.03 is 3 %).  With
    ``relative``, ``rattle`` is in units of each template's nearest-neighbour distance
    (``atoms.info[NN_DISTANCE]``, set by the general library): thermal vibration of any
    element (a Lindemann ratio L is a width of L / sqrt(3))."""

    rattle: tuple[float, ...] = REFERENCE_RATTLE
    draws: int = 20
    strain: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        rattle = tuple(float(v) for v in np.atleast_1d(self.rattle))
        if not rattle or any(not 0.0 <= v < 2.0 for v in rattle):
            raise ValueError(f"rattle must be a non-empty list of standard deviations in 0..2 Å, got {self.rattle!r}")
        if int(self.draws) < 1:
            raise ValueError(f"draws must be at least 1, got {self.draws!r}")
        if not 0.0 <= float(self.strain) < 0.5:
            raise ValueError(f"strain must be a fraction in 0..0.5, got {self.strain!r}")
        object.__setattr__(self, "rattle", rattle)
        object.__setattr__(self, "draws", int(self.draws))
        object.__setattr__(self, "strain", float(self.strain))
        if not isinstance(self.relative, bool):
            raise ValueError(f"relative must be true or false, got {self.relative!r}")

    @property
    def copies(self) -> int:
        """Number of perturbed copies per class."""
        return len(self.rattle) * self.draws

    def stdevs(self) -> np.ndarray:
        """The rattling width (Å) of each copy, in the order they are made."""
        return np.repeat(self.rattle, self.draws)

    def to_dict(self) -> dict:
        """The fields as a plain dict (the ``[augmentation]`` table of a configuration)."""
        return {"rattle": list(self.rattle), "draws": self.draws, "strain": self.strain, "relative": self.relative}

    @classmethod
    def from_dict(cls, data: dict) -> Augmentation:
        """An Augmentation from a configuration's ``[augmentation]`` table; ValueError names unknown keys."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"augmentation does not know the key(s) {unknown}; use rattle, draws, strain, relative")
        return cls(**data)


def rattle(atoms: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
    """A copy of ``atoms`` with Gaussian displacements of ``stdev`` (Å) per component."""
    out = atoms.copy()
    out.positions += rng.normal(0.0, stdev, size=out.positions.shape)
    return out


def random_strain(amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Symmetric strain tensor (3, 3), independent components uniform in ±``amplitude``."""
    upper = np.triu(rng.uniform(-amplitude, amplitude, size=(3, 3)))
    return upper + np.triu(upper, 1).T


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with cell and positions deformed by ``(1 + strain)``."""
    out = atoms.copy()
    out.set_cell(out.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
    return out


def perturb(atoms: Atoms, stdev: float, strain: float, rng: np.random.Generator) -> Atoms:
    """``atoms`` strained at random by up to ``strain`` (fraction), then rattled by ``stdev`` (Å)."""
    if strain > 0.0:
        atoms = strained(atoms, random_strain(strain, rng))
    return rattle(atoms, stdev, rng) if stdev > 0.0 else atoms.copy()


def copies(build, augmentation: Augmentation, rng: np.random.Generator) -> Iterator[tuple[float, Atoms]]:
    """Yield ``(stdev, atoms)`` for every copy of ``augmentation``; ``build(rng)`` makes
    a fresh template for each (random substitutions and packings are redrawn)."""
    for stdev in augmentation.stdevs():
        atoms = build(rng)
        unit = 1.0
        if augmentation.relative:
            if NN_DISTANCE not in atoms.info:
                raise ValueError("relative rattling needs templates that know their nearest-neighbour distance "
                                 "(the general library's classes); set relative = false for these classes")
            unit = atoms.info[NN_DISTANCE]
        yield float(stdev), perturb(atoms, stdev * unit, augmentation.strain, rng)
