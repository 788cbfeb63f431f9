"""nbxent: Numba-JIT classification losses with torch.nn.functional semantics.

Cross-entropy, negative log-likelihood, binary cross-entropy and binary
cross-entropy with logits, with their gradients, on NumPy arrays (CPU kernels)
and CUDA device arrays (``nbxent.cuda``). Names and keywords mirror
``torch.nn.functional``; every result matches torch 2.13 semantics, including
its quirks, except for the documented deliberate differences in the README.

For each loss ``L``:

* ``L(input, target, ...)``: the loss, as torch returns it.
* ``L_backward(grad_output, input, target, ..., wrt="input")``: the gradient
  torch autograd would give for ``input`` (or ``target`` where torch has one).
* ``L_with_grad(input, target, ..., out=None)``: ``(loss, grad_input)`` in one
  pass over the input; ``out=input`` writes the gradient in place.
"""
# Fused linear cross-entropy and vocab-parallel cross-entropy (docs/linear.md).
from nbxent._linear import linear_cross_entropy, linear_cross_entropy_with_grad
from nbxent._vocab import ShardStats, VocabCombined, vocab_combine, vocab_shard_grad, vocab_shard_stats
from nbxent.functional import (
    CrossEntropyOutput,
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_with_grad,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_with_grad,
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_with_grad,
    nll_loss,
    nll_loss_backward,
    nll_loss_with_grad,
)

__version__ = "0.1.0"

__all__ = [
    "CrossEntropyOutput",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_with_grad",
    "nll_loss",
    "nll_loss_backward",
    "nll_loss_with_grad",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_with_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "vocab_shard_stats",
    "vocab_combine",
    "vocab_shard_grad",
    "ShardStats",
    "VocabCombined",
]
