"""Neighbour searches over plain arrays: cutoff, N nearest or relative cutoff, any cell, any boundaries.

Periodic images are made explicit as ghost atoms in a padded region around the cell, so
cells smaller than the cutoff (where an atom sees its own images) need no special case.
The ghosts and the centres are sorted into a grid of bins no smaller than the search
radius.  One search per atom serves several neighbour definitions: sorted by distance,
every definition's neighbours are a prefix of the same list of bonds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .parallel import run_chunks

# The largest number of periodic images the padding may create per real atom; beyond it
# the cell is absurdly small for the cutoff and the caller is told so.
_MAX_IMAGES_PER_ATOM = 4096
# kinds of neighbour definition: all within a cutoff, the N nearest, all within a multiple of
# the mean distance to the N nearest
CUTOFF, NEAREST, RELATIVE = 0, 1, 2
# bins are at least radius / BINS_PER_RADIUS wide, and a search scans BINS_PER_RADIUS bins to
# each side: smaller bins hold fewer atoms outside the search sphere
BINS_PER_RADIUS = 2


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners (3,), lowest and highest, of the bounding box of ``points`` (n, 3), in
    their units (zeros if there are none): column by column, which numpy does about twenty
    times faster than along axis 0."""
    if not len(points):
        return np.zeros(3), np.zeros(3)
    return np.array([points[:, i].min() for i in range(3)]), np.array([points[:, i].max() for i in range(3)])


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
    """Real atoms first (wrapped into the cell along periodic directions), then every
    periodic image within ``radius`` of the cell.

    Returns Cartesian positions (M, 3) and the atom each row is a copy of (M,).
    """
    n = len(positions)
    if not pbc.any():
        return positions.copy(), np.arange(n, dtype=np.int64)
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
    frac = np.empty((n, 3))
    run_chunks(_fractional, 0, n, positions, np.linalg.inv(cell), pbc, frac)
    offsets = np.zeros(n + 1, dtype=np.int64)
    run_chunks(_images, 0, n, frac, pad, reach, cell, np.empty((0, 3)), np.empty(0, dtype=np.int64), offsets[1:])
    np.cumsum(offsets, out=offsets)
    pos_all = np.empty((n + offsets[-1], 3))
    owner = np.empty(n + offsets[-1], dtype=np.int64)
    run_chunks(_images, 0, n, frac, pad, reach, cell, pos_all, owner, offsets)
    return pos_all, owner


@numba.njit(nogil=True, cache=True)
def _fractional(start, stop, positions, inverse, pbc, frac):
    """Fractional coordinates (``positions @ inverse``) of the atoms start..stop - 1 into
    ``frac``, wrapped into [0, 1) along the periodic directions ``pbc``."""
    for a in range(start, stop):
        for k in range(3):
            f = positions[a, 0] * inverse[0, k] + positions[a, 1] * inverse[1, k] + positions[a, 2] * inverse[2, k]
            if pbc[k]:
                f -= math.floor(f)
                if f >= 1.0:  # rounding at 1 - eps
                    f = 0.0
            frac[a, k] = f


@numba.njit(nogil=True, cache=True)
def _images(start, stop, frac, pad, reach, cell, out_pos, out_owner, offsets):
    """For the atoms a = start..stop - 1 (fractional coordinates ``frac``), the periodic images
    (shift != 0) whose fractional coordinates lie within ``pad`` of the unit cube: counted
    into ``offsets[a]`` if ``out_pos`` is empty, else the atom itself written to row a and
    its images, in Cartesian coordinates, from row N + ``offsets[a]`` on."""
    n = len(frac)
    fill = len(out_pos) > 0
    for a in range(start, stop):
        if fill:
            _cartesian(frac[a, 0], frac[a, 1], frac[a, 2], cell, out_pos, a)
            out_owner[a] = a
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
                        _cartesian(x, y, z, cell, out_pos, n + offsets[a] + c)
                        out_owner[n + offsets[a] + c] = a
                    c += 1
        if not fill:
            offsets[a] = c


@numba.njit(cache=True, inline="always")
def _cartesian(x, y, z, cell, out, row):
    """out[row] = (x, y, z) @ cell."""
    for k in range(3):
        out[row, k] = x * cell[0, k] + y * cell[1, k] + z * cell[2, k]


@numba.njit(cache=True, inline="always")
def _home_bin(x, y, z, origin, inv_bin, nbins):
    """Grid cell (x, y, z) of the point (x, y, z), clamped to the grid."""
    return (min(max(int((x - origin[0]) * inv_bin[0]), 0), nbins[0] - 1),
            min(max(int((y - origin[1]) * inv_bin[1]), 0), nbins[1] - 1),
            min(max(int((z - origin[2]) * inv_bin[2]), 0), nbins[2] - 1))


@numba.njit(cache=True, inline="always")
def _stencil(x, y, z, origin, inv_bin, nbins):
    """The bins within BINS_PER_RADIUS of the bin of the point (x, y, z): x range, y range, z range."""
    b = _home_bin(x, y, z, origin, inv_bin, nbins)
    s = BINS_PER_RADIUS
    return (max(b[0] - s, 0), min(b[0] + s + 1, nbins[0]), max(b[1] - s, 0), min(b[1] + s + 1, nbins[1]),
            max(b[2] - s, 0), min(b[2] + s + 1, nbins[2]))


@numba.njit(cache=True)
def candidates(px, py, pz, bin_start, origin, inv_bin, nbins):
    """How many atoms the bins around the point (px, py, pz) hold: an upper bound on its neighbours."""
    x0, x1, y0, y1, z0, z1 = _stencil(px, py, pz, origin, inv_bin, nbins)
    c = 0
    for x in range(x0, x1):
        for y in range(y0, y1):
            first = (x * nbins[1] + y) * nbins[2]
            c += bin_start[first + z1] - bin_start[first + z0]
    return c


@numba.njit(cache=True)
def gather(px, py, pz, bin_start, spos, sowner, origin, inv_bin, nbins, r2max, idx, vec, r2):
    """Neighbours of the point (px, py, pz) within sqrt(r2max): atom indices into ``idx``, bond vectors
    into ``vec`` and their squared lengths into ``r2``, in the grid's order; returns their
    number, or -1 if the scratch arrays may be too small (:func:`candidates` tells how large
    they must be).  Every candidate is written and kept only if near enough: no branch to
    mispredict.  Coincident atoms are not neighbours."""
    x0, x1, y0, y1, z0, z1 = _stencil(px, py, pz, origin, inv_bin, nbins)
    room = len(idx)
    c = 0
    for x in range(x0, x1):
        for y in range(y0, y1):
            first = (x * nbins[1] + y) * nbins[2]
            lo, hi = bin_start[first + z0], bin_start[first + z1]
            if c + hi - lo > room:
                return -1
            for k in range(lo, hi):
                dx = spos[k, 0] - px
                dy = spos[k, 1] - py
                dz = spos[k, 2] - pz
                d2 = dx * dx + dy * dy + dz * dz
                idx[c] = sowner[k]
                vec[c, 0] = dx
                vec[c, 1] = dy
                vec[c, 2] = dz
                r2[c] = d2
                c += (d2 <= r2max) & (d2 > 1e-20)
    return c


@numba.njit(cache=True)
def sort_bonds(idx, vec, r2, count, order, idx_out, vec_out):
    """Sort the first ``count`` bonds by length, ties by atom index, then by search order:
    ``r2`` in place, atom indices and bond vectors into ``idx_out``/``vec_out`` (an insertion
    sort of the lengths and positions only: rows are short)."""
    for a in range(count):
        order[a] = a
    for a in range(1, count):
        ra, ia = r2[a], idx[a]
        j = a - 1
        while j >= 0 and (r2[j] > ra or (r2[j] == ra and idx[order[j]] > ia)):
            r2[j + 1], order[j + 1] = r2[j], order[j]
            j -= 1
        r2[j + 1], order[j + 1] = ra, a
    for a in range(count):
        k = order[a]
        idx_out[a] = idx[k]
        vec_out[a, 0], vec_out[a, 1], vec_out[a, 2] = vec[k, 0], vec[k, 1], vec[k, 2]


@numba.njit(cache=True)
def search_scratch(size):
    """Scratch arrays for :func:`neighborhood`, room for ``size`` candidates: atom indices, bond
    vectors, squared lengths, sort order, sorted indices, sorted vectors."""
    return (np.empty(size, dtype=np.int64), np.empty((size, 3)), np.empty(size), np.empty(size, dtype=np.int64),
            np.empty(size, dtype=np.int64), np.empty((size, 3)))


@numba.njit(cache=True, inline="always")
def _within(r2, count, limit):
    """How many of the sorted ``r2[:count]`` are at most ``limit``."""
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        if r2[mid] <= limit:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, inline="always")
def _mean_distance(r2, count):
    total = 0.0
    for j in range(count):
        total += math.sqrt(r2[j])
    return total / count if count else 0.0


@numba.njit(cache=True)
def neighborhood(points, t, grid, defs, found, found_vec, r2, order, idx, vec, prefix, length):
    """The bonds of the point ``points[t]`` in ``grid`` (:attr:`NeighborGrid.arrays`) for the neighbour
    definitions ``defs`` (:meth:`Definitions.arrays`), into the arrays of
    :func:`search_scratch`: atom indices ``idx``, bond vectors (Å) ``vec`` and squared
    lengths ``r2``, sorted by distance unless every definition takes all of them.  The first
    ``prefix[d]`` bonds are the neighbours of definition d, ``length[d]`` its local length
    (Å; 0 where no radial column or relative cutoff reads it).  Returns (count, complete),
    complete False if the grid's radius may have missed atoms that a definition needs (then a
    search over a larger radius is due), or (-size, False) if the scratch arrays need room for
    ``size`` candidates.  Only numbers come back: returning
    arrays would cost reference counting for every atom."""
    bin_start, spos, sowner, origin, inv_bin, nbins, r2max = grid
    kind, limit, near, radial, need, sort, room2 = defs
    px, py, pz = points[t, 0], points[t, 1], points[t, 2]
    c = gather(px, py, pz, bin_start, spos, sowner, origin, inv_bin, nbins, r2max, found, found_vec, r2)
    if c < 0:
        return -2 * candidates(px, py, pz, bin_start, origin, inv_bin, nbins), False
    if sort:
        sort_bonds(found, found_vec, r2, c, order, idx, vec)
    else:
        for j in range(c):
            idx[j] = found[j]
            vec[j, 0], vec[j, 1], vec[j, 2] = found_vec[j, 0], found_vec[j, 1], found_vec[j, 2]
    complete = c >= need
    for d in range(len(kind)):
        if kind[d] == CUTOFF:
            prefix[d] = _within(r2, c, limit[d]) if sort else c
            length[d] = _mean_distance(r2, prefix[d]) if radial[d] else 0.0
        else:
            m = min(near[d], c)
            length[d] = _mean_distance(r2, m) if radial[d] or kind[d] == RELATIVE else 0.0
            if kind[d] == RELATIVE:
                reach2 = limit[d] * length[d] * length[d]
                complete = complete and reach2 <= room2
                m = _within(r2, c, reach2)
            prefix[d] = m
    return c, complete


@numba.njit(cache=True)
def _sort_into_bins(pos, owner, origin, inv_bin, nbins):
    """Counting sort of atoms by bin (the bins' z index runs fastest): bin_start (n_bins + 1,),
    positions (M, 3) and owners (M,) in bin order, atoms of one bin in input order."""
    n_bins = nbins[0] * nbins[1] * nbins[2]
    bin_id = np.empty(len(pos), dtype=np.int64)
    bin_start = np.zeros(n_bins + 1, dtype=np.int64)
    for a in range(len(pos)):
        b = _home_bin(pos[a, 0], pos[a, 1], pos[a, 2], origin, inv_bin, nbins)
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
        # element by element: a slice copy makes numba compile its shape-error formatting (first run)
        spos[slot, 0], spos[slot, 1], spos[slot, 2] = pos[a, 0], pos[a, 1], pos[a, 2]
        sowner[slot] = owner[a]
    return bin_start, spos, sowner


class NeighborGrid:
    """All atoms and their periodic images binned for searches within ``radius`` (Å).

    ``positions`` (N, 3) in Å, ``cell`` (3, 3) with the cell vectors as rows, ``pbc`` (3,)
    booleans.  The arrays are public so that numba kernels can walk the grid themselves.
    """

    def __init__(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, radius: float):
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.pbc = np.asarray(pbc, dtype=bool)
        self.cell = complete_cell(cell, self.pbc)
        self.radius = float(radius)
        pos_all, owner = _padded_images(self.positions, self.cell, self.pbc, self.radius)
        # centres are looked up at their wrapped position: the first N rows of pos_all
        self.wrapped = np.ascontiguousarray(pos_all[: len(self.positions)])
        lo, hi = bounds(pos_all)
        extent = np.maximum(hi - lo, 1e-9)
        # a finite system is exhausted once the radius spans it: every atom is a candidate
        self.exhaustive = not self.pbc.any() and self.radius >= float(np.linalg.norm(extent))
        nbins = np.maximum(np.floor(extent * BINS_PER_RADIUS / self.radius), 1).astype(np.int64)
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

    def grown(self) -> NeighborGrid:
        """The same atoms binned for a search radius 1.5 times as large."""
        return NeighborGrid(self.positions, self.cell, self.pbc, 1.5 * self.radius)


@dataclass(frozen=True)
class Definitions:
    """Neighbour definitions, one per feature spec (objects with ``cutoff``,
    ``num_neighbors``, ``relative_cutoff`` and ``radial``), as arrays for the kernels:
    ``kind`` (D,) CUTOFF, NEAREST or RELATIVE; ``limit`` (D,) the squared cutoff (Å²) or
    squared relative cutoff; ``near`` (D,) N; ``radial`` (D,) radial columns; ``need``, how
    many nearest atoms every search must find (the largest N or radial count)."""

    kind: np.ndarray
    limit: np.ndarray
    near: np.ndarray
    radial: np.ndarray
    need: int

    @classmethod
    def of(cls, specs) -> Definitions:
        """The definitions of ``specs`` (:class:`FeatureSpec` objects), in their order."""
        kind = [CUTOFF if s.cutoff is not None else NEAREST if s.relative_cutoff is None else RELATIVE for s in specs]
        limit = [(s.cutoff if s.cutoff is not None else s.relative_cutoff or 0.0) ** 2 for s in specs]
        near = [s.num_neighbors or 0 for s in specs]
        radial = [s.radial for s in specs]
        return cls(np.array(kind, dtype=np.int64), np.array(limit), np.array(near, dtype=np.int64),
                   np.array(radial, dtype=np.int64), max(near + radial))

    def arrays(self, grid: NeighborGrid) -> tuple:
        """(kind, limit, near, radial, need, sort, room2) for :func:`neighborhood` on ``grid``:
        ``need`` at most the other atoms of a finite system, ``sort`` False when every
        definition takes all atoms within the grid's radius, ``room2`` the squared radius
        within which a search sees every atom (infinite when the grid spans the system)."""
        n_atoms = len(grid.positions)
        need = self.need if grid.pbc.any() else min(self.need, n_atoms - 1)
        sort = bool(self.need or (self.kind != CUTOFF).any() or (self.limit != grid.radius**2).any())
        room2 = math.inf if grid.exhaustive else grid.radius**2
        return self.kind, self.limit, self.near, self.radial, need, sort, room2

    def grid(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> NeighborGrid:
        """A grid whose radius covers the largest cutoff and, at the density of the system, about
        1.2 times the reach of the nearest-neighbour and relative definitions (a search that
        finds it too small says so: :func:`neighborhood`, :meth:`NeighborGrid.grown`)."""
        sphere = _sphere_radius(positions, cell, pbc)
        radius = max([1.2 * sphere(self.need + 1) if self.need else 0.0]
                     + [np.sqrt(lim) * (sphere(k + 1) if kd == RELATIVE else 1.0)
                        for kd, lim, k in zip(self.kind, self.limit, self.near, strict=True) if kd != NEAREST])
        return NeighborGrid(positions, cell, pbc, radius)

    def typical_neighbors(self, which: np.ndarray, grid: NeighborGrid) -> int:
        """A generous guess of the most neighbours an atom has in the definitions ``which`` (D,
        booleans) at the density of the grid's system."""
        sphere = _sphere_radius(grid.positions, grid.cell, grid.pbc)
        guess = [k if kd == NEAREST else 1.3 * k * (np.sqrt(lim) * 0.85) ** 3 if kd == RELATIVE
                 else 1.3 * (np.sqrt(lim) / sphere(1)) ** 3
                 for kd, lim, k, w in zip(self.kind, self.limit, self.near, which, strict=True) if w]
        return int(max(guess, default=0)) + 4


def _sphere_radius(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
    """A function of k: the radius (Å) of a sphere that holds k atoms at the mean density of
    the system (of the bounding box of the atoms unless periodic in all directions)."""
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    n = len(positions)
    if pbc.all():
        volume = abs(np.linalg.det(complete_cell(cell, pbc)))
    else:
        lo, hi = bounds(positions)
        volume = float(np.prod(np.maximum(hi - lo, 1.0)))
    return lambda k: (3.0 * k * volume / (4.0 * np.pi * max(n, 1))) ** (1.0 / 3.0)


@numba.njit(cache=True, inline="always")
def _spread_bits(v):
    """Put the 21 low bits of the integer ``v`` on every third bit (for Morton codes), as uint64."""
    v = np.uint64(v) & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    return (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)


@numba.njit(nogil=True, cache=True)
def _morton_keys(start, stop, positions, lo, length, keys):
    """Morton code of the cube of edge ``length`` (Å) from corner ``lo`` that holds each atom
    start..stop - 1, into ``keys``."""
    for a in range(start, stop):
        key = np.uint64(0)
        for k in range(3):
            key |= _spread_bits(int(math.floor((positions[a, k] - lo[k]) / length))) << np.uint64(k)
        keys[a] = key


def spatial_order(positions: np.ndarray) -> np.ndarray:
    """A permutation (N,) of the atoms along a Morton (Z-order) curve over cubes that hold
    a few atoms each: atoms close in space end up close in memory, which keeps the data of
    neighbours in the processor's caches."""
    if not len(positions):
        return np.zeros(0, dtype=np.int64)
    lo, hi = bounds(positions)
    length = max(2.0 * (np.prod(np.maximum(hi - lo, 1.0)) / len(positions)) ** (1.0 / 3.0), 1e-3)
    keys = np.empty(len(positions), dtype=np.uint64)
    run_chunks(_morton_keys, 0, len(positions), positions, lo, length, keys)
    return np.argsort(keys)  # not stable: five times faster, and as deterministic
