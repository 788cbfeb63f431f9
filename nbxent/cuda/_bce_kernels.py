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

from nbxent.cuda._device_math import (bce_grad_input, bce_grad_target, bce_loss, bcewl_grad_input,
                                      bcewl_grad_target, bcewl_loss)
from nbxent.cuda._reduce_kernels import MAX_TPB, block_min, block_sum

NONE, MEAN, SUM = 0, 1, 2  # nbxent._common reduction codes


@cuda.jit(device=True)
def _at(arr, i, B, K, sa, sb, sk):
    """``arr`` read through the broadcast grid at flat input index ``i`` (as float64)."""
    a = i // (B * K)
    r = i - a * (B * K)
    b = r // K
    k = r - b * K
    return arr[a * sa + b * sb + k * sk] * 1.0  # * 1.0 widens to float64 and keeps -0.0


@cuda.jit
def bce_kernel(x, y, w, wst, pw, pst, B, K, logits, has_w, has_pw, red, g, numel,
               need_gx, need_gy, write_loss, loss, gx, gy, partial):
    """Loss and gradients of BCE (``logits == 0``) or BCE-with-logits (``logits == 1``).

    Args (device arrays unless noted):
        x, y: (numel,) input and target.  w, pw: flat weight / pos_weight (dummy (1,) if absent).
        wst, pst: int64 (3,) grid strides of ``w`` / ``pw``.  B, K: int64 grid sizes.
        logits, has_w, has_pw, need_gx, need_gy, write_loss: int flags.  red: reduction code.
        g: (numel,) upstream gradient for 'none', else (1,) (also (1,) for an all-ones 'none').
        numel: float64 element count (the 'mean' divisor).
        loss, gx, gy: (numel,) outputs (dummies when not asked).  partial: (grid,) float64.
    """
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
        if has_w != 0:
            wi = _at(w, i, B, K, sa, sb, sk)
        pwi = 1.0
        if has_pw != 0:
            pwi = _at(pw, i, B, K, pa, pb, pk)
        if write_loss != 0 or red != NONE:
            if logits != 0:
                li = bcewl_loss(xi, yi, pwi, has_pw != 0)
            else:
                li = bce_loss(xi, yi)
            if has_w != 0:
                li = li * wi
            if write_loss != 0:
                loss[i] = li
            acc += li
        if need_gx != 0 or need_gy != 0:
            gi = g[0] * 1.0
            if red == NONE and g.shape[0] == n:
                gi = g[i] * 1.0
            if need_gx != 0:
                # torch's order: formula (with g), then * w, then / numel
                if logits != 0:
                    d = bcewl_grad_input(xi, yi, pwi, has_pw != 0) * gi
                else:
                    d = bce_grad_input(gi, xi, yi)
                if has_w != 0:
                    d = d * wi
                if red == MEAN:
                    d = d / numel
                gx[i] = d
            if need_gy != 0:
                if logits != 0:
                    e = bcewl_grad_target(xi, pwi, has_pw != 0) * gi
                else:
                    e = bce_grad_target(xi) * gi
                if has_w != 0:
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
