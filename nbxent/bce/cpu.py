"""CPU kernels and launchers of binary_cross_entropy(_with_logits) and their gradients.

One kernel per loss and io dtype computes any subset of {loss, d/dx, d/dy} selected by
flags, so the forward, the fused forward+gradient and both backward passes share one
compiled function. The float64 kernels are here; the float32 ones, whose loops are
vectorized, are in :mod:`nbxent.bce.cpu_f32` (same arguments and blocks). Scalar options
travel as one :class:`BceOptions` record: one compiled signature per io dtype.

The flattened input is cut into fixed blocks of ``BLOCK`` elements run under ``prange``.
Inputs of at most ``SERIAL_MAX`` elements run the serial twin of the kernel (same block
function): waking the pool costs more than the work there (measured on 1000 elements:
30 us on one thread vs a 46 us median and an 8 ms 90th percentile on two busy cores), and
a serial kernel never enters the thread pool, so small calls work in a forked child
(nbxent/_cpu/threads.py). Each block writes its
elementwise outputs and one float64 partial sum of its losses (compensated, Neumaier, in
the float64 kernels); the launcher adds the partials with ``math.fsum`` in block order.
The reduced value therefore does not depend on the thread count, and is rounded to the
result dtype once.

The float64 kernels do all arithmetic in float64 with libm's exp/log/log1p (float16
inputs, and mixed dtypes, are widened exactly to float64 and take them too), so a result
is the exact value of torch's formula rounded once. The float32 kernels evaluate the
transcendentals in float32 (<= 1 ulp each) and the rest in float64; their error bounds
are in :mod:`nbxent.bce.cpu_f32`.

Weights never become full-size copies when their broadcast pattern fits the plan's
3-level grid (see ``nbxent.bce.validate``): a block walks its elements row segment by row
segment, and within a segment the weight index advances by a constant stride (0 or 1
element for the usual patterns).

Launchers take host arrays and a plan, allocate (or validate ``out``), widen dtypes when
the plan says so, run BCE's range check, pick the kernel and combine the partials. The
range check is a pass of its own before any write (so an in-place call never leaves a
half-written input behind) for the float64 kernels and wherever the gradient overwrites
an input; otherwise the float32 kernel counts bad elements as it reads them, and the
launcher raises the same error after it (one read of the inputs instead of two).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from nbxent._core.arrays import unaliased
from nbxent._core.jit import CACHE
from nbxent._core.reduction import MEAN, NONE, neumaier_add
from nbxent.bce.cpu_f32 import (
    bce_kernel_f32,
    bce_kernel_f32_serial,
    bcewl_kernel_f32,
    bcewl_kernel_f32_serial,
    grid_next,
    grid_origin,
)
from nbxent.bce.formulas import (
    bce_grad_input,
    bce_grad_target,
    bce_loss,
    bcewl_grad_input,
    bcewl_grad_target,
    bcewl_loss,
    bcewl_loss_and_grad,
)
from nbxent.bce.validate import BcePlan, check_probabilities


class BceOptions(NamedTuple):
    """The scalar options of every BCE kernel, as one record of fixed field types."""

    gstep: int            #: 0: one upstream gradient for all elements; 1: one per element
    reduction: int        #: NONE / MEAN / SUM
    want_loss: bool
    want_gx: bool         #: d loss / d input
    want_gy: bool         #: d loss / d target
    div: float            #: numel for 'mean', else 1.0
    has_weight: bool
    has_pos_weight: bool
    check_range: bool     #: the float32 BCE kernel counts out-of-range elements per block

#: Elements per block: one partial sum each; fixed, so results are thread-count invariant.
BLOCK = 4096
#: Inputs up to this size run on one thread (see the module docstring).
SERIAL_MAX = 4 * BLOCK
#: Elements per block of the float32 kernels: their per-block scratch (a few small arrays)
#: is allocated once per 16K elements; equally fixed, so equally thread-count invariant.
BLOCK_F32 = 4 * BLOCK

_jit = numba.njit(cache=CACHE)
_jit_par = numba.njit(parallel=True, cache=CACHE)


# ----------------------------------------------------------------------------- BCE
# One kernel per loss computes any subset of {loss, d/dx, d/dy} (flags), so a loss has one
# compiled signature per io dtype. ``g`` is the upstream gradient, read at ``i*gstep``
# (gstep 0: one value for 'mean'/'sum' and for the fused forward, where it is 1).
@_jit
def _bce_block(blk, x, y, w, geo, g, opts, out, gx, gy, part):
    gstep, red, div = opts.gstep, opts.reduction, opts.div
    want_loss, want_gx, want_gy = opts.want_loss, opts.want_gx, opts.want_gy
    n = x.size
    nB, nK, s0, s1, s2 = geo
    start = blk * BLOCK
    end = min(n, start + BLOCK)
    a, b, k = grid_origin(start, nB, nK)
    hi = 0.0
    lo = 0.0
    i = start
    while i < end:  # one row segment of the grid per pass: the weight stride is constant
        seg = min(end - i, nK - k)
        wo = a * s0 + b * s1 + k * s2
        for j in range(seg):
            xi = np.float64(x[i + j])
            yi = np.float64(y[i + j])
            wi = w[wo + j * s2]
            if want_loss:
                loss = bce_loss(xi, yi) * wi
                if red == NONE:
                    out[i + j] = loss
                else:
                    hi, lo = neumaier_add(hi, lo, loss)
            if want_gx or want_gy:
                gi = np.float64(g[(i + j) * gstep])
                if want_gx:  # torch's order: g*(x - y)/den, then *w, then /numel
                    gx[i + j] = bce_grad_input(gi, xi, yi) * wi / div
                if want_gy:  # torch: -logit(x) * g * w / numel
                    gy[i + j] = bce_grad_target(xi) * gi * wi / div
        i += seg
        a, b, k = grid_next(a, b, nB)
    part[2 * blk] = hi
    part[2 * blk + 1] = lo


@_jit_par
def bce_kernel(x, y, w, geo, g, opts, out, gx, gy, part):
    """binary_cross_entropy over blocks; see ``_bce_block`` for the arguments."""
    for blk in prange((x.size + BLOCK - 1) // BLOCK):
        _bce_block(blk, x, y, w, geo, g, opts, out, gx, gy, part)


@_jit
def bce_kernel_serial(x, y, w, geo, g, opts, out, gx, gy, part):
    """:func:`bce_kernel` on the calling thread (small inputs)."""
    for blk in range((x.size + BLOCK - 1) // BLOCK):
        _bce_block(blk, x, y, w, geo, g, opts, out, gx, gy, part)


# ------------------------------------------------------------------ BCE with logits
@_jit
def _bcewl_block(blk, x, y, w, pw, geo, g, opts, out, gx, gy, part):
    has_pw, gstep, red, div = opts.has_pos_weight, opts.gstep, opts.reduction, opts.div
    want_loss, want_gx, want_gy = opts.want_loss, opts.want_gx, opts.want_gy
    n = x.size
    nB, nK, s0, s1, s2, p0, p1, p2 = geo
    start = blk * BLOCK
    end = min(n, start + BLOCK)
    a, b, k = grid_origin(start, nB, nK)
    hi = 0.0
    lo = 0.0
    i = start
    while i < end:
        seg = min(end - i, nK - k)
        wo = a * s0 + b * s1 + k * s2
        po = a * p0 + b * p1 + k * p2
        for j in range(seg):
            xi = np.float64(x[i + j])
            yi = np.float64(y[i + j])
            wi = w[wo + j * s2]
            pwi = pw[po + j * p2]
            loss = 0.0
            core = 0.0
            if want_loss and want_gx:  # one exp and one log1p give both
                loss, core = bcewl_loss_and_grad(xi, yi, pwi, has_pw)
            elif want_loss:
                loss = bcewl_loss(xi, yi, pwi, has_pw)
            elif want_gx:
                core = bcewl_grad_input(xi, yi, pwi, has_pw)
            if want_loss:
                loss = loss * wi
                if red == NONE:
                    out[i + j] = loss
                else:
                    hi, lo = neumaier_add(hi, lo, loss)
            if want_gx or want_gy:
                gi = np.float64(g[(i + j) * gstep])
                if want_gx:  # torch: core * g * w / numel
                    gx[i + j] = core * gi * wi / div
                if want_gy:
                    gy[i + j] = bcewl_grad_target(xi, pwi, has_pw) * gi * wi / div
        i += seg
        a, b, k = grid_next(a, b, nB)
    part[2 * blk] = hi
    part[2 * blk + 1] = lo


@_jit_par
def bcewl_kernel(x, y, w, pw, geo, g, opts, out, gx, gy, part):
    """binary_cross_entropy_with_logits over blocks; see ``_bcewl_block`` for the arguments."""
    for blk in prange((x.size + BLOCK - 1) // BLOCK):
        _bcewl_block(blk, x, y, w, pw, geo, g, opts, out, gx, gy, part)


@_jit
def bcewl_kernel_serial(x, y, w, pw, geo, g, opts, out, gx, gy, part):
    """:func:`bcewl_kernel` on the calling thread (small inputs)."""
    for blk in range((x.size + BLOCK - 1) // BLOCK):
        _bcewl_block(blk, x, y, w, pw, geo, g, opts, out, gx, gy, part)


# ------------------------------------------------------------------------ launchers
_ONE = np.ones(1, dtype=np.float64)
_ONES_BLOCK = np.ones(BLOCK_F32, dtype=np.float64)


def _flat(arr, dtype) -> np.ndarray:
    """C-contiguous 1-D array of ``dtype``; no copy when ``arr`` already is one."""
    return np.ascontiguousarray(arr, dtype=dtype).reshape(-1)


def _side_array(info, arr, shape) -> tuple[np.ndarray, tuple]:
    """(flat float64 values, grid strides) of a weight/pos_weight, or (ones(1), zeros)."""
    if info is None:
        return _ONE, (0, 0, 0)
    a = np.asarray(arr)
    if info.materialise:
        a = np.broadcast_to(a, shape)
    return _flat(a, np.float64), info.strides


def _result_buffer(plan: BcePlan, dtype, out) -> tuple[np.ndarray, np.ndarray]:
    """(array returned to the caller, flat io-dtype buffer the kernel writes).

    The two share memory unless the result dtype differs from the io dtype; then
    :func:`_finish` rounds the buffer into the result once.
    """
    dtype = np.dtype(dtype)
    final = np.empty(plan.shape, dtype=dtype) if out is None else out
    if dtype == plan.io_dtype:
        return final, final.reshape(-1)  # C-contiguous, so a view
    return final, np.empty(plan.numel, dtype=plan.io_dtype)


def _finish(final: np.ndarray, flat: np.ndarray) -> np.ndarray:
    if final.dtype != flat.dtype:
        with np.errstate(over="ignore"):  # beyond float16's range rounds to +-inf, as torch's
            np.copyto(final, flat.reshape(final.shape), casting="same_kind")
    return final


def _total(plan: BcePlan, part: np.ndarray) -> np.ndarray:
    """Combine block partials in block order, divide for 'mean', round once to the result dtype."""
    hi = part[0::2]
    if plan.numel == 0:
        total = math.nan if plan.reduction == MEAN else 0.0
    else:
        try:
            total = math.fsum(part) if np.isfinite(hi).all() else float(np.sum(hi))
        except OverflowError:  # the exact sum of finite partials is beyond float64
            total = float(np.sum(hi))
        if plan.reduction == MEAN:
            total = total / plan.numel
    with np.errstate(over="ignore"):
        return np.asarray(total, dtype=plan.result_dtype)


def run(plan: BcePlan, input, target, weight, pos_weight, *, grad_output=None,
        want_loss=True, want_gx=False, want_gy=False, out=None):
    """Run one pass over validated host arrays; returns ``(loss, grad_input, grad_target)``.

    ``grad_output`` None means 1 (the fused forward). It is rounded to the loss dtype
    first, as torch reads it. ``out`` (already validated) receives ``grad_input`` and may
    be ``input`` itself. Entries not asked for are None.
    """
    io = plan.io_dtype
    x = _flat(input, io)
    y = _flat(target, io)
    w, ws = _side_array(plan.weight, weight, plan.shape)
    pw, ps = _side_array(plan.pos_weight, pos_weight, plan.shape)
    dummy = np.empty(0, dtype=io)
    if grad_output is None:
        g = np.ones(1, dtype=io)
    else:
        g = _flat(np.asarray(grad_output).astype(plan.result_dtype, copy=False), io)
    gstep = 1 if (grad_output is not None and plan.reduction == NONE) else 0
    gx_final, gx_flat = _result_buffer(plan, plan.input_dtype, out) if want_gx else (None, dummy)
    gy_final, gy_flat = _result_buffer(plan, plan.target_dtype, None) if want_gy else (None, dummy)
    if want_gx and out is not None:
        # The overlap rule (nbxent/_core/arrays.py): elementwise, so out=input (or target)
        # is safe in place; any other overlap is copied first.
        x = unaliased(x, gx_flat, True)
        y = unaliased(y, gx_flat, True)
        g = unaliased(g, gx_flat, False)
        w = unaliased(w, gx_flat, False)
        pw = unaliased(pw, gx_flat, False)
    # BCE's range check: fused into the float32 kernel (which counts the bad elements per
    # block, and then the check below raises) unless the gradient overwrites an input; then,
    # and for the float64 kernels, a pass of its own before any write, so a rejected call
    # leaves an in-place input intact.
    in_place = want_gx and (np.may_share_memory(gx_flat, x) or np.may_share_memory(gx_flat, y))
    fused_check = not plan.logits and io == np.float32 and not in_place
    if not plan.logits and not fused_check:
        check_probabilities(plan.fname, x, y)
    want_none = want_loss and plan.reduction == NONE
    l_final, l_flat = _result_buffer(plan, plan.result_dtype, None) if want_none else (None, dummy)
    block = BLOCK_F32 if io == np.float32 else BLOCK
    nblocks = (plan.numel + block - 1) // block
    part = np.zeros(2 * nblocks, dtype=np.float64)
    div = float(plan.numel) if plan.reduction == MEAN else 1.0
    nB, nK = plan.grid[1], max(plan.grid[2], 1)
    has_w, has_pw = plan.weight is not None, plan.pos_weight is not None
    opts = BceOptions(gstep=int(gstep), reduction=int(plan.reduction), want_loss=bool(want_loss),
                      want_gx=bool(want_gx), want_gy=bool(want_gy), div=float(div),
                      has_weight=bool(has_w), has_pos_weight=bool(has_pw),
                      check_range=bool(fused_check))
    outs = (l_flat, gx_flat, gy_flat, part)
    serial = plan.numel <= SERIAL_MAX
    if io == np.float32 and plan.logits:
        fn = bcewl_kernel_f32_serial if serial else bcewl_kernel_f32
        fn(block, x, y, w, pw, (nB, nK) + ws + ps, _ONES_BLOCK, g, opts, *outs)
    elif io == np.float32:
        fn = bce_kernel_f32_serial if serial else bce_kernel_f32
        bad = np.zeros(nblocks if fused_check else 0, dtype=np.int64)
        fn(block, x, y, w, (nB, nK) + ws, _ONES_BLOCK, g, opts, *outs, bad)
        if bad.any():
            check_probabilities(plan.fname, x, y)  # raises, naming the first bad element
    elif plan.logits:
        fn = bcewl_kernel_serial if serial else bcewl_kernel
        fn(x, y, w, pw, (nB, nK) + ws + ps, g, opts, *outs)
    else:
        fn = bce_kernel_serial if serial else bce_kernel
        fn(x, y, w, (nB, nK) + ws, g, opts, *outs)
    loss = None
    if want_loss:
        loss = _finish(l_final, l_flat) if want_none else _total(plan, part)
    gx = _finish(gx_final, gx_flat) if want_gx else None
    gy = _finish(gy_final, gy_flat) if want_gy else None
    return loss, gx, gy
