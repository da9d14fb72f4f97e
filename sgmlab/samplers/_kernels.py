"""numba kernels for :mod:`sgmlab.samplers._fused`: a sampler step in one pass over flat arrays.

Plain IEEE arithmetic (no fastmath, no contraction), so a value does not depend on where it
falls in the array: chunked and unchunked runs agree bitwise. The updates return how many of the
values they wrote are not finite, so the sampler's check needs no pass of its own.
"""

from __future__ import annotations

import numba
import numpy as np

_BIG = np.finfo(np.float64).max
_ABS = np.int32(0x7FFFFFFF)  # the bits of a float32 without its sign
_BLOCK = 64  # the tail scan tests blocks of 64 draws at once (integer compares vectorise) and rescans hits


@numba.njit(cache=True, nogil=True)
def combine(x, a, y0, b0, y1, b1, y2, b2, k, z, std):  # pragma: no cover (compiled)
    """x <- a x + b0 y0 (+ b1 y1, + b2 y2 for k = 2, 3) (+ std z when z is not empty), in place;
    returns the number of non-finite results."""
    noise = z.shape[0] > 0
    bad = 0
    for j in range(x.shape[0]):
        v = a * x[j] + b0 * y0[j]
        if k > 1:
            v += b1 * y1[j]
        if k > 2:
            v += b2 * y2[j]
        if noise:
            v += std * z[j]
        x[j] = v
        bad += not abs(v) <= _BIG
    return bad


@numba.njit(cache=True, nogil=True)
def far(z, tail, out):  # pragma: no cover (compiled)
    """The indices j with |z_j| > tail (float32 z, tail > 0) into ``out``, in order; returns how many."""
    bits = z.view(np.int32)
    limit = np.array([tail], dtype=np.float32).view(np.int32)[0]
    count = 0
    blocks = z.shape[0] // _BLOCK
    for b in range(blocks):
        lo = b * _BLOCK
        hit = np.int32(0)
        for j in range(_BLOCK):
            hit |= np.int32((bits[lo + j] & _ABS) > limit)
        if hit:
            for j in range(lo, lo + _BLOCK):
                if abs(z[j]) > tail:
                    out[count] = j
                    count += 1
    for j in range(blocks * _BLOCK, z.shape[0]):
        if abs(z[j]) > tail:
            out[count] = j
            count += 1
    return count


@numba.njit(cache=True, nogil=True)
def gather(idx, count, x, a, y0, b0, y1, b1, y2, b2, k, out, z, zout):  # pragma: no cover (compiled)
    """:func:`combine`'s noiseless value at ``idx[:count]`` into ``out`` (before combine overwrites x),
    and the draws z there into ``zout``."""
    for i in range(count):
        j = idx[i]
        v = a * x[j] + b0 * y0[j]
        if k > 1:
            v += b1 * y1[j]
        if k > 2:
            v += b2 * y2[j]
        out[i] = v
        zout[i] = z[j]


@numba.njit(cache=True, nogil=True)
def scatter(x, idx, count, before, std, tail):  # pragma: no cover (compiled)
    """x[idx[i]] <- before[i] + std tail[i] for i < count; returns the number of non-finite results."""
    bad = 0
    for i in range(count):
        v = before[i] + std * tail[i]
        x[idx[i]] = v
        bad += not abs(v) <= _BIG
    return bad


@numba.njit(cache=True, nogil=True)
def data_prediction(x, s, sig2, m0, r, c0, m1, c1, m2, c2, k):  # pragma: no cover (compiled)
    """DPM-Solver++'s step: m0 <- x + sig2 s, then x <- r x + c0 m0 (+ c1 m1, + c2 m2), in place;
    returns the number of non-finite values in the new x."""
    bad = 0
    for j in range(x.shape[0]):
        xj = x[j]
        m = xj + sig2 * s[j]
        m0[j] = m
        v = r * xj + c0 * m
        if k > 1:
            v += c1 * m1[j]
        if k > 2:
            v += c2 * m2[j]
        x[j] = v
        bad += not abs(v) <= _BIG
    return bad


@numba.njit(cache=True, nogil=True)
def data_prediction_over(x, s, sig2, r, c0, m1, c1, old, c_old, k):  # pragma: no cover (compiled)
    """:func:`data_prediction` with the new m written over the oldest term, ``old``, as it is read:
    x <- r x + c0 m (+ c1 m1 for k = 3) + c_old old, then old <- m = x + sig2 s. One buffer fewer,
    and the store lands on a line just read."""
    bad = 0
    for j in range(x.shape[0]):
        xj = x[j]
        m = xj + sig2 * s[j]
        v = r * xj + c0 * m
        if k > 2:
            v += c1 * m1[j]
        v += c_old * old[j]
        old[j] = m
        x[j] = v
        bad += not abs(v) <= _BIG
    return bad
