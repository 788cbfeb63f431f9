"""float32 CPU kernels of binary_cross_entropy(_with_logits): vectorized loops.

Same contract as the float64 kernels of :mod:`nbxent.bce.cpu` (fixed blocks under
``prange``, one float64 partial sum per block, flags choosing any subset of {loss, d/dx,
d/dy}), built so that every element loop compiles to AVX2 code:

* The transcendentals are the vectorizable float32 ``exp_f32``, ``log_f32`` and ``log1p_f32``
  of :mod:`nbxent._cpu.fastmath` (<= 1 ulp each; ``log1p`` through ``log1m_f32`` and
  ``log1p_unit_f32``, its bits on [0, 1] in fewer instructions), evaluated on the float32
  inputs themselves (no rounding of the arguments), in a loop of float32 only (8 lanes on
  AVX2, 16 on AVX-512). Everything else is the float64 formula of :mod:`nbxent.bce.formulas`
  (the ``*_parts`` functions: the expressions of the functions the float64 and CUDA kernels
  call), in loops of their own, rounded once to float32. The split is what vectorizes:
  LLVM sizes a loop's lanes by its widest load or store, and a loop that both calls the
  float32 polynomials and stores float64 runs them at half width.
* A block (``BLOCK_F32`` elements in :mod:`nbxent.bce.cpu`) is walked in chunks of
  ``CHUNK``: the chunk's transcendentals go to float32 scratch that stays in L1 for the
  float64 loop that reads them. Where the loss and the gradient are both wanted (the fused
  forward) one float64 pass computes both, so x, y and the weights are read once.
* A block first copies its weight / pos_weight / per-element ``grad_output`` into
  contiguous float64 scratch, so the loops read unit-stride arrays whatever the
  broadcast pattern, and loops run only for the outputs asked for (the choice is made
  once per chunk, outside the loops, so no loop carries a branch). Without weights and with
  one ``grad_output`` value, "plain" loops leave out the factors that are then exactly 1
  (same bits: ``v * 1.0 == v``).
* Each loop, and each block, is a function compiled once on its own: the parallel
  kernels' bodies are one call, which keeps their cold compile short.
* The block's losses are summed in ``CHUNK`` float64 lanes (element ``j`` of every chunk is
  added to lane ``j``, an elementwise add with no loop-carried dependence), then the lanes
  in 8 interleaved float64 sums combined in a fixed order: the same bits for any vector
  width. A lane holds ``BLOCK_F32 / CHUNK = 32`` terms and each interleaved sum 64 lanes:
  < 1e-14 relative, 1e6 times below float32's half ulp.
* The sigmoid loops are compiled with ``arcp`` only, so LLVM takes one float64 reciprocal of
  ``1 + e`` for both sigmoids (``e * (1/d)`` is within one float64 ulp of ``e / d``).
* BCE's range check (inputs and targets in [0, 1]) is counted per chunk inside the kernel
  (``_count_bad``) when the gradient does not overwrite an input: the launcher raises
  afterwards, with the message of the separate scan (nbxent/bce/validate.py).
* ``/ numel`` of 'mean' gradients is a multiplication by ``1/numel`` (float64: one
  extra rounding of 1e-16 relative, invisible after the rounding to float32).
* d/dy (backward w.r.t. the target only) is a scalar loop on the float64 kernels' libm
  formulas.

Error bounds of the float32 results (``eps = 2**-23``; ``ulp`` = float32 spacing at the
value; the float64 arithmetic adds a few 1e-16 relative to the terms):

* BCE loss: each log is within 0.86 ulp <= 0.86*eps*|log| of exact; the clamp cannot
  increase an error and both products are >= 0, so the loss is within
  ``0.86*eps*|loss| + 0.5 ulp`` of exact (<= 2.3 ulp).
* BCE-with-logits loss: ``e = exp(-|x|)`` is within 0.99 ulp; ``log1p`` has condition
  number <= 1 on [0, 1] and adds 0.86 ulp, so ``L = log1p(e)`` is within ``1.85*eps*L``
  (plus 2**-149 absolute where ``e`` is subnormal) and the loss within
  ``1.85*eps*|lw*L| + 0.5 ulp``. A tiny loss is ``L ~= e`` (log1p(e) = e to float32
  precision), so 4.2e-18 at x = -40, y = 0 is within 1.5 ulp, where torch's float32
  cancels to 0.
* BCE-with-logits d/dx: the sigmoids move by ``s(x)s(-x)*de/e``, so d/dx is within
  ``0.99*eps*(|(1 - y)*s(x)| + |pw*y*s(-x)|) + 0.5 ulp``.
* BCE d/dx and both d/dy: the float64 kernels' formulas, rounded once.

Measured (tests/test_bce_golden.py, against mpmath): BCE loss <= 0.85 ulp, BCE-with-logits
loss <= 1.36 ulp.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from nbxent._core.jit import CACHE
from nbxent._core.reduction import NONE
from nbxent._cpu.fastmath import exp_f32, log1m_f32, log1p_unit_f32, log_f32
from nbxent.bce.formulas import (
    bce_grad_input,
    bce_grad_target,
    bce_loss_parts,
    bcewl_grad_input_parts,
    bcewl_grad_target,
    bcewl_loss_parts,
)

_inline = numba.njit(inline="always", cache=CACHE)
# error_model="numpy": a float division by zero gives IEEE inf/NaN instead of a Python
# ZeroDivisionError check, whose branch would stop the loops from vectorizing.
_kernel = numba.njit(parallel=True, cache=CACHE, error_model="numpy")
# The element loops are compiled once as functions of their own (called once per block):
# inlining them into the parallel kernel multiplies its cold compile time.
_loop = numba.njit(cache=CACHE, error_model="numpy")
# The sigmoid loops divide 1 and e by the same d = 1 + e: 'arcp' lets LLVM take one
# reciprocal and multiply (e * (1/d) is within 1 float64 ulp of e / d, far below the
# float32 rounding that follows); no other flag, so no other rounding changes.
_sigmoid_loop = numba.njit(cache=CACHE, error_model="numpy", fastmath={"arcp"})

#: Elements per chunk of a block: a chunk's float32 transcendentals and the float64 lanes
#: of its losses stay in L1 between the loop that writes them and the one that reads them.
CHUNK = 512
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@_inline
def grid_origin(i, nB, nK):
    """``(a, b, k)``: flat element ``i`` on the plan's 3-level grid (nbxent/bce/validate.py)."""
    r = i // nK
    k = i - r * nK
    a = r // nB
    return a, r - a * nB, k


@_inline
def grid_next(a, b, nB):
    """``(a, b, k)`` of the first element of the row segment after the one at ``(a, b)``."""
    b += 1
    if b == nB:
        return a + 1, 0, 0
    return a, b, 0


@_inline
def _gather(arr, nB, nK, s0, s1, s2, start, end, buf):
    """``buf[i - start] = arr[a*s0 + b*s1 + k*s2]`` at the grid position (a, b, k) of each i."""
    a, b, k = grid_origin(start, nB, nK)
    i = start
    while i < end:  # one row segment of the grid per pass
        seg = min(end - i, nK - k)
        base = a * s0 + b * s1 + k * s2
        o = i - start
        for j in range(seg):
            buf[o + j] = arr[base + j * s2]
        i += seg
        a, b, k = grid_next(a, b, nB)


@_inline
def _lane_sum(buf, n):
    """``sum(buf[:n])`` in 8 interleaved float64 lanes, combined pairwise: a fixed order."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    m = n - n % 8
    for j in range(0, m, 8):
        a0 += buf[j]
        a1 += buf[j + 1]
        a2 += buf[j + 2]
        a3 += buf[j + 3]
        a4 += buf[j + 4]
        a5 += buf[j + 5]
        a6 += buf[j + 6]
        a7 += buf[j + 7]
    for j in range(m, n):
        a0 += buf[j]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@_inline
def _scratch(block, blk, size, ones, w, has_w, wgeo, g, gstep):
    """(start, end, weights, grad_output factors, scalar grad_output) of one block.

    The per-element ``grad_output`` is ``gb[j] * g0``: ``gb`` the block's values (or ones)
    and ``g0`` the single value (or 1), so one of the factors is always exactly 1.
    """
    nB, nK, s0, s1, s2 = wgeo
    start = blk * block
    end = min(size, start + block)
    n = end - start
    wb = ones
    if has_w:
        wb = np.empty(n, dtype=np.float64)
        _gather(w, nB, nK, s0, s1, s2, start, end, wb)
    gb = ones
    g0 = 1.0
    if gstep == 1:
        gb = np.empty(n, dtype=np.float64)
        for j in range(n):
            gb[j] = g[start + j]
    else:
        g0 = np.float64(g[0])
    return start, end, wb, gb, g0


# ----------------------------------------------------------------------------- BCE
@_loop
def _count_bad(n, x, y, lanes):
    """Add to ``lanes[j]`` 1 where ``x[j]`` or ``y[j]`` lies outside [0, 1] (NaN too).

    ``v*(1 - v) >= 0`` is that range test for every float32 ``v``: inside, both factors
    are >= 0 (``1 - v`` rounds to >= 2**-24 for v < 1); below 0 the product is negative
    (a factor >= 1, so it cannot underflow to 0); above 1, ``1 - v < 0`` (exact near 1,
    -inf far out); NaN compares False. Per-lane float counts (at most a few thousand, so
    exact) need no reduction across the vector.
    """
    for j in range(n):
        xj = x[j]
        yj = y[j]
        ok = (xj * (_ONE - xj) >= _ZERO) & (yj * (_ONE - yj) >= _ZERO)
        lanes[j] += _ZERO if ok else _ONE


@_loop
def _bce_logs(n, x, lx, lo):
    for j in range(n):  # float32 only
        xf = x[j]
        lx[j] = log_f32(xf)
        lo[j] = log1m_f32(xf)  # the bits of log1p_f32(-xf) on [0, 1]


@_loop
def _bce_losses(n, y, w, lx, lo, acc):
    for j in range(n):  # float64; element j of every chunk goes to lane j
        acc[j] += bce_loss_parts(np.float64(y[j]), np.float64(lo[j]), np.float64(lx[j])) * w[j]


@_loop
def _bce_losses_none(n, y, w, lx, lo, out):
    for j in range(n):
        out[j] = bce_loss_parts(np.float64(y[j]), np.float64(lo[j]), np.float64(lx[j])) * w[j]


@_loop
def _bce_grads(n, x, y, w, gb, g0, inv, gx):
    for j in range(n):  # torch's order: g*(x - y)/den, then *w, then /numel (as * 1/numel)
        gx[j] = bce_grad_input(gb[j] * g0, np.float64(x[j]), np.float64(y[j])) * w[j] * inv


@_loop
def _bce_loss_grads(n, x, y, w, gb, g0, inv, lx, lo, acc, gx):
    for j in range(n):  # _bce_losses and _bce_grads in one pass: x, y, w are read once
        xj = np.float64(x[j])
        yj = np.float64(y[j])
        wj = w[j]
        acc[j] += bce_loss_parts(yj, np.float64(lo[j]), np.float64(lx[j])) * wj
        gx[j] = bce_grad_input(gb[j] * g0, xj, yj) * wj * inv


@_loop
def _bce_loss_grads_plain(n, x, y, g0, inv, lx, lo, acc, gx):
    for j in range(n):  # _bce_loss_grads without weight or per-element g (x * 1 is exact)
        xj = np.float64(x[j])
        yj = np.float64(y[j])
        acc[j] += bce_loss_parts(yj, np.float64(lo[j]), np.float64(lx[j]))
        gx[j] = bce_grad_input(g0, xj, yj) * inv


@_loop
def _bce_block(blk, block, x, y, w, wgeo, ones, g, opts, out, gx, gy, part, bad):
    has_w, gstep, red, div = opts.has_weight, opts.gstep, opts.reduction, opts.div
    want_loss, want_gx, want_gy = opts.want_loss, opts.want_gx, opts.want_gy
    start, end, wb, gb, g0 = _scratch(block, blk, x.size, ones, w, has_w, wgeo, g, gstep)
    n = end - start
    inv = 1.0 / div
    plain = not has_w and gstep == 0  # the weight and g factors are all 1
    check = opts.check_range
    lanes = np.zeros(CHUNK if check else 0, dtype=np.float32)
    lx = np.empty(CHUNK, dtype=np.float32)
    lo = np.empty(CHUNK, dtype=np.float32)
    acc = np.zeros(CHUNK, dtype=np.float64)
    for c in range(0, n, CHUNK):
        m = min(CHUNK, n - c)
        a = start + c
        b = a + m
        if check:
            _count_bad(m, x[a:b], y[a:b], lanes)
        if not want_loss:
            if want_gx:
                _bce_grads(m, x[a:b], y[a:b], wb[c:c + m], gb[c:c + m], g0, inv, gx[a:b])
            continue
        _bce_logs(m, x[a:b], lx, lo)
        if red == NONE:
            _bce_losses_none(m, y[a:b], wb[c:c + m], lx, lo, out[a:b])
            if want_gx:
                _bce_grads(m, x[a:b], y[a:b], wb[c:c + m], gb[c:c + m], g0, inv, gx[a:b])
        elif want_gx and plain:
            _bce_loss_grads_plain(m, x[a:b], y[a:b], g0, inv, lx, lo, acc, gx[a:b])
        elif want_gx:
            _bce_loss_grads(m, x[a:b], y[a:b], wb[c:c + m], gb[c:c + m], g0, inv, lx, lo,
                            acc, gx[a:b])
        else:
            _bce_losses(m, y[a:b], wb[c:c + m], lx, lo, acc)
    if want_loss and red != NONE:
        part[2 * blk] = _lane_sum(acc, min(CHUNK, n))
    if check:
        bad[blk] = int(lanes.sum())
    if want_gy:  # torch: -logit(x) * g * w / numel
        for j in range(n):
            gy[start + j] = bce_grad_target(np.float64(x[start + j])) * (gb[j] * g0) * wb[j] / div


@_kernel
def bce_kernel_f32(block, x, y, w, wgeo, ones, g, opts, out, gx, gy, part, bad):
    """binary_cross_entropy on flat float32 ``x``, ``y``, in blocks of ``block`` elements.

    Arguments as the float64 ``bce_kernel`` of :mod:`nbxent.bce.cpu`, plus ``ones``
    (float64, ``block`` ones; stands in when ``opts.has_weight`` is False) and ``bad``
    (int64 per block: with ``opts.check_range``, how many of the block's elements fail
    BCE's range check; the launcher raises if any does).
    """
    for blk in prange((x.size + block - 1) // block):  # the body is one call: fast to compile
        _bce_block(blk, block, x, y, w, wgeo, ones, g, opts, out, gx, gy, part, bad)


@_loop
def bce_kernel_f32_serial(block, x, y, w, wgeo, ones, g, opts, out, gx, gy, part, bad):
    """:func:`bce_kernel_f32` on the calling thread (small inputs; nbxent/_cpu/threads.py)."""
    for blk in range((x.size + block - 1) // block):
        _bce_block(blk, block, x, y, w, wgeo, ones, g, opts, out, gx, gy, part, bad)


# ------------------------------------------------------------------ BCE with logits
@_loop
def _bcewl_exp_log1p(n, x, e, L):
    for j in range(n):  # float32 only
        ej = exp_f32(-abs(x[j]))
        e[j] = ej
        L[j] = log1p_unit_f32(ej)  # the bits of log1p_f32(ej) on [0, 1]


@_loop
def _bcewl_losses(n, x, y, w, pw, has_pw, L, acc):
    for j in range(n):  # float64; element j of every chunk goes to lane j
        acc[j] += bcewl_loss_parts(np.float64(x[j]), np.float64(y[j]), pw[j], has_pw,
                                   np.float64(L[j])) * w[j]


@_loop
def _bcewl_losses_none(n, x, y, w, pw, has_pw, L, out):
    for j in range(n):
        out[j] = bcewl_loss_parts(np.float64(x[j]), np.float64(y[j]), pw[j], has_pw,
                                  np.float64(L[j])) * w[j]


@_sigmoid_loop
def _bcewl_grads(n, x, y, w, pw, has_pw, e, gb, g0, inv, gx):
    for j in range(n):  # torch's order: core * g * w / numel (as * 1/numel)
        core = bcewl_grad_input_parts(np.float64(x[j]), np.float64(y[j]), pw[j], has_pw,
                                      np.float64(e[j]))
        gx[j] = core * (gb[j] * g0) * w[j] * inv


@_sigmoid_loop
def _bcewl_loss_grads(n, x, y, w, pw, has_pw, e, L, gb, g0, inv, acc, gx):
    for j in range(n):  # _bcewl_losses and _bcewl_grads in one pass
        xj = np.float64(x[j])
        yj = np.float64(y[j])
        wj = w[j]
        acc[j] += bcewl_loss_parts(xj, yj, pw[j], has_pw, np.float64(L[j])) * wj
        core = bcewl_grad_input_parts(xj, yj, pw[j], has_pw, np.float64(e[j]))
        gx[j] = core * (gb[j] * g0) * wj * inv


@_sigmoid_loop
def _bcewl_loss_grads_plain(n, x, y, g0, inv, e, L, acc, gx):
    for j in range(n):  # _bcewl_loss_grads without weights (has_pw False folds the selects)
        xj = np.float64(x[j])
        yj = np.float64(y[j])
        acc[j] += bcewl_loss_parts(xj, yj, 1.0, False, np.float64(L[j]))
        gx[j] = bcewl_grad_input_parts(xj, yj, 1.0, False, np.float64(e[j])) * g0 * inv


@_loop
def _bcewl_block(blk, block, x, y, w, pw, geo, ones, g, opts, out, gx, gy, part):
    has_w, has_pw, gstep, red, div = (opts.has_weight, opts.has_pos_weight, opts.gstep,
                                      opts.reduction, opts.div)
    want_loss, want_gx, want_gy = opts.want_loss, opts.want_gx, opts.want_gy
    nB, nK, s0, s1, s2, p0, p1, p2 = geo
    start, end, wb, gb, g0 = _scratch(block, blk, x.size, ones, w, has_w, (nB, nK, s0, s1, s2),
                                      g, gstep)
    n = end - start
    inv = 1.0 / div
    plain = not has_w and not has_pw and gstep == 0  # the weight and g factors are all 1
    pwb = ones
    if has_pw:
        pwb = np.empty(n, dtype=np.float64)
        _gather(pw, nB, nK, p0, p1, p2, start, end, pwb)
    if want_loss or want_gx:
        e = np.empty(CHUNK, dtype=np.float32)
        L = np.empty(CHUNK, dtype=np.float32)
        acc = np.zeros(CHUNK, dtype=np.float64)
        for c in range(0, n, CHUNK):
            m = min(CHUNK, n - c)
            a = start + c
            b = a + m
            xs, ys, ws, ps, gs = x[a:b], y[a:b], wb[c:c + m], pwb[c:c + m], gb[c:c + m]
            _bcewl_exp_log1p(m, xs, e, L)
            if want_loss and want_gx and red != NONE and plain:
                _bcewl_loss_grads_plain(m, xs, ys, g0, inv, e, L, acc, gx[a:b])
            elif want_loss and want_gx and red != NONE:
                _bcewl_loss_grads(m, xs, ys, ws, ps, has_pw, e, L, gs, g0, inv, acc, gx[a:b])
            else:
                if want_loss and red == NONE:
                    _bcewl_losses_none(m, xs, ys, ws, ps, has_pw, L, out[a:b])
                elif want_loss:
                    _bcewl_losses(m, xs, ys, ws, ps, has_pw, L, acc)
                if want_gx:
                    _bcewl_grads(m, xs, ys, ws, ps, has_pw, e, gs, g0, inv, gx[a:b])
        if want_loss and red != NONE:
            part[2 * blk] = _lane_sum(acc, min(CHUNK, n))
    if want_gy:
        for j in range(n):
            gy[start + j] = (bcewl_grad_target(np.float64(x[start + j]), pwb[j], has_pw)
                             * (gb[j] * g0) * wb[j] / div)


@_kernel
def bcewl_kernel_f32(block, x, y, w, pw, geo, ones, g, opts, out, gx, gy, part):
    """binary_cross_entropy_with_logits on flat float32 ``x``, ``y``; see ``bce_kernel_f32``."""
    for blk in prange((x.size + block - 1) // block):
        _bcewl_block(blk, block, x, y, w, pw, geo, ones, g, opts, out, gx, gy, part)


@_loop
def bcewl_kernel_f32_serial(block, x, y, w, pw, geo, ones, g, opts, out, gx, gy, part):
    """:func:`bcewl_kernel_f32` on the calling thread (small inputs)."""
    for blk in range((x.size + block - 1) // block):
        _bcewl_block(blk, block, x, y, w, pw, geo, ones, g, opts, out, gx, gy, part)
