"""CPU kernels of cross_entropy with probability (soft) targets.

Same layout and conventions as nbxent/xent/cpu_index.py: C-contiguous ``(N, C, K)`` input
and target ``q`` of the compute dtype, ``(C,)`` weights, float64 ``g[s * opts.gstride]``
gradient scale, float64 ``(S,)`` per-sample loss, one signature per float dtype:

    (x, q, w, g, opts, loss, grad, gradq)

Per sample (torch's formula, with the row's log-softmax ``lp_c = x_c - lse``):

    q'_c   = (1 - eps) * q_c + eps / C          (when eps > 0, formed in the target dtype)
    value  = -sum_c w_c * q'_c * lp_c           (-0.0 for C = 1, as torch: no masking, 0*-inf = NaN)
    d/dx_j = g_s * (p_j * sum_c w_c q'_c - w_j q'_j)
    d/dq_c = -(1 - eps) * g_s * w_c * lp_c

``opts.grad_mode``: GRAD_NONE, GRAD_INTO ``grad``, or GRAD_IN_PLACE (``grad`` is ``x``'s
memory); ``gradq`` (written when ``opts.grad_target``) may not alias anything read later.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from nbxent._core.jit import CACHE, GRAD_IN_PLACE, GRAD_NONE
from nbxent._cpu.fastmath import cast_like, exp_diff
from nbxent._cpu.rows import FASTMATH, LANES, block_sum_exp, row_max
from nbxent._cpu.threads import use_parallel
from nbxent.xent.cpu_spatial import KBLOCK
from nbxent.xent.formulas import log_prob, prob_grad_scale, smooth_target


@njit(cache=CACHE, error_model="numpy")
def _prob_sums(x, n, q, w, a, b, smooth, m64, log_s):
    """``(sum_c w_c q_c lp_c, sum_c w_c q_c)`` in float64, left to right.

    Compiled without fastmath: a reassociated sum would be vectorized in as many lanes as
    the host's vectors hold, and its bits would differ between AVX2 and AVX-512 hosts.
    """
    acc = 0.0
    swq = 0.0
    for c in range(x.shape[1]):
        qc = smooth_target(q[n, c], a, b, smooth)
        wq = np.float64(w[c]) * np.float64(qc)
        acc += wq * log_prob(np.float64(x[n, c]), m64, log_s)
        swq += wq
    return acc, swq


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _prob_row(x, n, q, w, g, opts, loss, grad, gradq):
    eps, grad_mode = opts.eps, opts.grad_mode
    smooth = eps > 0.0
    C = x.shape[1]
    m = row_max(x, n, C)
    lanes = np.empty(LANES, dtype=x.dtype)
    f64 = np.empty(LANES)
    s = block_sum_exp(x, n, 0, C, m, lanes, f64)
    m64 = np.float64(m)
    # lp_c = (x_c - m) - log(s): two terms of the same sign, no cancellation (x_c - lse
    # would lose the low bits of lse when lp_c is small).
    log_s = np.log(s)
    a = cast_like(1.0 - eps, m)
    b = cast_like(eps / C, m)
    acc, swq = _prob_sums(x, n, q, w, a, b, smooth, m64, log_s)
    loss[n] = -acc
    if opts.want_lse:
        opts.lse[n] = m64 + log_s
    gs = g[n * opts.gstride]
    if opts.grad_target:
        c_q = -(1.0 - eps) * gs
        for c in range(C):
            gradq[n, c] = cast_like(c_q * np.float64(w[c]) * log_prob(np.float64(x[n, c]), m64, log_s),
                                    m)
    if grad_mode != GRAD_NONE:
        c_p = cast_like(prob_grad_scale(gs, swq, m64 + log_s, opts) / s, m)
        c_g = cast_like(gs, m)
        # In place: read grad itself (one base pointer: see nbxent/xent/cpu_rows.py).
        if grad_mode == GRAD_IN_PLACE:
            for j in range(C):
                qj = smooth_target(q[n, j], a, b, smooth)
                grad[n, j] = c_p * exp_diff(grad[n, j], m) - c_g * (w[j] * qj)
        else:
            for j in range(C):
                qj = smooth_target(q[n, j], a, b, smooth)
                grad[n, j] = c_p * exp_diff(x[n, j], m) - c_g * (w[j] * qj)


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _prob_rows_par(x, q, w, g, opts, loss, grad, gradq):
    for n in prange(x.shape[0]):
        _prob_row(x, n, q, w, g, opts, loss, grad, gradq)


@njit(cache=CACHE, error_model="numpy")
def _prob_rows_ser(x, q, w, g, opts, loss, grad, gradq):
    for n in range(x.shape[0]):
        _prob_row(x, n, q, w, g, opts, loss, grad, gradq)


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def _prob_block(x, n, k0, k1, q, w, g, opts, loss, grad, gradq):
    eps, grad_mode, gstride = opts.eps, opts.grad_mode, opts.gstride
    smooth = eps > 0.0
    C = x.shape[1]
    K = x.shape[2]
    nb = k1 - k0
    m = np.empty(nb, dtype=x.dtype)
    for kk in range(nb):
        m[kk] = x[n, 0, k0 + kk]
    for c in range(1, C):
        for kk in range(nb):
            v = x[n, c, k0 + kk]
            m[kk] = v if v > m[kk] else m[kk]
    s = np.zeros(nb)
    for c in range(C):
        for kk in range(nb):
            s[kk] += np.float64(exp_diff(x[n, c, k0 + kk], m[kk]))
    log_s = np.log(s)           # lp = (x - m) - log(s): same-sign terms, see _prob_row
    a = cast_like(1.0 - eps, m[0])
    b = cast_like(eps / C, m[0])
    acc = np.zeros(nb)
    swq = np.zeros(nb)
    for c in range(C):
        wc = np.float64(w[c])
        for kk in range(nb):
            qc = smooth_target(q[n, c, k0 + kk], a, b, smooth)
            wq = wc * np.float64(qc)
            acc[kk] += wq * log_prob(np.float64(x[n, c, k0 + kk]), np.float64(m[kk]), log_s[kk])
            swq[kk] += wq
    for kk in range(nb):
        loss[n * K + k0 + kk] = -acc[kk]
        if opts.want_lse:
            opts.lse[n * K + k0 + kk] = np.float64(m[kk]) + log_s[kk]
    if opts.grad_target:
        for c in range(C):
            wc = np.float64(w[c])
            for kk in range(nb):
                gs = g[(n * K + k0 + kk) * gstride]
                gradq[n, c, k0 + kk] = cast_like(
                    -(1.0 - eps) * gs * wc
                    * log_prob(np.float64(x[n, c, k0 + kk]), np.float64(m[kk]), log_s[kk]), m[kk])
    if grad_mode != GRAD_NONE:
        c_p = np.empty(nb, dtype=x.dtype)
        c_g = np.empty(nb, dtype=x.dtype)
        for kk in range(nb):
            gs = g[(n * K + k0 + kk) * gstride]
            lse = np.float64(m[kk]) + log_s[kk]
            c_p[kk] = cast_like(prob_grad_scale(gs, swq[kk], lse, opts) / s[kk], m[kk])
            c_g[kk] = cast_like(gs, m[kk])
        for c in range(C):
            wc = w[c]
            if grad_mode == GRAD_IN_PLACE:
                for kk in range(nb):
                    qc = smooth_target(q[n, c, k0 + kk], a, b, smooth)
                    grad[n, c, k0 + kk] = (c_p[kk] * exp_diff(grad[n, c, k0 + kk], m[kk])
                                           - c_g[kk] * (wc * qc))
            else:
                for kk in range(nb):
                    qc = smooth_target(q[n, c, k0 + kk], a, b, smooth)
                    grad[n, c, k0 + kk] = (c_p[kk] * exp_diff(x[n, c, k0 + kk], m[kk])
                                           - c_g[kk] * (wc * qc))


@njit(parallel=True, cache=CACHE, error_model="numpy")
def _prob_spatial_par(x, q, w, g, opts, loss, grad, gradq):
    N, K = x.shape[0], x.shape[2]
    nkb = (K + KBLOCK - 1) // KBLOCK
    for item in prange(N * nkb):
        n = item // nkb
        k0 = (item % nkb) * KBLOCK
        _prob_block(x, n, k0, min(k0 + KBLOCK, K), q, w, g, opts, loss, grad, gradq)


@njit(cache=CACHE, error_model="numpy")
def _prob_spatial_ser(x, q, w, g, opts, loss, grad, gradq):
    N, K = x.shape[0], x.shape[2]
    for n in range(N):
        for k0 in range(0, K, KBLOCK):
            _prob_block(x, n, k0, min(k0 + KBLOCK, K), q, w, g, opts, loss, grad, gradq)


def run_prob(x3, q3, w, g, opts, loss, grad3, gradq3):
    """Launch probability-target cross_entropy on ``(N, C, K)`` arrays (C >= 1)."""
    N, C, K = x3.shape
    par = use_parallel(N * C * K)
    if K == 1:
        gx = grad3.reshape(N, C) if opts.grad_mode != GRAD_NONE else grad3.reshape(0, 0)
        gq = gradq3.reshape(N, C) if opts.grad_target else gradq3.reshape(0, 0)
        fn = _prob_rows_par if par and N > 1 else _prob_rows_ser
        fn(x3.reshape(N, C), q3.reshape(N, C), w, g, opts, loss, gx, gq)
    else:
        fn = _prob_spatial_par if par else _prob_spatial_ser
        fn(x3, q3, w, g, opts, loss, grad3, gradq3)
