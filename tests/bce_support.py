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

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
#: float32's subnormal spacing: the absolute error of a float32 exp that underflows.
SUB32 = float(np.finfo(np.float32).smallest_subnormal)


def ulps(actual, exact, dtype) -> np.ndarray:
    """|actual - exact| in ulps of ``dtype`` at ``exact`` (0 where both are equal, incl. inf)."""
    actual = np.asarray(actual, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    same = (actual == exact) | (np.isnan(actual) & np.isnan(exact))
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - exact) / spacing
    return np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))


def assert_scaled_close(actual, exact, scale, dtype, k: float, what: str, inputs: dict,
                        extra=0.0) -> float:
    """Assert the policy above (plus ``extra``) elementwise; return the max error in ulps of ``dtype``.

    A failure names the quantity, "m of n bad", the worst element with its inputs at full
    precision and the allowed error there.
    """
    actual = np.asarray(actual, dtype=np.float64).reshape(-1)
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    same = (actual == exact) | (np.isnan(actual) & np.isnan(exact))
    finite = np.isfinite(exact) & np.isfinite(actual)
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        extra = np.broadcast_to(np.asarray(extra, dtype=np.float64).reshape(-1), exact.shape)
        allowed = np.where(finite, spacing + k * EPS64 * scale + extra, 0.0)
        err = np.where(same, 0.0, np.where(finite, np.abs(actual - exact), np.inf))
    bad = err > allowed
    u = ulps(actual, exact, dtype)
    if bad.any():
        i = int(np.argmax(np.where(bad, err / np.maximum(allowed, 1e-300), -1)))
        detail = ", ".join(f"{n}={float(np.asarray(v).reshape(-1)[i])!r}" for n, v in inputs.items())
        raise AssertionError(
            f"{what} [{np.dtype(dtype).name}]: {int(bad.sum())} of {bad.size} outside "
            f"1 ulp + {k}*eps64*scale + extra; worst at {i} ({detail}): got {actual[i]!r}, exact "
            f"{exact[i]!r}, |err| {err[i]:.3e} > allowed {allowed[i]:.3e} ({u[i]:.2f} ulp)")
    return float(u.max(initial=0.0))


def torch_close(actual, expected, scale, dtype, k: float, what: str) -> None:
    """``|actual - expected| <= k * eps(dtype) * scale`` elementwise, NaN where NaN, equal infs.

    For comparisons with torch, whose own rounding errors (per-op rounding in ``dtype``,
    cancellation in its formula) are bounded by the term sizes in ``scale``.
    """
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), (
        f"{what}: NaN pattern differs at {np.flatnonzero(nan_a != nan_e)[:8].tolist()} "
        f"(ours {a[nan_a != nan_e][:4].tolist()}, torch {e[nan_a != nan_e][:4].tolist()})")
    inf_e = np.isinf(e)
    assert np.array_equal(a[inf_e], e[inf_e]) and not np.isinf(a[~inf_e]).any(), (
        f"{what}: inf pattern differs (ours {a[inf_e | np.isinf(a)][:4].tolist()}, "
        f"torch {e[inf_e | np.isinf(a)][:4].tolist()})")
    fin = ~(nan_e | inf_e)
    eps = float(np.finfo(dtype).eps)
    allowed = k * eps * s[fin] + float(np.finfo(dtype).tiny)
    err = np.abs(a[fin] - e[fin])
    bad = err > allowed
    if bad.any():
        i = int(np.argmax(err / allowed))
        raise AssertionError(
            f"{what} [{np.dtype(dtype).name}]: {int(bad.sum())} of {bad.size} beyond "
            f"{k}*eps*scale; worst: ours {a[fin][i]!r} torch {e[fin][i]!r} scale {s[fin][i]!r}")
