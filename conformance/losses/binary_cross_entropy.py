"""binary_cross_entropy: probabilities in, the -100 log clamp, a broadcasting weight."""
from conformance.losses import LossSpec
from conformance.losses import _common as c

SPEC = LossSpec(
    name="binary_cross_entropy", family="elementwise",
    features=("reduction", "weight", "backward", "empty", "noncontiguous", "errors"),
    strategy_entry=c.STRATEGY_BINARY, catalogue_entry="conformance.catalogue:bce_cases",
    expected_error_entry="conformance.oracles.validate:bce_error", units_entry=c.UNITS_ELEMENTWISE,
    scipy_entry="conformance.oracles.scipy_ref:bce_loss", mpmath_entry="conformance.oracles.mpmath_ref:elementwise_loss",
    grad_name="binary_cross_entropy_backward",
)
