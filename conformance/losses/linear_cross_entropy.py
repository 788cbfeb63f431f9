"""linear_cross_entropy: ``cross_entropy(input @ linear_weight.T + linear_bias, target)`` (docs/linear.md).

Class-index or probability targets, unbatched ``(H,)`` input, an optional bias, class weights,
ignore_index and label smoothing on tiny shapes; the loss value only (the protocol has no
``_backward``). ``chunk_size`` is a
feature only the metamorphic checks use (conformance/metamorphic.py): the fuzzer never
sends it. The small budget keeps the default campaign short: the shapes are tiny, so a few
dozen cases cover every option combination the strategy draws.
"""
from conformance.losses import LossSpec

_E = "conformance.linear_ce"

SPEC = LossSpec(
    name="linear_cross_entropy", family="class",
    features=("reduction", "weight", "ignore_index", "label_smoothing", "linear_bias", "chunk_size", "unbatched",
              "prob_target", "empty", "errors"),
    strategy_entry=f"{_E}:linear_case", catalogue_entry=f"{_E}:catalogue",
    expected_error_entry=f"{_E}:expected_error", units_entry=f"{_E}:units",
    scipy_entry=f"{_E}:float64_loss", mpmath_entry=f"{_E}:exact_loss",
    positional=("input", "linear_weight", "target"), max_examples=24,
)
