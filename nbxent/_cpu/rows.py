"""Row scans of the CPU cross-entropy kernels (max-shifted log-sum-exp and friends).

* ``seg_max``/``row_max``: NaN-skipping row maxima, vectorized through ``maxnum``.
* ``sum_exp`` (sum, or sum and store each term), ``block_sum_exp``: the
  shifted sums of exps, in fixed lanes (the same bits for any vector width) folded into
  float64 by a fixed tree.
* ``sum_wx`` (label smoothing), ``scale_seg`` (the gradient's final scaling).

Helpers are separate ``@njit`` functions (LLVM inlines them into the callers' loops);
numba-level ``inline="always"`` re-typed them at every call site and made the first
compile slower with no speed gain. The exp they use is :func:`nbxent._cpu.fastmath.exp_below`
(every shift is the max of the terms it shifts).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from nbxent._core.jit import CACHE
from nbxent._cpu.fastmath import cast_like, exp_below, maxnum

#: fastmath flags of the row kernels: reassociation lets the gradient loop widen (the sums
#: are written so that no flag can regroup them); never nnan/ninf (NaN/inf semantics are
#: part of the contract).
FASTMATH = {"contract", "arcp", "reassoc"}

#: Terms per block of a vectorized sum (see LANES): a block's terms and their lanes
#: stay in L1.
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


#: Every vectorized sum runs in ``LANES`` lanes: term ``j`` of a block of ``BLOCK`` goes to
#: lane ``j`` (an elementwise add, fused into the exp loop), and the lanes are summed in
#: float64 by a fixed pairwise tree at the end. No loop reduces across its vector, so the
#: order (hence the bits) does not depend on the host's vector width; LLVM's own
#: reductions sum in as many lanes as the vectors hold (8 float32 with AVX2, 16 with
#: AVX-512, times its interleave). A lane holds ``CB / BLOCK = 16`` terms at most, in x's
#: dtype: the rounding of a float32 lane stays below the float32 result's last bit.
LANES = BLOCK


@njit(cache=CACHE, error_model="numpy")
def lane_span(used):
    """Lanes a sum over ``used`` (<= LANES) lanes spans: the smallest power of two >= used."""
    h = 1
    while h < used:
        h *= 2
    return h


@njit(cache=CACHE, error_model="numpy")
def fold_lanes(acc, f64, used):
    """``sum(acc[:used])`` in float64 by a fixed pairwise tree over ``lane_span(used)`` lanes.

    Lanes past ``used`` must be 0; ``f64`` is float64 scratch of ``LANES`` (may be ``acc``
    itself when that is float64). Compiled without fastmath: no flag lets LLVM regroup the
    tree, and each level is elementwise, so the order depends on ``used`` only.
    """
    h = lane_span(used)
    if h == 1:
        return np.float64(acc[0]) if used > 0 else 0.0
    h //= 2
    for k in range(h):
        f64[k] = np.float64(acc[k]) + np.float64(acc[k + h])
    while h > 1:
        h //= 2
        for k in range(h):
            f64[k] = f64[k] + f64[k + h]
    return f64[0]


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes(a, m, acc):
    for c in range(a.shape[0]):
        acc[c] += exp_below(a[c], m)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes_into(a, b, m, acc):
    for c in range(a.shape[0]):
        e = exp_below(a[c], m)
        b[c] = e
        acc[c] += e


# The same loops taking, besides, the elementwise max of the terms' own logits into the
# lanes ``ml`` (``LANES``, x's dtype): a block shifted by a guess of its max (see
# nbxent/xent/cpu_rows.py) needs no max pass of its own.

@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes_max(a, m, acc, ml):
    for c in range(a.shape[0]):
        v = a[c]
        acc[c] += exp_below(v, m)
        ml[c] = maxnum(ml[c], v)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _exp_lanes_into_max(a, b, m, acc, ml):
    for c in range(a.shape[0]):
        v = a[c]
        e = exp_below(v, m)
        b[c] = e
        acc[c] += e
        ml[c] = maxnum(ml[c], v)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def max_lanes_fold(ml, used):
    """Max over the first ``used`` lanes of ``ml`` (NaN skipped; overwrites them).

    ``-inf`` when they hold no number. A pairwise tree of elementwise maxima: a max is
    exact, so the order changes no value.
    """
    h = lane_span(used)
    for k in range(used, h):
        ml[k] = cast_like(-np.inf, ml[0])
    while h > 1:
        h //= 2
        for k in range(h):
            ml[k] = maxnum(ml[k], ml[k + h])
    v = ml[0]
    return v if v == v else cast_like(-np.inf, v)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_exp(srow, s0, drow, lo, hi, m, store, skip, acc, f64, ml):
    """``sum_{lo <= c < hi, c != skip} exp(srow[c - s0] - m)`` (exact shift) as float64.

    Block by block of ``BLOCK`` terms, each term added to its lane of ``acc`` (x's dtype,
    ``LANES``) in the exp loop itself; :func:`fold_lanes` (``f64``: float64 scratch of
    ``LANES``) sums the lanes at the end. ``store``: 0 sum only; 1 also write each term to
    ``drow[c]`` (``drow`` may not overlap the terms read). ``skip`` (-1: none): the column
    whose term stays out of the sum (its lane is restored after its block; a stored term
    there is left for the caller to overwrite). ``srow``: a row (``s0 = 0``) or a copy of
    its columns from ``s0`` on. :func:`nbxent._cpu.fastmath.exp_below` needs
    ``srow[c - s0] - m <= 43``.

    ``ml`` (``LANES`` of x's dtype, or empty): when not empty, the same loops also take
    the max of the terms' logits into it (:func:`max_lanes_fold`).
    """
    used = min(hi - lo, LANES)
    zero = cast_like(0.0, m)
    for k in range(lane_span(used)):
        acc[k] = zero
    with_max = ml.shape[0] > 0
    if with_max:
        for k in range(used):
            ml[k] = cast_like(-np.inf, m)
    j = lo
    while j < hi:
        j1 = min(j + BLOCK, hi)
        inside = j <= skip < j1
        keep = acc[skip - j] if inside else zero
        # A slice indexed from 0 lets Numba prove the index non-negative (no wraparound
        # select), which keeps the loop a plain contiguous vector loop.
        a = srow[j - s0:j1 - s0]
        if store == 1:
            if with_max:
                _exp_lanes_into_max(a, drow[j:j1], m, acc, ml)
            else:
                _exp_lanes_into(a, drow[j:j1], m, acc)
        elif with_max:
            _exp_lanes_max(a, m, acc, ml)
        else:
            _exp_lanes(a, m, acc)
        if inside:
            acc[skip - j] = keep
        j = j1
    return fold_lanes(acc, f64, used)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def block_sum_exp(x, n, lo, hi, m, acc, f64):
    """``sum_{lo <= c < hi} exp(x[n, c] - m)`` as float64 (:func:`sum_exp`, nothing stored)."""
    row = x[n]
    return sum_exp(row, 0, row, lo, hi, m, 0, -1, acc, f64, acc[:0])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _add_wx(a, b, acc):
    for c in range(a.shape[0]):
        acc[c] += np.float64(b[c]) * np.float64(a[c])


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def sum_wx(x, n, lo, hi, w, f64):
    """``sum_{lo <= c < hi} w[c] * x[n, c]`` in float64 (the label-smoothing term).

    In the float64 lanes ``f64`` (scratch of ``LANES``), summed by :func:`fold_lanes`.
    """
    used = min(hi - lo, LANES)
    for k in range(lane_span(used)):
        f64[k] = 0.0
    j = lo
    while j < hi:
        j1 = min(j + BLOCK, hi)
        _add_wx(x[n, j:j1], w[j:j1], f64)
        j = j1
    return fold_lanes(f64, f64, used)


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

