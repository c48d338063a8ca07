"""Neighbour lists over plain arrays: cutoff or N nearest, any cell, any boundaries.

Periodic images are made explicit as ghost atoms in a padded region around the cell, so
cells smaller than the cutoff (where an atom sees its own images) need no special case.
The ghosts and the centres are sorted into a grid of bins no smaller than the search
radius, and the search over a block of centres runs in parallel with numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# The largest number of periodic images the padding may create per real atom; beyond it
# the cell is absurdly small for the cutoff and the caller is told so.
_MAX_IMAGES_PER_ATOM = 4096


@dataclass(frozen=True)
class NeighborList:
    """Neighbours of a block of centre atoms in compressed-row form.

    ``offsets`` (n_centres + 1,) indexes ``indices`` (n_bonds,), the neighbours' atom
    indices (periodic images map to their atom), and ``vectors`` (n_bonds, 3), the bond
    vectors in Å from centre to neighbour, sorted by distance for each centre.
    """

    offsets: np.ndarray
    indices: np.ndarray
    vectors: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Number of neighbours (n_centres,) of each centre atom."""
        return np.diff(self.offsets)


def complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Return the (3, 3) cell, rows a, b, c in Å, with zero non-periodic vectors replaced
    by unit vectors perpendicular to the others; raise ValueError if it is degenerate."""
    cell = np.array(cell, dtype=np.float64).reshape(3, 3)
    for i in range(3):
        if not pbc[i] and not np.any(cell[i]):
            j, k = (i + 1) % 3, (i + 2) % 3
            normal = np.cross(cell[j], cell[k])
            if np.linalg.norm(normal) < 1e-12:
                normal = np.eye(3)[i]
            cell[i] = normal / np.linalg.norm(normal)
    if pbc.any():
        volume = abs(np.linalg.det(cell))
        lengths = np.linalg.norm(cell, axis=1)
        if not np.isfinite(volume) or volume < 1e-9 * max(np.prod(lengths), 1e-300):
            raise ValueError(f"the simulation cell is degenerate (volume {volume:.3g} Å^3): {cell.tolist()}")
    return cell


def _padded_images(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, radius: float):
    """Real atoms first, then every periodic image within ``radius`` of the cell.

    Returns Cartesian positions (M, 3) and the atom each row is a copy of (M,).
    """
    n = len(positions)
    owner = np.arange(n, dtype=np.int64)
    if not pbc.any():
        return positions.copy(), owner
    # einsum, not @: a BLAS product would wake OpenBLAS threads that spin beside numba's
    frac = np.einsum("ij,jk->ik", positions, np.linalg.inv(cell))
    frac[:, pbc] -= np.floor(frac[:, pbc])
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, 0.0, frac[:, pbc])  # rounding at 1 - eps
    volume = abs(np.linalg.det(cell))
    spacing = volume / np.linalg.norm(np.cross(np.roll(cell, -1, 0), np.roll(cell, -2, 0)), axis=1)
    pad = radius / spacing
    if np.prod(np.where(pbc, 2 * np.ceil(pad) + 1, 1)) > _MAX_IMAGES_PER_ATOM:
        raise ValueError(
            f"the cell (plane spacings {np.round(spacing, 3).tolist()} Å) is too small for a "
            f"neighbour radius of {radius:.3g} Å: more than {_MAX_IMAGES_PER_ATOM} images per atom"
        )
    reach = np.where(pbc, np.ceil(pad), 0).astype(np.int64)
    pad = np.where(pbc, pad, np.inf)  # atoms may lie anywhere along open directions
    counts = _images(frac, pad, reach, np.empty((0, 3)), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ghost_frac = np.empty((offsets[-1], 3))
    ghost_owner = np.empty(offsets[-1], dtype=np.int64)
    _images(frac, pad, reach, ghost_frac, ghost_owner, offsets)
    return np.einsum("ij,jk->ik", np.concatenate([frac, ghost_frac]), cell), np.concatenate([owner, ghost_owner])


@numba.njit(parallel=True, cache=True)
def _images(frac, pad, reach, out_frac, out_owner, offsets):
    """For each atom, the periodic images (shift != 0) whose fractional coordinates lie
    within ``pad`` of the unit cube: counted (n,) if ``out_frac`` is empty, else written
    from ``offsets[atom]`` on."""
    n = len(frac)
    counts = np.zeros(n, dtype=np.int64)
    fill = len(out_frac) > 0
    for a in numba.prange(n):
        c = 0
        for i in range(-reach[0], reach[0] + 1):
            x = frac[a, 0] + i
            if x < -pad[0] or x >= 1.0 + pad[0]:
                continue
            for j in range(-reach[1], reach[1] + 1):
                y = frac[a, 1] + j
                if y < -pad[1] or y >= 1.0 + pad[1]:
                    continue
                for k in range(-reach[2], reach[2] + 1):
                    z = frac[a, 2] + k
                    if z < -pad[2] or z >= 1.0 + pad[2] or (i == 0 and j == 0 and k == 0):
                        continue
                    if fill:
                        out_frac[offsets[a] + c, 0] = x
                        out_frac[offsets[a] + c, 1] = y
                        out_frac[offsets[a] + c, 2] = z
                        out_owner[offsets[a] + c] = a
                    c += 1
        counts[a] = c
    return counts


@numba.njit(cache=True, inline="always")
def _home_bin(p, origin, inv_bin, nbins):
    """Grid cell (x, y, z) of point ``p``, clamped to the grid."""
    return (min(max(int((p[0] - origin[0]) * inv_bin[0]), 0), nbins[0] - 1),
            min(max(int((p[1] - origin[1]) * inv_bin[1]), 0), nbins[1] - 1),
            min(max(int((p[2] - origin[2]) * inv_bin[2]), 0), nbins[2] - 1))


@numba.njit(cache=True)
def candidates(p, bin_start, origin, inv_bin, nbins):
    """How many atoms the 27 bins around point ``p`` hold: an upper bound on its neighbours."""
    b = _home_bin(p, origin, inv_bin, nbins)
    c = 0
    for x in range(max(b[0] - 1, 0), min(b[0] + 2, nbins[0])):
        for y in range(max(b[1] - 1, 0), min(b[1] + 2, nbins[1])):
            first = (x * nbins[1] + y) * nbins[2]
            c += bin_start[first + min(b[2] + 2, nbins[2])] - bin_start[first + max(b[2] - 1, 0)]
    return c


@numba.njit(cache=True)
def gather(p, bin_start, spos, sowner, origin, inv_bin, nbins, r2max, idx, vec, store):
    """Neighbours of point ``p`` within sqrt(r2max): atom indices into ``idx``, bond vectors
    into ``vec`` (if ``store``); returns their number.  Coincident atoms are not neighbours."""
    b = _home_bin(p, origin, inv_bin, nbins)
    c = 0
    for x in range(max(b[0] - 1, 0), min(b[0] + 2, nbins[0])):
        for y in range(max(b[1] - 1, 0), min(b[1] + 2, nbins[1])):
            first = (x * nbins[1] + y) * nbins[2]
            for k in range(bin_start[first + max(b[2] - 1, 0)], bin_start[first + min(b[2] + 2, nbins[2])]):
                dx = spos[k, 0] - p[0]
                dy = spos[k, 1] - p[1]
                dz = spos[k, 2] - p[2]
                r2 = dx * dx + dy * dy + dz * dz
                if r2 <= r2max and r2 > 1e-20:
                    if store:
                        idx[c] = sowner[k]
                        vec[c, 0] = dx
                        vec[c, 1] = dy
                        vec[c, 2] = dz
                    c += 1
    return c


@numba.njit(cache=True)
def keep_nearest(idx, vec, count, k):
    """Sort the first ``count`` bonds by length, ties by atom index (an insertion sort:
    rows are short), and return how many to keep: at most ``k``."""
    r2 = np.empty(count)
    for a in range(count):
        r2[a] = vec[a, 0] ** 2 + vec[a, 1] ** 2 + vec[a, 2] ** 2
    for a in range(1, count):
        ra, ia = r2[a], idx[a]
        v0, v1, v2 = vec[a, 0], vec[a, 1], vec[a, 2]
        j = a - 1
        while j >= 0 and (r2[j] > ra or (r2[j] == ra and idx[j] > ia)):
            r2[j + 1], idx[j + 1] = r2[j], idx[j]
            vec[j + 1, 0], vec[j + 1, 1], vec[j + 1, 2] = vec[j, 0], vec[j, 1], vec[j, 2]
            j -= 1
        r2[j + 1], idx[j + 1] = ra, ia
        vec[j + 1, 0], vec[j + 1, 1], vec[j + 1, 2] = v0, v1, v2
    return min(k, count)


@numba.njit(cache=True)
def neighbors_of(p, grid, k, idx, vec):
    """Neighbours of point ``p`` in ``grid`` (:attr:`NeighborGrid.arrays`), the ``k`` nearest if
    k > 0, sorted by distance when k > 0: returns (idx, vec, count), where ``idx``/``vec`` are
    the scratch arrays passed in, or larger ones if they were too small."""
    bin_start, spos, sowner, origin, inv_bin, nbins, r2max = grid
    cap = candidates(p, bin_start, origin, inv_bin, nbins)
    if cap > len(idx):
        idx = np.empty(2 * cap, dtype=np.int64)
        vec = np.empty((2 * cap, 3))
    c = gather(p, bin_start, spos, sowner, origin, inv_bin, nbins, r2max, idx, vec, True)
    if k > 0:
        c = keep_nearest(idx, vec, c, k)
    return idx, vec, c


@numba.njit(parallel=True, cache=True)
def _count(cpos, bin_start, spos, sowner, origin, inv_bin, nbins, r2max):
    counts = np.zeros(len(cpos), dtype=np.int64)
    dummy_i = np.empty(0, dtype=np.int64)
    dummy_v = np.empty((0, 3))
    for t in numba.prange(len(cpos)):
        counts[t] = gather(cpos[t], bin_start, spos, sowner, origin, inv_bin, nbins, r2max, dummy_i, dummy_v, False)
    return counts


@numba.njit(parallel=True, cache=True)
def _fill(cpos, grid, k, offsets, idx, vec):
    for t in numba.prange(len(cpos)):
        bi, bv, c = neighbors_of(cpos[t], grid, k, np.empty(0, dtype=np.int64), np.empty((0, 3)))
        c = keep_nearest(bi, bv, c, c)  # sorted by distance for every k
        idx[offsets[t] : offsets[t] + c] = bi[:c]
        vec[offsets[t] : offsets[t] + c] = bv[:c]


@numba.njit(cache=True)
def _sort_into_bins(pos, owner, origin, inv_bin, nbins):
    """Counting sort of atoms by bin (the bins' z index runs fastest): bin_start (n_bins + 1,),
    positions (M, 3) and owners (M,) in bin order, atoms of one bin in input order."""
    n_bins = nbins[0] * nbins[1] * nbins[2]
    bin_id = np.empty(len(pos), dtype=np.int64)
    bin_start = np.zeros(n_bins + 1, dtype=np.int64)
    for a in range(len(pos)):
        b = _home_bin(pos[a], origin, inv_bin, nbins)
        bin_id[a] = (b[0] * nbins[1] + b[1]) * nbins[2] + b[2]
        bin_start[bin_id[a] + 1] += 1
    for c in range(n_bins):
        bin_start[c + 1] += bin_start[c]
    fill = bin_start[:-1].copy()
    spos = np.empty_like(pos)
    sowner = np.empty_like(owner)
    for a in range(len(pos)):
        slot = fill[bin_id[a]]
        fill[bin_id[a]] += 1
        spos[slot] = pos[a]
        sowner[slot] = owner[a]
    return bin_start, spos, sowner


class NeighborGrid:
    """All atoms and their periodic images binned for searches within ``radius`` (Å).

    ``positions`` (N, 3) in Å, ``cell`` (3, 3) with the cell vectors as rows, ``pbc`` (3,)
    booleans.  With ``k`` set, a search keeps the ``k`` nearest neighbours within the
    radius.  The arrays are public so that numba kernels can walk the grid themselves.
    """

    def __init__(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, radius: float, k: int = 0):
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.pbc = np.asarray(pbc, dtype=bool)
        self.cell = complete_cell(cell, self.pbc)
        self.radius = float(radius)
        self.k = int(k)
        pos_all, owner = _padded_images(self.positions, self.cell, self.pbc, self.radius)
        # centres are looked up at their wrapped position: the first N rows of pos_all
        self.wrapped = np.ascontiguousarray(pos_all[: len(self.positions)])
        lo = pos_all.min(axis=0) if len(pos_all) else np.zeros(3)
        hi = pos_all.max(axis=0) if len(pos_all) else np.zeros(3)
        extent = np.maximum(hi - lo, 1e-9)
        nbins = np.maximum(np.floor(extent / self.radius), 1).astype(np.int64)
        # many empty bins cost memory and time: cap the grid at a few bins per atom
        while np.prod(nbins) > 4 * len(pos_all) + 64:
            nbins = np.maximum(nbins // 2, 1)
        self.origin = lo
        self.nbins = nbins
        self.inv_bin = nbins / extent * (1.0 - 1e-12)
        self.bin_start, self.spos, self.sowner = _sort_into_bins(pos_all, owner, lo, self.inv_bin, nbins)

    @property
    def arrays(self) -> tuple:
        """(bin_start, spos, sowner, origin, inv_bin, nbins, radius^2) for the kernels."""
        return self.bin_start, self.spos, self.sowner, self.origin, self.inv_bin, self.nbins, self.radius**2

    def counts(self, centres: np.ndarray) -> np.ndarray:
        """Number of atoms within the radius of each of ``centres`` (n,)."""
        return _count(self.wrapped[centres], *self.arrays)

    def query(self, centres: np.ndarray) -> NeighborList:
        """Neighbours of atoms ``centres`` (n,), sorted by distance."""
        cpos = self.wrapped[np.asarray(centres, dtype=np.int64)]
        counts = _count(cpos, *self.arrays)
        if self.k:
            counts = np.minimum(counts, self.k)
        offsets = np.zeros(len(cpos) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        idx = np.empty(offsets[-1], dtype=np.int64)
        vec = np.empty((offsets[-1], 3), dtype=np.float64)
        _fill(cpos, self.arrays, self.k, offsets, idx, vec)
        return NeighborList(offsets, idx, vec)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Put the 21 low bits of ``v`` on every third bit (for Morton codes)."""
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def spatial_order(positions: np.ndarray) -> np.ndarray:
    """A permutation (N,) of the atoms along a Morton (Z-order) curve over cubes that hold
    a few atoms each: atoms close in space end up close in memory, which keeps the data of
    neighbours in the processor's caches."""
    if not len(positions):
        return np.zeros(0, dtype=np.int64)
    span = np.ptp(positions, axis=0)
    length = max(2.0 * (np.prod(np.maximum(span, 1.0)) / len(positions)) ** (1.0 / 3.0), 1e-3)
    cube = np.floor((positions - positions.min(axis=0)) / length).astype(np.int64)
    key = _spread_bits(cube[:, 0]) | (_spread_bits(cube[:, 1]) << np.uint64(1))
    key |= _spread_bits(cube[:, 2]) << np.uint64(2)
    return np.argsort(key, kind="stable")


def neighbor_grid(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    *,
    cutoff: float | None = None,
    num_neighbors: int | None = None,
) -> NeighborGrid:
    """A grid for neighbours within ``cutoff`` Å, or for the ``num_neighbors`` nearest ones:
    then the radius grows until every atom has that many candidates (in a finite system,
    at most all other atoms)."""
    if cutoff is not None:
        return NeighborGrid(positions, cell, pbc, cutoff)
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    k, n = int(num_neighbors), len(positions)
    span = np.ptp(positions, axis=0) if n else np.zeros(3)
    if pbc.all():
        volume = abs(np.linalg.det(complete_cell(cell, pbc)))
    else:
        volume = float(np.prod(np.maximum(span, 1.0)))
    radius = 1.2 * (3.0 * (k + 1) * volume / (4.0 * np.pi * max(n, 1))) ** (1.0 / 3.0)
    # a finite system is exhausted once the radius spans it
    need, limit = (k, np.inf) if pbc.any() else (min(k, n - 1), 2.0 * float(np.linalg.norm(span)) + 1.0)
    while True:
        grid = NeighborGrid(positions, cell, pbc, radius, k)
        if n == 0 or radius > limit or grid.counts(np.arange(n)).min() >= need:
            return grid
        radius *= 1.5
