"""cross_entropy: class-index or probability targets, weight, ignore_index, label_smoothing, z-loss, softcap."""
from conformance.losses import LossSpec
from conformance.losses import _common as c

SPEC = LossSpec(
    name="cross_entropy", family="class",
    features=("reduction", "weight", "ignore_index", "label_smoothing", "backward", "prob_target", "unbatched",
              "spatial", "empty", "nonfinite", "noncontiguous", "large_classes", "errors",
              # the LLM options (docs/semantics.md §13.1), Liger-Kernel's keyword names
              "lse_square_scale", "softcap"),
    strategy_entry=c.STRATEGY_CLASS, catalogue_entry="conformance.catalogue:ce_cases",
    expected_error_entry=c.CLASS_ERRORS, units_entry=c.UNITS_CLASS,
    scipy_entry=c.SCIPY_CLASS, mpmath_entry=c.MPMATH_CLASS,
    grad_name="cross_entropy_backward", extensions=c.CLASS_EXTENSIONS,
)
