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


def _finish(plan: CEPlan, vals: np.ndarray, W: float) -> np.ndarray:
    """Reduce the float64 per-sample values in a fixed serial order; round once."""
    if plan.reduction == NONE and not plan.unbatched:
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
    return np.asarray(total, dtype=plan.result_dtype)


def run(plan: CEPlan, input, target, weight, g=None, want_grad=False, want_gradq=False,
        out=None):
    """Compute the loss and, on request, the gradients of one cross_entropy/nll_loss call.

    Args:
        plan: from :func:`nbxent.xent.validate.plan_cross_entropy` / ``plan_nll_loss``.
        g: float64 upstream gradient, ``(S,)`` for ``'none'`` (batched) else ``(1,)``;
            None means 1 (the fused ``_with_grad`` call).
        want_grad / want_gradq: gradient w.r.t. the input / the probability target.
        out: caller buffer (validated) for the input gradient; may be ``input`` itself.

    Returns:
        ``(loss, grad_input, grad_target)``; the gradients are None unless requested, shaped
        like the input, with the input's (target's) dtype.
    """
    N, C, K = plan.N, plan.C, plan.K
    cdt = plan.compute_dtype
    w = host_weight(plan, weight)
    x3 = host_input(plan, input)
    W = 0.0
    if plan.prob:
        q3 = host_target_prob(plan, target)
    else:
        t = host_target_index(plan, target)
        _, W = scan_targets(plan, t, w, tuple(target.shape))
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
    opts = kernel_options(plan, grad_mode, gstride, grad_target=want_gradq)
    loss = np.empty(plan.S)
    if C == 0 or plan.S == 0:
        loss[:] = values_without_classes(plan)
    elif plan.is_nll:
        run_nll(x3, t, w, g_arr, opts, loss, grad3 if want_grad else dummy)
    elif plan.prob:
        run_prob(x3, q3, w, g_arr, opts, loss, grad3 if want_grad else dummy,
                 gradq3 if want_gradq else dummy)
    else:
        run_index(x3, t, w, weight_sum(w), g_arr, opts, loss, grad3 if want_grad else dummy)

    result = _finish(plan, loss, W)
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
    return result, grad_in, grad_t
