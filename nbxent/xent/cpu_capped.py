"""CPU cross_entropy with a logit soft cap: ``y = c * tanh(x / c)`` before the softmax.

Serves class-index and probability targets, ``(N, C)`` and ``(N, C, d1..dk)`` inputs, with
every other option (weights, ignore_index, label smoothing, z-loss, the returned lse): the
capped logits ``y`` take the place of ``x`` in the formulas of nbxent/xent/formulas.py and
the gradient row is multiplied by ``dy/dx = softcap_slope(x, c)`` (chain rule).

Signature, one per float dtype (the conventions of nbxent/xent/cpu_index.py):

    run_capped(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq)

Per sample, in float64 (``y`` is formed from the logit once and kept in a float64 row
buffer: rounding it back to a float32 ``y`` would put ``|y| * 2^-24`` into every
exponent, tens of ulp of the result for ``c = 30``):

1. ``y_c = softcap_value(x_c, c)`` and ``m = max_c y_c``. Every ``y_c`` lies in
   ``[-c, c]``, so ``+-inf`` logits are finite here (``+-c``): unlike the uncapped loss, a
   ``+inf`` logit does not make its row NaN; NaN still does.
2. ``e_c = exp(y_c - m)``, the sums (``s_other`` without the target's own term, or
   ``sum w q'`` and ``sum w q' (y - m)`` for probability targets); loss and lse from the
   stable forms (``log1p`` when the target holds the max);
3. with a gradient: ``d/dx_j = slope_j * d/dy_j``; ``x_j`` is read before ``grad_j`` is
   written, so ``grad`` may be ``x`` itself (in place).

The logits are read from memory once per sample for step 1; step 3 reads them again for
the slope, from cache for rows up to a few hundred KB. Samples run ``prange`` over
independent slots (bit-identical for any thread count).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nbxent._core.jit import CACHE, GRAD_NONE
from nbxent._cpu.fastmath import cast_like
from nbxent._cpu.threads import use_parallel
from nbxent.xent.formulas import (
    index_grad_other,
    index_grad_scale,
    index_grad_target,
    index_loss,
    index_value,
    prob_grad_scale,
    smooth_target,
    softcap_slope,
    softcap_value,
)

__all__ = ["run_capped"]


@njit(cache=CACHE, error_model="numpy")
def _capped_sample(x, n, k, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es):
    C = x.shape[1]
    K = x.shape[2]
    i = n * K + k
    c = opts.cap
    eps = opts.eps
    like = x[n, 0, k]
    tn = -1
    valid = True
    if not prob:
        tn = t[i]
        valid = tn != opts.ignore_index
    a_q = cast_like(1.0 - eps, like)       # torch forms the smoothed target in its own dtype
    b_q = cast_like(opts.epsc, like)
    # 1. capped logits and their max (NaN skipped here; it reaches the sum below)
    m = -np.inf
    for j in range(C):
        y = softcap_value(np.float64(x[n, j, k]), c)
        ys[j] = y
        if y > m:
            m = y
    # 2. shifted exps and the row sums
    s_other = 0.0
    wx = 0.0
    swq = 0.0
    wqy = 0.0
    for j in range(C):
        e = math.exp(ys[j] - m)
        es[j] = e
        if not (valid and j == tn):
            s_other += e
        if prob:
            wq = np.float64(w[j]) * np.float64(smooth_target(q[n, j, k], a_q, b_q, opts.smooth))
            swq += wq
            wqy += wq * (ys[j] - m)
        elif opts.smooth:
            wx += np.float64(w[j]) * ys[j]
    gs = g[i * opts.gstride]
    if prob:
        log_s = math.log(s_other)
        lse = m + log_s
        # -sum w q' lp with lp = (y - m) - log(s): two same-sign sums, no cancellation
        loss[i] = -(wqy - swq * log_s)
        s = s_other
    elif not valid:
        loss[i] = 0.0
        lse = m + math.log(s_other)
        s = s_other
    else:
        e_t = es[tn]
        y_t = ys[tn]
        lt = index_loss(m, y_t, s_other, e_t)
        s = s_other + e_t
        wt = np.float64(w[tn])
        nll = -0.0 * wt if lt == 0.0 else wt * lt
        lse = y_t + lt
        smooth_sum = 0.0
        if opts.smooth:
            smooth_sum = -((wx - sumw * m) - sumw * math.log(s))
        loss[i] = index_value(nll, smooth_sum, lse, C, opts)
    if opts.want_lse:
        opts.lse[i] = lse
    if opts.grad_target:
        c_q = -(1.0 - eps) * gs
        log_s = math.log(s)
        for j in range(C):
            gradq[n, j, k] = cast_like(c_q * np.float64(w[j]) * ((ys[j] - m) - log_s), like)
    if opts.grad_mode == GRAD_NONE:
        return
    if prob:
        scale = prob_grad_scale(gs, swq, lse, opts) / s
        for j in range(C):
            qj = np.float64(smooth_target(q[n, j, k], a_q, b_q, opts.smooth))
            d = es[j] * scale - gs * (np.float64(w[j]) * qj)
            grad[n, j, k] = cast_like(d * softcap_slope(np.float64(x[n, j, k]), c), like)
    elif not valid:
        fill = cast_like(np.nan if math.isnan(s) else 0.0, like)
        for j in range(C):
            grad[n, j, k] = fill
    else:
        wt = np.float64(w[tn])
        scale = index_grad_scale(gs, wt, sumw, lse, opts)
        for j in range(C):
            if j == tn:
                d = index_grad_target(gs, wt, sumw, -s_other / s, es[j] / s, lse, opts)
            else:
                d = index_grad_other(es[j] / s, scale, gs, np.float64(w[j]), opts)
            grad[n, j, k] = cast_like(d * softcap_slope(np.float64(x[n, j, k]), c), like)


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _capped_par(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq):
    N, C, K = x.shape
    for i in prange(N * K):
        ys = np.empty(C)
        es = np.empty(C)
        _capped_sample(x, i // K, i % K, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es)


@njit(cache=CACHE, error_model="numpy")
def _capped_ser(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq):
    N, C, K = x.shape
    ys = np.empty(C)
    es = np.empty(C)
    for i in range(N * K):
        _capped_sample(x, i // K, i % K, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es)


def run_capped(x3, t, q3, prob, w, sumw, g, opts, loss, grad3, gradq3):
    """Launch soft-capped cross_entropy on ``(N, C, K)`` arrays (C >= 1); see module docstring."""
    N, C, K = x3.shape
    fn = _capped_par if use_parallel(N * C * K) and N * K > 1 else _capped_ser
    fn(x3, t, q3, bool(prob), w, float(sumw), g, opts, loss, grad3, gradq3)
