"""The feature engine: one code path from any system to the feature matrix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .neighbors import neighbor_grid, spatial_order
from .spec import FeatureSpec
from .steinhardt import averaged_q, bond_orders, channel_total, invariants_w
from .systems import Frame, as_frame, check_geometry

BLOCK_SIZE = 65536


def feature_blocks(frame: Frame, spec: FeatureSpec,
                   block_size: int = BLOCK_SIZE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(atoms, features)`` for blocks of at most ``block_size`` atoms: their indices
    (n,) and features (n, len(spec.feature_names)); every atom comes once.  Memory stays
    bounded by the block size, but for neighbour-averaged features every atom's Y_lm sums
    are kept (4 * 4 * sum(l + 1) bytes per atom), and the blocks come in Morton order."""
    if spec.needs_species and frame.species is None:
        raise ValueError(f"the features {spec.channels} need the chemical species of every atom, "
                         "but the frame has no particle types / chemical symbols")
    check_geometry(frame, spec.cutoff)
    n = len(frame.positions)
    if n == 0:
        return
    codes = frame.species_codes()
    positions, order = frame.positions, np.arange(n)
    if spec.averaged:  # the averages read every neighbour's Y_lm sums: in Morton order they sit in nearby memory
        order = spatial_order(positions)
        positions, codes = positions[order], codes[order]
    grid = neighbor_grid(positions, frame.cell, frame.pbc, cutoff=spec.cutoff, num_neighbors=spec.num_neighbors)
    blocks = [slice(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    # one block's like/unlike Y_lm sums in double precision, for w_l and the frame's store
    sums_shape = (2, 2, sum(l + 1 for l in spec.degrees))
    scratch = np.empty((min(block_size, n), *sums_shape)) if spec.wigner or spec.averaged else None
    if not spec.averaged:
        for block in blocks:
            q, counts, w, _ = _bond_features(grid, block, codes, spec, scratch)
            yield order[block], _assemble(spec, q, counts, w)
        return
    store = np.empty((n, *sums_shape), dtype=np.float32)
    first = []
    for block in blocks:
        q, counts, w, sums = _bond_features(grid, block, codes, spec, scratch)
        store[block] = sums
        first.append((q, counts, w))
    all_counts = np.concatenate([counts for _, counts, _ in first])
    for block, (q, counts, w) in zip(blocks, first, strict=True):
        qbar = averaged_q(grid, block, codes, all_counts, store, spec.degrees, spec.channels)
        yield order[block], _assemble(spec, q, counts, w, qbar)


def _bond_features(grid, block: slice, codes: np.ndarray, spec: FeatureSpec, scratch: np.ndarray | None):
    """q_l, bond counts, w_l (or None) and the Y_lm sums (a view of ``scratch``, or None) of ``block``."""
    sums = None if scratch is None else scratch[: block.stop - block.start]
    q, counts = bond_orders(grid, block, codes, spec.degrees, spec.channels, sums)
    w = [invariants_w(channel_total(sums, c), spec.degrees) for c in spec.channels] if spec.wigner else None
    return q, counts, w, sums


def _assemble(spec, q, counts, w, qbar=None) -> np.ndarray:
    """Feature columns in the order of ``spec.feature_names``."""
    columns = [q.reshape(len(q), -1)]
    if qbar is not None:
        columns.append(qbar.reshape(len(qbar), -1))
    if w is not None:
        columns += w
    if spec.counts:
        columns += [channel_total(counts, c)[:, None] for c in spec.channels]
    return np.hstack(columns).astype(np.float64)


def compute_features(system, spec: FeatureSpec, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Per-atom features (N, len(spec.feature_names)) of ``system``: an ASE ``Atoms``, an
    OVITO ``DataCollection`` or a tuple ``(positions [Å], cell [Å], pbc, species)``."""
    frame = as_frame(system)
    out = np.zeros((len(frame.positions), len(spec.feature_names)))
    for atoms, values in feature_blocks(frame, spec, block_size):
        out[atoms] = values
    return out
