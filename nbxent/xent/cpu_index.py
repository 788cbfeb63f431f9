"""CPU kernels of cross_entropy (class-index targets) and nll_loss.

Layout: the input is a C-contiguous ``(N, C, K)`` array (``K = prod(d1..dk)``, 1 for 1-D/2-D
inputs), targets an int64 ``(S,)`` array with ``S = N*K``; no transposing copy is made for
spatial inputs, their class stride is ``K``.

Every kernel has ONE signature per float dtype (float32, float64):

    (x, t, w, sumw, g, opts, loss, grad)

* ``w``: ``(C,)`` weights in x's dtype (ones when none were given), ``sumw = sum(w)`` (float64).
* ``g``: float64 per-sample gradient scale, read as ``g[s * opts.gstride]``.
* ``opts``: an :class:`~nbxent.xent.validate.XentOptions` record (ignore_index, eps,
  grad_mode, gstride, ...): named fields of fixed types, so one compiled signature.
* ``loss``: float64 ``(S,)``, the ``'none'`` value of every sample (+0.0 when ignored).
* ``grad``: x-shaped buffer of x's dtype, written unless ``opts.grad_mode`` is ``GRAD_NONE``
  (``GRAD_INTO``: a separate buffer; ``GRAD_IN_PLACE``: ``grad`` is ``x``'s memory, every
  row read in full before any of it is overwritten).

Rows (K = 1) run ``prange`` over rows (nbxent/xent/cpu_rows.py); spatial inputs over
``(n, block of K positions)`` (nbxent/xent/cpu_spatial.py). Each work item writes its own
slots and nothing is reduced inside ``prange``, so results are bit-identical for any thread
count. Inputs below ``PARALLEL_MIN`` elements use the serial drivers (same per-row code;
nbxent/_cpu/threads.py says why: cost and fork safety); for rows that driver,
:func:`index_rows_serial`, also checks the targets and reduces, so a small call is one
Numba call (nbxent/xent/cpu_small.py) and the first call of a process compiles only it.

Per sample (see nbxent/xent/formulas.py for the stable forms):

    loss_t = -log p_t                                     (log1p form when t is the row max)
    nll    = w_t * loss_t                                 (-0.0 * w_t when loss_t == 0, as torch)
    value  = (1 - eps) * nll + (eps / C) * (-sum_c w_c * (x_c - lse))   if eps > 0
    d/dx_j = g_s * (A * p_j - (eps/C) * w_j),  A = (1 - eps) * w_t + (eps/C) * sum_c w_c
    d/dx_t = g_s * ((1 - eps) * w_t * (p_t - 1) + (eps/C) * (sumw * p_t - w_t)),
             with p_t - 1 = expm1(-loss_t) (rows) or -s_other / s (spatial) and
             p_t = e_t / s: no cancellation when p_t ~ 1 or p_t ~ 0

Ignored samples: value +0.0; gradient +0.0, or NaN over the row when its log-softmax is NaN
(torch evaluates ``0 - exp(lp) * 0``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbxent._core.arrays import target_out_of_bounds
from nbxent._core.jit import CACHE, GRAD_NONE
from nbxent._core.reduction import neumaier_sum, weight_sum
from nbxent._cpu.fastmath import cast_like
from nbxent._cpu.threads import PARALLEL_MIN, use_parallel
from nbxent.xent.cpu_rows import index_row as _index_row
from nbxent.xent.cpu_rows import scratch_len
from nbxent.xent.cpu_spatial import KBLOCK, SC_ROWS
from nbxent.xent.cpu_spatial import index_block as _index_block
from nbxent.xent.validate import CEPlan, XentOptions

__all__ = ["PARALLEL_MIN", "index_rows_serial", "nll_serial", "run_index", "run_nll",
           "scan_targets"]


@njit(cache=CACHE, error_model="numpy")
def _scan(t, w, has_w, ignore_index, n_classes):
    """First out-of-range target (index, or -1), the valid count and sum_{valid} w[t] (float64)."""
    total = 0.0
    count = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti == ignore_index:
            continue
        if ti < 0 or ti >= n_classes:
            return i, count, total
        count += 1
        total += np.float64(w[ti]) if has_w else 1.0
    return -1, count, total


def scan_targets(plan: CEPlan, t_flat, w_compute, target_shape) -> tuple:
    """Range-check int64 targets before any kernel indexes with them.

    Args:
        t_flat: int64 C-contiguous ``(S,)`` host array.
        w_compute: ``(C,)`` weights in the compute dtype (ones when none were given).
        target_shape: the target's shape as given, for the error message.

    Returns:
        ``(n_valid, W)``: the count of non-ignored samples and ``sum w[t]`` over them (float64).

    Raises:
        IndexError: torch's ``Target {t} is out of bounds.``, with the first bad position.
    """
    bad, count, total = _scan(t_flat, w_compute, plan.has_weight, plan.ignore_index, plan.C)
    if bad >= 0:
        raise target_out_of_bounds(plan.fname, int(t_flat[bad]), bad, target_shape, plan.C)
    if plan.deferred_error:
        raise RuntimeError(plan.deferred_error)
    return int(count), float(total)



@njit(parallel=True, cache=CACHE, error_model="numpy")
def _index_rows_par(x, t, w, sumw, g, opts, loss, grad):
    nb = scratch_len(x.shape[1])
    for n in prange(x.shape[0]):
        mb = np.empty(nb, dtype=x.dtype)
        sb = np.empty(nb)
        _index_row(x, n, t, w, sumw, g, opts, loss, grad, mb, sb)


@njit(cache=CACHE, error_model="numpy")
def index_rows_serial(x, t, w, g, fields, loss, grad):
    """Small ``(N, C)`` inputs in one call, on the calling thread: check, rows, reduction.

    ``fields``: the :class:`~nbxent.xent.validate.XentOptions` record as a plain tuple
    (``tuple(opts)``), rebuilt into the record here. Numba types a plain tuple of scalars
    and arrays from a cached fingerprint (~0.3 us per call) but a NamedTuple field by field
    in Python (~3.5 us for this one), a tenth of a small call's whole cost.

    The target scan, the per-row kernel and the serial float64 combine of the general
    path (the same compiled functions, so both give the same bits). With ``opts.mean``
    the scalar ``g[0]`` is divided by ``W`` here (the general path passes ``g`` already
    scaled and ``mean=False``). Returns ``(bad, total, W)``: ``bad >= 0`` is the flat
    index of the first out-of-range target (nothing computed then); ``total`` is the
    reduced loss (divided by ``W`` with ``mean``), ``W = sum_{valid} w[t]``.
    """
    opts = XentOptions(*fields)
    bad, count, W = _scan(t, w, opts.has_weight, opts.ignore_index, x.shape[1])
    if bad >= 0:
        return bad, 0.0, W
    sumw = weight_sum(w)
    gg = g
    if opts.mean and opts.gstride == 0:
        gg = np.empty(1)
        gg[0] = g[0] / W
    nb = scratch_len(x.shape[1])
    mb = np.empty(nb, dtype=x.dtype)
    sb = np.empty(nb)
    for n in range(x.shape[0]):
        _index_row(x, n, t, w, sumw, gg, opts, loss, grad, mb, sb)
    total = neumaier_sum(loss, False)
    if opts.mean:
        total = total / W
    return -1, total, W


#: Spatial work items per scratch allocation (one tile and one float64 scratch per group):
#: items are independent, so the grouping changes no result.
SPATIAL_GROUP = 16


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _index_spatial_par(x, t, w, sumw, g, opts, loss, grad):
    N, C, K = x.shape
    nkb = (K + KBLOCK - 1) // KBLOCK
    items = N * nkb
    for grp in prange((items + SPATIAL_GROUP - 1) // SPATIAL_GROUP):
        tile = np.empty((C + 5, KBLOCK), dtype=x.dtype)
        sc = np.empty((SC_ROWS, KBLOCK))
        for item in range(grp * SPATIAL_GROUP, min(items, (grp + 1) * SPATIAL_GROUP)):
            n = item // nkb
            k0 = (item % nkb) * KBLOCK
            _index_block(x, n, k0, min(k0 + KBLOCK, K), t, w, sumw, g, opts, loss, grad,
                         tile, sc)


@njit(cache=CACHE, error_model="numpy")
def _index_spatial_ser(x, t, w, sumw, g, opts, loss, grad):
    N, C, K = x.shape
    tile = np.empty((C + 5, KBLOCK), dtype=x.dtype)
    sc = np.empty((SC_ROWS, KBLOCK))
    for n in range(N):
        for k0 in range(0, K, KBLOCK):
            _index_block(x, n, k0, min(k0 + KBLOCK, K), t, w, sumw, g, opts, loss, grad,
                         tile, sc)


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


@njit(cache=CACHE, error_model="numpy")
def nll_serial(x, t, w, has_weight, ii, mean, g, loss, grad):
    """Small nll_loss calls in one call, on the calling thread: check, values, gradient, sum.

    ``x``: ``(N, C, K)``; ``grad``: x-shaped (written unless empty, after every value is
    read, so it may be ``x`` itself); ``g``: a float64 ``(1,)`` scratch holding 1, the
    upstream gradient, divided by ``W`` here for ``mean``. The general path's functions in
    its order (:func:`_scan`, :func:`_nll_forward`, the float64 combine, :func:`_nll_grad`),
    so both give the same bits; nothing is allocated here (each allocation is one more
    function compiled on the first call). Returns ``(bad, total, W)`` as
    :func:`index_rows_serial`.
    """
    bad, count, W = _scan(t, w, has_weight, ii, x.shape[1])
    if bad >= 0:
        return bad, 0.0, W
    _nll_forward(x, t, w, ii, loss)
    total = neumaier_sum(loss, False)
    if mean:
        total = total / W
        g[0] = g[0] / W
    if grad.size:
        N, C, K = grad.shape
        zero = cast_like(0.0, w[0])
        for n in range(N):
            for c in range(C):
                for k in range(K):
                    grad[n, c, k] = zero
        _nll_grad(t, w, ii, g, 0, grad)
    return -1, total, W


def run_index(x3, t, w, sumw, g, opts, loss, grad3):
    """Launch class-index cross_entropy on ``(N, C, K)`` arrays (C >= 1); see module docstring."""
    N, C, K = x3.shape
    par = use_parallel(N * C * K)
    if K == 1:
        x2 = x3.reshape(N, C)
        g2 = grad3.reshape(N, C) if opts.grad_mode != GRAD_NONE else grad3.reshape(0, 0)
        if par and N > 1:
            _index_rows_par(x2, t, w, sumw, g, opts, loss, g2)
        else:
            index_rows_serial(x2, t, w, g, tuple(opts), loss, g2)
    else:
        fn = _index_spatial_par if par else _index_spatial_ser
        fn(x3, t, w, sumw, g, opts, loss, grad3)


def run_nll(x3, t, w, g, opts, loss, grad3):
    """Launch nll_loss on ``(N, C, K)`` arrays; ``grad3`` may be ``x3`` (read first)."""
    _nll_forward(x3, t, w, opts.ignore_index, loss)
    if opts.grad_mode != GRAD_NONE:
        grad3.fill(0)
        _nll_grad(t, w, opts.ignore_index, g, opts.gstride, grad3)
