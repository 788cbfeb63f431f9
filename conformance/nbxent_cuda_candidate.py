"""The ``nbxent.cuda`` candidate: nbxent's CUDA backend unchanged, with its CONFORMANCE declaration.

The functions are ``nbxent.cuda``'s own, called with NumPy arrays (copied to the
device by nbxent, results copied back), exactly as the reproducers call them.
``set_threads_per_block`` is re-exported so the worker can choose small blocks
on the CUDA simulator. The declaration is the CPU backend's: both backends
share validation and semantics.
"""
from __future__ import annotations

from conformance.nbxent_candidate import NBXENT_CONFORMANCE
from nbxent.cuda import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    cross_entropy,
    cross_entropy_backward,
    linear_cross_entropy,
    linear_cross_entropy_with_grad,
    nll_loss,
    nll_loss_backward,
    set_threads_per_block,
)

CONFORMANCE = NBXENT_CONFORMANCE

__all__ = [
    "CONFORMANCE", "set_threads_per_block",
    "cross_entropy", "cross_entropy_backward", "nll_loss", "nll_loss_backward",
    "binary_cross_entropy", "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "linear_cross_entropy", "linear_cross_entropy_with_grad",
]
