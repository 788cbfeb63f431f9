"""A correct candidate in the style a user writes first: torch.nn.functional through autograd.

No special cases at all: arrays go to torch as they are (``torch.as_tensor``), the
loss comes back through ``np.asarray``, the gradient from ``loss.backward``. Where
torch's own backward rejects a case its forward accepts, this raises too; the
harness must accept that (docs/semantics.md §13).
"""
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def _tensors(kwargs):
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def _make(name):
    fn = getattr(F, name)

    def forward(input, target, **kwargs):
        with torch.no_grad():
            return np.asarray(fn(torch.as_tensor(input), torch.as_tensor(target), **_tensors(kwargs)))

    def backward(grad_output, input, target, **kwargs):
        x = torch.as_tensor(input).clone().requires_grad_(True)
        loss = fn(x, torch.as_tensor(target), **_tensors(kwargs))
        loss.backward(torch.as_tensor(grad_output))
        return x.grad.numpy()

    forward.__name__, backward.__name__ = name, name + "_backward"
    return forward, backward


cross_entropy, cross_entropy_backward = _make("cross_entropy")
nll_loss, nll_loss_backward = _make("nll_loss")
binary_cross_entropy, binary_cross_entropy_backward = _make("binary_cross_entropy")
binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward = _make("binary_cross_entropy_with_logits")


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    t = torch.from_numpy
    return F.linear_cross_entropy(t(input), t(linear_weight), t(target),
                                  linear_bias=None if linear_bias is None else t(linear_bias),
                                  weight=None if weight is None else t(weight), reduction=reduction,
                                  ignore_index=ignore_index, label_smoothing=label_smoothing).detach().numpy()
