"""``torch.nn.functional``'s four classification losses, differentiable, on nbxent's kernels.

Each function has torch's signature (names, positions, defaults) and torch 2.13's
semantics as implemented by the matching ``nbxent`` function (the formulas, result
shapes and dtypes, NaN/inf behaviour and exception types are nbxent's, which are
torch's except for nbxent's documented accuracy improvements). Differences in the
torch layer itself:

* ``size_average``/``reduce`` (deprecated in torch) raise ``TypeError`` naming the
  ``reduction`` torch would map them to; they are never silently ignored.
* bfloat16 (and other dtypes NumPy lacks) raise ``TypeError``.
* Second derivatives raise (``@once_differentiable``).
"""
from __future__ import annotations

import torch

from nbxent.torch import _autograd
from nbxent.torch._tensors import backend_for, named, needs_autograd, reject_grad, reject_legacy

__all__ = ["cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]


def _probability_target(input, target) -> bool:
    # nbxent's rule (and torch's): a target of the input's shape holds class probabilities
    return tuple(target.shape) == tuple(input.shape)


def _index_op(input) -> str:
    # the torch op that refuses a weight with requires_grad (spec 10.5)
    return "nll_loss2d_forward" if input.dim() >= 3 else "nll_loss_forward"


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy between logits and class indices or class probabilities (differentiable).

    ``torch.nn.functional.cross_entropy`` on nbxent's fused kernel. With
    ``lp = log_softmax(input, class_dim)`` and ``eps`` = label_smoothing (used when > 0):
    index targets ``l_s = (1-eps)*(-w[t_s]*lp[s,t_s]) + (eps/C)*(-sum_c w_c*lp[s,c])``
    (0 for ``t_s == ignore_index``; ``'mean'`` divides by ``sum w[t_s]`` over the
    non-ignored samples); probability targets ``l_s = -sum_c w_c*q[s,c]*lp[s,c]`` with
    ``q = (1-eps)*p + eps/C`` (``'mean'`` divides by the number of samples).

    Args:
        input: float16/32/64 logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``, CPU or CUDA.
        target: int64 (or any integer dtype) class indices of shape ``()``/``(1,)``, ``(N,)``
            or ``(N, d1, ..., dk)``; or float probabilities of the input's shape.
        weight: optional ``(C,)`` class weights.
        size_average, reduce: torch's deprecated arguments; must be None.
        ignore_index: index targets equal to it contribute nothing.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        label_smoothing: in ``[0, 1]``; negative or NaN acts as 0.

    Returns:
        Tensor on the input's device: ``(N, d1, ..., dk)`` for ``'none'`` (0-d for a
        ``(C,)`` input), else 0-d; dtype as torch's.

    Gradients:
        input (always, from the forward's fused pass); target, for probability targets;
        weight, for probability targets only. A weight with ``requires_grad`` and index
        targets raises ``RuntimeError`` at the forward, as in torch.

    Raises:
        TypeError: non-tensor arguments, bfloat16, legacy ``size_average``/``reduce``.
        RuntimeError: tensors on different devices; a weight needing a gradient with
            index targets; and nbxent.cross_entropy's errors (ValueError, IndexError,
            RuntimeError, NotImplementedError), their messages prefixed with this function's name.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]], requires_grad=True)
        >>> loss = cross_entropy(x, torch.tensor([2, 0]))
        >>> print(f"{loss.item():.6f}")
        0.407606
        >>> loss.backward()
        >>> x.grad.sum(dim=1).abs().max().item() < 1e-7
        True
    """
    fname = "cross_entropy"
    reject_legacy(fname, size_average, reduce)
    be = backend_for(fname, input=input, target=target, weight=weight)
    if not _probability_target(input, target):
        reject_grad(fname, "weight", weight, _index_op(input))
    if needs_autograd(input, target, weight):
        return _autograd.CrossEntropy.apply(be, input, target, weight, ignore_index, reduction,
                                            label_smoothing)
    with named(fname), be.launch():
        return be.tensor(be.api.cross_entropy(be.array(input), be.array(target), be.array(weight),
                                              ignore_index, reduction, label_smoothing))


def nll_loss(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
             size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> torch.Tensor:
    """Negative log-likelihood of class indices given log-probabilities (differentiable).

    ``torch.nn.functional.nll_loss`` on nbxent: ``l_s = -w[t_s] * input[s, t_s]`` (0 for
    ``t_s == ignore_index``); ``'mean'`` divides the sum by ``sum w[t_s]`` over the
    non-ignored samples. Gradient: ``-g_s * w[t_s]`` at ``[s, t_s]``, 0 elsewhere.

    Args:
        input: float16/32/64 ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``, CPU or CUDA.
        target: integer class indices ``()``/``(1,)``, ``(N,)`` or ``(N, d1, ..., dk)``.
        weight: optional ``(C,)`` class weights (not differentiable, as in torch).
        size_average, reduce: torch's deprecated arguments; must be None.
        ignore_index: targets equal to it contribute nothing.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        ``(N, d1, ..., dk)`` for ``'none'`` (0-d for a ``(C,)`` input), else 0-d; the input's dtype.

    Raises:
        As :func:`cross_entropy` (nbxent.nll_loss's errors, prefixed with this name).

    Examples:
        >>> import torch
        >>> lp = torch.log(torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64))
        >>> print(f"{nll_loss(lp, torch.tensor([1, 0]), reduction='sum').item():.6f}")
        0.980829
    """
    fname = "nll_loss"
    reject_legacy(fname, size_average, reduce)
    be = backend_for(fname, input=input, target=target, weight=weight)
    reject_grad(fname, "weight", weight, _index_op(input))
    if needs_autograd(input):
        return _autograd.NLLLoss.apply(be, input, target, weight, ignore_index, reduction)
    with named(fname), be.launch():
        return be.tensor(be.api.nll_loss(be.array(input), be.array(target), be.array(weight),
                                         ignore_index, reduction))


def binary_cross_entropy(input: torch.Tensor, target: torch.Tensor,
                         weight: torch.Tensor | None = None, size_average=None, reduce=None,
                         reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy between probabilities and targets (differentiable).

    ``torch.nn.functional.binary_cross_entropy`` on nbxent:
    ``l = w * ((y - 1) * max(log(1 - x), -100) - y * max(log(x), -100))``; ``'mean'`` is
    ``sum(l) / numel``. Gradients: ``d/dx = g*w*(x - y) / max((1 - x)*x, float32(1e-12))``
    and ``d/dy = g*w*(log(1 - x) - log(x))`` (unclamped: +-inf at x in {0, 1}, as in torch).

    Args:
        input: probabilities ``x`` in [0, 1], any shape, float16/32/64, CPU or CUDA.
        target: ``y`` in [0, 1], the input's shape (differentiable).
        weight: optional, broadcastable into the input's shape (not differentiable, as in torch).
        size_average, reduce: torch's deprecated arguments; must be None.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        The input's shape for ``'none'``, else 0-d.

    Raises:
        RuntimeError: an element of input or target outside [0, 1]; a weight needing a
            gradient; as :func:`cross_entropy` otherwise.

    Examples:
        >>> import torch
        >>> x = torch.tensor([0.25, 0.5], dtype=torch.float64, requires_grad=True)
        >>> loss = binary_cross_entropy(x, torch.tensor([0.0, 1.0], dtype=torch.float64))
        >>> print(f"{loss.item():.6f}")
        0.490415
        >>> loss.backward(); x.grad
        tensor([ 0.6667, -1.0000], dtype=torch.float64)
    """
    fname = "binary_cross_entropy"
    reject_legacy(fname, size_average, reduce)
    be = backend_for(fname, input=input, target=target, weight=weight)
    reject_grad(fname, "weight", weight, "binary_cross_entropy")
    if needs_autograd(input, target):
        return _autograd.BinaryCrossEntropy.apply(be, input, target, weight, reduction)
    with named(fname), be.launch():
        return be.tensor(be.api.binary_cross_entropy(be.array(input), be.array(target),
                                                     be.array(weight), reduction))


def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor,
                                     weight: torch.Tensor | None = None, size_average=None,
                                     reduce=None, reduction: str = "mean",
                                     pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy between logits and targets (differentiable).

    ``torch.nn.functional.binary_cross_entropy_with_logits`` on nbxent:
    ``l = w * ((1 - y)*x - lw*logsigmoid(x))`` with ``lw = (pw - 1)*y + 1`` (evaluated
    without cancellation). Gradients: ``d/dx = g*w*((pw*y + 1 - y)*sigmoid(x) - pw*y)``
    and ``d/dy = g*w*(logsigmoid(-x) - pw*logsigmoid(x))``.

    Args:
        input: logits ``x``, any shape, float16/32/64, CPU or CUDA.
        target: ``y``, the input's shape, a float dtype (differentiable; sets the result dtype).
        weight: optional, broadcastable into the input's shape (not differentiable).
        size_average, reduce: torch's deprecated arguments; must be None.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        pos_weight: optional, broadcast against the target's trailing dims (not differentiable).

    Returns:
        The input's shape for ``'none'``, else 0-d; the target's dtype.

    Raises:
        RuntimeError: a weight or pos_weight needing a gradient; as :func:`cross_entropy`.

    Examples:
        >>> import torch
        >>> x = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> loss = binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0], dtype=torch.float64),
        ...                                         reduction="sum")
        >>> print(f"{loss.item():.6f}")
        2.820075
        >>> loss.backward(); x.grad
        tensor([-0.5000,  0.8808], dtype=torch.float64)
    """
    fname = "binary_cross_entropy_with_logits"
    reject_legacy(fname, size_average, reduce)
    be = backend_for(fname, input=input, target=target, weight=weight, pos_weight=pos_weight)
    reject_grad(fname, "weight", weight, "binary_cross_entropy_with_logits")
    reject_grad(fname, "pos_weight", pos_weight, "binary_cross_entropy_with_logits")
    if needs_autograd(input, target):
        return _autograd.BinaryCrossEntropyWithLogits.apply(be, input, target, weight, reduction,
                                                            pos_weight)
    with named(fname), be.launch():
        return be.tensor(be.api.binary_cross_entropy_with_logits(
            be.array(input), be.array(target), be.array(weight), reduction,
            be.array(pos_weight)))
