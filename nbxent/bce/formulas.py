"""Per-element formulas of binary_cross_entropy and binary_cross_entropy_with_logits.

These are the only places where the BCE formulas are written down. Both backends
compile them: the CPU kernels call the ``numba.njit`` versions below (inlined), and
the CUDA backend compiles the same Python source with
``cuda.jit(device=True)(f.py_func)``. So every function here is self-contained:
plain arithmetic, the ``math`` module and builtins only, no NumPy, and no calls to
other functions of this module (a CPU dispatcher cannot be called from a CUDA
device function). The transcendental calls (``math.exp``, ``math.log``,
``math.log1p``) all live here.

The float64 CPU kernels and the CUDA kernels call these with float64 arguments whatever
the array dtype (float32 and float16 values are exact in float64), so one rounding at the
end gives results within about one ulp of the exact value of torch's formula. The float32
CPU kernels compute exp/log/log1p with vectorized float32 functions and call the
``*_parts`` versions at the end of this module, the same expressions with those values
passed in.

Notation: ``x`` input (probability for BCE, logit for BCE-with-logits), ``y``
target, ``pw`` pos_weight (``has_pw`` False means "no pos_weight", which differs
from ``pw = 1`` only for infinite targets), ``g`` upstream gradient.
"""
from __future__ import annotations

import math

import numba

from nbxent._core.jit import CACHE

#: torch's gradient floor ``static constexpr float EPSILON = 1e-12`` (aten Loss.cpp) is a
#: float, so even float64 gradients are floored at float32(1e-12), not 1e-12.
GRAD_FLOOR = 9.9999999600419720e-13
#: torch clamps each log of binary_cross_entropy separately at -100 before weighting.
LOG_CLAMP = -100.0
#: Largest finite float64; ``abs(v) <= FINITE_MAX`` is False for inf and NaN.
FINITE_MAX = 1.7976931348623157e308


def _scalar(f):
    # error_model="numpy": IEEE results (inf, NaN) instead of Python exceptions when the
    # CUDA simulator calls these compiled functions from Python.
    return numba.njit(inline="always", cache=CACHE, error_model="numpy")(f)


@_scalar
def bce_loss(x, y):
    """``(y - 1)*max(log1p(-x), -100) - y*max(log(x), -100)``, torch's expression order.

    With 0 <= x, y <= 1 both products are >= 0, so nothing cancels. x = 1, y = 1 gives
    ``0*(-100) - 1*0 = -0.0`` as in torch.
    """
    lo = math.log1p(-x)
    if lo < LOG_CLAMP:  # std::max(a, -100) keeps a NaN `a`; so does this test
        lo = LOG_CLAMP
    lx = math.log(x)
    if lx < LOG_CLAMP:
        lx = LOG_CLAMP
    return (y - 1.0) * lo - y * lx


@_scalar
def bce_grad_input(g, x, y):
    """d loss / d x before weighting: ``g*(x - y) / max((1 - x)*x, float32(1e-12))``."""
    den = (1.0 - x) * x
    if den < GRAD_FLOOR:
        den = GRAD_FLOOR
    return g * (x - y) / den


@_scalar
def bce_grad_target(x):
    """d loss / d y before weighting and ``g``: ``-logit(x) = log((1 - x)/x)``, unclamped.

    +inf at x = 0, -inf at x = 1 (torch does not clamp this gradient). Near x = 1/2 the
    two-log form cancels, so for x >= 1/4 it is written ``-log1p((2x - 1)/(1 - x))``:
    ``2x - 1`` is exact there (Sterbenz) and ``1 - x`` is exact or within half an ulp,
    which keeps the relative error at a few ulp; it also gives torch's -0.0 at x = 1/2.
    Below 1/4, ``log1p(-x) - log(x)`` has no cancellation (|log1p(-x)| < 0.29 < -log x).
    """
    if x < 0.25:
        return math.log1p(-x) - math.log(x)
    if x == 1.0:
        return -math.inf   # log(0 / 1), written without dividing by zero (any target)
    return -math.log1p((2.0 * x - 1.0) / (1.0 - x))


@_scalar
def bcewl_loss(x, y, pw, has_pw):
    """``(1 - y)*x - lw*logsig(x)`` with ``lw = (pw - 1)*y + 1`` (``lw = 1`` without pos_weight).

    torch evaluates the formula as written, which cancels for x < 0 (``(1 - y)*x`` and
    ``-logsig(x) ~ -x`` are both large) and returns 0 for losses like 1e-18 in float32.
    With ``L = log1p(exp(-|x|))`` and ``logsig(x) = min(x, 0) - L`` the same value is
    ``(1 - y)*max(x, 0) + pw*y*max(-x, 0) + lw*L``: for x < 0, ``(1 - y - lw)*x = -pw*y*x``.
    Every term is >= 0 when 0 <= y <= 1 and pw >= 0, so the result is accurate to a few ulp.
    Non-finite x, y, pw or lw take torch's literal formula, so its NaN/inf pattern is kept
    (NaN at x = -inf; inf only at x = +inf with y < 1; -inf for y = +-inf without pos_weight).
    """
    L = math.log1p(math.exp(-abs(x)))
    if has_pw:
        lw = (pw - 1.0) * y + 1.0
        pwy = pw * y
    else:
        lw = 1.0
        pwy = y
    if (abs(x) <= FINITE_MAX and abs(y) <= FINITE_MAX and abs(lw) <= FINITE_MAX
            and abs(pwy) <= FINITE_MAX):
        return (1.0 - y) * max(x, 0.0) + pwy * max(-x, 0.0) + lw * L
    return (1.0 - y) * x - lw * (min(x, 0.0) - L)


@_scalar
def bcewl_grad_input(x, y, pw, has_pw):
    """d loss / d x before ``g`` and weighting: ``(pw*y + 1 - y)*sigmoid(x) - pw*y``.

    Written as ``(1 - y)*sigmoid(x) - pw*y*sigmoid(-x)`` (equal, since
    ``sigmoid(x) - 1 = -sigmoid(-x)``), so a confident logit (x = 40, y = 1) gives the
    exact -4.2e-18 instead of ``1 - 1 = 0``. Both sigmoids come from one ``exp(-|x|)``.
    At x = +-inf the result is finite (``1 - y`` or ``-pw*y``), as torch's. Infinite y or
    pw*y take torch's literal form (``sigmoid(x) - y`` gives -inf where this would give NaN).
    """
    e = math.exp(-abs(x))
    d = 1.0 + e
    if x >= 0.0:
        s_pos = 1.0 / d
        s_neg = e / d
    else:  # also NaN x: both sigmoids NaN
        s_pos = e / d
        s_neg = 1.0 / d
    pwy = pw * y if has_pw else y
    if abs(y) <= FINITE_MAX and abs(pwy) <= FINITE_MAX:
        return (1.0 - y) * s_pos - pwy * s_neg
    if has_pw:
        return (pwy + 1.0 - y) * s_pos - pwy
    return s_pos - y


@_scalar
def bcewl_grad_target(x, pw, has_pw):
    """d loss / d y before ``g`` and weighting: ``logsig(-x) - pw*logsig(x)`` (``-x`` without pw).

    With ``L = log1p(exp(-|x|))`` this is ``-x + (pw - 1)*L`` for x >= 0 and
    ``-pw*x + (pw - 1)*L`` for x < 0, which never subtracts two large logs.
    """
    if not has_pw:
        return -x
    L = math.log1p(math.exp(-abs(x)))
    if x >= 0.0:
        return -x + (pw - 1.0) * L
    return -pw * x + (pw - 1.0) * L


@_scalar
def bcewl_loss_and_grad(x, y, pw, has_pw):
    """``(bcewl_loss, bcewl_grad_input)`` from one ``exp`` and one ``log1p`` (same formulas)."""
    e = math.exp(-abs(x))
    L = math.log1p(e)
    d = 1.0 + e
    if x >= 0.0:
        s_pos = 1.0 / d
        s_neg = e / d
    else:
        s_pos = e / d
        s_neg = 1.0 / d
    if has_pw:
        lw = (pw - 1.0) * y + 1.0
        pwy = pw * y
    else:
        lw = 1.0
        pwy = y
    finite_y = abs(y) <= FINITE_MAX and abs(pwy) <= FINITE_MAX
    if abs(x) <= FINITE_MAX and finite_y and abs(lw) <= FINITE_MAX:
        loss = (1.0 - y) * max(x, 0.0) + pwy * max(-x, 0.0) + lw * L
    else:
        loss = (1.0 - y) * x - lw * (min(x, 0.0) - L)
    if finite_y:
        grad = (1.0 - y) * s_pos - pwy * s_neg
    elif has_pw:
        grad = (pwy + 1.0 - y) * s_pos - pwy
    else:
        grad = s_pos - y
    return loss, grad


# ---------------------------------------------------------------------------------------
# The same formulas with the transcendental values passed in. The CPU's float32 kernels
# evaluate exp/log/log1p with the vectorizable functions of ``nbxent._fastmath`` and hand
# the results here; everything else is the expression above, written with conditional
# expressions (selects) so a loop over elements vectorizes. Given the libm values they
# return the bits of the functions above (tests/test_bce_scalar.py checks this on a grid),
# so the two cannot drift apart.


@_scalar
def bce_loss_parts(y, lo, lx):
    """:func:`bce_loss` given ``lo = log1p(-x)`` and ``lx = log(x)``."""
    lo = LOG_CLAMP if lo < LOG_CLAMP else lo  # NaN kept, as std::max(a, -100)
    lx = LOG_CLAMP if lx < LOG_CLAMP else lx
    return (y - 1.0) * lo - y * lx


@_scalar
def bcewl_loss_parts(x, y, pw, has_pw, L):
    """:func:`bcewl_loss` given ``L = log1p(exp(-|x|))``."""
    lw = (pw - 1.0) * y + 1.0 if has_pw else 1.0
    pwy = pw * y if has_pw else y
    finite = ((abs(x) <= FINITE_MAX) & (abs(y) <= FINITE_MAX) & (abs(lw) <= FINITE_MAX)
              & (abs(pwy) <= FINITE_MAX))
    stable = (1.0 - y) * max(x, 0.0) + pwy * max(-x, 0.0) + lw * L
    literal = (1.0 - y) * x - lw * (min(x, 0.0) - L)
    return stable if finite else literal


@_scalar
def bcewl_grad_input_parts(x, y, pw, has_pw, e):
    """:func:`bcewl_grad_input` given ``e = exp(-|x|)``."""
    d = 1.0 + e
    sig_big = 1.0 / d   # sigmoid(|x|)
    sig_small = e / d   # sigmoid(-|x|)
    s_pos = sig_big if x >= 0.0 else sig_small  # NaN x: both NaN anyway
    s_neg = sig_small if x >= 0.0 else sig_big
    pwy = pw * y if has_pw else y
    finite_y = (abs(y) <= FINITE_MAX) & (abs(pwy) <= FINITE_MAX)
    literal = (pwy + 1.0 - y) * s_pos - pwy if has_pw else s_pos - y
    return (1.0 - y) * s_pos - pwy * s_neg if finite_y else literal
