"""Spatial kernel of class-index cross_entropy: ``(N, C, K)`` inputs with ``K > 1``.

Signature, one per float dtype (see nbxent/xent/cpu_index.py for the argument conventions):

    index_block(x, n, k0, k1, t, w, sumw, g, opts, loss, grad)

A work item is one batch index ``n`` and a block of positions ``k0 <= k < k1``. The class
stride is ``K``, so one class of the block, ``x[n, c, k0:k1]``, is contiguous: every pass
runs the class loop outside and a vector loop over the block's positions inside, with the
running max, sums and scales held in small per-block arrays (no stride-``K`` gathers). The
block is first copied into a contiguous ``(C, nb)`` tile (see the kernel for why):

1. ``m_k = max_c x[n, c, k]``;
2. ``e = exp(x - m_k)`` (exact shift) over the tile in place, summed in float64 into
   ``s_other_k`` with the target's own term left out;
3. ``e_t = exp(x_t - m_k)`` (float64, vectorized), then per position ``loss_t =
   index_loss(...)`` (one libm log) and the gradient scale;
4. the tile is scaled class by class into the gradient, the target element written from
   ``p_t - 1 = -s_other / s`` (no cancellation when ``p_t ~ 1``, as ``expm1(-loss_t)``),
   and copied out.

The target's term is masked out of the sum by a multiply, not a select: a select into an
array slot compiles to a masked store (microcoded here). ``e * 0`` is NaN only when ``e``
is, and then the loss is NaN anyway. Summing ``C`` float64 terms in class order gives a
relative error of at most ``(C - 1) * u64`` in ``s``, far below the float32 result's last bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from nbxent._core.jit import CACHE, GRAD_NONE
from nbxent._cpu.fastmath import cast_like, exp_diff, maxnum
from nbxent._cpu.rows import FASTMATH
from nbxent.xent.formulas import index_grad_scale, index_grad_target, index_loss, index_value

#: Spatial positions per work item: a few vector widths, and C of them (logits plus
#: gradient) stay in L1/L2 for the usual class counts.
KBLOCK = 256


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def index_block(x, n, k0, k1, t, w, sumw, g, opts, loss, grad):
    """Losses (and gradient) of positions ``k0 .. k1`` of batch index ``n``; see module doc."""
    ii, eps, grad_mode = opts.ignore_index, opts.eps, opts.grad_mode
    C = x.shape[1]
    K = x.shape[2]
    nb = k1 - k0
    # The block's C class segments lie K elements apart: with K a multiple of 1024 they all
    # map to the same cache sets and evict each other between passes. One streaming copy
    # into a contiguous (C, nb) tile makes every later pass an L1/L2 hit; the gradient is
    # built in the tile and copied out once. (In place, GRAD_IN_PLACE, is then free: the
    # block is read in full before anything is written.)
    tile = np.empty((C, nb), dtype=x.dtype)
    for c in range(C):
        tr = tile[c]
        xr = x[n, c, k0:k1]
        for kk in range(nb):
            tr[kk] = xr[kk]
    tk = t[n * K + k0:n * K + k1]
    m = tile[0].copy()
    for c in range(1, C):
        tr = tile[c]
        for kk in range(nb):
            m[kk] = maxnum(m[kk], tr[kk])
    # Target logits and the class left out of each position's sum (-1 where ignored:
    # ignore_index may be a class).
    xt = np.empty(nb)
    tc = np.empty(nb, dtype=np.int64)
    for kk in range(nb):
        tv = tk[kk]
        valid = tv != ii
        xt[kk] = np.float64(tile[tv, kk] if valid else m[kk])
        tc[kk] = tv if valid else -1
    s_other = np.zeros(nb)
    wx = np.zeros(nb)
    for c in range(C):
        tr = tile[c]
        if eps > 0.0:
            wc = np.float64(w[c])
            for kk in range(nb):
                wx[kk] += wc * np.float64(tr[kk])
        # Two short loops over few arrays each, not one over five: LLVM gives up on
        # vectorizing a loop that needs too many runtime overlap checks.
        for kk in range(nb):
            tr[kk] = exp_diff(tr[kk], m[kk])
        for kk in range(nb):
            s_other[kk] += np.float64(tr[kk]) * (tc[kk] != c)
    # e_t = exp(x_t - m) in float64 (exact shift), vectorized over the positions
    e_t = np.empty(nb)
    for kk in range(nb):
        e_t[kk] = exp_diff(xt[kk], np.float64(m[kk]))
    # Per position: loss and gradient scales.
    c_p = np.empty(nb, dtype=x.dtype)
    c_w = np.empty(nb, dtype=x.dtype)
    pm1 = np.empty(nb)
    for kk in range(nb):
        i = n * K + k0 + kk
        tv = tk[kk]
        m64 = np.float64(m[kk])
        if tv == ii:
            loss[i] = 0.0
            if opts.want_lse:
                opts.lse[i] = m64 + math.log(s_other[kk])   # the whole column here
            c_p[kk] = cast_like(np.nan if math.isnan(s_other[kk]) else 0.0, m[kk])
            c_w[kk] = c_p[kk]
            continue
        lt = index_loss(m64, xt[kk], s_other[kk], e_t[kk])
        s = s_other[kk] + e_t[kk]
        wt = np.float64(w[tv])
        nll = -0.0 * wt if lt == 0.0 else wt * lt
        # the position's log-sum-exp from the max (x_t + loss_t cancels when x_t is far below it)
        lse = m64 + (math.log1p(s_other[kk]) if xt[kk] == m64 else math.log(s))
        if opts.want_lse:
            opts.lse[i] = lse
        smooth_sum = 0.0
        if opts.smooth:
            # -sum_c w_c * lp_c with lp_c = (x_c - m) - log(s)
            smooth_sum = -((wx[kk] - sumw * m64) - sumw * math.log(s))
        loss[i] = index_value(nll, smooth_sum, lse, C, opts)
        if grad_mode != GRAD_NONE:
            gs = g[i * opts.gstride]
            c_p[kk] = cast_like(index_grad_scale(gs, wt, sumw, lse, opts) / s, m[kk])
            c_w[kk] = cast_like(gs * opts.epsc, m[kk])
            # p_t - 1 = (e_t - s) / s = -s_other / s: no cancellation however close p_t is to 1
            pm1[kk] = index_grad_target(gs, wt, sumw, -s_other[kk] / s, e_t[kk] / s, lse, opts)
    if grad_mode == GRAD_NONE:
        return
    for c in range(C):
        tr = tile[c]
        if opts.smooth:
            wc = w[c]
            for kk in range(nb):
                tr[kk] = c_p[kk] * tr[kk] - c_w[kk] * wc
        else:
            for kk in range(nb):
                tr[kk] = c_p[kk] * tr[kk]
    for kk in range(nb):
        tv = tk[kk]
        if tv == ii:
            fill = c_p[kk]          # 0, or NaN when the position's log-softmax is NaN
            for c in range(C):
                tile[c, kk] = fill
        else:
            tile[tv, kk] = cast_like(pm1[kk], m[kk])
    for c in range(C):
        tr = tile[c]
        gr = grad[n, c, k0:k1]
        for kk in range(nb):
            gr[kk] = tr[kk]
