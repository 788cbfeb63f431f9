"""linear_cross_entropy: ``cross_entropy(input @ linear_weight.T + linear_bias, target)`` (docs/linear.md).

Class-index or probability targets, unbatched ``(H,)`` input, an optional bias, class weights,
ignore_index and label smoothing on tiny shapes; the loss value, and with
``linear_cross_entropy_with_grad`` (returning the loss and the gradients of ``loss.sum()`` w.r.t.
input, linear_weight and linear_bias) the three gradients, judged as one packed array by the
``grad_input`` check. ``chunk_size`` is a feature only the metamorphic checks use
(conformance/metamorphic.py): the fuzzer never sends it. The small budget keeps the default campaign short: the shapes are tiny, so a few
dozen cases cover every option combination the strategy draws.
"""
from conformance.losses import LossSpec

_E = "conformance.linear_ce"

SPEC = LossSpec(
    name="linear_cross_entropy", family="class",
    features=("reduction", "weight", "ignore_index", "label_smoothing", "linear_bias", "chunk_size", "backward",
              "unbatched", "prob_target", "empty", "errors"),
    strategy_entry=f"{_E}:linear_case", catalogue_entry=f"{_E}:catalogue",
    expected_error_entry=f"{_E}:expected_error", units_entry=f"{_E}:units",
    scipy_entry=f"{_E}:float64_loss", mpmath_entry=f"{_E}:exact_loss",
    positional=("input", "linear_weight", "target"), max_examples=24,
    # the gradients of loss.sum() w.r.t. input, linear_weight and linear_bias, packed (conformance/linear_ce.py)
    grad_name="linear_cross_entropy_with_grad",
)
