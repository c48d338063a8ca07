"""The bond-order kernel: walks the neighbour grid around each centre and sums Y_lm of its
bonds into like/unlike accumulators, then forms q_l per channel.

``add_bond`` is generated straight-line code for one set of degrees (see
``steinhardt._bond_source``); other degree sets get a copy of this module bound to their
own ``add_bond`` (``steinhardt.bond_kernel_for``).
"""

import math

import numba
import numpy as np

from ._ylm_4_6_8 import add_bond
from .neighbors import neighbors_of


@numba.njit(cache=True, fastmath=True)
def q_l(z, start, l):
    """q_l from the normalised m >= 0 components z[0 (re) / 1 (im), start : start + l + 1]."""
    total = z[0, start] ** 2 + z[1, start] ** 2
    for m in range(1, l + 1):
        total += 2.0 * (z[0, start + m] ** 2 + z[1, start + m] ** 2)
    return math.sqrt(4.0 * math.pi / (2 * l + 1) * total)


ATOMS_PER_TASK = 256


@numba.njit(parallel=True, cache=True, fastmath=True)
def bond_order_kernel(cpos, ccode, codes, grid, k, offset, channels, degrees, q_out, counts, sums_out):
    n_lm = sums_out.shape[3]
    n_tasks = (len(cpos) + ATOMS_PER_TASK - 1) // ATOMS_PER_TASK
    for task in numba.prange(n_tasks):
        # scratch reused by the atoms of one task: allocation per atom would dominate
        idx = np.empty(64, dtype=np.int64)
        vec = np.empty((64, 3))
        acc = np.empty((2, 2, n_lm))  # channel (like, unlike), (re, im), lm
        mean = np.empty((2, n_lm))
        for t in range(task * ATOMS_PER_TASK, min(len(cpos), (task + 1) * ATOMS_PER_TASK)):
            idx, vec, c = neighbors_of(cpos[t], grid, k, idx, vec)
            acc[:] = 0.0
            for j in range(c):
                ch = 0 if codes[idx[j]] == ccode[t] else 1
                counts[t, ch] += 1
                add_bond(vec[j, 0], vec[j, 1], vec[j, 2], acc, ch)
            if sums_out.shape[0]:
                sums_out[t] = acc
            for i in range(len(channels)):
                lo, hi = (0, 2) if channels[i] == 0 else (channels[i] - 1, channels[i])
                n_c = 0
                for ch in range(lo, hi):
                    n_c += counts[t, ch]
                if n_c == 0:  # no neighbour in this channel: q_l = 0
                    continue
                for ri in range(2):
                    for lm in range(n_lm):
                        mean[ri, lm] = 0.0
                        for ch in range(lo, hi):
                            mean[ri, lm] += acc[ch, ri, lm]
                        mean[ri, lm] /= n_c
                for j in range(len(degrees)):
                    q_out[t, i, j] = q_l(mean, offset[degrees[j]], degrees[j])
