"""Per-sample scalar formulas of cross_entropy / nll_loss, shared by both backends.

Every function here is plain Python over ``math`` only, compiled for the CPU
with ``numba.njit(inline="always")``. The CUDA backend compiles the very same
source with ``cuda.jit(device=True)(f.py_func)``, so the two backends cannot
drift apart: keep these free of NumPy calls, arrays, exceptions and anything
else the CUDA target cannot compile.

Notation (per sample ``s``, row of logits ``x``, class-index target ``t``):

    m        = max_c x_c                      (row max, the shift)
    s_other  = sum_{c != t} exp(x_c - m)      (the target's own term left out)
    e_t      = exp(x_t - m)
    lse      = m + log(s_other + e_t)         (log-sum-exp of the row)
    loss_t   = lse - x_t = -log p_t

Why ``s_other`` is kept apart from ``e_t``: when the target is the row max
``e_t == 1`` exactly and ``loss_t = log1p(s_other)`` keeps full relative
accuracy for tiny losses (confident rows), where ``log(1 + s_other)`` would
round ``1 + s_other`` to 1 and return 0. When the target is not the row max,
``loss_t >= log 2`` and the plain form ``(m - x_t) + log(s)`` has no
cancellation (both terms are >= 0).
"""
from __future__ import annotations

import math

from numba import njit

from nbxent._common import CACHE

__all__ = ["index_loss", "target_p_minus_1", "smooth_mix", "lse_from", "log_prob"]


@njit(inline="always", cache=CACHE, error_model="numpy")
def index_loss(m, x_t, s_other, e_t):
    """``-log softmax(x)_t`` (float64) from the row max, the target logit and the split sum.

    NaN when the row holds +inf (torch: ``inf - inf``), NaN or is all -inf;
    +inf when ``x_t = -inf`` and the rest of the row is finite.
    """
    if x_t == m:
        if math.isinf(m):
            # torch evaluates inf - inf (a +inf row, or an all -inf row); keep its NaN.
            return math.nan
        # The target holds the row max, so p_t = 1 / (1 + s_other) exactly.
        return math.log1p(s_other)
    return (m - x_t) + math.log(s_other + e_t)


@njit(inline="always", cache=CACHE, error_model="numpy")
def target_p_minus_1(loss_t):
    """``p_t - 1 = exp(-loss_t) - 1`` through ``expm1``: exact-ish even when ``p_t`` is ~1."""
    return math.expm1(-loss_t)


@njit(inline="always", cache=CACHE, error_model="numpy")
def smooth_mix(nll, smooth, eps, n_classes):
    """Label-smoothed per-sample loss ``(1 - eps) * nll + (eps / C) * smooth``."""
    return (1.0 - eps) * nll + (eps / n_classes) * smooth


@njit(inline="always", cache=CACHE, error_model="numpy")
def lse_from(m, s):
    """Log-sum-exp ``m + log(s)`` from the row max and the shifted sum of exps."""
    return m + math.log(s)


@njit(inline="always", cache=CACHE, error_model="numpy")
def log_prob(x_c, m, log_s):
    """``log softmax(x)_c = (x_c - m) - log(s)``: both terms <= 0, so no cancellation.

    (``x_c - lse`` would lose the low bits of ``lse = m + log(s)`` when the result is small.)
    """
    return (x_c - m) - log_s
