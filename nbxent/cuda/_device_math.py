"""Scalar device functions used by the CUDA kernels.

The log-sum-exp state is CUDA-specific (it is merged across threads). The
CE formulas (``nbxent.xent.formulas``, loss and gradient) and the per-element BCE
formulas (``nbxent.bce.formulas``) are the CPU backend's: their Python source is compiled
here as device functions, so both backends evaluate the same expressions.

Log-sum-exp state ``(m, t)``: ``m`` is the running maximum and
``t = sum_c exp(x_c - m) - 1``, i.e. the sum WITHOUT the max's own term 1.
Then ``lse = m + log1p(t)``, which keeps the bits of a small tail that
``log(1 + t)`` would round away, and ``softmax_max - 1 = -t / (1 + t)`` is exact
to an ulp where ``exp(0)/s - 1`` cancels. The empty state is ``(-inf, -1)``.
"""
from __future__ import annotations

import math

from numba import cuda

from nbxent.cuda import _runtime


@cuda.jit(device=True)
def lse_push(m, t, x, one):
    """Add one logit ``x`` to the state ``(m, t)``.

    ``-inf`` logits contribute exactly 0 and are skipped (``exp(-inf - -inf)`` would
    be NaN); NaN falls through to the sum and poisons it, as in torch.
    """
    if x > m:
        t = (t + one) * math.exp(m - x)  # rescale the old sum (incl. its max's 1) to the new max
        m = x
    elif x != -math.inf:
        t = t + math.exp(x - m)
    return m, t


@cuda.jit(device=True)
def lse_merge(m1, t1, m2, t2):
    """Merge two states (float64, as held in shared memory)."""
    if m2 == -math.inf and t2 < 0.0:      # empty, or only -inf logits: contributes nothing
        return m1, t1
    if m1 == -math.inf and t1 < 0.0:
        return m2, t2
    if m2 > m1:
        return m2, t2 + (t1 + 1.0) * math.exp(m1 - m2)
    return m1, t1 + (t2 + 1.0) * math.exp(m2 - m1)


@cuda.jit(device=True)
def lse_finish(m, t):
    """torch's log_softmax is NaN for a row with a +inf logit or with only -inf logits."""
    if m == math.inf or (m == -math.inf and t < 0.0):
        return math.nan
    return t


# ---- formulas shared with the CPU backend: the same Python source, compiled for the device
def _device(f):
    """Compile an ``@njit`` scalar function's Python source as a CUDA device function.

    Under the simulator, kernels run as Python and ``math.log1p(-1.0)`` raises
    instead of returning -inf; there the CPU-compiled function (same source, IEEE
    semantics as on the device) is called instead.
    """
    if _runtime.simulator_enabled():
        return f
    return cuda.jit(device=True)(f.py_func)


from nbxent.bce import formulas as _bce  # noqa: E402  (after the CUDA-only helpers on purpose)
from nbxent.xent import formulas as _xent  # noqa: E402

index_loss = _device(_xent.index_loss)
target_p_minus_1 = _device(_xent.target_p_minus_1)
index_value = _device(_xent.index_value)
smooth_target = _device(_xent.smooth_target)
index_grad_scale = _device(_xent.index_grad_scale)
index_grad_target = _device(_xent.index_grad_target)
index_grad_other = _device(_xent.index_grad_other)
prob_grad_scale = _device(_xent.prob_grad_scale)
softcap_value = _device(_xent.softcap_value)
softcap_slope = _device(_xent.softcap_slope)

bce_loss = _device(_bce.bce_loss)
bce_grad_input = _device(_bce.bce_grad_input)
bce_grad_target = _device(_bce.bce_grad_target)
bcewl_loss = _device(_bce.bcewl_loss)
bcewl_grad_input = _device(_bce.bcewl_grad_input)
bcewl_grad_target = _device(_bce.bcewl_grad_target)
bcewl_loss_and_grad = _device(_bce.bcewl_loss_and_grad)
