"""CUDA kernels for cross_entropy and nll_loss (index and probability targets).

Layout: the input is viewed as ``(N, C, K)`` (``K = d1*...*dk``, 1 for 2-D input);
sample ``s = n*K + k`` has its classes at stride ``K``, read in place (no
transposing copy). One block per sample, samples in grid-stride order; the
threads of a block stride over the classes.

Per sample, in one launch:

* pass 1 reads the logits once and builds the log-sum-exp state ``(m, t)``
  (see ``_device_math``) plus the row constants the gradient needs
  (``sum_c w_c`` for label smoothing, ``sum_c w_c q_c`` for probability targets);
  the per-thread states are merged through shared memory;
* pass 2 (only when a gradient, smoothing or probability targets are asked for)
  reads the logits again and writes the gradient and the smoothing/probability
  loss terms ``sum_c w_c q_c lp_c``.

Shared memory is float64 (its dtype must be a compile-time constant); row
constants come back to the compute dtype through ``scratch`` (one row of slots
per block, written by thread 0, read by all after a barrier), so the per-element
arithmetic stays in the input's dtype. Every offset is int64 (Numba indexes
with intp), so inputs beyond 2**31 elements address correctly.

Row losses go to ``loss`` (when ``write_loss``) and, multiplied by ``sign``,
into a float64 accumulator per block (``partial``), combined later in a fixed
order: reproducible run to run, no float atomics.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from nbxent._core.reduction import MEAN, NONE
from nbxent.cuda._device_math import (
    index_grad_other,
    index_grad_scale,
    index_grad_target,
    index_loss,
    index_value,
    lse_finish,
    lse_merge,
    lse_push,
    prob_grad_scale,
    smooth_target,
    softcap_slope,
    softcap_value,
    target_p_minus_1,
)
from nbxent.cuda._reduce_kernels import MAX_TPB, block_min, block_sum


@cuda.jit
def ce_rows_kernel(x, tgt, p, w, g, opts, loss, grad, gradt, scratch, partial, lse_out,
                   zloss_out, zpartial):
    """Loss and gradients of class-index or probability-target cross-entropy.

    Args (device arrays unless noted; ``T`` is the compute dtype):
        x: (N, C, K) T logits.  tgt: (N*K,) int64 class indices (dummy for prob).
        p: (N, C, K) T probability targets (dummy for index).  w: (C,) T weights (ones if none).
        g: (N*K,) T upstream gradient for 'none', else (1,) (also (1,) for 'none' when the
            caller's upstream gradient is all ones).
        opts: a :class:`nbxent.xent.cuda.CudaXentOptions` record (flags, the reduction, the
            mean denominator ``wsum``, the T scalars ``one``, ``ninf``, ``omeps = 1 - eps``,
            ``epsc = eps / C`` that keep float32 arithmetic in float32, and ``sign``).
        loss: (N*K,) T.  grad, gradt: (N, C, K) T (d/dx, d/dp).  scratch: (grid, 5) T.
        partial: (grid,) float64.
        lse_out: (N*K,) T per-sample log-sum-exp (written when ``opts.want_lse``).
        zloss_out: (N*K,) T per-sample z-loss (written when ``opts.write_z``).
        zpartial: (grid,) float64 per-block sums of the z-loss.

    Softcap (``opts.capped``): every logit read becomes ``softcap_value(x, c)`` and each
    input-gradient element is multiplied by ``softcap_slope(exp(-2|x / c|))``. z-loss (``opts.zl``):
    its gradient is in the shared formulas; its value ``z * lse^2`` joins the row's value
    (``'none'``) and the block partial, weighted by ``opts.zratio`` so that the main
    combine's denominator ``W`` yields the z-loss's own mean over the non-ignored count.
    """
    ignore_index, is_prob, smooth, red = opts.ignore_index, opts.prob, opts.smooth, opts.reduction
    wsum, one, ninf, omeps, epsc = opts.wsum, opts.one, opts.ninf, opts.omeps, opts.epsc
    need_grad, need_gt, write_loss = opts.grad_mode, opts.grad_target, opts.write_loss
    sign = opts.sign
    capped, cap, zl, zratio = opts.capped, opts.cap, opts.zl, opts.zratio
    N = x.shape[0]
    C = x.shape[1]
    K = x.shape[2]
    S = N * K
    tid = cuda.threadIdx.x
    bsz = cuda.blockDim.x
    blk = cuda.blockIdx.x
    sh_m = cuda.shared.array(MAX_TPB, dtype=np.float64)
    sh_t = cuda.shared.array(MAX_TPB, dtype=np.float64)
    sh_a = cuda.shared.array(MAX_TPB, dtype=np.float64)
    zero = one - one
    acc = 0.0
    zacc = 0.0
    for s in range(blk, S, cuda.gridDim.x):
        n = s // K
        k = s - n * K
        tt = 0
        valid = True
        if not is_prob:
            tt = tgt[s]
            valid = tt != ignore_index
        # ---- pass 1: log-sum-exp state and the row constants of the gradient
        m = ninf
        t = zero - one
        aux = zero
        for c in range(tid, C, bsz):
            xc = x[n, c, k]
            if capped:
                xc = softcap_value(xc, cap)
            m, t = lse_push(m, t, xc, one)
            if is_prob:
                q = smooth_target(p[n, c, k], omeps, epsc, smooth)
                aux += w[c] * q
            elif smooth:
                aux += w[c]
        sh_m[tid] = m
        sh_t[tid] = t
        sh_a[tid] = aux
        cuda.syncthreads()
        stride = bsz // 2
        while stride > 0:       # one tree for the state and the row constant: fewer barriers
            if tid < stride:
                mm, tm = lse_merge(sh_m[tid], sh_t[tid], sh_m[tid + stride], sh_t[tid + stride])
                sh_m[tid] = mm
                sh_t[tid] = tm
                sh_a[tid] = sh_a[tid] + sh_a[tid + stride]
            cuda.syncthreads()
            stride //= 2
        aux_total = sh_a[0]
        loss_t = 0.0
        if tid == 0:
            scratch[blk, 0] = sh_m[0]                       # an element of x: exact in T
            scratch[blk, 1] = lse_finish(sh_m[0], sh_t[0])
            if not is_prob and valid:
                # The state's t is the split sum of nbxent/xent/formulas.py with the max's own 1 left out:
                # s_other = t, e_t = 1 when x_t is the max, and s_other + e_t = 1 + t otherwise.
                xt = x[n, tt, k]
                if capped:
                    xt = softcap_value(xt, cap)
                loss_t = index_loss(scratch[blk, 0], xt, scratch[blk, 1], one)
                scratch[blk, 4] = target_p_minus_1(loss_t)
            else:
                scratch[blk, 4] = zero
            scratch[blk, 2] = aux_total
            if red == NONE and g.shape[0] == S:
                scratch[blk, 3] = g[s]
            elif red == MEAN:
                scratch[blk, 3] = g[0] / wsum
            else:
                scratch[blk, 3] = g[0]
        cuda.syncthreads()
        m = scratch[blk, 0]
        t = scratch[blk, 1]
        aux = scratch[blk, 2]
        gs = scratch[blk, 3]
        pt1 = scratch[blk, 4]         # p_t - 1 for index targets
        tail = math.log1p(t)          # lse = m + tail
        inv = one / (one + t)         # softmax_c = exp(x_c - m) * inv
        wt = zero
        if not is_prob and valid:
            wt = w[tt]
        # Index-target gradient (docs/semantics.md §0), nbxent/xent/formulas.py:
        # d_c = sm_c * S_all - (eps/C) g_s w_c, the target from p_t - 1 and p_t.
        lse = m + tail
        s_all = index_grad_scale(gs, wt, aux, lse, opts)
        # ---- pass 2: gradient and the loss terms that need the final lse
        lsum = zero
        if need_grad != 0 or need_gt or smooth or is_prob:
            for c in range(tid, C, bsz):
                xraw = x[n, c, k]
                xc = xraw
                if capped:
                    xc = softcap_value(xraw, cap)
                lp = (xc - m) - tail
                wq = zero
                if is_prob:
                    q = smooth_target(p[n, c, k], omeps, epsc, smooth)
                    wq = w[c] * q
                    lsum += wq * lp
                elif smooth and valid:
                    lsum += w[c] * lp
                if need_grad != 0:
                    e = math.exp(xc - m)
                    sm = e * inv
                    # 1 - softmax at the row max is t / (1 + t): no cancellation on confident rows
                    om = sm - one
                    if xc == m:
                        om = -t * inv
                    if is_prob:
                        if xc == m:
                            # the z-loss's p_j term alone: prob_grad_scale with sum w q = 0
                            d = gs * (om * aux + (aux - wq)) + sm * prob_grad_scale(
                                gs, zero, lse, opts)
                        else:
                            d = sm * prob_grad_scale(gs, aux, lse, opts) - gs * wq
                    elif valid:
                        if c == tt:
                            d = index_grad_target(gs, wt, aux, pt1, sm, m + tail, opts)
                        else:
                            d = index_grad_other(sm, s_all, gs, w[c], opts)
                    else:
                        d = zero - sm * zero  # ignored: +0.0 (NaN if the row is NaN, like torch)
                    if capped and (is_prob or valid):
                        au = abs(xraw / cap)
                        d = d * softcap_slope(math.exp(zero - (au + au)), one)
                    grad[n, c, k] = d
                if need_gt:
                    gradt[n, c, k] = -(omeps * gs * w[c]) * lp
        lsum_total = 0.0
        if smooth or is_prob:
            lsum_total = block_sum(sh_a, lsum)
        if tid == 0:
            if is_prob:
                row = -lsum_total
            elif valid:
                # torch's 'none' value is -(lp_t * w_t) with lp_t = 0 - loss_t: -0.0 when C == 1
                row = index_value(-((0.0 - loss_t) * wt), -lsum_total, m + tail, C, opts)
            else:
                row = 0.0
            if opts.want_lse:
                lse_out[s] = lse
            if zl and (is_prob or valid):
                row_z = opts.z * lse * lse
                if write_loss:
                    loss[s] = row + row_z
                if opts.write_z:
                    zloss_out[s] = row_z
                acc += sign * (row + zratio * row_z)
                zacc += row_z
            else:
                if write_loss:
                    loss[s] = row
                if opts.write_z:
                    zloss_out[s] = zero
                acc += sign * row
        cuda.syncthreads()  # scratch is rewritten for the next sample
    if tid == 0:
        partial[blk] = acc
        zpartial[blk] = zacc


@cuda.jit
def ce_prepass_kernel(tgt, w, ignore_index, C, pw, pbad):
    """Range-check class-index targets and sum the weights of the valid ones.

    Writes per block: ``pw`` the float64 sum of ``w[t_s]`` over non-ignored
    samples (the 'mean' denominator) and ``pbad`` the first sample index whose
    target is neither ``ignore_index`` nor in ``[0, C)`` (``len(tgt)`` if none).
    Out-of-range targets are never used as an index.
    """
    sh = cuda.shared.array(MAX_TPB, dtype=np.float64)
    shi = cuda.shared.array(MAX_TPB, dtype=np.int64)
    S = tgt.shape[0]
    tid = cuda.threadIdx.x
    acc = 0.0
    bad = S
    for s in range(cuda.grid(1), S, cuda.gridsize(1)):
        tt = tgt[s]
        if tt != ignore_index:
            if tt < 0 or tt >= C:
                if s < bad:
                    bad = s
            else:
                acc += w[tt]
    total = block_sum(sh, acc)
    least = block_min(shi, bad)
    if tid == 0:
        pw[cuda.blockIdx.x] = total
        pbad[cuda.blockIdx.x] = least


@cuda.jit
def nll_kernel(x, tgt, w, g, opts, loss, grad, partial):
    """nll_loss forward and d/dx: ``l_s = -(x[s, t_s] * w[t_s])``, ``d = -(g_s * w_t)`` at t_s.

    Args: as :func:`ce_rows_kernel` (``x`` holds log-probabilities, read as given).
    Samples are spread over all threads of the grid; the gradient loop covers
    every element (zeros off the target), so ``grad`` needs no separate fill.
    """
    ignore_index, red, wsum, one = opts.ignore_index, opts.reduction, opts.wsum, opts.one
    need_grad, write_loss = opts.grad_mode, opts.write_loss
    sh = cuda.shared.array(MAX_TPB, dtype=np.float64)
    N = x.shape[0]
    C = x.shape[1]
    K = x.shape[2]
    S = N * K
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    acc = 0.0
    if write_loss or red != NONE:
        for s in range(start, S, step):
            tt = tgt[s]
            row = 0.0
            if tt != ignore_index:
                n = s // K
                k = s - n * K
                row = -(x[n, tt, k] * w[tt])   # torch's -(x * w): -0.0 for x = 0
            if write_loss:
                loss[s] = row
            acc += row
    total = block_sum(sh, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total
    if need_grad != 0:
        zero = one - one
        for i in range(start, S * C, step):
            k = i % K
            r = i // K
            c = r % C
            n = r // C
            s = n * K + k
            tt = tgt[s]
            d = zero
            if tt == c and tt != ignore_index:
                if red == NONE and g.shape[0] == S:
                    gs = g[s]
                elif red == MEAN:
                    gs = g[0] / wsum
                else:
                    gs = g[0]
                d = -(gs * w[tt])
            grad[n, c, k] = d
