"""Steinhardt bond-order parameters split by chemical channel, over plain arrays.

Bonds are summed into two accumulators per atom, ``like`` (neighbour of the centre's
species) and ``unlike``; the ``all`` channel is their sum, so the three channels cost one
pass over the bonds.  Conventions (those of OVITO's Steinhardt modifier):

    q_lm(i) = 1/N_c(i) sum_{j in c(i)} Y_lm(r_ij),   q_l = sqrt(4 pi/(2l+1) sum_m |q_lm|^2)

an atom with no neighbour in a channel gets 0 there; the Lechner-Dellago average is
qbar_lm(i) = (q_lm(i) + sum_{j in c(i)} q_lm(j)) / (N_c(i) + 1) over the same channel's
neighbours; w_l is the normalised third-order invariant (Steinhardt 1983, eq. 1.5).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numba
import numpy as np

from .neighbors import candidates, gather, keep_nearest

CHANNEL_CODES = {"all": 0, "like": 1, "unlike": 2}


def lm_layout(degrees: tuple[int, ...]) -> np.ndarray:
    """Offset of each degree's m >= 0 block in a packed q_lm row; -1 for unused l."""
    offset = -np.ones(max(degrees) + 1, dtype=np.int64)
    pos = 0
    for l in degrees:
        offset[l] = pos
        pos += l + 1
    return offset


@cache
def _harmonic_tables(degrees: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Y_lm = sum_p coef[i, p] u^p * z^odd[i] * (x + iy)^m for unit bonds, u = z^2, with
    i running over the packed (l, m >= 0) layout; returns coef and (m, odd) per entry.

    The polynomial form of the normalised associated Legendre functions (with sin^m
    absorbed into (x + iy)^m) needs a third of the operations of the usual recurrence."""
    rows, meta = [], []
    for l in degrees:
        for m in range(l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            coef = np.zeros(max(degrees) // 2 + 1)
            # P_l^m(z) = (-1)^m sin^m d^m/dz^m P_l(z), Rodrigues' expansion of P_l
            for k in range((l - m) // 2 + 1):
                power = l - 2 * k - m
                c = (-1) ** k * math.comb(l, k) * math.comb(2 * l - 2 * k, l) / 2**l
                c *= math.factorial(l - 2 * k) / math.factorial(power)
                coef[power // 2] = (-1) ** m * norm * c
            rows.append(coef)
            meta.append((m, (l - m) % 2))
    return np.array(rows), np.array(meta, dtype=np.int64)


@numba.njit(cache=True, fastmath=True, inline="always")
def _add_bond(dx, dy, dz, acc, ch, coef, meta, pw_re, pw_im):
    """acc[ch, 0 (re) / 1 (im), i] += Y_lm(bond (dx, dy, dz)) for each packed (l, m >= 0) i."""
    r = math.sqrt(dx * dx + dy * dy + dz * dz)
    z = dz / r
    u = z * z
    wx, wy = dx / r, dy / r
    pw_re[0], pw_im[0] = 1.0, 0.0  # (x + iy)^m for unit bonds
    for m in range(1, len(pw_re)):
        pw_re[m] = pw_re[m - 1] * wx - pw_im[m - 1] * wy
        pw_im[m] = pw_re[m - 1] * wy + pw_im[m - 1] * wx
    for i in range(len(coef)):
        h = 0.0
        for p in range(coef.shape[1] - 1, -1, -1):
            h = h * u + coef[i, p]
        if meta[i, 1]:
            h *= z
        acc[ch, 0, i] += h * pw_re[meta[i, 0]]
        acc[ch, 1, i] += h * pw_im[meta[i, 0]]


@numba.njit(cache=True, fastmath=True)
def _q_l(z, start, l):
    """q_l from the normalised m >= 0 components z[0 (re) / 1 (im), start : start + l + 1]."""
    total = z[0, start] ** 2 + z[1, start] ** 2
    for m in range(1, l + 1):
        total += 2.0 * (z[0, start + m] ** 2 + z[1, start + m] ** 2)
    return math.sqrt(4.0 * math.pi / (2 * l + 1) * total)


_ATOMS_PER_TASK = 256


@numba.njit(parallel=True, cache=True, fastmath=True)
def _bond_order_kernel(cpos, ccode, codes, grid, k, coef, meta, offset, channels, degrees, q_out, counts, qlm_out):
    bin_start, spos, sowner, origin, inv_bin, nbins, r2max = grid
    n_lm = len(coef)
    n_tasks = (len(cpos) + _ATOMS_PER_TASK - 1) // _ATOMS_PER_TASK
    for task in numba.prange(n_tasks):
        # scratch reused by the atoms of one task: allocation per atom would dominate
        idx = np.empty(64, dtype=np.int64)
        vec = np.empty((64, 3))
        acc = np.empty((2, 2, n_lm))  # channel (like, unlike), (re, im), lm
        mean = np.empty((2, n_lm))
        pw_re = np.empty(len(offset))
        pw_im = np.empty(len(offset))
        for t in range(task * _ATOMS_PER_TASK, min(len(cpos), (task + 1) * _ATOMS_PER_TASK)):
            cap = candidates(cpos[t], bin_start, origin, inv_bin, nbins)
            if cap > len(idx):
                idx = np.empty(2 * cap, dtype=np.int64)
                vec = np.empty((2 * cap, 3))
            c = gather(cpos[t], bin_start, spos, sowner, origin, inv_bin, nbins, r2max, idx, vec, True)
            if k > 0:
                c = keep_nearest(idx, vec, c, k)
            acc[:] = 0.0
            for j in range(c):
                ch = 0 if codes[idx[j]] == ccode[t] else 1
                counts[t, ch] += 1
                _add_bond(vec[j, 0], vec[j, 1], vec[j, 2], acc, ch, coef, meta, pw_re, pw_im)
            if qlm_out.shape[0]:
                for ch in range(2):
                    for i in range(n_lm):
                        qlm_out[t, ch, i] = complex(acc[ch, 0, i], acc[ch, 1, i])
            for i in range(len(channels)):
                lo, hi = (0, 2) if channels[i] == 0 else (channels[i] - 1, channels[i])
                n_c = 0
                for ch in range(lo, hi):
                    n_c += counts[t, ch]
                if n_c == 0:
                    continue  # no neighbour in this channel: q_l = 0
                for ri in range(2):
                    for lm in range(n_lm):
                        mean[ri, lm] = 0.0
                        for ch in range(lo, hi):
                            mean[ri, lm] += acc[ch, ri, lm]
                        mean[ri, lm] /= n_c
                for j in range(len(degrees)):
                    q_out[t, i, j] = _q_l(mean, offset[degrees[j]], degrees[j])


def bond_orders(grid, centres: np.ndarray, codes: np.ndarray, degrees: tuple[int, ...],
                channels: tuple[str, ...], keep_qlm: bool = False):
    """q_l of atoms ``centres`` (n,) for each channel, shape (n, len(channels), len(degrees));
    bond counts (n, 2) split into like/unlike; and, if ``keep_qlm``, the unnormalised
    m >= 0 sums q_lm (n, 2, sum(l + 1)) complex of the like/unlike channels, else None.
    ``codes`` (N,) are integer species of all atoms; ``grid`` a :class:`NeighborGrid`."""
    coef, meta = _harmonic_tables(tuple(degrees))
    n = len(centres)
    q = np.zeros((n, len(channels), len(degrees)))
    counts = np.zeros((n, 2), dtype=np.int64)
    qlm = np.zeros((n if keep_qlm else 0, 2, len(coef)), dtype=np.complex128)
    _bond_order_kernel(grid.wrapped[centres], codes[centres], codes, grid.arrays, grid.k, coef, meta,
                       lm_layout(degrees), np.array([CHANNEL_CODES[c] for c in channels]), np.array(degrees),
                       q, counts, qlm)
    return q, counts, (qlm if keep_qlm else None)


def channel_count(counts: np.ndarray, channel: str) -> np.ndarray:
    """Bonds (n,) of one channel from the like/unlike counts (n, 2)."""
    return counts.sum(axis=1) if channel == "all" else counts[:, CHANNEL_CODES[channel] - 1]


def channel_average(qlm: np.ndarray, counts: np.ndarray, channel: str) -> np.ndarray:
    """Normalised q_lm (n, n_lm) of one channel from the like/unlike sums (n, 2, n_lm)."""
    s = qlm.sum(axis=1) if channel == "all" else qlm[:, CHANNEL_CODES[channel] - 1]
    return s / np.maximum(channel_count(counts, channel), 1)[:, None]


@numba.njit(parallel=True, cache=True)
def _q_rows(z, offset, degrees, out):
    for t in numba.prange(len(z)):
        for j in range(len(degrees)):
            out[t, j] = _q_l(z[t], offset[degrees[j]], degrees[j])


def invariants_q(qlm: np.ndarray, degrees: tuple[int, ...]) -> np.ndarray:
    """q_l (n, len(degrees)) from normalised m >= 0 components (n, n_lm)."""
    out = np.empty((len(qlm), len(degrees)))
    _q_rows(np.ascontiguousarray(np.stack([qlm.real, qlm.imag], axis=1)), lm_layout(degrees), np.array(degrees), out)
    return out


@cache
def _wigner_terms(l: int) -> tuple[np.ndarray, np.ndarray]:
    """The m triples with m1 + m2 + m3 = 0 and their Wigner 3j symbols (l l l; m1 m2 m3),
    from Racah's formula in exact rational arithmetic."""
    f = math.factorial
    triangle = Fraction(f(l) ** 3, f(3 * l + 1))
    triples, coeffs = [], []
    for m1 in range(-l, l + 1):
        for m2 in range(max(-l, -l - m1), min(l, l - m1) + 1):
            m3 = -m1 - m2
            total = Fraction(0)
            for k in range(0, l + 1):
                d = (k, k + m1, k - m2, l - k, l - k - m1, l - k + m2)
                if min(d) >= 0:
                    total += Fraction((-1) ** k, math.prod(f(x) for x in d))
            norm = triangle * math.prod(f(l + m) * f(l - m) for m in (m1, m2, m3))
            triples.append((m1, m2, m3))
            coeffs.append((-1) ** (m3 % 2) * float(total) * math.sqrt(norm))
    return np.array(triples, dtype=np.int64), np.array(coeffs)


def invariants_w(qlm: np.ndarray, degrees: tuple[int, ...]) -> np.ndarray:
    """Normalised w_l (n, len(degrees)) from m >= 0 components (n, n_lm); 0 where q_l = 0."""
    out = np.zeros((len(qlm), len(degrees)))
    offset = lm_layout(degrees)
    for j, l in enumerate(degrees):
        pos = qlm[:, offset[l] : offset[l] + l + 1]
        m = np.arange(1, l + 1)
        neg = ((-1.0) ** m) * np.conj(pos[:, 1:])
        full = np.concatenate([neg[:, ::-1], pos], axis=1)  # columns m = -l .. l
        triples, coeffs = _wigner_terms(l)
        idx = triples + l
        w = np.einsum("t,nt->n", coeffs, full[:, idx[:, 0]] * full[:, idx[:, 1]] * full[:, idx[:, 2]]).real
        norm = (np.abs(full) ** 2).sum(axis=1) ** 1.5
        out[:, j] = np.divide(w, norm, out=np.zeros_like(w), where=norm > 0)
    return out
