"""binary_cross_entropy_with_logits: logits in, pos_weight and weight broadcasting against the input."""
from conformance.losses import LossSpec
from conformance.losses import _common as c

SPEC = LossSpec(
    name="binary_cross_entropy_with_logits", family="elementwise",
    features=("reduction", "weight", "pos_weight", "backward", "empty", "nonfinite", "noncontiguous", "errors"),
    strategy_entry=c.STRATEGY_BINARY, catalogue_entry="conformance.catalogue:bcewl_cases",
    expected_error_entry="conformance.oracles.validate:bcewl_error", units_entry=c.UNITS_ELEMENTWISE,
    scipy_entry="conformance.oracles.scipy_ref:bcewl_loss",
    mpmath_entry="conformance.oracles.mpmath_ref:elementwise_loss",
    grad_name="binary_cross_entropy_with_logits_backward",
)
