"""Row kernel of class-index cross_entropy for ``(N, C)`` inputs (one row per sample).

Signature, one per float dtype (see nbxent/_ce_cpu.py for the argument conventions):

    index_row(x, n, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad, mb, sb)

The row is walked in column blocks of ``CB`` elements, so a block of logits and its
gradient stay in L1/L2 however long the row is (a 128256-wide float32 row and its
gradient are 1 MB, twice a core's L2). Per block ``b`` (``m_b`` = block max):

1. ``m_b`` over 8 vector lanes;
2. the fused pass: ``e_c = exp(x_c - m_b)`` written into the gradient row while its sum
   ``s_b`` runs in fixed lanes folded in float64 (one exp per element; the forward alone
   only sums; the order, hence the bits, is the same for any vector width). The target's
   own term is left out of ``s_b``.

Then, with ``M = max_b m_b`` and ``f_b = exp(m_b - M)`` (1 for the block holding ``M``):
``s_other = sum_b f_b s_b``, ``e_t = exp(x_t - M)``, ``loss_t = index_loss(M, x_t, s_other,
e_t)`` (log1p form when the target is the max) and the gradient row is scaled in place
block by block, ``grad_c = (g_s * A / s * f_b) * e_c [- g_s (eps/C) w_c]``, with the target
element written last from ``expm1(-loss_t)``. Each element is read from memory once for
the max and once for the fused pass (a cache hit), and the gradient is written twice (the
second time a cache hit).

Special values: a block holding only ``-inf``/NaN has ``m_b = -inf``; it is shifted by 0
instead (``exp(-inf - 0) = 0``, NaN stays NaN) and weighted ``f_b = 0``. A row whose max is
``-inf`` (all ``-inf``/NaN) or ``+inf`` gives NaN, as torch's ``inf - inf``.

Label smoothing needs ``sum_c w_c lp_c = (sum_c w_c x_c - M sum_c w_c) - log(s) sum_c w_c``;
``sum_c w_c x_c`` is accumulated in float64 before the fused pass (which, in place,
overwrites the logits).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from nbxent._ce_cpu_common import (FASTMATH, LANES, cast_like, exp_diff, scale_seg, seg_max,
                                    sum_exp, sum_wx)
from nbxent._ce_scalar import index_loss, smooth_mix, target_p_minus_1
from nbxent._common import CACHE

#: Columns per block: 32 KB of float32 logits plus their gradient fit a core's L2 with room
#: to spare, and the per-block scalar work (two float64 exps) is noise next to 8192 exps.
CB = 8192


@njit(cache=CACHE)
def n_blocks(C):
    """Column blocks of a row of ``C`` logits."""
    return (C + CB - 1) // CB


@njit(cache=CACHE)
def scratch_len(C):
    """Length of each scratch array of :func:`index_row` for rows of ``C`` logits."""
    return n_blocks(C) + LANES


@njit(cache=CACHE, error_model="numpy")
def _combine_blocks(mb, sb, nb, M):
    """``s_other = sum_b f_b s_b`` in block order, ``f_b = exp(m_b - M)``, stored into ``sb``.

    Compiled without fastmath: with 'reassoc' LLVM may vectorize this sum over blocks in
    as many lanes as the host's vectors hold, which changes its bits between hosts.
    """
    M64 = np.float64(M)
    s_other = 0.0
    for b in range(nb):
        if mb[b] == M:
            f = 1.0
        elif mb[b] == -np.inf:
            f = 0.0
        else:
            f = exp_diff(np.float64(mb[b]), M64)
        s_other += sb[b] * f
        sb[b] = f
    return s_other


@njit(cache=CACHE, error_model="numpy", fastmath=FASTMATH)
def index_row(x, n, t, w, ii, eps, sumw, g, gstride, loss, grad, want_grad, mb, sb):
    """Loss (and gradient row) of sample ``n``; see the module docstring.

    ``mb`` (x's dtype) and ``sb`` (float64) are scratch arrays of ``scratch_len(C)``
    elements (block maxima, block sums then factors, and the fixed lanes of the partial
    sums), passed in so a serial caller allocates them once and not per row.
    """
    C = x.shape[1]
    tn = t[n]
    ignored = tn == ii
    store = 0 if ignored else want_grad     # sum_exp's mode: 0 sum, 1 store, 2 in place
    # In place (want_grad == 2) every read goes through ``grad`` itself: one base pointer,
    # so LLVM vectorizes the fused pass without the runtime overlap check that would send
    # x-aliasing-grad to the scalar fallback loop (5x slower).
    src = grad if want_grad == 2 else x
    nb = n_blocks(C)
    lanes = mb[nb:nb + LANES]        # the partial sums' lanes (x's dtype)
    f64 = sb[nb:nb + LANES]          # their float64 fold
    xt = src[n, tn] if not ignored else src[n, 0]   # read before anything is overwritten
    wx = 0.0
    for b in range(nb):
        lo = b * CB
        hi = min(lo + CB, C)
        m = seg_max(src, n, lo, hi)
        mb[b] = m
        sh = m if m > -np.inf else cast_like(0.0, m)   # all -inf/NaN block: see docstring
        if eps > 0.0 and not ignored:
            wx += sum_wx(src, n, lo, hi, w, f64)
        # The target's own term stays out of the sum (a gradient row gets its target
        # element written last).
        acc = sum_exp(src, grad, n, lo, hi, sh, store, tn if not ignored else -1, lanes, f64)
        sb[b] = acc
    M = mb[0]
    for b in range(1, nb):
        M = mb[b] if mb[b] > M else M
    M64 = np.float64(M)
    s_other = _combine_blocks(mb, sb, nb, M)   # sb now holds the block factors f_b
    if M == -np.inf:
        s_other = math.nan            # all -inf/NaN row: torch's log_softmax is NaN
    if ignored:
        loss[n] = 0.0
        if want_grad != 0:
            fill = cast_like(np.nan if math.isnan(s_other) else 0.0, M)
            for j in range(C):
                grad[n, j] = fill
        return
    xt64 = np.float64(xt)
    e_t = math.exp(xt64 - M64)
    lt = index_loss(M64, xt64, s_other, e_t)
    s = s_other + e_t
    wt = np.float64(w[tn])
    nll = -0.0 * wt if lt == 0.0 else wt * lt
    if eps > 0.0:
        # sum_c w_c * lp_c with lp_c = (x_c - M) - log(s)
        acc_lp = (wx - sumw * M64) - sumw * math.log(s)
        loss[n] = smooth_mix(nll, -acc_lp, eps, C)
    else:
        loss[n] = nll
    if want_grad == 0:
        return
    gs = g[n * gstride]
    bw = eps / C
    base = gs * ((1.0 - eps) * wt + bw * sumw) / s
    c_w = cast_like(gs * bw, M)
    for b in range(nb):
        lo = b * CB
        hi = min(lo + CB, C)
        scale_seg(grad, n, lo, hi, cast_like(base * sb[b], M), c_w, w, eps > 0.0)
    pm1 = target_p_minus_1(lt)
    grad[n, tn] = cast_like(gs * ((1.0 - eps) * wt * pm1 + bw * (sumw * (1.0 + pm1) - wt)), M)
