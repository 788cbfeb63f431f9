"""Row scans of the CPU cross-entropy kernels (max-shifted log-sum-exp and friends).

* ``seg_max``/``row_max``: NaN-skipping row maxima, vectorized through ``maxnum``.
* ``sum_exp`` (sum, or sum and store each term, or in place), ``block_sum_exp``: the
  shifted sums of exps, in x's dtype over short blocks folded into float64.
* ``sum_wx`` (label smoothing), ``scale_seg`` (the gradient's final scaling).

Helpers are separate ``@njit`` functions (LLVM inlines them into the callers' loops);
numba-level ``inline="always"`` re-typed them at every call site and made the first
compile slower with no speed gain. The exp they use is :func:`nbxent._cpu.fastmath.exp_diff`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from nbxent._core.jit import CACHE
from nbxent._cpu.fastmath import cast_like, exp_diff, maxnum

#: fastmath flags of the row kernels: reassociation lets the float32 block sums and the
#: gradient loop widen; never nnan/ninf (NaN/inf semantics are part of the contract).
FASTMATH = {"contract", "arcp", "reassoc"}

#: Length of a float32 partial sum before it is folded into the float64 total: long
#: enough to keep full vector width, short enough that its rounding error (a few ulp of
#: float32 over ~BLOCK/lanes additions) stays below the float32 result's last bit.
BLOCK = 512


#: Partial maxima of the row max: 8 float32 vectors (measured on 8192 float32: 0.11 ns per
#: element; 32 lanes get fully unrolled and are not vectorized, 0.69 ns).
MAX_LANES = 64


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def seg_max(x, n, lo, hi):
    """Max of ``x[n, lo:hi]`` (needs ``hi > lo``), NaN skipped; all ``-inf``/NaN gives ``-inf``.

    A skipped NaN still reaches the loss through ``exp(NaN - m)`` in the sum. Long
    segments run elementwise maxes into ``MAX_LANES`` partial maxima (LLVM vectorizes an
    elementwise max, not a max reduction without ``nnan``).
    """
    seg = x[n, lo:hi]
    size = seg.shape[0]
    m = cast_like(-np.inf, seg[0])
    if size >= 4 * MAX_LANES:
        lanes = np.full(MAX_LANES, m)
        body = size - size % MAX_LANES
        for j in range(0, body, MAX_LANES):
            chunk = seg[j:j + MAX_LANES]
            for k in range(MAX_LANES):
                lanes[k] = maxnum(lanes[k], chunk[k])
        for k in range(MAX_LANES):
            v = lanes[k]
            m = v if v > m else m
        for j in range(body, size):
            v = seg[j]
            m = v if v > m else m
    else:
        for j in range(size):
            v = seg[j]
            m = v if v > m else m
    return m


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def row_max(x, n, C):
    """Max of ``x[n, :C]`` (see :func:`seg_max`); needs ``C >= 1``."""
    return seg_max(x, n, 0, C)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def block_sum_exp(x, n, lo, hi, m):
    """``sum_{lo <= c < hi} exp(x[n, c] - m)`` as float64: blocks summed in x's dtype."""
    total = 0.0
    row = x[n]
    j = lo
    while j < hi:
        # A slice indexed from 0 lets Numba prove the index non-negative (no wraparound
        # select), which keeps the loop a plain contiguous vector loop.
        seg = row[j:min(j + BLOCK, hi)]
        acc = cast_like(0.0, m)
        for c in range(seg.shape[0]):
            acc += exp_diff(seg[c], m)
        total += np.float64(acc)
        j += BLOCK
    return total


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_exp(src, dst, n, lo, hi, m, store):
    """``sum_{lo <= c < hi} exp(src[n, c] - m)`` (exact shift) as float64.

    The sum runs in x's dtype over blocks of ``BLOCK`` and is folded into float64.
    ``store``: 0 sum only; 1 also write each term to ``dst[n, c]``; 2 the same in place
    (``src`` is ``dst``'s memory): the loop then reads and writes through ``dst`` alone,
    because two array arguments that alias fail LLVM's runtime overlap check and run the
    scalar fallback loop (5x slower, and its sum order would change the bits).
    """
    total = 0.0
    j = lo
    while j < hi:
        j1 = min(j + BLOCK, hi)
        acc = cast_like(0.0, m)
        if store == 2:
            b = dst[n, j:j1]
            for c in range(b.shape[0]):
                e = exp_diff(b[c], m)
                b[c] = e
                acc += e
        elif store == 1:
            a = src[n, j:j1]
            b = dst[n, j:j1]
            for c in range(a.shape[0]):
                e = exp_diff(a[c], m)
                b[c] = e
                acc += e
        else:
            a = src[n, j:j1]
            for c in range(a.shape[0]):
                acc += exp_diff(a[c], m)
        total += np.float64(acc)
        j = j1
    return total


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_wx(x, n, lo, hi, w):
    """``sum_{lo <= c < hi} w[c] * x[n, c]`` in float64 (the label-smoothing term)."""
    a = x[n, lo:hi]
    b = w[lo:hi]
    acc = 0.0
    for c in range(a.shape[0]):
        acc += np.float64(b[c]) * np.float64(a[c])
    return acc


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def scale_seg(dst, n, lo, hi, c_p, c_w, w, with_w):
    """``dst[n, c] = c_p * dst[n, c] [- c_w * w[c]]`` for lo <= c < hi."""
    b = dst[n, lo:hi]
    if with_w:
        ws = w[lo:hi]
        for c in range(b.shape[0]):
            b[c] = c_p * b[c] - c_w * ws[c]
    else:
        for c in range(b.shape[0]):
            b[c] = c_p * b[c]
