"""``nbxent.cuda.linear_cross_entropy[_with_grad]``: the linear cross-entropy pinned to CUDA.

Same signature, validation and results as :func:`nbxent.linear_cross_entropy`; NumPy
arguments are copied to the device and results come back as NumPy, device arguments give
numba device arrays (see ``nbxent._linear._device`` for where the GEMMs run).
"""
from __future__ import annotations

from nbxent._linear._api import _dispatch

__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0,
                         chunk_size=None):
    """:func:`nbxent.linear_cross_entropy` on the CUDA backend (args, returns and raises alike)."""
    loss, _ = _dispatch("linear_cross_entropy", input, linear_weight, target, linear_bias,
                        weight, reduction, ignore_index, label_smoothing, chunk_size, False,
                        device=True)
    return loss


def linear_cross_entropy_with_grad(input, linear_weight, target, *, linear_bias=None,
                                   weight=None, reduction="mean", ignore_index=None,
                                   label_smoothing=0.0, chunk_size=None):
    """:func:`nbxent.linear_cross_entropy_with_grad` on the CUDA backend.

    Returns ``(loss, grad_input, grad_linear_weight, grad_linear_bias or None)``.
    """
    loss, grads = _dispatch("linear_cross_entropy_with_grad", input, linear_weight, target,
                            linear_bias, weight, reduction, ignore_index, label_smoothing,
                            chunk_size, True, device=True)
    return (loss,) + tuple(grads)
