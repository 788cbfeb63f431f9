"""Pure comparison of a candidate's output with a reference (no I/O, no state).

:func:`compare` returns a :class:`Comparison`: the error measure the reports
print (max abs/rel/ulp error, k of n bad, the worst element at full precision)
and, separately, the NaN/inf pattern mismatches. ulp errors are in units of the
spacing of the candidate's dtype at the reference value, taken over the elements
whose magnitude exceeds their tolerance (a near-zero result of cancelling terms
has no meaningful ulp count; its absolute error is still in max_abs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.model import ErrorMeasure


@dataclass
class Comparison:
    measure: ErrorMeasure
    n_pattern_bad: int = 0                  # NaN/inf where the reference has none, or the reverse
    pattern_examples: list[str] = field(default_factory=list)

    @property
    def value_ok(self) -> bool:
        return self.measure.n_bad == 0

    @property
    def pattern_ok(self) -> bool:
        return self.n_pattern_bad == 0


def _same_nonfinite(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Elementwise: both NaN, or both the same infinity, or both finite."""
    return (np.isnan(got) & np.isnan(want)) | (np.isinf(got) & (got == want)) | (np.isfinite(got) & np.isfinite(want))


@dataclass(frozen=True)
class FloatInfo:
    """``np.finfo``'s numbers for a float dtype, bfloat16 (ml_dtypes, not a NumPy float) included."""

    eps: float
    tiny: float
    smallest_subnormal: float


#: bfloat16 is float32 with 16 fewer significand bits: same exponent range, 2^16 times the spacing.
_BF16 = FloatInfo(eps=2.0 ** -7, tiny=2.0 ** -126, smallest_subnormal=2.0 ** -133)


def is_bfloat16(dtype) -> bool:
    """``dtype`` (a dtype or its name) is ml_dtypes' bfloat16."""
    return str(getattr(dtype, "name", dtype)) == "bfloat16"


def finfo(dtype) -> FloatInfo:
    """eps, tiny and smallest subnormal of ``dtype`` (a dtype or its name)."""
    if is_bfloat16(dtype):
        return _BF16
    fi = np.finfo(np.dtype(dtype))
    return FloatInfo(float(fi.eps), float(fi.tiny), float(fi.smallest_subnormal))


def spacing(a: np.ndarray, dtype) -> np.ndarray:
    """The spacing of ``dtype`` at ``|a|`` (float64), floored at its smallest subnormal."""
    with np.errstate(all="ignore"):
        if is_bfloat16(dtype):
            sp = np.spacing(np.abs(np.asarray(a, dtype=np.float64)).astype(np.float32))
            sp = sp.astype(np.float64) * 2.0 ** 16
            return np.maximum(sp, _BF16.smallest_subnormal)
        dt = np.dtype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.dtype(np.float64)
        sp = np.spacing(np.abs(a).astype(dt)).astype(np.float64)
        return np.where(sp > 0, sp, float(np.finfo(dt).smallest_subnormal))


def ulp_error(got: np.ndarray, want: np.ndarray, dtype) -> np.ndarray:
    """|got - want| in ulps of ``dtype`` at the reference value (finite elements only)."""
    with np.errstate(all="ignore"):
        return np.abs(got - want) / spacing(want, dtype)


def compare(got, want, tol, dtype, tolerance_desc: str = "") -> Comparison:
    """Compare ``got`` (any float dtype) with the float64 ``want`` under per-element ``tol``.

    Shapes must already agree (the shape check is separate). Signed zeros are equal.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), want.shape)
    same = _same_nonfinite(got, want)
    both = np.isfinite(got) & np.isfinite(want)
    m = ErrorMeasure(n_total=int(want.size), tolerance=tolerance_desc)
    pattern_bad = ~same
    g1, w1 = np.atleast_1d(got), np.atleast_1d(want)
    examples = [f"at {[int(i) for i in idx]}: got {float(g1[tuple(idx)])!r}, want {float(w1[tuple(idx)])!r}"
                for idx in np.argwhere(np.atleast_1d(pattern_bad))[:3]]
    with np.errstate(all="ignore"):
        diff = np.where(both, np.abs(got - want), 0.0)
        rel = np.where(both & (want != 0), diff / np.abs(want), np.where(both & (diff > 0), np.inf, 0.0))
        # ulps only where the value exceeds its tolerance: below that the result is dominated by
        # cancellation of larger terms and an ulp count of a near-zero value means nothing
        ulps = np.where(both & (np.abs(want) > tol), ulp_error(got, want, dtype), 0.0)
        bad = both & (diff > tol)
    m.n_bad = int(bad.sum())
    if want.size:
        m.max_abs = float(diff.max())
        m.max_rel = float(rel.max())
        m.max_ulp = float(ulps.max())
        # the worst element: the largest violation of the tolerance, else the largest ulp error
        score = np.where(bad, diff / np.where(tol > 0, tol, np.finfo(np.float64).tiny), 0.0) if m.n_bad else ulps
        flat = int(np.argmax(score.reshape(-1)))
        idx = np.unravel_index(flat, want.shape) if want.ndim else ()
        m.worst_index = [int(i) for i in idx]
        m.worst_got = float(got[idx]) if want.ndim else float(got)
        m.worst_want = float(want[idx]) if want.ndim else float(want)
        if m.n_bad:
            allowed = float(tol[idx]) if want.ndim else float(tol)
            m.tolerance = f"{tolerance_desc}; allowed {allowed:.3e} at the worst element"
    return Comparison(m, int(pattern_bad.sum()), examples)


def element_ok(got, want, tol) -> np.ndarray:
    """Per element: ``got`` matches ``want`` (the same NaN/inf, or finite and within ``tol``).

    The per-element form of :func:`compare`'s verdict, for references that may be met
    element by element (torch's value here, the exact limit there).
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), want.shape)
    with np.errstate(all="ignore"):
        close = np.isfinite(got) & np.isfinite(want) & (np.abs(got - want) <= tol)
    nonfinite_same = (np.isnan(got) & np.isnan(want)) | (np.isinf(got) & (got == want))
    return close | nonfinite_same
