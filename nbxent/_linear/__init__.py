"""Fused linear cross-entropy: the logits ``hidden @ W.T + b`` are formed one row chunk at a time.

Rooms: ``_plan`` (validation, mean denominator, chunk size), ``_chunks`` (the loop both
backends share), ``_host`` (NumPy BLAS), ``_device`` (CUDA: CuPy GEMMs, or host GEMMs under
the simulator), ``_api`` (the public functions, defined once for both backends; ``nbxent.cuda``
pins them to CUDA). See docs/linear.md.
"""
from nbxent._linear._api import linear_cross_entropy, linear_cross_entropy_with_grad

__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]
