"""Entry-point paths shared by the loss records (the functions live in the modules named here)."""
STRATEGY_CLASS = "conformance.strategies:class_case"
STRATEGY_BINARY = "conformance.strategies:binary_case"
UNITS_CLASS = "conformance.tolerances:class_units"
UNITS_ELEMENTWISE = "conformance.tolerances:elementwise_units"
CLASS_ERRORS = "conformance.oracles.validate:class_error"
SCIPY_CLASS = "conformance.oracles.scipy_ref:class_loss"
MPMATH_CLASS = "conformance.oracles.mpmath_ref:class_loss"
CLASS_EXTENSIONS = ("any_int_target", "any_float_weight")
