"""Comparison helpers shared by the BCE tests (one place, one policy).

Tolerance policy (elementwise): an implementation that evaluates in float64 and rounds
once to ``dtype`` is off from the exact value by at most

    one ulp of ``dtype`` at the exact value           (the final rounding: 0.5 ulp, plus
                                                        the f64 -> f32 double rounding)
  + k * eps(float64) * scale                           (k float64 roundings in the terms
                                                        the formula adds; ``scale`` is the
                                                        sum of their absolute values)

``k`` is given by each caller, with its derivation. Where float32 transcendentals feed
the float64 formula (the CPU's float32 kernels), their error is an ``extra`` absolute
allowance per element, also derived by the caller.
"""
from __future__ import annotations

import numpy as np

from conformance.compare import ulp_error

from support import assert_within

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
#: float32's subnormal spacing: the absolute error of a float32 exp that underflows.
SUB32 = float(np.finfo(np.float32).smallest_subnormal)


def ulps(actual, exact, dtype) -> np.ndarray:
    """|actual - exact| in ulps of ``dtype`` at ``exact`` (0 where both are equal, incl. inf)."""
    actual = np.asarray(actual, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    same = (actual == exact) | (np.isnan(actual) & np.isnan(exact))
    err = ulp_error(actual, exact, dtype)
    return np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))


def assert_scaled_close(actual, exact, scale, dtype, k: float, what: str, inputs: dict,
                        extra=0.0) -> float:
    """Assert the policy above (plus ``extra``) elementwise; return the max error in ulps of ``dtype``.

    The comparison and the report are the suite's one helper (:func:`support.assert_within`):
    "m of n bad", the worst element with ``inputs`` at full precision, the allowed error there.
    """
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    actual = np.asarray(actual).reshape(-1)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        extra = np.broadcast_to(np.asarray(extra, dtype=np.float64).reshape(-1), exact.shape)
        allowed = np.where(np.isfinite(exact), spacing + k * EPS64 * scale + extra, 0.0)
    flat_inputs = {n: np.broadcast_to(np.asarray(v, dtype=np.float64).reshape(-1), exact.shape)
                   for n, v in inputs.items()}
    assert_within(actual, exact, allowed, what, f"1 ulp + {k}*eps64*scale + extra (tests/bce_support.py)",
                  dtype=np.dtype(dtype).name, inputs=flat_inputs)
    return float(ulps(actual, exact, dtype).max(initial=0.0))


def torch_close(actual, expected, scale, dtype, k: float, what: str) -> None:
    """``|actual - expected| <= k * eps(dtype) * scale`` elementwise, NaN where NaN, equal infs.

    For comparisons with torch, whose own rounding errors (per-op rounding in ``dtype``,
    cancellation in its formula) are bounded by the term sizes in ``scale``.
    """
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    allowed = k * float(np.finfo(dtype).eps) * s + float(np.finfo(dtype).tiny)
    assert_within(np.asarray(actual).reshape(-1), np.asarray(expected, dtype=np.float64).reshape(-1),
                  allowed, what, f"{k}*eps*scale vs torch (tests/bce_support.py)",
                  dtype=np.dtype(dtype).name)
