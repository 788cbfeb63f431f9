"""CPU cross_entropy with a logit soft cap: ``y = c * tanh(x / c)`` before the softmax.

Serves class-index and probability targets, ``(N, C)`` and ``(N, C, d1..dk)`` inputs, with
every other option (weights, ignore_index, label smoothing, z-loss, the returned lse): the
capped logits ``y`` take the place of ``x`` in the formulas of nbxent/xent/formulas.py and
the gradient row is multiplied by ``dy/dx = softcap_slope(exp(-2|x / c|))`` (chain rule).

Signature, one per float dtype (the conventions of nbxent/xent/cpu_index.py):

    run_capped(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq)

Per sample, in float64 (``y`` is formed from the logit once and kept in a float64 row
buffer: rounding it back to a float32 ``y`` would put ``|y| * 2^-24`` into every
exponent, tens of ulp of the result for ``c = 30``), in loops LLVM vectorizes (the
exps are ``exp_f64``, 0.975 ulp):

1. ``a_c = exp(-2|x_c / c|)`` (kept for the slope) and ``y_c``: for float32 inputs
   ``c * tanh`` from ``a`` (``_tanh_fast``, 1e-14 relative), for float64 inputs libm's
   ``tanh`` (``softcap_value``); then ``m = max_c y_c``. Every ``y_c`` lies in ``[-c, c]``,
   so ``+-inf`` logits are finite here (``+-c``): unlike the uncapped loss, a ``+inf``
   logit does not make its row NaN; NaN still does.
2. ``e_c = exp(y_c - m)``, the sums (``s_other`` without the target's own term, or
   ``sum w q'`` and ``sum w q' (y - m)`` for probability targets); loss and lse from the
   stable forms (``log1p`` when the target holds the max);
3. with a gradient: ``d/dx_j = softcap_slope(a_j) * d/dy_j``, from the row buffers only,
   so ``grad`` may be ``x`` itself (in place).

The logits are read from memory once per sample (step 1). Samples run ``prange`` over
independent slots (bit-identical for any thread count; the float64 row sums are
vectorized, so their bits depend on the machine's vector width, as the row kernels').
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nbxent._core.jit import CACHE, GRAD_NONE
from nbxent._cpu.fastmath import cast_like, exp_f64
from nbxent._cpu.rows import FASTMATH
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


@njit(inline="always", cache=CACHE, error_model="numpy")
def _tanh_fast(au, a):
    """``tanh(au)`` for ``au = |x / c| >= 0`` and ``a = exp(-2 au)``, vectorizable.

    ``(1 - a) / (1 + a)`` for ``au >= 0.01``, where ``1 - a >= 0.0198`` carries at most
    ~50 ulp of float64 (1e-14 relative: far below a float32 result's last bit), and the
    Taylor series ``u (1 - u^2/3 + 2u^4/15 - 17u^6/315)`` below (its remainder
    ``62 u^8 / 2835 < 3e-18`` relative). Used for float32 inputs; float64 inputs take libm's
    ``tanh`` through ``softcap_value``.
    """
    u2 = au * au
    series = au * (1.0 + u2 * (-1.0 / 3.0 + u2 * (2.0 / 15.0 - u2 * (17.0 / 315.0))))
    return series if au < 0.01 else (1.0 - a) / (1.0 + a)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _capped_sample(x, n, k, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es, av):
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
    # 1. capped logits y and a = exp(-2|x / c|) (the slope's input), two vectorized loops
    if opts.cap_fast:
        for j in range(C):
            u = np.float64(x[n, j, k]) / c
            au = abs(u)
            a = exp_f64(-(au + au))
            av[j] = a
            ys[j] = c * math.copysign(_tanh_fast(au, a), u) if au == au else u
    else:
        for j in range(C):
            xj = np.float64(x[n, j, k])
            au = abs(xj / c)
            av[j] = exp_f64(-(au + au))
            ys[j] = softcap_value(xj, c)
    m = -np.inf                      # NaN skipped here; it reaches the sum below
    for j in range(C):
        y = ys[j]
        m = y if y > m else m
    # 2. shifted exps and the row sums (the target's own term left out of s_other)
    for j in range(C):
        es[j] = exp_f64(ys[j] - m)
    e_t = 0.0
    if valid and not prob:
        e_t = es[tn]
        es[tn] = 0.0
    s_other = 0.0
    for j in range(C):
        s_other += es[j]
    if valid and not prob:
        es[tn] = e_t
    wx = 0.0
    swq = 0.0
    wqy = 0.0
    if prob:
        for j in range(C):
            wq = np.float64(w[j]) * np.float64(smooth_target(q[n, j, k], a_q, b_q, opts.smooth))
            swq += wq
            wqy += wq * (ys[j] - m)
    elif opts.smooth and valid:
        for j in range(C):
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
        y_t = ys[tn]
        lt = index_loss(m, y_t, s_other, e_t)
        s = s_other + e_t
        wt = np.float64(w[tn])
        nll = -0.0 * wt if lt == 0.0 else wt * lt
        lse = m + (math.log1p(s_other) if y_t == m else math.log(s))   # not y_t + lt: it cancels
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
    # 3. the gradient row: d/dy_j times the slope (softcap_slope of the stored a)
    if prob:
        scale = prob_grad_scale(gs, swq, lse, opts) / s
        for j in range(C):
            qj = np.float64(smooth_target(q[n, j, k], a_q, b_q, opts.smooth))
            d = es[j] * scale - gs * (np.float64(w[j]) * qj)
            grad[n, j, k] = cast_like(d * softcap_slope(av[j], 1.0), like)
    elif not valid:
        fill = cast_like(np.nan if math.isnan(s) else 0.0, like)
        for j in range(C):
            grad[n, j, k] = fill
    else:
        wt = np.float64(w[tn])
        scale = index_grad_scale(gs, wt, sumw, lse, opts)
        for j in range(C):
            d = index_grad_other(es[j] / s, scale, gs, np.float64(w[j]), opts)
            grad[n, j, k] = cast_like(d * softcap_slope(av[j], 1.0), like)
        d = index_grad_target(gs, wt, sumw, -s_other / s, e_t / s, lse, opts)
        grad[n, tn, k] = cast_like(d * softcap_slope(av[tn], 1.0), like)


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _capped_par(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq):
    N, C, K = x.shape
    for i in prange(N * K):
        ys = np.empty(C)
        es = np.empty(C)
        av = np.empty(C)
        _capped_sample(x, i // K, i % K, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es,
                       av)


@njit(cache=CACHE, error_model="numpy")
def _capped_ser(x, t, q, prob, w, sumw, g, opts, loss, grad, gradq):
    N, C, K = x.shape
    ys = np.empty(C)
    es = np.empty(C)
    av = np.empty(C)
    for i in range(N * K):
        _capped_sample(x, i // K, i % K, t, q, prob, w, sumw, g, opts, loss, grad, gradq, ys, es,
                       av)


def run_capped(x3, t, q3, prob, w, sumw, g, opts, loss, grad3, gradq3):
    """Launch soft-capped cross_entropy on ``(N, C, K)`` arrays (C >= 1); see module docstring."""
    N, C, K = x3.shape
    fn = _capped_par if use_parallel(N * C * K) and N * K > 1 else _capped_ser
    fn(x3, t, q3, bool(prob), w, float(sumw), g, opts, loss, grad3, gradq3)
