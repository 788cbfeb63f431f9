"""Host side of the CPU cross_entropy / nll_loss: normalise, range-check, launch, reduce.

One entry point, :func:`run`, serves the forward, the backward and the fused
loss-and-gradient calls of both losses, so the three can never disagree about the
normaliser ``W`` (sum of the target weights) or the per-row log-sum-exp: the gradient
is written by the same row pass that computes the loss.
"""
from __future__ import annotations

import numpy as np

from nbxent._core.arrays import same_buffer, unaliased
from nbxent._core.jit import GRAD_IN_PLACE, GRAD_INTO, GRAD_NONE
from nbxent._core.reduction import MEAN, NONE, neumaier_sum, weight_sum
from nbxent.xent.cpu_capped import run_capped
from nbxent.xent.cpu_index import run_index, run_nll, scan_targets
from nbxent.xent.cpu_prob import run_prob
from nbxent.xent.validate import (
    CEPlan,
    host_input,
    host_target_index,
    host_target_prob,
    host_weight,
    kernel_options,
    values_without_classes,
    z_grad_ratio,
)

__all__ = ["run"]


def _grad_scale(plan: CEPlan, g: np.ndarray, W: float):
    """Per-sample gradient scale ``g_s`` as (float64 array, stride) for the kernels."""
    if g is None:                      # the fused call: d(sum of outputs), g = 1
        g = np.ones(1)
    elif plan.reduction == NONE and not plan.unbatched:
        return np.ascontiguousarray(g, dtype=np.float64), 1
    g0 = np.float64(g[0])
    if plan.reduction == MEAN:
        denom = np.float64(plan.S if plan.prob else W)
        with np.errstate(divide="ignore", invalid="ignore"):
            g0 = g0 / denom
    return np.array([g0], dtype=np.float64), 0


def _z_total(plan: CEPlan, zv: np.ndarray, n_valid: int) -> np.float64:
    """The reduced z-loss (float64): its sum, divided by the non-ignored count for 'mean'."""
    total = np.float64(neumaier_sum(zv, False))
    if plan.reduction == MEAN:
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total / np.float64(n_valid)
    return total


def _finish(plan: CEPlan, vals: np.ndarray, W: float, zv=None, n_valid: int = 0) -> np.ndarray:
    """Reduce the float64 per-sample values in a fixed serial order; round once.

    ``zv``: the per-sample z-loss values (float64, 0 where ignored), added to the loss
    before the one rounding ('none') or reduced with their own denominator (docs/semantics.md
    §13.1) and added to the reduced loss.
    """
    if plan.reduction == NONE and not plan.unbatched:
        if zv is not None:
            vals = vals + zv
        return vals.reshape(plan.out_shape).astype(plan.result_dtype)
    # torch sums probability-target losses as -(sum of lp*q*w): the sign of a zero total
    # (empty batch, C = 1) follows from summing the negated values.
    total = np.float64(neumaier_sum(vals, plan.prob))
    if plan.prob:
        total = -total
    if plan.reduction == MEAN:
        if plan.prob:
            denom = np.float64(plan.S) if plan.C > 0 else np.float64(np.nan)  # torch: numel / C
        else:
            denom = np.float64(W)
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total / denom
    if zv is not None:
        total = total + _z_total(plan, zv, n_valid)
    return np.asarray(total, dtype=plan.result_dtype)


def _z_values(plan: CEPlan, lse, t) -> np.ndarray:
    """Per-sample z-loss ``z * lse^2`` (float64), +0.0 for ignored samples."""
    z = np.float64(plan.lse_square_scale)
    if z == 0.0 or lse is None:
        return np.zeros(plan.S)
    with np.errstate(over="ignore", invalid="ignore"):
        zv = z * (lse * lse)
    if not plan.prob:
        zv[t == plan.ignore_index] = 0.0
    return zv


def _z_result(plan: CEPlan, zv: np.ndarray, n_valid: int) -> np.ndarray:
    """The returned z-loss: per sample ('none', batched) or reduced like the loss."""
    if plan.reduction == NONE and not plan.unbatched:
        return zv.reshape(plan.out_shape).astype(plan.result_dtype)
    return np.asarray(_z_total(plan, zv, n_valid), dtype=plan.result_dtype)


def run(plan: CEPlan, input, target, weight, g=None, want_grad=False, want_gradq=False,
        out=None, want_lse=False, want_z=False):
    """Compute the loss and, on request, the gradients of one cross_entropy/nll_loss call.

    Args:
        plan: from :func:`nbxent.xent.validate.plan_cross_entropy` / ``plan_nll_loss``.
        g: float64 upstream gradient, ``(S,)`` for ``'none'`` (batched) else ``(1,)``;
            None means 1 (the fused ``_with_grad`` call).
        want_grad / want_gradq: gradient w.r.t. the input / the probability target.
        out: caller buffer (validated) for the input gradient; may be ``input`` itself.

        want_lse / want_z: also return the per-sample log-sum-exp / the z-loss.

    Returns:
        ``(loss, grad_input, grad_target, z_loss, lse)``; all but the loss are None unless
        requested. Gradients are shaped like the input, with the input's (target's) dtype;
        ``z_loss`` has the loss's shape and dtype; ``lse`` has the ``'none'`` shape and the
        compute dtype (float32 for float16/bfloat16 inputs).
    """
    N, C, K = plan.N, plan.C, plan.K
    cdt = plan.compute_dtype
    w = host_weight(plan, weight)
    x3 = host_input(plan, input)
    W = 0.0
    t = None
    if plan.prob:
        q3 = host_target_prob(plan, target)
        n_valid = plan.S
    else:
        t = host_target_index(plan, target)
        n_valid, W = scan_targets(plan, t, w, tuple(target.shape))
    g_arr, gstride = _grad_scale(plan, g, W)

    grad3 = None
    into_out = want_grad and out is not None and out.dtype == cdt
    if want_grad:
        if into_out:
            grad3 = out.reshape(N, C, K)
            # The overlap rule (nbxent/_core/arrays.py): out=input is in place; any other
            # overlap of out with an argument is resolved by copying the argument first.
            x3 = unaliased(x3, grad3, in_place_ok=True)
            w = unaliased(w, grad3, in_place_ok=False)
            if plan.prob:
                q3 = unaliased(q3, grad3, in_place_ok=False)
            else:
                t = unaliased(t, grad3, in_place_ok=False)
        else:
            grad3 = np.empty((N, C, K), dtype=cdt)
    gradq3 = np.empty((N, C, K), dtype=cdt) if want_gradq else None
    dummy = np.empty((0, 0, 0), dtype=cdt)

    grad_mode = GRAD_NONE
    if want_grad:
        grad_mode = GRAD_IN_PLACE if same_buffer(grad3, x3) else GRAD_INTO
    zl = plan.lse_square_scale != 0.0
    lse = np.empty(plan.S) if (want_lse or zl) else None
    opts = kernel_options(plan, grad_mode, gstride, grad_target=want_gradq,
                          zratio=z_grad_ratio(plan, W, n_valid), lse=lse)
    loss = np.empty(plan.S)
    if C == 0 or plan.S == 0:
        loss[:] = values_without_classes(plan)
        if lse is not None:
            lse[:] = -np.inf           # the log-sum-exp of no terms
    elif plan.softcap > 0.0:
        run_capped(x3, t if t is not None else np.zeros(1, np.int64), q3 if plan.prob else dummy,
                   plan.prob, w, weight_sum(w), g_arr, opts, loss, grad3 if want_grad else dummy,
                   gradq3 if want_gradq else dummy)
    elif plan.is_nll:
        run_nll(x3, t, w, g_arr, opts, loss, grad3 if want_grad else dummy)
    elif plan.prob:
        run_prob(x3, q3, w, g_arr, opts, loss, grad3 if want_grad else dummy,
                 gradq3 if want_gradq else dummy)
    else:
        run_index(x3, t, w, weight_sum(w), g_arr, opts, loss, grad3 if want_grad else dummy)

    zv = _z_values(plan, lse, t) if (zl or want_z) else None
    result = _finish(plan, loss, W, zv if zl else None, n_valid)
    z_res = _z_result(plan, zv, n_valid) if want_z else None
    lse_res = None
    if want_lse:
        lse_res = lse.reshape(plan.out_shape).astype(plan.compute_dtype, copy=False)
    grad_in = grad_t = None
    if want_grad:
        shape = plan.input_shape
        if out is not None:
            if not into_out:
                out[...] = grad3.reshape(shape)
            grad_in = out
        else:
            grad_in = grad3.reshape(shape).astype(plan.input_dtype, copy=False)
    if want_gradq:
        grad_t = gradq3.reshape(plan.input_shape).astype(plan.target_dtype, copy=False)
    return result, grad_in, grad_t, z_res, lse_res
