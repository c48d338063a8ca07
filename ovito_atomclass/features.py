"""The feature engine: one code path from any system to the feature matrix."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from .neighbors import Definitions, spatial_order
from .spec import FeatureSet, FeatureSpec
from .steinhardt import KernelPlan, averaged_q, bond_orders, channel_total, invariants_w
from .systems import Snapshot, as_snapshot, check_geometry

BLOCK_SIZE = 65536
# the engine's large work arrays are kept for the next frame, up to this many bytes each: fresh
# memory costs page faults (0.1-0.4 s of system time for 256,000 atoms), reused memory none
KEEP_BYTES = 1 << 30
_kept: dict[str, np.ndarray] = {}
_kept_lock = threading.Lock()


def _work_array(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array for ``role``, in the memory that the last frame's array of that
    role had if it is large enough (a frame computed in parallel gets fresh memory)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with _kept_lock:
        buffer = _kept.pop(role, None)
    if buffer is None or buffer.nbytes < size:
        buffer = np.empty(size, dtype=np.uint8)
    return buffer[:size].view(dtype).reshape(shape)


def _keep(role: str, array: np.ndarray) -> None:
    """Keep the memory of ``array`` (from :func:`_work_array`) for the next frame's ``role``."""
    buffer = array
    while buffer.base is not None:
        buffer = buffer.base
    if buffer.nbytes <= KEEP_BYTES:
        with _kept_lock:
            _kept[role] = buffer.reshape(-1).view(np.uint8)


def check_species(snapshot: Snapshot, spec: FeatureSpec | FeatureSet) -> None:
    """Raise ValueError if ``spec`` has like/unlike channels but ``snapshot`` no species."""
    if spec.needs_species and snapshot.species is None:
        channels = sorted({c for s in spec.specs for c in s.channels} - {"all"})
        raise ValueError(f"the features of the channel(s) {channels} need the chemical species of every atom, "
                         "but the frame has none (no 'Particle Type' in OVITO, no chemical symbols in ASE)")


def feature_blocks(snapshot: Snapshot, spec: FeatureSpec | FeatureSet,
                   block_size: int = BLOCK_SIZE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(atoms, features)`` for blocks of at most ``block_size`` atoms: their indices
    (n,) and features (n, len(spec.feature_names)); every atom comes once.  One neighbour
    search per atom serves every definition of ``spec``.  Memory stays bounded by the block
    size, but for neighbour-averaged features every atom's q_lm and neighbours are kept
    (4 * 2 * sum(l + 1) bytes per atom and channel of a definition with q̄_l or w_l, 4 bytes
    per neighbour), and the blocks come in Morton order."""
    specs = spec.specs
    check_species(snapshot, spec)
    check_geometry(snapshot, max((s.cutoff for s in specs if s.cutoff is not None), default=None))
    n = len(snapshot.positions)
    if n == 0:
        return
    codes = snapshot.species_codes()
    positions, order = snapshot.positions, np.arange(n)
    averaged = any(s.averaged for s in specs)
    if averaged:  # the averages read every neighbour's q_lm: in Morton order they sit in nearby memory
        order = spatial_order(positions)
        positions, codes = np.take(positions, order, axis=0), np.take(codes, order)  # take: twice as fast as [order]
    bonds = _BondPass(specs, positions, snapshot.cell, snapshot.pbc, codes, block_size, keep=averaged)
    blocks = [slice(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    try:
        if not averaged:
            for block in blocks:
                yield order[block], bonds.run(block)
            return
        firsts = [bonds.run(block) for block in blocks]
        for block, features in zip(blocks, firsts, strict=True):
            averaged_q(bonds.plan, block, codes, bonds.bond_counts, bonds.store, bonds.neighbors, features)
            yield order[block], features
    finally:
        bonds.release()


class _BondPass:
    """The bond pass over the blocks of one frame (atoms in the order the blocks index them).

    With ``keep``, every atom's bond counts (N, D, 2), q_lm of the stored channels in single
    precision (N, rows, 2, n_lm) and the neighbours of the averaged definitions (N, W)
    are kept for the neighbour averages: ``bond_counts``, ``store``, ``neighbors``.  The grid
    grows where a search was incomplete, W where neighbours did not fit, and the block is
    done again; a complete search does not depend on the radius, so earlier blocks stay valid."""

    def __init__(self, specs, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, codes: np.ndarray,
                 block_size: int, keep: bool):
        self.specs, self.codes = specs, codes
        self.defs, self.plan = Definitions.of(specs), KernelPlan.of(specs)
        self.grid = self.defs.grid(positions, cell, pbc)
        n, plan = len(codes), self.plan
        rows = n if keep else min(block_size, n)  # the frame's, or one block's at a time
        self.store = _work_array("store", (rows if plan.rows else 0, plan.rows, 2, plan.n_lm), np.float32)
        self.bond_counts = _work_array("bond_counts", (rows, len(specs), 2), np.int32)
        self.averaged = np.flatnonzero(plan.qbar_col >= 0)
        width = self.defs.typical_neighbors(plan.qbar_col >= 0, self.grid)
        self.neighbors = _work_array("neighbors", (n, width) if keep else (0, 0), np.int32)
        self.keep = keep

    def release(self) -> None:
        """Keep the work arrays' memory for the next frame."""
        for role in ("store", "bond_counts", "neighbors"):
            _keep(role, getattr(self, role))

    def run(self, block: slice) -> np.ndarray:
        """The features (n, plan.width) of ``block`` but q̄_l."""
        rows = block if self.keep else slice(0, block.stop - block.start)
        features = np.empty((block.stop - block.start, self.plan.width))
        while True:
            short = bond_orders(self.grid, self.defs, self.plan, block, self.codes, features, self.bond_counts[rows],
                                self.store[rows], self.neighbors[block] if self.keep else self.neighbors)
            if short.any() and not self.grid.exhaustive:
                self.grid = self.grid.grown()
                continue
            width = int(self.bond_counts[rows].sum(axis=2)[:, self.averaged].max(initial=0))
            if width <= self.neighbors.shape[1] or not self.keep:
                break
            wider = np.empty((len(self.neighbors), width + width // 4 + 2), dtype=np.int32)
            wider[:, : self.neighbors.shape[1]] = self.neighbors
            self.neighbors = wider
        bond_counts, means, plan = self.bond_counts[rows], self.store[rows], self.plan
        for d, s in enumerate(self.specs):
            for i, c in enumerate(s.channels):
                if s.wigner:
                    ylm = means[:, plan.row[d] + i].astype(np.float64)
                    columns = slice(plan.w_col[d] + i * len(s.degrees), plan.w_col[d] + (i + 1) * len(s.degrees))
                    features[:, columns] = invariants_w(ylm, s.degrees, plan.degrees)
                if s.counts:
                    features[:, plan.n_col[d] + i] = channel_total(bond_counts[:, d], c)
        return features


def compute_features(system, spec: FeatureSpec | FeatureSet, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Per-atom features (N, len(spec.feature_names)) of ``system``: an ASE ``Atoms``, an
    OVITO ``DataCollection`` or a tuple ``(positions [Å], cell [Å], pbc, species)``;
    ``spec`` one neighbour definition or a :class:`FeatureSet` of several."""
    snapshot = as_snapshot(system)
    out = np.zeros((len(snapshot.positions), len(spec.feature_names)))
    for atoms, values in feature_blocks(snapshot, spec, block_size):
        out[atoms] = values
    return out
