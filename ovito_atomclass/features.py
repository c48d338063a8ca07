"""The feature engine: one code path from any system to the feature matrix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .neighbors import Definitions, spatial_order
from .spec import FeatureSet, FeatureSpec
from .steinhardt import KernelPlan, averaged_q, bond_orders, channel_total, invariants_w
from .systems import Frame, as_frame, check_geometry

BLOCK_SIZE = 65536


def feature_blocks(frame: Frame, spec: FeatureSpec | FeatureSet,
                   block_size: int = BLOCK_SIZE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(atoms, features)`` for blocks of at most ``block_size`` atoms: their indices
    (n,) and features (n, len(spec.feature_names)); every atom comes once.  One neighbour
    search per atom serves every definition of ``spec``.  Memory stays bounded by the block
    size, but for neighbour-averaged features every atom's Y_lm sums and neighbours are kept
    (4 * 4 * sum(l + 1) bytes per atom and definition with q̄_l or w_l, 4 bytes per neighbour),
    and the blocks come in Morton order."""
    specs = spec.specs
    if spec.needs_species and frame.species is None:
        channels = sorted({c for s in specs for c in s.channels} - {"all"})
        raise ValueError(f"the features of the channel(s) {channels} need the chemical species of every atom, "
                         "but the frame has no particle types / chemical symbols")
    check_geometry(frame, max((s.cutoff for s in specs if s.cutoff is not None), default=None))
    n = len(frame.positions)
    if n == 0:
        return
    codes = frame.species_codes()
    positions, order = frame.positions, np.arange(n)
    averaged = any(s.averaged for s in specs)
    if averaged:  # the averages read every neighbour's Y_lm sums: in Morton order they sit in nearby memory
        order = spatial_order(positions)
        positions, codes = positions[order], codes[order]
    bonds = _BondPass(specs, positions, frame.cell, frame.pbc, codes, block_size, keep=averaged)
    blocks = [slice(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    if not averaged:
        for block in blocks:
            yield order[block], _assemble(specs, bonds.plan, *bonds.run(block))
        return
    firsts = [bonds.run(block) for block in blocks]
    for block, first in zip(blocks, firsts, strict=True):
        qbar = averaged_q(bonds.plan, block, codes, bonds.counts, bonds.store, bonds.neighbors)
        yield order[block], _assemble(specs, bonds.plan, *first, qbar)


class _BondPass:
    """The bond pass over the blocks of one frame (atoms in the order the blocks index them).

    With ``keep``, every atom's bond counts (N, D, 2), like/unlike Y_lm sums in single
    precision (N, slots, 2, 2, n_lm) and the neighbours of the averaged definitions (N, W)
    are kept for the neighbour averages: ``counts``, ``store``, ``neighbors``.  The grid
    grows where a search was incomplete, W where neighbours did not fit, and the block is
    done again; a complete search does not depend on the radius, so earlier blocks stay valid."""

    def __init__(self, specs, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, codes: np.ndarray,
                 block_size: int, keep: bool):
        self.specs, self.codes = specs, codes
        self.defs, self.plan = Definitions.of(specs), KernelPlan.of(specs)
        self.grid = self.defs.grid(positions, cell, pbc)
        n = len(codes)
        # one block's like/unlike Y_lm sums in double precision, for w_l and the frame's store
        sums_shape = (self.plan.widths["slots"], 2, 2, self.plan.n_lm)
        self.scratch = np.empty((min(block_size, n), *sums_shape)) if self.plan.widths["slots"] else None
        self.averaged = self.plan.qbar_col >= 0
        self.store = self.counts = self.neighbors = None
        if keep:
            self.store = np.empty((n, *sums_shape), dtype=np.float32)
            self.counts = np.empty((n, len(specs), 2), dtype=np.int64)
            self.neighbors = np.empty((n, self.defs.typical_neighbors(self.averaged, self.grid)), dtype=np.int32)

    def run(self, block: slice) -> tuple:
        """q_l, bond counts, radial columns and w_l ({definition: list over channels}) of ``block``."""
        sums = None if self.scratch is None else self.scratch[: block.stop - block.start]
        while True:
            neighbors = None if self.neighbors is None else self.neighbors[block]
            q, counts, radial, short = bond_orders(self.grid, self.defs, self.plan, block, self.codes, sums, neighbors)
            if short.any() and not self.grid.exhaustive:
                self.grid = self.grid.grown()
                continue
            if self.neighbors is None:
                break
            width = int(counts[:, self.averaged].sum(axis=2).max(initial=0))
            if width <= self.neighbors.shape[1]:
                self.store[block], self.counts[block] = sums, counts
                break
            wider = np.empty((len(self.neighbors), width + width // 4 + 2), dtype=np.int32)
            wider[:, : self.neighbors.shape[1]] = self.neighbors
            self.neighbors = wider
        w = {d: [invariants_w(channel_total(sums[:, self.plan.slot[d]], c), s.degrees, self.plan.degrees)
                 for c in s.channels] for d, s in enumerate(self.specs) if s.wigner}
        return q, counts, radial, w


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
