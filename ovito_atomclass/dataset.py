"""Training data: per-atom features of augmented class templates, and stratified samples."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from .augment import Augmentation, copies
from .crystals import MEMBERS, ORIGIN, Color
from .features import compute_features
from .spec import FeatureSet, FeatureSpec


@dataclass
class Dataset:
    """Features ``X`` (n, F) and labels ``y`` (n,) in 0..K-1 (indices into ``class_names``,
    whose RGB ``colors`` go along); ``feature_names`` (F,); for every row the
    configuration it came from, ``draw`` (n,) (numbered over the whole data set), that
    configuration's rattling width ``stdev`` (n,) (Å, or nearest-neighbour distances for
    relative rattling), and the ``stratum`` (n,) it is sampled from (its draw for classes
    sampled evenly across configurations, else -1); ``origins`` names the kind of template
    of every configuration (a class name, or the general library's source, see
    :data:`.crystals.ORIGIN`), indexed by ``draw``."""

    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    colors: list[Color]
    feature_names: list[str]
    draw: np.ndarray
    stdev: np.ndarray
    stratum: np.ndarray | None = None
    origins: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray) -> Dataset:
        """The rows ``rows`` (indices or mask) as a new data set with the same classes."""
        return Dataset(self.X[rows], self.y[rows], self.class_names, self.colors, self.feature_names,
                       self.draw[rows], self.stdev[rows], None if self.stratum is None else self.stratum[rows],
                       self.origins)

    def class_sizes(self) -> dict[str, int]:
        """Number of rows per class name."""
        return dict(zip(self.class_names, np.bincount(self.y, minlength=len(self.class_names)).tolist(), strict=True))

    def source_counts(self) -> dict[str, dict[str, list[int]]]:
        """{class name: {template source: [configurations, rows]}}, sources sorted by name."""
        out: dict[str, dict[str, list[int]]] = {name: {} for name in self.class_names}
        draws, first = np.unique(self.draw, return_index=True)
        rows = np.bincount(self.draw)
        for draw, row in zip(draws, first, strict=True):
            tally = out[self.class_names[self.y[row]]].setdefault(self.origins[draw], [0, 0])
            tally[0] += 1
            tally[1] += int(rows[draw])
        return {name: dict(sorted(sources.items())) for name, sources in out.items()}


def template_width(spec: FeatureSpec | FeatureSet) -> float:
    """Smallest template width (Å) so that no atom is its own neighbour: twice the largest
    cutoff plus 1 Å of room for displacements (12 Å when neighbours are counted, not cut off)."""
    return max(2.0 * s.cutoff + 1.0 if s.cutoff is not None else 12.0 for s in spec.specs)


def configurations(cls, spec: FeatureSpec | FeatureSet, augmentation: Augmentation,
                   rng: np.random.Generator) -> Iterator[tuple[float, Atoms]]:
    """``(stdev, atoms)`` of every configuration of class ``cls``: ``augmentation.copies``
    perturbed templates, or what its own ``configurations(spec, augmentation, rng)`` yields
    (frames of a trajectory, see :mod:`.trajectory`)."""
    own = getattr(cls, "configurations", None)
    if own is not None:
        return own(spec, augmentation, rng)
    width = template_width(spec)
    return copies(lambda r: cls.template(r, width), augmentation, rng)


def build_dataset(classes: Sequence, spec: FeatureSpec | FeatureSet, augmentation: Augmentation, seed: int = 0,
                  progress: bool = True) -> Dataset:
    """Features of every configuration of every class, the atoms of a configuration
    labelled with its class: all of them, or those marked in its ``MEMBERS`` array (features
    are computed on the whole configuration).  A class is an object with ``name``, ``color``
    and ``template(rng, min_width)`` (see :mod:`.crystals`), or with its own
    ``configurations`` (see :func:`configurations`) and ``n_configurations(augmentation)``;
    one with ``even_sampling = True`` is sampled evenly across its configurations
    (``Dataset.stratum``).  The same ``seed`` gives the same data set."""
    names = [c.name for c in classes]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"need at least one class and unique class names, got {names}")
    rng = np.random.default_rng(seed)
    X, y, draw, stdev, stratum, origins = [], [], [], [], [], []
    total = sum(getattr(c, "n_configurations", lambda a: a.copies)(augmentation) for c in classes)
    bar = tqdm(total=total, desc="features", unit="config", disable=not progress)
    for label, cls in enumerate(classes):
        bar.set_postfix_str(cls.name)
        for sd, atoms in configurations(cls, spec, augmentation, rng):
            members = atoms.arrays.get(MEMBERS, np.ones(len(atoms), dtype=bool)).astype(bool)
            if not members.any():
                raise ValueError(f"class {cls.name!r}: a template marks none of its atoms as members")
            X.append(compute_features(atoms, spec)[members])
            y.append(np.full(members.sum(), label))
            stratum.append(np.full(members.sum(), len(draw) if getattr(cls, "even_sampling", False) else -1))
            draw.append(np.full(members.sum(), len(draw)))
            stdev.append(np.full(members.sum(), sd))
            origins.append(atoms.info.get(ORIGIN, cls.name))
            bar.update()
    bar.close()
    return Dataset(np.vstack(X), np.concatenate(y), names, [c.color for c in classes], spec.feature_names,
                   np.concatenate(draw), np.concatenate(stdev), np.concatenate(stratum), origins)


def stratified_sample(y: np.ndarray, n_per_class: int, rng: np.random.Generator,
                      strata: np.ndarray | None = None) -> np.ndarray:
    """Row indices: ``n_per_class`` distinct rows of every label present in ``y`` (n,),
    drawn at random, grouped by label in increasing order.  With ``strata`` (n,), a label
    whose rows lie in several strata gets the same number of rows from each (a stratum with
    fewer gives all it has, the others make up for it), so no frame dominates a class."""
    labels, counts = np.unique(y, return_counts=True)
    short = {int(k): int(c) for k, c in zip(labels, counts, strict=True) if c < n_per_class}
    if short:
        raise ValueError(f"cannot draw {n_per_class} rows per class: label(s) {short} have fewer rows")
    picks = []
    for k in labels:
        rows = np.flatnonzero(y == k)
        groups, group = np.unique(strata[rows], return_inverse=True) if strata is not None else ([0], None)
        if len(groups) == 1:
            picks.append(np.sort(rng.choice(rows, n_per_class, replace=False)))
            continue
        shares = even_shares(np.bincount(group), n_per_class, rng)
        picks.append(np.sort(np.concatenate([rng.choice(rows[group == g], n, replace=False)
                                             for g, n in enumerate(shares)])))
    return np.concatenate(picks)


def even_shares(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many of ``n`` items to take from groups of ``sizes`` (m,) items, as evenly as
    the sizes allow (water filling); the last few go to groups chosen at random."""
    if n > sizes.sum():
        raise ValueError(f"cannot take {n} items from groups of {sizes.sum()} in all")
    take = np.zeros(len(sizes), dtype=np.int64)
    left = n
    while left:
        open_groups = np.flatnonzero(take < sizes)
        share = left // len(open_groups)
        if share == 0:
            take[rng.choice(open_groups, left, replace=False)] += 1
            break
        added = np.minimum(share, sizes[open_groups] - take[open_groups])
        take[open_groups] += added
        left -= int(added.sum())
    return take
