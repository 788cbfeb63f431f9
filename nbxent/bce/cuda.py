"""Launchers for binary_cross_entropy(_with_logits): validation, buffers, launches.

Validation is the shared metadata plan (``nbxent.bce.validate``), so
both backends raise the same exceptions. BCE's ``0 <= x, y <= 1`` check runs
before the main kernel: on the host for NumPy arguments (the CPU backend's
scanner), on the device for device arguments (``bce_check_kernel``, of which
only the per-block first-bad indices and the one offending element come back).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nbxent._core.dtypes import compute_dtype
from nbxent._core.reduction import MEAN, NONE
from nbxent.bce import validate as V
from nbxent.cuda import _runtime
from nbxent.cuda._arrays import finish, to_kernel


class CudaBceOptions(NamedTuple):
    """The scalar options of the CUDA BCE kernel, as one record of fixed field types."""

    B: int                #: the plan's grid sizes (weights broadcast over them)
    K: int
    logits: bool          #: BCE-with-logits
    has_weight: bool
    has_pos_weight: bool
    reduction: int        #: NONE / MEAN / SUM
    numel: float          #: the 'mean' divisor
    want_gx: bool
    want_gy: bool
    write_loss: bool


def _io_dtype(plan):
    """Dtype x and y are read in: the plan's io dtype, but float32 for a float16 pair."""
    if plan.input_dtype == plan.target_dtype == np.float16:
        return np.dtype(np.float32)
    return plan.io_dtype


def _broadcast_arg(cuda, plan, name, arr, info):
    """A broadcast argument as a flat float64 device array and its int64 grid strides."""
    if arr is None:
        return cuda.to_device(np.ones(1)), cuda.to_device(np.zeros(3, dtype=np.int64))
    strides = np.asarray(info.strides, dtype=np.int64)
    if info.materialise:
        # The pattern does not fit the 3-level grid: expand to the input's shape (rare).
        host = arr.copy_to_host() if _runtime.is_device(arr) else np.asarray(arr)
        full = np.broadcast_to(host.astype(np.float64), plan.shape)
        return cuda.to_device(np.ascontiguousarray(full).reshape(-1)), cuda.to_device(strides)
    size = int(np.prod(info.shape, dtype=np.int64))
    return to_kernel(cuda, plan.fname, name, arr, np.float64, (size,)), cuda.to_device(strides)


def _check_range_device(cuda, plan, x, y):
    from nbxent.bce.cuda_kernels import bce_check_kernel

    n = plan.numel
    grid = _runtime.grid_for(n)
    pbad = cuda.device_array(grid, dtype=np.int64)
    bce_check_kernel[grid, _runtime.threads_per_block()](x, y, pbad)
    i = int(pbad.copy_to_host().min())
    if i >= n:
        return
    xi = float(x[i:i + 1].copy_to_host()[0])
    if not (0.0 <= xi <= 1.0):
        raise RuntimeError(f"{plan.fname}: all elements of input should be between 0 and 1 "
                           f"(argument 'input' has {xi!r} at flat index {i})")
    yi = float(y[i:i + 1].copy_to_host()[0])
    raise RuntimeError(f"{plan.fname}: all elements of target should be between 0 and 1 "
                       f"(argument 'target' has {yi!r} at flat index {i})")


def run(plan, input, target, weight, pos_weight, *, grad_output=None, want_loss=True,
        want_gx=False, want_gy=False, out=None):
    """Launch the elementwise kernel; returns ``(loss, grad_input, grad_target)``."""
    from nbxent.bce.cuda_kernels import bce_kernel
    from nbxent.cuda._reduce_kernels import combine_kernel

    cuda = _runtime.cuda_module()
    fname = plan.fname
    on_device = any(_runtime.is_device(a) for a in (input, target, weight, pos_weight, grad_output)
                    if a is not None)
    io = _io_dtype(plan)
    n = plan.numel
    x = to_kernel(cuda, fname, "input", input, io, (n,))
    y = to_kernel(cuda, fname, "target", target, io, (n,))
    if not plan.logits and n:
        if _runtime.is_device(input) or _runtime.is_device(target):
            _check_range_device(cuda, plan, x, y)
        else:
            V.check_probabilities(fname, np.ascontiguousarray(input, dtype=io).reshape(-1),
                                  np.ascontiguousarray(target, dtype=io).reshape(-1))
    w, wst = _broadcast_arg(cuda, plan, "weight", weight, plan.weight)
    pw, pst = _broadcast_arg(cuda, plan, "pos_weight", pos_weight, plan.pos_weight)
    red = plan.reduction
    gshape = (n,) if red == NONE else (1,)
    if grad_output is None:
        g = cuda.to_device(np.ones(1))
    elif _runtime.is_device(grad_output):
        g = to_kernel(cuda, fname, "grad_output", grad_output, plan.result_dtype, gshape)
        g = to_kernel(cuda, fname, "grad_output", g, np.float64, gshape)  # read in the loss dtype
    else:
        g64 = np.asarray(grad_output).astype(plan.result_dtype).astype(np.float64)
        g = cuda.to_device(np.ascontiguousarray(g64).reshape(gshape))
    write_loss = 1 if (want_loss and red == NONE) else 0
    t_loss = compute_dtype(plan.result_dtype)
    loss = cuda.device_array(n if write_loss else 1, dtype=t_loss)
    gx = cuda.device_array(n if want_gx else 1, dtype=compute_dtype(plan.input_dtype))
    gy = cuda.device_array(n if want_gy else 1, dtype=compute_dtype(plan.target_dtype))
    tpb = _runtime.threads_per_block()
    grid = _runtime.grid_for(max(n, 1))
    partial = cuda.device_array(grid, dtype=np.float64)
    _, B, K = plan.grid
    opts = CudaBceOptions(B=int(B), K=int(K), logits=bool(plan.logits),
                          has_weight=weight is not None, has_pos_weight=pos_weight is not None,
                          reduction=int(red), numel=float(n), want_gx=bool(want_gx),
                          want_gy=bool(want_gy), write_loss=bool(write_loss))
    bce_kernel[grid, tpb](x, y, w, wst, pw, pst, g, opts, loss, gx, gy, partial)
    res = [None, None, None]
    if want_loss:
        if red == NONE:
            res[0] = finish(cuda, loss, plan.result_dtype, plan.shape, on_device)
        else:
            total = cuda.device_array(1, dtype=t_loss)
            denom = float(n) if red == MEAN else 1.0
            combine_kernel[1, tpb](partial, np.float64(1.0), np.float64(denom), total)
            res[0] = finish(cuda, total, plan.result_dtype, plan.out_shape, on_device)
    if want_gx:
        res[1] = finish(cuda, gx, plan.input_dtype, plan.shape, on_device, out)
    if want_gy:
        res[2] = finish(cuda, gy, plan.target_dtype, plan.shape, on_device)
    return tuple(res)
