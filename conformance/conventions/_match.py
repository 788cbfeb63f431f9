"""Matching an output with a reference under the judge's tolerance policy (no other policy here)."""
from __future__ import annotations

import numpy as np

from conformance.compare import compare
from conformance.model import Case
from conformance.tolerances import tolerance

__all__ = ["Matcher", "judged_dtype", "rounded", "same_outcome"]


def rounded(want: np.ndarray, dtype: str) -> np.ndarray:
    """Values beyond ``dtype``'s range become its infinity (a correctly rounded result overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.asarray(want).astype(dtype)
    return np.where(np.isinf(r) & np.isfinite(want), r.astype(np.float64), want)


VARIANT_ROUNDINGS = 8


def judged_dtype(case: Case, kind: str, dtype: str) -> str:
    """The precision a value is judged at: the result dtype, or the least precise float input.

    torch computes a mixed-precision loss partly in its inputs' precision (BCE-with-logits on a
    float32 input and a float64 target forms log_sigmoid in float32, docs/semantics.md §2.6), so a
    float64 result of float32 inputs carries float32 rounding.
    """
    if kind != "value":
        return dtype
    floats = [np.dtype(a.dtype) for k, a in case.arrays.items()
              if k in ("input", "target", "weight", "pos_weight") and np.dtype(a.dtype).kind == "f"]
    coarse = min(floats + [np.dtype(dtype)], key=lambda d: np.finfo(d).eps * -1)
    return str(coarse)


class Matcher:
    """Comparisons under the judge's tolerance policy, with the tolerances cached per case."""

    def __init__(self):
        self._tols: dict = {}

    def tol(self, case: Case, kind: str, dtype: str) -> np.ndarray:
        key = (id(case), kind, dtype)
        if key not in self._tols:
            self._tols[key] = (case, tolerance(case, kind, dtype)[0])
        return self._tols[key][1]

    def match(self, got, want, case: Case, kind: str, dtype: str, variant: bool = False) -> bool:
        """Whether ``got`` is ``want`` within the policy tolerance of ``case``'s ``kind`` output.

        ``variant``: ``want`` is a convention's reference. The policy's bound is derived from
        torch's terms, which are exactly 0 where torch's output is (an ignored sample); there a
        convention's nonzero result gets the bound of its own magnitude, VARIANT_ROUNDINGS
        roundings (the policy's 4 per term, on the 2 terms a changed element combines).
        """
        if got is None or want is None:
            return False
        got, want = np.asarray(got), np.asarray(want, dtype=np.float64)
        if got.dtype.kind not in "fiu":
            return False
        dtype = judged_dtype(case, kind, dtype)
        tol = self.tol(case, kind, dtype)
        if got.shape != want.shape:
            if got.size != want.size or np.asarray(tol).size not in (1, want.size):
                return False
            got, tol = got.reshape(want.shape), np.reshape(tol, want.shape) if np.ndim(tol) else tol
        elif np.ndim(tol) and np.shape(tol) != want.shape:
            tol = np.reshape(tol, want.shape) if np.size(tol) == want.size else tol
        if variant:
            with np.errstate(invalid="ignore"):
                own = VARIANT_ROUNDINGS * float(np.finfo(np.dtype(dtype)).eps) * np.where(np.isfinite(want),
                                                                                       np.abs(want), 0.0)
            tol = np.maximum(tol, own)
        c = compare(got, rounded(want, dtype), tol, dtype)
        return c.value_ok and c.pattern_ok


def same_outcome(a, b, m: Matcher) -> bool:
    """Whether two outcomes of one case are indistinguishable at the policy tolerance."""
    if (a.error is None) != (b.error is None) or a.determined != b.determined:
        return False
    if a.error is not None or not a.determined:
        return True
    if a.dtype != b.dtype or a.value.shape != b.value.shape:
        return False
    if not m.match(a.value, b.value, b.case, "value", b.dtype):
        return False
    if a.grad is None or b.grad is None:
        return True
    return m.match(a.grad, b.grad, b.case, "grad", str(b.case.arrays["input"].dtype))
