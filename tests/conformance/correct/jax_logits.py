"""A correct JAX candidate for binary_cross_entropy_with_logits: given JAX arrays, returning JAX arrays.

``CONFORMANCE["array_type"] = "jax"`` makes the harness hand it ``jax.numpy`` arrays; the
results come back through ``np.asarray``. The harness starts JAX with float64 enabled
(``JAX_ENABLE_X64``), without which float64 inputs would be computed in float32.
"""
import jax

CONFORMANCE = {"array_type": "jax", "exclude": ["errors"]}


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    lw = 1.0 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * input - lw * jax.nn.log_sigmoid(input)
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
