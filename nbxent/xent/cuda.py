"""Launchers for cross_entropy / nll_loss: validation, buffers, geometry, launches.

Validation is the shared metadata plan (``nbxent.xent.validate``), so
both backends raise the same exceptions. Target ranges are checked before the
main kernel indexes with them: on the host for NumPy targets (the CPU
backend's scanner), on the device for device targets (``ce_prepass_kernel``,
of which only the per-block first-bad-index and weight sums come back).

nll_loss has its own kernel (``nll_kernel``): it reads one element per sample
and its gradient is a scaled one-hot, so it needs no row reduction.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nbxent._core.arrays import target_out_of_bounds
from nbxent._core.jit import GRAD_INTO, GRAD_NONE
from nbxent._core.reduction import MEAN, NONE
from nbxent.cuda import _runtime
from nbxent.cuda._arrays import finish, to_kernel
from nbxent.xent import validate as V
from nbxent.xent.cpu_index import scan_targets


def _prepare(cuda, plan, fname, x, target, weight, grad_output):
    """Move and normalise the arguments; range-check targets; compute the mean denominator.

    ``j.n_valid`` is the count of non-ignored samples (the z-loss's 'mean' denominator).
    """
    T = plan.compute_dtype
    j = SimpleNamespace()
    j.on_device = any(_runtime.is_device(a) for a in (x, target, weight, grad_output)
                      if a is not None)
    N, C, K, S = plan.N, plan.C, plan.K, plan.S
    j.x = to_kernel(cuda, fname, "input", x, T, (N, C, K))
    if plan.has_weight:
        j.w = to_kernel(cuda, fname, "weight", weight, T, (C,))
    else:
        j.w = cuda.to_device(np.ones(C, dtype=T))
    if plan.prob:
        j.t = cuda.to_device(np.zeros(1, dtype=np.int64))
        j.p = to_kernel(cuda, fname, "target", target, T, (N, C, K))
        j.wsum = float(S)
        j.n_valid = S
    else:
        j.p = cuda.to_device(np.zeros((1, 1, 1), dtype=T))
        if _runtime.is_device(target):
            j.t = to_kernel(cuda, fname, "target", target, np.int64, (S,))
            j.wsum = _device_scan(cuda, plan, j.t, j.w, tuple(target.shape))
            j.n_valid = j.wsum
            if plan.has_weight and plan.lse_square_scale != 0.0:
                ones = cuda.to_device(np.ones(C, dtype=T))
                j.n_valid = int(_device_scan(cuda, plan, j.t, ones, tuple(target.shape)))
        else:
            t_host = V.host_target_index(plan, target)
            w_host = V.host_weight(plan, weight if not _runtime.is_device(weight) else
                                   j.w.copy_to_host())
            j.n_valid, j.wsum = scan_targets(plan, t_host, w_host, tuple(np.shape(target)))
            j.t = cuda.to_device(t_host)
    if grad_output is None:
        j.g = cuda.to_device(np.ones(1, dtype=T))
    else:
        V.check_grad_output_shape(fname, plan, grad_output)
        shape = (S,) if plan.reduction == NONE else (1,)
        if _runtime.is_device(grad_output):
            g = to_kernel(cuda, fname, "grad_output", grad_output, plan.result_dtype, shape)
            j.g = to_kernel(cuda, fname, "grad_output", g, T, shape)  # torch reads g in the loss dtype
        else:
            g = np.asarray(grad_output).astype(plan.result_dtype)
            j.g = cuda.to_device(np.ascontiguousarray(g, dtype=T).reshape(shape))
    return j


def _device_scan(cuda, plan, t_dev, w_dev, target_shape):
    """Range-check device targets on the device; returns the float64 weight sum."""
    from nbxent.xent.cuda_kernels import ce_prepass_kernel

    S = plan.S
    if S == 0:
        if plan.deferred_error:
            raise RuntimeError(plan.deferred_error)
        return 0.0
    grid = _runtime.grid_for(S)
    pw = cuda.device_array(grid, dtype=np.float64)
    pbad = cuda.device_array(grid, dtype=np.int64)
    ce_prepass_kernel[grid, _runtime.threads_per_block()](t_dev, w_dev, np.int64(plan.ignore_index),
                                                          np.int64(plan.C), pw, pbad)
    bad = int(pbad.copy_to_host().min())
    if bad < S:
        value = int(t_dev[bad:bad + 1].copy_to_host()[0])
        raise target_out_of_bounds(plan.fname, value, bad, target_shape, plan.C)
    if plan.deferred_error:
        raise RuntimeError(plan.deferred_error)
    total = 0.0
    for v in pw.copy_to_host():  # fixed order
        total += float(v)
    return total


def run(plan, fname, x, target, weight, *, grad_output=None, want_loss=True, want_grad=False,
        want_gt=False, out=None, want_lse=False, want_z=False):
    """Launch the fused kernel; returns ``(loss, grad_input, grad_target, z_loss, lse)``.

    Entries not asked for are None (see nbxent/xent/cpu.py: the same results and dtypes).
    """
    from nbxent.cuda._reduce_kernels import combine_kernel
    from nbxent.xent.cuda_kernels import ce_rows_kernel, nll_kernel

    cuda = _runtime.cuda_module()
    j = _prepare(cuda, plan, fname, x, target, weight, grad_output)
    T = plan.compute_dtype
    N, C, K, S = plan.N, plan.C, plan.K, plan.S
    tpb = _runtime.threads_per_block()
    grid = _runtime.grid_for(S, 1)
    red = plan.reduction
    write_loss = 1 if (want_loss and red == NONE) else 0
    loss = cuda.device_array(S if write_loss else 1, dtype=T)
    dummy3 = cuda.device_array((1, 1, 1), dtype=T)
    grad = cuda.device_array((N, C, K), dtype=T) if want_grad else dummy3
    gradt = cuda.device_array((N, C, K), dtype=T) if want_gt else dummy3
    scratch = cuda.device_array((grid, 5), dtype=T)
    partial = cuda.device_array(grid, dtype=np.float64)
    sign = -1.0 if plan.prob else 1.0
    wsum = j.wsum if red == MEAN else 1.0
    zl = plan.lse_square_scale != 0.0
    need_lse = want_lse or zl
    write_z = bool(want_z and red == NONE)
    lse_out = cuda.device_array(S if need_lse else 1, dtype=T)
    zloss_out = cuda.device_array(S if write_z else 1, dtype=T)
    zpartial = cuda.device_array(grid, dtype=np.float64)
    opts = V.cuda_kernel_options(plan, wsum, GRAD_INTO if want_grad else GRAD_NONE, want_gt,
                                 write_loss, zratio=V.z_grad_ratio(plan, j.wsum, j.n_valid),
                                 want_lse=need_lse, write_z=write_z)
    if C == 0 and S > 0 and not plan.is_nll:
        # No row to reduce: the values are fixed (nbxent.xent.validate.values_without_classes).
        vals = V.values_without_classes(plan)
        if write_loss:
            loss = cuda.to_device(vals.astype(T))
        partial = cuda.to_device(np.array([sign * np.sum(vals)]))
        zpartial = cuda.to_device(np.zeros(1))
        if need_lse:
            lse_out = cuda.to_device(np.full(S, -np.inf, dtype=T))  # the lse of no terms
        if write_z:
            zloss_out = cuda.to_device(np.zeros(S, dtype=T))
        S_launch = 0
    else:
        S_launch = S
    if plan.is_nll:
        grid = _runtime.grid_for(max(S * C if want_grad else S, 1))
        partial = cuda.device_array(grid, dtype=np.float64)
        nll_kernel[grid, tpb](j.x, j.t, j.w, j.g, opts, loss, grad, partial)
    elif S_launch > 0:
        ce_rows_kernel[grid, tpb](j.x, j.t, j.p, j.w, j.g, opts, loss, grad, gradt, scratch,
                                  partial, lse_out, zloss_out, zpartial)
    elif S == 0:
        partial = cuda.to_device(np.zeros(1, dtype=np.float64))
        zpartial = cuda.to_device(np.zeros(1, dtype=np.float64))
    res = [None, None, None, None, None]
    if want_loss:
        if red == NONE:
            res[0] = finish(cuda, loss, plan.result_dtype, plan.out_shape, j.on_device)
        else:
            total = cuda.device_array(1, dtype=T)
            denom = j.wsum if red == MEAN else 1.0
            if red == MEAN and plan.prob and C == 0:
                denom = np.nan  # torch divides by numel / C
            combine_kernel[1, tpb](partial, np.float64(sign), np.float64(denom), total)
            res[0] = finish(cuda, total, plan.result_dtype, (), j.on_device)
    shape_in = plan.input_shape
    if want_grad:
        res[1] = finish(cuda, grad, plan.input_dtype, shape_in, j.on_device, out)
    if want_gt:
        res[2] = finish(cuda, gradt, plan.target_dtype, shape_in, j.on_device)
    if want_z:
        if write_z:
            res[3] = finish(cuda, zloss_out, plan.result_dtype, plan.out_shape, j.on_device)
        else:
            ztotal = cuda.device_array(1, dtype=T)
            zden = float(j.n_valid) if red == MEAN else 1.0
            if red == MEAN and zden == 0.0:
                zden = np.nan                  # 0 / 0, as the CPU's float64 division
            combine_kernel[1, tpb](zpartial, np.float64(1.0), np.float64(zden), ztotal)
            res[3] = finish(cuda, ztotal, plan.result_dtype, (), j.on_device)
    if want_lse:
        res[4] = finish(cuda, lse_out, plan.compute_dtype, plan.out_shape, j.on_device)
    return tuple(res)
