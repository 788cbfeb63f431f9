"""The chunk loop of linear cross-entropy, shared by both backends.

For rows ``[r0, r1)`` of the hidden states a backend forms the logits chunk
``Z = hidden[r0:r1] @ W.T (+ b)`` into one reusable buffer, runs nbxent's fused
cross-entropy on it with ``reduction='none'`` and ``out=`` the buffer (so the
buffer then holds ``G = d(sum of the chunk's losses)/dZ``), and folds ``G`` into
the three gradients at once::

    grad_hidden[r0:r1]  = G @ W          (a row slice: written, never accumulated)
    grad_weight        += G.T @ hidden[r0:r1]
    grad_bias          += G.sum(axis=0)  (float64 accumulator)

Why ``reduction='none'`` per chunk and one scale at the end: every gradient is
linear in the per-sample upstream gradient, so the ``'mean'`` factor ``1/W`` (W
computed once, up front, from all targets: docs/linear.md) can be applied after
the GEMMs, to the small ``(rows, H)`` and ``(V, H)`` results instead of the
``(rows, V)`` chunk. The loss is the correctly rounded sum (``math.fsum``) of the
per-sample losses in sample order, so it does not depend on the chunk size at all
once the logits do not. The one exception is a ``'mean'`` whose W is 0 or not
finite: torch's ``g / W`` then makes NaN/inf gradients for the non-ignored samples
and exact zeros for the ignored ones, which a scale after the GEMM cannot
reproduce (``0 * inf``), so that case scales ``G`` in place, masked.
"""
from __future__ import annotations

import math

import numpy as np


def mean_prescale(plan) -> bool:
    """True when the 'mean' factor 1/W must be applied to G itself (W zero or not finite)."""
    return plan.reduction == "mean" and not (math.isfinite(plan.denom) and plan.denom != 0.0)


def reduce_losses(plan, per):
    """The loss in the caller's form from the per-sample losses ``per`` (float64, sample order)."""
    if plan.reduction == "none":
        return per.reshape(plan.loss_shape).astype(plan.loss_dtype)
    if np.isfinite(per).all():
        total = math.fsum(per)          # correctly rounded: independent of any chunking
    else:
        total = float(np.sum(per))      # IEEE inf/NaN semantics (fsum raises on inf - inf)
    with np.errstate(all="ignore"):
        value = np.float64(total) / np.float64(plan.denom) if plan.reduction == "mean" else total
    return np.asarray(value, dtype=plan.loss_dtype)


def ce_view(plan, z):
    """The chunk as cross_entropy's input: ``(rows, C, *d)`` for a K-dimensional loss."""
    return z.reshape((z.shape[0], plan.c) + plan.out_features) if plan.out_features else z


def chunk_cross_entropy(ce, plan, z, target, weight, want_grad):
    """Per-sample losses of the chunk through ``ce`` (``nbxent`` or ``nbxent.cuda``).

    With ``want_grad`` the chunk is overwritten in place with the logit gradient of the sum
    of its losses (``out=`` the chunk: each logit is read before it is written).
    """
    x = ce_view(plan, z)
    ii = -100 if plan.prob else plan.ignore_index
    if want_grad:
        loss, _ = ce.cross_entropy_with_grad(x, target, weight, ii, "none",
                                             plan.label_smoothing, out=x)
        return loss
    return ce.cross_entropy(x, target, weight, ii, "none", plan.label_smoothing)


def fold_into(xp, plan, g, h, w, grad_hidden, grad_weight, grad_bias, scratch, r0, r1, first):
    """Fold the chunk's logit gradient ``g`` into the three gradients (``xp``: numpy or cupy).

    ``grad_weight`` has no GEMM with an accumulating output here (NumPy's matmul has no
    ``beta``), so after the first chunk its update goes through ``scratch`` in row blocks of
    ``scratch.shape[0]`` classes: memory stays at one chunk's worth.
    """
    xp.matmul(g, w, out=grad_hidden[r0:r1])
    if first:
        xp.matmul(g.T, h, out=grad_weight)
    else:
        vb = scratch.shape[0]
        for v0 in range(0, plan.width, vb):
            v1 = min(plan.width, v0 + vb)
            part = scratch[:v1 - v0]
            xp.matmul(g[:, v0:v1].T, h, out=part)
            grad_weight[v0:v1] += part
    if grad_bias is not None:
        grad_bias += g.sum(axis=0, dtype=np.float64)


def scratch_rows(plan, chunk_rows) -> int:
    """Classes per block of the weight-gradient scratch: ``vb * H <= chunk * C*d``."""
    return max(1, min(plan.width, (chunk_rows * plan.width) // max(plan.h, 1)))


def run(plan, backend, want_grad: bool):
    """Drive ``backend`` over the row chunks in order; returns ``(loss, grads or None)``."""
    n, D = plan.n, plan.d
    per = np.empty(n * D, dtype=np.float64)
    prescale = want_grad and mean_prescale(plan)
    for r0 in range(0, n, plan.chunk):
        r1 = min(n, r0 + plan.chunk)
        z = backend.logits(r0, r1)
        per[r0 * D:r1 * D] = backend.cross_entropy(z, r0, r1, want_grad).reshape(-1)
        if not want_grad:
            continue
        if prescale:
            backend.scale_valid_rows(z, r0, r1, 1.0 / plan.denom if plan.denom else math.inf)
        backend.fold(z, r0, r1, first=r0 == 0)
    loss = reduce_losses(plan, per)
    if not want_grad:
        return loss, None
    scale = 1.0 if (plan.reduction != "mean" or prescale) else 1.0 / plan.denom
    return loss, backend.finish(scale)
