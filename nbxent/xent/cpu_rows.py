"""Row kernel of class-index cross_entropy for ``(N, C)`` inputs (one row per sample).

Signature, one per float dtype (see nbxent/xent/cpu_index.py for the argument conventions):

    index_row(x, n, t, w, sumw, g, opts, loss, grad, mb, sb)

The row is walked in column blocks of ``CB`` elements, so a block of logits and its
gradient stay in L1/L2 however long the row is (a 128256-wide float32 row and its
gradient are 1 MB, a core's L2). Each block ``b`` is shifted by ``h_b``, a guess of its max:
the running max of the row so far (for the first block, the max of its first
``GUESS_FROM`` logits). One fused pass per block computes ``e_c = exp(x_c - h_b)``
(written into the gradient row; the forward alone only sums), their sum ``s_b`` in fixed
lanes folded in float64 (the order, hence the bits, is the same for any vector width;
the target's own term is left out) and the block's max ``m_b`` in the same loop. A
separate max pass before the exps costs as much again as reading the block (a quarter
of the exp pass); a guess is seldom far off, because a block's max is never below the
shift by more than the spread of the row's maxima. Where ``m_b > h_b + GUESS_SLACK`` (the
terms could grow too large for a float32 lane) the block is scanned again with
``h_b = m_b``; where no finite guess exists (leading ``-inf``/NaN/``+inf`` logits) the block
takes its max in a pass of its own first. In place, each block is copied to scratch
before its terms overwrite it, so a second scan reads the copy (and the bits are those of
a separate gradient buffer).

Then, with ``M = max_b m_b`` and ``f_b = exp(h_b - M)`` (1 for a block shifted by ``M``):
``s_other = sum_b f_b s_b``, ``e_t = exp(x_t - M)``, ``loss_t = index_loss(M, x_t, s_other,
e_t)`` (log1p form when the target is the max) and the gradient row is scaled in place
block by block, ``grad_c = (g_s * A / s * f_b) * e_c [- g_s (eps/C) w_c]``, with the target
element written last from ``expm1(-loss_t)``. Each element is read from memory once (twice
for a block guessed too low), and the gradient is written twice (the second time a cache
hit for rows up to ~64K float32 columns).

Special values: a block holding only ``-inf``/NaN under a finite guess gives terms 0/NaN;
scanned with its own max ``m_b = -inf`` it is shifted by 0 instead (``exp(-inf - 0) = 0``,
NaN stays NaN) and weighted ``f_b = 0``. A row whose max is ``-inf`` (all ``-inf``/NaN) or
``+inf`` gives NaN, as torch's ``inf - inf``.

Label smoothing needs ``sum_c w_c lp_c = (sum_c w_c x_c - M sum_c w_c) - log(s) sum_c w_c``;
``sum_c w_c x_c`` is accumulated in float64 before each block's fused pass.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from nbxent._core.jit import CACHE, GRAD_IN_PLACE, GRAD_INTO, GRAD_NONE
from nbxent._cpu.fastmath import cast_like, exp_diff
from nbxent._cpu.rows import (
    FASTMATH,
    LANES,
    max_lanes_fold,
    scale_seg,
    seg_max,
    sum_exp,
    sum_wx,
)
from nbxent.xent.formulas import (
    index_grad_scale,
    index_grad_target,
    index_loss,
    index_value,
    target_p_minus_1,
)

#: Columns per block: 32 KB of float32 logits plus their gradient fit a core's L2 with room
#: to spare, and the per-block scalar work (two float64 exps) is noise next to 8192 exps.
CB = 8192


#: Columns whose max is the first block's shift when it is guessed (see the module docstring).
GUESS_FROM = 16

#: How far (in logits) a block's max may exceed its guessed shift: its terms stay below
#: exp(24) = 2.6e10 (a float32 lane of 16 of them stays finite, and exp_below's contract,
#: x - m <= 43, holds), and its factor exp(shift - M) above exp(-24) times the other
#: blocks' (the gradient's factor stays far from float32's subnormal range).
GUESS_SLACK = 24.0


@njit(cache=CACHE)
def n_blocks(C):
    """Column blocks of a row of ``C`` logits."""
    return (C + CB - 1) // CB


@njit(cache=CACHE)
def scratch_len(C):
    """Length of each scratch array of :func:`index_row` for rows of ``C`` logits."""
    return n_blocks(C) + 2 * LANES + min(C, CB)


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
def index_row(x, n, t, w, sumw, g, opts, loss, grad, mb, sb):
    """Loss (and gradient row) of sample ``n``; see the module docstring.

    ``mb`` (x's dtype) and ``sb`` (float64) are scratch arrays of ``scratch_len(C)``
    elements (block shifts, block sums then factors, the fixed lanes of the partial sums
    and maxima, the copy of a block in place), passed in so a serial caller allocates them
    once and not per row.
    """
    C = x.shape[1]
    ii, eps, grad_mode = opts.ignore_index, opts.eps, opts.grad_mode
    tn = t[n]
    ignored = tn == ii
    store = GRAD_NONE if ignored or grad_mode == GRAD_NONE else GRAD_INTO   # 0 sum, 1 store
    # In place (GRAD_IN_PLACE) every logit is read through ``grad`` itself (one base
    # pointer: LLVM's runtime overlap check between x and an aliasing grad would fail and
    # send the loops to the scalar fallback, 5x slower), and each block is copied to
    # scratch before its terms overwrite it, so it can be scanned again from the copy.
    src = grad if grad_mode == GRAD_IN_PLACE else x
    copying = grad_mode == GRAD_IN_PLACE and not ignored
    nb = n_blocks(C)
    lanes = mb[nb:nb + LANES]        # the partial sums' lanes (x's dtype)
    ml = mb[nb + LANES:nb + 2 * LANES]   # the block's max, taken in its exp loops
    buf = mb[nb + 2 * LANES:]            # in place: the block's logits
    no_ml = ml[:0]
    f64 = sb[nb:nb + LANES]          # their float64 fold
    xt = src[n, tn] if not ignored else src[n, 0]   # read before anything is overwritten
    srow = src[n]
    drow = grad[n] if store != GRAD_NONE else srow
    skip = tn if not ignored else -1
    guess = seg_max(src, n, 0, min(GUESS_FROM, C))
    M = cast_like(-np.inf, xt)
    wx = 0.0
    for b in range(nb):
        lo = b * CB
        hi = min(lo + CB, C)
        if eps > 0.0 and not ignored:
            wx += sum_wx(src, n, lo, hi, w, f64)
        guessed = -np.inf < guess < np.inf
        if not guessed:
            m = seg_max(src, n, lo, hi)
        rd, r0 = srow, 0
        if copying:
            for j in range(hi - lo):
                buf[j] = srow[lo + j]
            rd, r0 = buf, lo
        # The target's own term stays out of the sum (a gradient row gets its target
        # element written last).
        if guessed:
            sh = guess
            s_b = sum_exp(rd, r0, drow, lo, hi, sh, store, skip, lanes, f64, ml)
            m = max_lanes_fold(ml, min(hi - lo, LANES))
            if np.float64(m) - np.float64(sh) > GUESS_SLACK:
                sh = m                       # guessed too low: the block again, shifted by its max
                s_b = sum_exp(rd, r0, drow, lo, hi, sh, store, skip, lanes, f64, no_ml)
        else:
            sh = m if m > -np.inf else cast_like(0.0, m)   # all -inf/NaN block: see docstring
            s_b = sum_exp(rd, r0, drow, lo, hi, sh, store, skip, lanes, f64, no_ml)
            if m == -np.inf:
                sh = m                       # weight 0 (_combine_blocks)
        mb[b] = sh
        sb[b] = s_b
        M = m if m > M else M
        guess = M
    M64 = np.float64(M)
    s_other = _combine_blocks(mb, sb, nb, M)   # sb now holds the block factors f_b
    if M == -np.inf:
        s_other = math.nan            # all -inf/NaN row: torch's log_softmax is NaN
    if ignored:
        loss[n] = 0.0
        if opts.want_lse:
            opts.lse[n] = M64 + math.log(s_other)   # s_other holds the whole row here
        if grad_mode != GRAD_NONE:
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
    # The row's log-sum-exp from the max, never as x_t + loss_t (which cancels when x_t is far
    # below the max); log1p when the target holds the max (s = 1 + s_other exactly).
    lse = M64 + (math.log1p(s_other) if xt64 == M64 else math.log(s))
    if opts.want_lse:
        opts.lse[n] = lse
    smooth_sum = 0.0
    if opts.smooth:
        # -sum_c w_c * lp_c with lp_c = (x_c - M) - log(s)
        smooth_sum = -((wx - sumw * M64) - sumw * math.log(s))
    loss[n] = index_value(nll, smooth_sum, lse, C, opts)
    if grad_mode == GRAD_NONE:
        return
    gs = g[n * opts.gstride]
    base = index_grad_scale(gs, wt, sumw, lse, opts) / s
    c_w = cast_like(gs * opts.epsc, M)
    for b in range(nb):
        lo = b * CB
        hi = min(lo + CB, C)
        scale_seg(grad, n, lo, hi, cast_like(base * sb[b], M), c_w, w, opts.smooth)
    grad[n, tn] = cast_like(index_grad_target(gs, wt, sumw, target_p_minus_1(lt), e_t / s, lse,
                                              opts), M)
