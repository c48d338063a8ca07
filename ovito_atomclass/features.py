"""The feature engine: one code path from any system to the feature matrix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .neighbors import neighbor_grid, spatial_order
from .spec import FeatureSpec
from .steinhardt import averaged_q, bond_orders, channel_count, invariants_w
from .systems import Frame, as_frame

BLOCK_SIZE = 65536


def feature_blocks(frame: Frame, spec: FeatureSpec, block_size: int = BLOCK_SIZE) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(atoms, features)`` for consecutive blocks of atoms, ``features`` of shape
    (block, len(spec.feature_names)).  Memory stays bounded by the block size unless the
    spec asks for neighbour-averaged values: those need every atom's q_lm, so the whole
    frame is computed (in Morton order) before the first block is yielded."""
    if spec.needs_species and frame.species is None:
        raise ValueError(f"the features {spec.channels} need the chemical species of every atom, "
                         "but the frame has no particle types / chemical symbols")
    n = len(frame.positions)
    if n == 0:
        return
    codes = frame.species_codes()
    positions, order = frame.positions, None
    if spec.averaged:  # the averages read every neighbour's q_lm: in Morton order they sit in nearby memory
        order = spatial_order(positions)
        positions, codes = positions[order], codes[order]
    grid = neighbor_grid(positions, frame.cell, frame.pbc, cutoff=spec.cutoff, num_neighbors=spec.num_neighbors)
    blocks = [slice(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    # each channel's normalised q_lm: of every atom for the averages, of one block for w_l
    means_shape = (len(spec.channels), 2, sum(l + 1 for l in spec.degrees))
    if not spec.averaged:
        scratch = np.zeros((block_size, *means_shape)) if spec.wigner else None
        for block in blocks:
            means = None if scratch is None else scratch[: block.stop - block.start]
            q, counts = bond_orders(grid, block, codes, spec.degrees, spec.channels, means)
            yield block, _assemble(spec, q, counts, means)
        return
    means = np.zeros((n, *means_shape))
    all_q = np.empty((n, len(spec.channels), len(spec.degrees)))
    all_counts = np.empty((n, 2), dtype=np.int64)
    for block in blocks:
        all_q[block], all_counts[block] = bond_orders(grid, block, codes, spec.degrees, spec.channels, means[block])
    features = np.empty((n, len(spec.feature_names)))
    for block in blocks:
        qbar = averaged_q(grid, block, codes, means, spec.degrees, spec.channels)
        features[order[block]] = _assemble(spec, all_q[block], all_counts[block], means[block], qbar)
    for block in blocks:
        yield block, features[block]


def _assemble(spec, q, counts, means, qbar=None) -> np.ndarray:
    """Feature columns in the order of ``spec.feature_names``."""
    columns = [q.reshape(len(q), -1)]
    if qbar is not None:
        columns.append(qbar.reshape(len(qbar), -1))
    if spec.wigner:
        columns += [invariants_w(means[:, ci], spec.degrees) for ci in range(len(spec.channels))]
    if spec.counts:
        columns += [channel_count(counts, c)[:, None] for c in spec.channels]
    return np.hstack(columns).astype(np.float64)


def compute_features(system, spec: FeatureSpec, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Per-atom features (N, len(spec.feature_names)) of ``system``: an ASE ``Atoms``, an
    OVITO ``DataCollection`` or a tuple ``(positions [Å], cell [Å], pbc, species)``."""
    frame = as_frame(system)
    out = np.zeros((len(frame.positions), len(spec.feature_names)))
    for block, values in feature_blocks(frame, spec, block_size):
        out[block] = values
    return out
