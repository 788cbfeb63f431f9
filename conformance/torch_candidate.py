"""The ``torch`` candidate: ``torch.nn.functional`` on NumPy arrays, in the input's dtype.

NumPy in, NumPy out; ``<loss>_backward`` uses autograd. Arrays are handed to
torch as C-contiguous copies (torch's ``nll_loss`` backward rejects some
non-contiguous inputs, spec 13), and an unbatched input's 1-element 1-D target
is made 0-d for the backward, where torch raises although its forward accepts
it (spec 13). Nothing else is adapted: this is torch's behaviour as users get it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONFORMANCE = {"dtypes": ["float16", "float32", "float64"]}

# This module runs in its own worker process on small cases: one intra-op thread avoids OpenMP
# wake-up costs (measured 24 ms vs 0.12 ms per call on 2 busy cores). Only float32 sums through
# torch.sum change in their last bits with the thread count (spec 12), well inside the tolerance.
torch.set_num_threads(1)


def _t(a):
    return torch.from_numpy(np.array(a, order="C", copy=True))


def _call(name, input, target, kwargs, grad_output=None):
    x = _t(input)
    target = np.asarray(target)
    if grad_output is not None:
        x.requires_grad_(True)
        if x.ndim == 1 and target.shape == (1,) and not np.issubdtype(target.dtype, np.floating):
            target = target.reshape(())
    kw = {k: (_t(v) if k in ("weight", "pos_weight") and v is not None else v) for k, v in kwargs.items()}
    out = getattr(F, name)(x, _t(target), **kw)
    if grad_output is None:
        return out.detach().numpy()
    out.backward(_t(grad_output).to(out.dtype).reshape(out.shape))
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
