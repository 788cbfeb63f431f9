"""Reduction codes and the one compensated sum every reduction uses.

Every ``'mean'``/``'sum'`` of every loss and backend adds float64 values in a fixed order
with Neumaier's compensation and rounds once, so results are more accurate than torch's
cascade and bit-identical for any thread count (docs/semantics.md §13).
"""
from __future__ import annotations

import math
import warnings

from numba import njit

from nbxent._core.jit import CACHE

# Reduction codes as the kernels see them.
NONE, MEAN, SUM = 0, 1, 2
_REDUCTIONS = {"none": NONE, "mean": MEAN, "sum": SUM}


def parse_reduction(fname: str, reduction) -> int:
    """Map torch's reduction string to a kernel code.

    torch accepts the deprecated alias ``'elementwise_mean'`` (with a warning)
    and rejects everything else, including ``None``, with ``ValueError``.
    """
    if isinstance(reduction, str):
        code = _REDUCTIONS.get(reduction)
        if code is not None:
            return code
        if reduction == "elementwise_mean":
            warnings.warn(
                "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                UserWarning,
                stacklevel=4,
            )
            return MEAN
    raise ValueError(
        f"{fname}: {reduction} is not a valid value for reduction "
        f"(argument 'reduction'={reduction!r}; expected 'none', 'mean' or 'sum')"
    )


@njit(inline="always", cache=CACHE)
def neumaier_add(hi, lo, v):
    """Add ``v`` to the compensated sum ``hi + lo`` (Neumaier's variant of Kahan); returns both."""
    t = hi + v
    if abs(hi) >= abs(v):
        lo += (hi - t) + v
    else:
        lo += (v - t) + hi
    return t, lo


@njit(inline="always", cache=CACHE)
def neumaier_total(hi, lo):
    """The compensated sum's value; inf/NaN: the plain sum (which carries torch's answer)."""
    return hi + lo if math.isfinite(hi) else hi


@njit(cache=CACHE, error_model="numpy")
def neumaier_sum(v, negate):
    """Compensated left-to-right sum of float64 ``v`` (of ``-v`` when ``negate``); +0.0 if empty."""
    hi = 0.0
    lo = 0.0
    for i in range(v.shape[0]):
        hi, lo = neumaier_add(hi, lo, -v[i] if negate else v[i])
    return neumaier_total(hi, lo)


@njit(cache=CACHE, error_model="numpy")
def weight_sum(w):
    """``sum_c w[c]`` in float64, compensated, left to right (one definition for all paths)."""
    hi = 0.0
    lo = 0.0
    for i in range(w.shape[0]):
        hi, lo = neumaier_add(hi, lo, float(w[i]))
    return neumaier_total(hi, lo)
