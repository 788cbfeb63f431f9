"""Conformance harness for classification-loss implementations.

Fuzzes the torch.nn.functional losses (cross_entropy, nll_loss, binary_cross_entropy,
binary_cross_entropy_with_logits, linear_cross_entropy) and their gradients, compares
candidates against float64/mpmath/torch oracles with derived tolerances, runs the
metamorphic checks a candidate offers (chunk size, batch, materialised logits, vocabulary
shards), and writes JSON, JUnit XML, Markdown and HTML reports with a reproducer per failure.
"""

try:  # registers NumPy's "bfloat16" dtype name, so bfloat16 cases can be built from strings (optional)
    import ml_dtypes as _ml_dtypes  # noqa: F401
except ImportError:
    pass
