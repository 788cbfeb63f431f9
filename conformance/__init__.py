"""Conformance harness for classification-loss implementations.

Fuzzes the four torch.nn.functional losses (cross_entropy, nll_loss,
binary_cross_entropy, binary_cross_entropy_with_logits) and their gradients,
compares candidates against float64/mpmath oracles with derived tolerances,
and writes JSON, JUnit XML and Markdown reports with a reproducer per failure.
"""

try:  # registers NumPy's "bfloat16" dtype name, so bfloat16 cases can be built from strings (optional)
    import ml_dtypes as _ml_dtypes  # noqa: F401
except ImportError:
    pass
