"""CPU kernels of cross_entropy (class-index targets) and nll_loss.

Layout: the input is a C-contiguous ``(N, C, K)`` array (``K = prod(d1..dk)``, 1 for 1-D/2-D
inputs), targets an int64 ``(S,)`` array with ``S = N*K``; no transposing copy is made for
spatial inputs, their class stride is ``K``.

Every kernel has ONE signature per float dtype (float32, float64):

    (x, t, w, ignore_index, eps, sumw, g, gstride, loss, grad, want_grad)

* ``w``: ``(C,)`` weights in x's dtype (ones when none were given), ``sumw = sum(w)`` (float64).
* ``g``: float64 per-sample gradient scale, read as ``g[s * gstride]`` (``gstride = 0`` for a
  single scalar: mean/sum; ``1`` for ``'none'``).
* ``loss``: float64 ``(S,)``, the ``'none'`` value of every sample (+0.0 when ignored).
* ``grad``: x-shaped buffer of x's dtype, written only when ``want_grad`` (int: 0 no gradient,
  1 into ``grad``, 2 in place: ``grad`` is ``x``'s memory). In place, every row is read in
  full before any of it is overwritten.

Rows (K = 1) run ``prange`` over rows (nbxent/_ce_cpu_rows.py); spatial inputs over
``(n, block of K positions)`` (nbxent/_ce_cpu_spatial.py). Each work item writes its own
slots and nothing is reduced inside ``prange``, so results are bit-identical for any thread
count. Inputs below ``PARALLEL_MIN`` elements use the serial drivers (same per-row code),
because waking the thread pool costs more than the work; for rows that driver,
:func:`index_rows_serial`, also checks the targets and reduces, so a small call is one
Numba call (nbxent/_ce_fast.py) and the first call of a process compiles only it.

Per sample (see nbxent/_ce_scalar.py for the stable forms):

    loss_t = -log p_t                                     (log1p form when t is the row max)
    nll    = w_t * loss_t                                 (-0.0 * w_t when loss_t == 0, as torch)
    value  = (1 - eps) * nll + (eps / C) * (-sum_c w_c * (x_c - lse))   if eps > 0
    d/dx_j = g_s * (A * p_j - (eps/C) * w_j),  A = (1 - eps) * w_t + (eps/C) * sum_c w_c
    d/dx_t = g_s * ((1 - eps) * w_t * (p_t - 1) + (eps/C) * (sumw * p_t - w_t)),
             with p_t - 1 = expm1(-loss_t) (rows) or -s_other / s (spatial): no
             cancellation when p_t ~ 1

Ignored samples: value +0.0; gradient +0.0, or NaN over the row when its log-softmax is NaN
(torch evaluates ``0 - exp(lp) * 0``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbxent._ce_cpu_common import cast_like, neumaier_sum, weight_sum
from nbxent._ce_cpu_rows import index_row as _index_row, scratch_len
from nbxent._ce_cpu_spatial import KBLOCK, SC_ROWS, index_block as _index_block
from nbxent._ce_validate import _scan
from nbxent._common import CACHE

#: Elements (N*C*K) from which the parallel drivers are used: below, waking the thread pool
#: (50 us median on two busy cores, ms tails) costs more than the work (~1.2 ns/element).
PARALLEL_MIN = 1 << 15


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _index_rows_par(x, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad):
    nb = scratch_len(x.shape[1])
    for n in prange(x.shape[0]):
        mb = np.empty(nb, dtype=x.dtype)
        sb = np.empty(nb)
        _index_row(x, n, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad, mb, sb)


@njit(cache=CACHE, error_model="numpy")
def index_rows_serial(x, t, w, has_w, ii, eps, g, gstride, mean, loss, grad, want_grad):
    """Small ``(N, C)`` inputs in one call, on the calling thread: check, rows, reduction.

    The target scan, the per-row kernel and the serial float64 combine of the general
    path (the same compiled functions, so both give the same bits). With ``mean`` the
    scalar ``g[0]`` is divided by ``W`` here (the general path passes ``g`` already scaled
    and ``mean=False``). Returns ``(bad, total, W)``: ``bad >= 0`` is the flat index of the
    first out-of-range target (nothing computed then); ``total`` is the reduced loss
    (divided by ``W`` with ``mean``), ``W = sum_{valid} w[t]``.
    """
    bad, count, W = _scan(t, w, has_w, ii, x.shape[1])
    if bad >= 0:
        return bad, 0.0, W
    sumw = weight_sum(w)
    gg = g
    if mean and gstride == 0:
        gg = np.empty(1)
        gg[0] = g[0] / W
    nb = scratch_len(x.shape[1])
    mb = np.empty(nb, dtype=x.dtype)
    sb = np.empty(nb)
    for n in range(x.shape[0]):
        _index_row(x, n, t, w, ii, eps, sumw, gg, gstride, loss, grad, want_grad, mb, sb)
    total = neumaier_sum(loss, False)
    if mean:
        total = total / W
    return -1, total, W


#: Spatial work items per scratch allocation (one tile and one float64 scratch per group):
#: items are independent, so the grouping changes no result.
SPATIAL_GROUP = 16


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _index_spatial_par(x, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad):
    N, C, K = x.shape
    nkb = (K + KBLOCK - 1) // KBLOCK
    items = N * nkb
    for grp in prange((items + SPATIAL_GROUP - 1) // SPATIAL_GROUP):
        tile = np.empty((C + 5, KBLOCK), dtype=x.dtype)
        sc = np.empty((SC_ROWS, KBLOCK))
        for item in range(grp * SPATIAL_GROUP, min(items, (grp + 1) * SPATIAL_GROUP)):
            n = item // nkb
            k0 = (item % nkb) * KBLOCK
            _index_block(x, n, k0, min(k0 + KBLOCK, K), t, w, ii, eps, sumw, g, gstride, loss,
                         grad, want_grad, tile, sc)


@njit(cache=CACHE, error_model="numpy")
def _index_spatial_ser(x, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad):
    N, C, K = x.shape
    tile = np.empty((C + 5, KBLOCK), dtype=x.dtype)
    sc = np.empty((SC_ROWS, KBLOCK))
    for n in range(N):
        for k0 in range(0, K, KBLOCK):
            _index_block(x, n, k0, min(k0 + KBLOCK, K), t, w, ii, eps, sumw, g, gstride, loss,
                         grad, want_grad, tile, sc)


@njit(cache=CACHE, error_model="numpy")
def _nll_forward(x, t, w, ii, loss):
    """nll_loss values: reads only x[n, t, k]."""
    N, K = x.shape[0], x.shape[2]
    for n in range(N):
        for k in range(K):
            i = n * K + k
            tv = t[i]
            if tv == ii:
                loss[i] = 0.0
            else:
                loss[i] = np.float64((-x[n, tv, k]) * w[tv])  # torch's 'none' value and rounding


@njit(cache=CACHE, error_model="numpy")
def _nll_grad(t, w, ii, g, gstride, grad):
    """nll_loss gradient into a zero-filled ``grad``: ``-w[t] * g_s`` at ``[n, t, k]``."""
    N, K = grad.shape[0], grad.shape[2]
    for n in range(N):
        for k in range(K):
            i = n * K + k
            tv = t[i]
            if tv != ii:
                grad[n, tv, k] = cast_like(-(np.float64(w[tv]) * g[i * gstride]), w[tv])


def run_index(x3, t, w, has_w, ii, eps, sumw, g, gstride, loss, grad3, want_grad):
    """Launch class-index cross_entropy on ``(N, C, K)`` arrays (C >= 1); see module docstring."""
    N, C, K = x3.shape
    par = N * C * K >= PARALLEL_MIN
    if K == 1:
        x2 = x3.reshape(N, C)
        g2 = grad3.reshape(N, C) if want_grad else grad3.reshape(0, 0)
        if par and N > 1:
            _index_rows_par(x2, t, w, ii, eps, sumw, g, gstride, loss, g2, want_grad)
        else:
            index_rows_serial(x2, t, w, has_w, ii, eps, g, gstride, False, loss, g2, want_grad)
    else:
        fn = _index_spatial_par if par else _index_spatial_ser
        fn(x3, t, w, ii, eps, sumw, g, gstride, loss, grad3, want_grad)


def run_nll(x3, t, w, ii, g, gstride, loss, grad3, want_grad):
    """Launch nll_loss on ``(N, C, K)`` arrays; ``grad3`` may be ``x3`` (read first)."""
    _nll_forward(x3, t, w, ii, loss)
    if want_grad:
        grad3.fill(0)
        _nll_grad(t, w, ii, g, gstride, grad3)
