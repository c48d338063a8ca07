"""The bond-order kernel: walks the neighbour grid around each centre and sums Y_lm of its
bonds into like/unlike accumulators, then forms q_l per channel, for every neighbour
definition at once.

The bonds come sorted by distance, and each definition's neighbours are a prefix of them:
Y_lm of a bond is computed once and added to running sums, which are copied into a
definition's accumulators when its last bond is in.  ``add_bond`` is generated
straight-line code for one set of degrees (see ``steinhardt._bond_source``); other degree
sets get a copy of this module bound to their own ``add_bond`` (``steinhardt.bond_kernel_for``).
"""

import math

import numba
import numpy as np

from ._ylm_4_6_8 import add_bond
from .neighbors import neighborhood, search_scratch


@numba.njit(cache=True, fastmath=True, inline="always")
def q_l(z, row, half, start, l):
    """q_l from the normalised m >= 0 components z[row, start : start + l + 1] (real parts) and
    z[row, half + start : half + start + l + 1] (imaginary parts)."""
    total = z[row, start] ** 2 + z[row, half + start] ** 2
    for m in range(1, l + 1):
        total += 2.0 * (z[row, start + m] ** 2 + z[row, half + start + m] ** 2)
    return math.sqrt(4.0 * math.pi / (2 * l + 1) * total)


@numba.njit(cache=True, inline="always")
def _copy3(dst, src):
    """``dst[...] = src`` for 3D arrays of one shape, written as loops: a slice assignment
    makes numba compile its shape-error formatting, seconds of the first run after installing."""
    for a in range(src.shape[0]):
        for b in range(src.shape[1]):
            for c in range(src.shape[2]):
                dst[a, b, c] = src[a, b, c]


@numba.njit(cache=True, inline="always")
def channel_range(channel):
    """The like/unlike accumulators (lo, hi) that make up channel 0 (all), 1 (like) or 2 (unlike)."""
    return (0, 2) if channel == 0 else (channel - 1, channel)


@numba.njit(nogil=True, cache=True, fastmath=True)
def bond_order_kernel(start, stop, cpos, ccode, codes, grid, defs, plan, features, bond_counts, means_out,
                      neighbors_out, short):
    """For the centres t = start..stop - 1 at ``cpos`` (n, 3) of species ``ccode`` (n,) and every
    definition d of ``defs``: q_l and the radial columns into their columns of ``features`` (n, columns),
    like/unlike bond counts into ``bond_counts`` (n, D, 2), the mean Y_lm (q_lm) of the channels of
    the definitions with store rows into ``means_out`` (n, rows, 2, n_lm) (if it has rows),
    the neighbours of the averaged definitions, nearest first, into ``neighbors_out`` (n, W)
    as far as they fit, and True into ``short`` (n,) where the search radius was too small.
    ``plan`` = (lm offsets, channel starts, channel codes, degree starts, degrees, q columns,
    q̄ columns, store rows, radial columns) per definition (see ``steinhardt.KernelPlan``).
    Serial: :func:`parallel.run_chunks` runs it on chunks of centres."""
    offset, ch_start, ch_codes, deg_start, deg_values, q_col, qbar_col, row, r_col = plan
    n_defs = len(defs[0])
    n_lm = means_out.shape[3]
    # scratch reused by the atoms of the chunk: allocation per atom would dominate
    found, found_vec, r2, order, idx, vec = search_scratch(256)
    prefix = np.empty(n_defs, dtype=np.int64)
    length = np.empty(n_defs)
    run = np.empty((2, 2, n_lm))  # running sums: channel (like, unlike), (re, im), lm
    acc = np.zeros((n_defs, 2, 2, n_lm))  # each definition's sums
    total = np.empty((1, 2 * n_lm))  # one channel's sums: re, then im
    for t in range(start, stop):
        c, complete = neighborhood(cpos, t, grid, defs, found, found_vec, r2, order, idx, vec, prefix, length)
        if c < 0:  # more candidates than room
            found, found_vec, r2, order, idx, vec = search_scratch(-c)
            c, complete = neighborhood(cpos, t, grid, defs, found, found_vec, r2, order, idx, vec, prefix, length)
        short[t] = not complete
        last = 0
        averaged = 0
        for d in range(n_defs):
            last = max(last, prefix[d])
            if qbar_col[d] >= 0:
                averaged = max(averaged, prefix[d])
            bond_counts[t, d, 0] = 0
            bond_counts[t, d, 1] = 0
            if prefix[d] == 0:
                acc[d] = 0.0
        for j in range(min(averaged, neighbors_out.shape[1])):
            neighbors_out[t, j] = idx[j]
        run[:] = 0.0
        n_like = 0
        for j in range(last):
            ch = 0 if codes[idx[j]] == ccode[t] else 1
            n_like += 1 - ch
            add_bond(vec[j, 0], vec[j, 1], vec[j, 2], run, ch)
            for d in range(n_defs):
                if prefix[d] == j + 1:
                    _copy3(acc[d], run)
                    bond_counts[t, d, 0] = n_like
                    bond_counts[t, d, 1] = j + 1 - n_like
        for d in range(n_defs):
            n_deg = deg_start[d + 1] - deg_start[d]
            for i in range(ch_start[d], ch_start[d + 1]):
                lo, hi = channel_range(ch_codes[i])
                n_c = 0
                for ch in range(lo, hi):
                    n_c += bond_counts[t, d, ch]
                for part in range(2):
                    for x in range(n_lm):
                        total[0, part * n_lm + x] = acc[d, lo, part, x] + (acc[d, 1, part, x] if hi - lo == 2 else 0.0)
                scale = 1.0 / n_c if n_c else 0.0  # no neighbour in this channel: q_l = 0
                if row[d] >= 0 and means_out.shape[0]:
                    r = row[d] + i - ch_start[d]
                    for part in range(2):
                        for x in range(n_lm):
                            means_out[t, r, part, x] = total[0, part * n_lm + x] * scale
                column = q_col[d] + (i - ch_start[d]) * n_deg
                for j in range(n_deg):
                    l = deg_values[deg_start[d] + j]
                    features[t, column + j] = q_l(total, 0, n_lm, offset[l], l) * scale
            for k in range(defs[3][d]):
                features[t, r_col[d] + k] = math.sqrt(r2[k]) / length[d] if k < c and length[d] > 0.0 else 0.0
