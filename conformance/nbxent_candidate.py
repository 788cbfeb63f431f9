"""The ``nbxent`` candidate: nbxent's CPU backend unchanged, with its CONFORMANCE declaration.

The functions are nbxent's own (re-exported, not wrapped: the harness calls
exactly what users call). The declaration states what nbxent supports beyond
torch 2.13 (README "Deliberate differences from torch"): float16 inputs
(computed in float32, rounded once), class-index targets of any integer dtype
and class-index weights of any float dtype. With it, torch's errors for those
inputs are checked as values (conformance/extensions.py) instead of failing.
"""
from __future__ import annotations

from nbxent import (
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
    vocab_combine,
    vocab_shard_stats,
)

#: What nbxent declares (docs/candidates.md); shared with the CUDA backend's candidate.
NBXENT_CONFORMANCE = {
    "dtypes": ["float16", "float32", "float64"],
    "extensions": ["any_int_target", "any_float_weight"],
    # nbxent promises torch's exception types, not only an exception (README): checked strictly
    "strict_errors": True,
    # bfloat16 (ml_dtypes) for the class losses, computed in float32 (docs/semantics.md §2.8)
    "losses": {loss: {"dtypes": ["float16", "float32", "float64", "bfloat16"]}
               for loss in ("cross_entropy", "nll_loss")},
}
CONFORMANCE = NBXENT_CONFORMANCE

__all__ = [
    "CONFORMANCE",
    "cross_entropy", "cross_entropy_backward", "nll_loss", "nll_loss_backward",
    "binary_cross_entropy", "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "linear_cross_entropy", "linear_cross_entropy_with_grad",
    # the shard-statistics protocol: the metamorphic shard_split check (docs/candidates.md)
    "vocab_shard_stats", "vocab_combine",
]
