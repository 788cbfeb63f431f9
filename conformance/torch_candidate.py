"""The ``torch`` candidate: ``torch.nn.functional`` on NumPy arrays, in the input's dtype.

NumPy in, NumPy out; ``<loss>_backward`` uses autograd. It is the plain wrapper a
user would write, with no special cases: where torch's own backward rejects a case
its forward accepts (docs/semantics.md §13: an unbatched input with a 1-element 1-D
target, ``nll_loss`` on a Fortran-ordered 4-D input), it raises as torch does, and
the harness accepts that raise (conformance/judge.py).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONFORMANCE = {"dtypes": ["float16", "float32", "float64"]}

# This module runs in its own worker process on small cases: one intra-op thread avoids OpenMP
# wake-up costs (measured 24 ms vs 0.12 ms per call on 2 busy cores). Only float32 sums through
# torch.sum change in their last bits with the thread count (docs/semantics.md §12), well inside the tolerance.
torch.set_num_threads(1)


def _t(a):
    return torch.from_numpy(np.asarray(a))


def _call(name, input, target, kwargs, grad_output=None):
    x = _t(input)
    if grad_output is not None:
        x.requires_grad_(True)
    kw = {k: (_t(v) if k in ("weight", "pos_weight") and v is not None else v) for k, v in kwargs.items()}
    out = getattr(F, name)(x, _t(target), **kw)
    if grad_output is None:
        return out.detach().numpy()
    out.backward(_t(grad_output))
    return x.grad.numpy()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return _call("cross_entropy", input, target, dict(weight=weight, ignore_index=ignore_index,
                                                      reduction=reduction, label_smoothing=label_smoothing))


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    return _call("cross_entropy", input, target, dict(weight=weight, ignore_index=ignore_index,
                                                      reduction=reduction, label_smoothing=label_smoothing),
                 grad_output)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _call("nll_loss", input, target, dict(weight=weight, ignore_index=ignore_index, reduction=reduction))


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _call("nll_loss", input, target, dict(weight=weight, ignore_index=ignore_index, reduction=reduction),
                 grad_output)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return _call("binary_cross_entropy", input, target, dict(weight=weight, reduction=reduction))


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean"):
    return _call("binary_cross_entropy", input, target, dict(weight=weight, reduction=reduction), grad_output)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    return _call("binary_cross_entropy_with_logits", input, target,
                 dict(weight=weight, reduction=reduction, pos_weight=pos_weight))


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None, reduction="mean",
                                              pos_weight=None):
    return _call("binary_cross_entropy_with_logits", input, target,
                 dict(weight=weight, reduction=reduction, pos_weight=pos_weight), grad_output)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    kw = dict(linear_bias=None if linear_bias is None else _t(linear_bias),
              weight=None if weight is None else _t(weight), reduction=reduction, ignore_index=ignore_index,
              label_smoothing=label_smoothing)
    return F.linear_cross_entropy(_t(input), _t(linear_weight), _t(target), **kw).detach().numpy()


def linear_cross_entropy_with_grad(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                                   ignore_index=None, label_smoothing=0.0):
    """The loss and, by autograd, the gradients of ``loss.sum()`` w.r.t. input, linear_weight and the bias."""
    x, w = _t(input).requires_grad_(True), _t(linear_weight).requires_grad_(True)
    b = None if linear_bias is None else _t(linear_bias).requires_grad_(True)
    out = F.linear_cross_entropy(x, w, _t(target), linear_bias=b, weight=None if weight is None else _t(weight),
                                 reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)
    out.sum().backward()
    return (out.detach().numpy(), x.grad.numpy(), w.grad.numpy(), None if b is None else b.grad.numpy())
