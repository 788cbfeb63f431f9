"""linear_cross_entropy: ``cross_entropy(input @ linear_weight.T + linear_bias, target)`` in chunks.

torch 2.13 ``F.linear_cross_entropy`` semantics (its reference path, ``options=None``),
measured and written down in docs/linear.md; the logits are never materialised.
Defined once for both backends: ``nbxent.cuda`` pins these same functions to CUDA
(``nbxent._core.device.pinned``), as it does the other public functions.
"""
from __future__ import annotations

import numpy as np

from nbxent._core.device import CUDA, backend_for
from nbxent._linear import _chunks
from nbxent._linear._plan import plan_linear

__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]


def _dispatch(fname, input, linear_weight, target, linear_bias, weight, reduction,
              ignore_index, label_smoothing, chunk_size, want_grad):
    """The one entry of both public functions: the arrays (or ``nbxent.cuda``'s pin) pick the
    chunk loop's backend; both validate through ``plan_linear``, so they raise alike."""
    if backend_for(input, linear_weight, target, linear_bias, weight) == CUDA:
        from nbxent._linear import _device
        return _device.run(fname, input, linear_weight, target, linear_bias, weight, reduction,
                           ignore_index, label_smoothing, chunk_size, want_grad)
    for name, arr in (("input", input), ("linear_weight", linear_weight), ("target", target),
                      ("linear_bias", linear_bias), ("weight", weight)):
        if arr is not None and not isinstance(arr, np.ndarray):
            raise TypeError(f"{fname}: argument '{name}' must be an array (numpy.ndarray or CUDA "
                            f"device array), not {type(arr).__name__}")
    from nbxent._linear._host import HostChunks
    plan, rows = plan_linear(fname, input, linear_weight, target, linear_bias, weight, reduction,
                             ignore_index, label_smoothing, chunk_size, lambda: target,
                             lambda: weight)
    if rows is None:
        rows = target.reshape((plan.n, plan.c) + plan.out_features)
    backend = HostChunks(plan, input, linear_weight, linear_bias, rows, weight, want_grad)
    return _chunks.run(plan, backend, want_grad)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0,
                         chunk_size=None):
    """Cross-entropy of the logits ``input @ linear_weight.T + linear_bias``, never materialised.

    Equal to ``cross_entropy(input @ W.T + b, target, weight, ignore_index, reduction,
    label_smoothing)`` (``W``, ``b`` reshaped to ``(C*d, H)``, ``(C*d,)`` and the logits back
    to ``(N, C, *d)`` for a K-dimensional ``linear_weight``), computed ``chunk_size`` rows at
    a time: only one ``(chunk_size, C*d)`` block of logits exists at once. Per sample
    ``l_s = (1 - eps) * w[t_s] * (lse_s - z_{s,t_s}) + (eps / C) * sum_c w_c (lse_s - z_{s,c})``
    (class-index targets) and ``'mean'`` divides the sum by ``W = sum w[t_s]`` over
    non-ignored samples, exactly as :func:`nbxent.cross_entropy`.

    Args:
        input: float16/32/64 hidden states ``(N, H)`` or ``(H,)``. Batched ``(B, T, H)``
            input raises, as in torch: reshape to ``(B*T, H)``.
        linear_weight: ``(C, H)`` or ``(C, d1, ..., dk, H)``, the input's dtype.
        target: class indices ``(N,)`` / ``(N, d1..dk)`` / ``()`` (any integer dtype), or
            probabilities with the logits' shape.
        linear_bias: optional ``(C,)`` / ``(C, d1..dk)``, the input's dtype.
        weight: optional float ``(C,)`` class weights.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        ignore_index: int or None (None means -100 for class indices; with probability
            targets it must be None, as in torch).
        label_smoothing: float in ``[0, 1]``; negative or NaN acts as 0.
        chunk_size: rows per chunk; None picks torch's ``'aspect_ratio:2'`` rule
            (``next_pow2(ceil(N / ceil(V / H))) // 2``, a chunk of logits about half the
            size of ``input``), raised to at least ``2**24 / V`` rows (a power of two,
            at most N) so that the GEMMs stay efficient.

    Returns:
        ``'none'``: ``(N,)`` / ``(N, d1..dk)`` (0-d for ``(H,)`` input); otherwise 0-d. dtype:
        the input's (class indices) or ``result_type(input, target, weight)``.

    Raises:
        RuntimeError: input not 1-D/2-D, linear_weight not >= 2-D, in_features or dtype
            mismatch, bias or weight of the wrong shape, ignore_index with probability
            targets, label_smoothing > 1, float/bool class-index targets.
        ValueError: bad reduction, batch-size mismatch, chunk_size < 1.
        IndexError: a target outside ``[0, C)`` that is not ignore_index (checked before any
            logit is formed).
        TypeError: non-array arguments, non-integer ignore_index or chunk_size.
        NotImplementedError: integer input.

    Notes:
        Results do not depend on ``chunk_size`` beyond the rounding of the GEMMs (the loss is
        a correctly rounded sum of per-sample losses in sample order; docs/linear.md gives
        the bound). NaN/inf in a logit behave as in :func:`nbxent.cross_entropy`.

    Examples:
        >>> import numpy as np
        >>> h = np.array([[1.0, 0.0], [0.0, 1.0]]); W = np.array([[2.0, 0.0], [0.0, 0.0]])
        >>> print(f"{float(linear_cross_entropy(h, W, np.array([0, 1]))):.6f}")
        0.410038
        >>> linear_cross_entropy(h, W, np.array([0, 1]), reduction="none", chunk_size=1).round(6)
        array([0.126928, 0.693147])
    """
    loss, _ = _dispatch("linear_cross_entropy", input, linear_weight, target, linear_bias,
                        weight, reduction, ignore_index, label_smoothing, chunk_size, False)
    return loss


def linear_cross_entropy_with_grad(input, linear_weight, target, *, linear_bias=None,
                                   weight=None, reduction="mean", ignore_index=None,
                                   label_smoothing=0.0, chunk_size=None):
    """Loss of :func:`linear_cross_entropy` and its three gradients in one pass.

    Each chunk's logit gradient ``G`` is formed in the chunk buffer and immediately folded
    into ``grad_input[rows] = G @ W``, ``grad_linear_weight += G.T @ input[rows]`` and
    ``grad_linear_bias += G.sum(0)``; the gradients are those torch autograd gives for
    ``loss.backward()`` (for ``'none'``: of ``loss.sum()``).

    Args:
        As :func:`linear_cross_entropy`.

    Returns:
        ``(loss, grad_input, grad_linear_weight, grad_linear_bias)``: the gradients have the
        shapes and dtype of ``input``, ``linear_weight`` and ``linear_bias``;
        ``grad_linear_bias`` is None when ``linear_bias`` is None.

    Raises:
        As :func:`linear_cross_entropy`.

    Examples:
        >>> import numpy as np
        >>> h = np.array([[0.0, 0.0]]); W = np.ones((2, 2))
        >>> loss, gh, gw, gb = linear_cross_entropy_with_grad(h, W, np.array([1]),
        ...                                                   linear_bias=np.zeros(2))
        >>> print(f"{float(loss):.6f}", gh, gb)
        0.693147 [[0. 0.]] [ 0.5 -0.5]
    """
    loss, grads = _dispatch("linear_cross_entropy_with_grad", input, linear_weight, target,
                            linear_bias, weight, reduction, ignore_index, label_smoothing,
                            chunk_size, True)
    return (loss,) + tuple(grads)
