"""nll_loss: log-probabilities in, class-index targets, weight, ignore_index."""
from conformance.losses import LossSpec
from conformance.losses import _common as c

SPEC = LossSpec(
    name="nll_loss", family="class",
    features=("reduction", "weight", "ignore_index", "backward", "unbatched", "spatial", "empty", "nonfinite",
              "noncontiguous", "large_classes", "errors"),
    strategy_entry=c.STRATEGY_CLASS, catalogue_entry="conformance.catalogue:nll_cases",
    expected_error_entry=c.CLASS_ERRORS, units_entry=c.UNITS_CLASS,
    scipy_entry=c.SCIPY_CLASS, mpmath_entry=c.MPMATH_CLASS,
    grad_name="nll_loss_backward", extensions=c.CLASS_EXTENSIONS,
)
