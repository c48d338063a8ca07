"""The feature engine: one code path from any system to the feature matrix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .neighbors import Definitions, spatial_order
from .spec import FeatureSet, FeatureSpec
from .steinhardt import KernelPlan, averaged_q, bond_orders, channel_total, invariants_w
from .systems import Frame, as_frame

BLOCK_SIZE = 65536


def feature_blocks(frame: Frame, spec: FeatureSpec | FeatureSet,
                   block_size: int = BLOCK_SIZE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(atoms, features)`` for blocks of at most ``block_size`` atoms: their indices
    (n,) and features (n, len(spec.feature_names)); every atom comes once.  One neighbour
    search per atom serves every definition of ``spec``.  Memory stays bounded by the block
    size, but for neighbour-averaged features every atom's Y_lm sums are kept (4 * 4 *
    sum(l + 1) bytes per atom and definition with q̄_l or w_l), and the blocks come in Morton order."""
    specs = spec.specs
    if spec.needs_species and frame.species is None:
        channels = sorted({c for s in specs for c in s.channels} - {"all"})
        raise ValueError(f"the features of the channel(s) {channels} need the chemical species of every atom, "
                         "but the frame has no particle types / chemical symbols")
    n = len(frame.positions)
    if n == 0:
        return
    codes = frame.species_codes()
    positions, order = frame.positions, np.arange(n)
    averaged = any(s.averaged for s in specs)
    if averaged:  # the averages read every neighbour's Y_lm sums: in Morton order they sit in nearby memory
        order = spatial_order(positions)
        positions, codes = positions[order], codes[order]
    defs, plan = Definitions.of(specs), KernelPlan.of(specs)
    grid = defs.grid(positions, frame.cell, frame.pbc)
    blocks = [slice(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    # one block's like/unlike Y_lm sums in double precision, for w_l and the frame's store
    sums_shape = (plan.widths["slots"], 2, 2, plan.n_lm)
    scratch = np.empty((min(block_size, n), *sums_shape)) if plan.widths["slots"] else None
    if not averaged:
        for block in blocks:
            grid, first = _bond_features(grid, defs, plan, specs, block, codes, scratch)
            yield order[block], _assemble(specs, plan, *first)
        return
    store = np.empty((n, *sums_shape), dtype=np.float32)
    all_counts = np.empty((n, len(specs), 2), dtype=np.int64)
    firsts = []
    for block in blocks:
        grid, first = _bond_features(grid, defs, plan, specs, block, codes, scratch)
        store[block] = scratch[: block.stop - block.start]
        all_counts[block] = first[1]
        firsts.append(first)
    for block, first in zip(blocks, firsts, strict=True):
        qbar = averaged_q(grid, defs, plan, block, codes, all_counts, store)
        yield order[block], _assemble(specs, plan, *first, qbar)


def _bond_features(grid, defs: Definitions, plan: KernelPlan, specs, block: slice, codes: np.ndarray,
                   scratch: np.ndarray | None):
    """The grid (grown until every search of ``block`` was complete) and ``block``'s q_l, bond
    counts, radial columns and w_l ({definition: list over channels}); the Y_lm sums go into
    ``scratch``.  A search result does not depend on the radius once complete, so blocks
    done on a smaller grid stay valid."""
    sums = None if scratch is None else scratch[: block.stop - block.start]
    while True:
        q, counts, radial, short = bond_orders(grid, defs, plan, block, codes, sums)
        if grid.exhaustive or not short.any():
            break
        grid = grid.grown()
    w = {d: [invariants_w(channel_total(sums[:, plan.slot[d]], c), s.degrees, plan.degrees) for c in s.channels]
         for d, s in enumerate(specs) if s.wigner}
    return grid, (q, counts, radial, w)


def _assemble(specs, plan: KernelPlan, q, counts, radial, w, qbar=None) -> np.ndarray:
    """Feature columns in the order of ``feature_names``: definition by definition, q_l, q̄_l,
    w_l, counts, radial."""
    columns = []
    for d, s in enumerate(specs):
        width = len(s.channels) * len(s.degrees)
        columns.append(q[:, plan.q_col[d] : plan.q_col[d] + width])
        if s.averaged:
            columns.append(qbar[:, plan.qbar_col[d] : plan.qbar_col[d] + width])
        columns += w.get(d, [])
        if s.counts:
            columns += [channel_total(counts[:, d], c)[:, None] for c in s.channels]
        columns.append(radial[:, plan.r_col[d] : plan.r_col[d] + s.radial])
    return np.hstack(columns).astype(np.float64)


def compute_features(system, spec: FeatureSpec | FeatureSet, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Per-atom features (N, len(spec.feature_names)) of ``system``: an ASE ``Atoms``, an
    OVITO ``DataCollection`` or a tuple ``(positions [Å], cell [Å], pbc, species)``;
    ``spec`` one neighbour definition or a :class:`FeatureSet` of several."""
    frame = as_frame(system)
    out = np.zeros((len(frame.positions), len(spec.feature_names)))
    for atoms, values in feature_blocks(frame, spec, block_size):
        out[atoms] = values
    return out
