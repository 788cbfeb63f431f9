"""CPU kernels of the vocab-parallel statistics and gradient: ``prange`` over independent rows.

Each row is computed serially in float64 by the shared formulas (``_formulas``), so the
results are identical for any thread count. Arguments are validated before these run.
"""
from __future__ import annotations

from numba import njit, prange

from nbxent._vocab import _formulas as F

_row_stats = njit(inline="always", cache=True)(F.row_stats)
_grad_row = njit(inline="always", cache=True)(F.grad_row)


@njit(parallel=True, cache=True)
def stats_kernel(x, t, w, has_weight, v0, ignore_index, smooth, out):
    """``out[k, i]`` for k = (m, z, xt, wt, sm, owned); an ignored row is held by no shard."""
    for i in prange(x.shape[0]):
        ti = t[i]
        if ti == ignore_index:
            ti = v0 - 1    # held by no shard: the row's mass only (see _combine)
        m, z, xt, wt, sm, owned = _row_stats(x, i, v0, ti, w, has_weight, smooth)
        out[0, i] = m
        out[1, i] = z
        out[2, i] = xt
        out[3, i] = wt
        out[4, i] = sm
        out[5, i] = owned


@njit(parallel=True, cache=True)
def grad_kernel(x, t, w, has_weight, v0, ignore_index, lse, a, b, d, out):
    """The shard's gradient rows (an ignored row has a = b = d = 0: +0.0, or NaN where p is)."""
    for i in prange(x.shape[0]):
        _grad_row(x, i, v0, t[i], w, has_weight, lse[i], a[i], b[i], d[i], out)
