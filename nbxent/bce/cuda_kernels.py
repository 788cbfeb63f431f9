"""CUDA kernels for binary_cross_entropy and binary_cross_entropy_with_logits.

Elementwise, grid-stride over the flattened (C-order) input. ``weight`` and
``pos_weight`` are read through the CPU plan's 3-level grid ``(A, B, K)``:
element ``i`` sits at ``(a, b, k) = (i // (B*K), (i // K) % B, i % K)`` and an
argument at ``a*sa + b*sb + k*sk`` (stride 0 where it broadcasts), so a
broadcast weight is never expanded to the input's size. Every element is
evaluated in float64 by the CPU backend's formulas (``nbxent._bce_scalar``:
float32 and float16 values are exact in float64) and rounded once on store.

The reduction is two-stage: each thread accumulates its elements in float64,
the block adds them through shared memory into ``partial[block]``, and
``combine_kernel`` adds the partials in a fixed order.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from nbxent._core.reduction import MEAN, NONE
from nbxent.cuda._device_math import (
    bce_grad_input,
    bce_grad_target,
    bce_loss,
    bcewl_grad_input,
    bcewl_grad_target,
    bcewl_loss,
)
from nbxent.cuda._reduce_kernels import MAX_TPB, block_min, block_sum


@cuda.jit(device=True)
def _at(arr, i, B, K, sa, sb, sk):
    """``arr`` read through the broadcast grid at flat input index ``i`` (as float64)."""
    a = i // (B * K)
    r = i - a * (B * K)
    b = r // K
    k = r - b * K
    return arr[a * sa + b * sb + k * sk] * 1.0  # * 1.0 widens to float64 and keeps -0.0


@cuda.jit
def bce_kernel(x, y, w, wst, pw, pst, g, opts, loss, gx, gy, partial):
    """Loss and gradients of BCE or BCE-with-logits (``opts.logits``).

    Args (device arrays unless noted):
        x, y: (numel,) input and target.  w, pw: flat weight / pos_weight (dummy (1,) if absent).
        wst, pst: int64 (3,) grid strides of ``w`` / ``pw``.
        g: (numel,) upstream gradient for 'none', else (1,) (also (1,) for an all-ones 'none').
        opts: a :class:`nbxent.bce.cuda.CudaBceOptions` record: grid sizes ``B``, ``K``, the
            flags (logits, has_weight, has_pos_weight, want_gx, want_gy, write_loss), the
            reduction and ``numel`` (float64, the 'mean' divisor).
        loss, gx, gy: (numel,) outputs (dummies when not asked).  partial: (grid,) float64.
    """
    B, K, logits, red, numel = opts.B, opts.K, opts.logits, opts.reduction, opts.numel
    has_w, has_pw = opts.has_weight, opts.has_pos_weight
    need_gx, need_gy, write_loss = opts.want_gx, opts.want_gy, opts.write_loss
    sh = cuda.shared.array(MAX_TPB, dtype=np.float64)
    n = x.shape[0]
    acc = 0.0
    sa = wst[0]
    sb = wst[1]
    sk = wst[2]
    pa = pst[0]
    pb = pst[1]
    pk = pst[2]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        xi = x[i] * 1.0
        yi = y[i] * 1.0
        wi = 1.0
        if has_w:
            wi = _at(w, i, B, K, sa, sb, sk)
        pwi = 1.0
        if has_pw:
            pwi = _at(pw, i, B, K, pa, pb, pk)
        if write_loss or red != NONE:
            if logits:
                li = bcewl_loss(xi, yi, pwi, has_pw)
            else:
                li = bce_loss(xi, yi)
            if has_w:
                li = li * wi
            if write_loss:
                loss[i] = li
            acc += li
        if need_gx or need_gy:
            gi = g[0] * 1.0
            if red == NONE and g.shape[0] == n:
                gi = g[i] * 1.0
            if need_gx:
                # torch's order: formula (with g), then * w, then / numel
                if logits:
                    d = bcewl_grad_input(xi, yi, pwi, has_pw) * gi
                else:
                    d = bce_grad_input(gi, xi, yi)
                if has_w:
                    d = d * wi
                if red == MEAN:
                    d = d / numel
                gx[i] = d
            if need_gy:
                if logits:
                    e = bcewl_grad_target(xi, pwi, has_pw) * gi
                else:
                    e = bce_grad_target(xi) * gi
                if has_w:
                    e = e * wi
                if red == MEAN:
                    e = e / numel
                gy[i] = e
    total = block_sum(sh, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit
def bce_check_kernel(x, y, pbad):
    """Per block, the first flat index where ``x`` or ``y`` is outside [0, 1] (NaN too).

    ``x.shape[0]`` when there is none. Only these per-block indices go back to the
    host, which then reads the single offending element for the message.
    """
    shi = cuda.shared.array(MAX_TPB, dtype=np.int64)
    n = x.shape[0]
    tid = cuda.threadIdx.x
    bad = n
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        xi = x[i]
        yi = y[i]
        if not (xi >= 0.0 and xi <= 1.0 and yi >= 0.0 and yi <= 1.0):
            bad = i
            break  # later indices of this thread are larger
    least = block_min(shi, bad)
    if tid == 0:
        pbad[cuda.blockIdx.x] = least
