"""Scalar formulas of cross_entropy / nll_loss (loss AND gradient), shared by both backends.

Every function here is plain Python over ``math`` only, compiled for the CPU
with ``numba.njit(inline="always")``. The CUDA backend compiles the very same
source with ``cuda.jit(device=True)(f.py_func)`` (nbxent/cuda/_device_math.py), so
the two backends cannot drift apart: keep these free of NumPy calls, arrays,
exceptions, float literals in gradient arithmetic (they would promote float32
kernels to float64) and anything else the CUDA target cannot compile.

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

from nbxent._core.jit import CACHE

__all__ = ["index_loss", "target_p_minus_1", "log_prob",
           "index_value", "smooth_target", "index_grad_scale", "index_grad_target",
           "index_grad_other", "prob_grad_scale", "softcap_value", "softcap_slope"]


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
def softcap_value(x, c):
    """The capped logit ``c * tanh(x / c)`` (Gemma-2's soft cap), in x's precision or better.

    Stable for every ``x`` and ``c > 0``: a huge ``x / c`` (or ``c`` tiny) gives
    ``tanh(+-inf) = +-1``, so ``+-inf`` logits become ``+-c``; for ``|x / c| < 1e-8``
    the result is ``x`` itself, which is the correctly rounded value
    (``c tanh(x/c) = x (1 - u^2/3 + ...)`` and ``u^2/3 < 2^-54``), so a huge ``c`` never
    pushes ``x / c`` into the subnormals and back. In between, ``tanh`` of the rounded
    ``u = x / c`` has relative condition number ``u tanh'(u) / tanh(u) <= 1``: a few ulp.
    """
    u = x / c
    if abs(u) < 1e-8:
        return x
    return c * math.tanh(u)


@njit(inline="always", cache=CACHE, error_model="numpy")
def softcap_slope(a, one):
    """``d/dx c tanh(x / c) = 1 - tanh(x / c)^2 = 4a / (1 + a)^2`` from ``a = exp(-2|x / c|)``.

    The form in ``a`` has no cancellation where ``1 - tanh^2`` has (``|x / c| >~ 1``, where
    ``tanh`` rounds towards 1 and the slope would lose all its bits); it is 0 for an
    infinite ``x`` (``a = 0``) and NaN for NaN. Its relative condition number ``2|u tanh(u)|``
    is the slope's own. The caller forms ``a`` (a vectorized exp on the CPU) and passes
    ``one`` in the compute dtype (no float literal: float32 stays float32 on CUDA).
    """
    b = one + a
    return ((a + a) + (a + a)) / (b * b)


@njit(inline="always", cache=CACHE, error_model="numpy")
def log_prob(x_c, m, log_s):
    """``log softmax(x)_c = (x_c - m) - log(s)``: both terms <= 0, so no cancellation.

    (``x_c - lse`` would lose the low bits of ``lse = m + log(s)`` when the result is small.)
    """
    return (x_c - m) - log_s


# ----------------------------------------------------------------------------- per-sample value and gradient
# These take the kernels' option record ``opts`` (nbxent/xent/validate.py: XentOptions on the
# CPU, CudaXentOptions on CUDA: same field names) and the row's log-sum-exp ``lse``, so an
# option that changes the value or the gradient of a row is written here, once, for both
# backends. Label smoothing enters through ``opts.smooth`` (eps > 0), ``opts.omeps = 1 - eps``
# and ``opts.epsc = eps / C`` (float64 on the CPU; the input's dtype on CUDA, which keeps
# float32 arithmetic in float32). With ``opts.smooth`` false the smoothing terms are skipped,
# not multiplied by 0: a NaN or inf class weight that no sample targets must not turn the
# gradient into ``0 * NaN`` (torch's gradient is finite there).
#
# z-loss (``opts.zl``): the per-sample term ``z * lse^2`` adds ``2 z lse p_j * g_z`` to
# ``d/dx_j``, a multiple of ``p_j``: it joins the factor of ``p_j`` (``index_grad_scale``,
# ``prob_grad_scale``) and the target's ``p_t`` term. ``opts.zg = 2 z (g_z / g_s)`` carries
# the z-loss's own upstream scale (docs/semantics.md §13.1: unweighted, its 'mean' counts
# samples). Its value is formed by the callers from the returned lse (not here), because
# its 'mean' has its own denominator. The softcap's chain factor ``softcap_slope`` is
# applied by the kernels to the whole gradient row.

@njit(inline="always", cache=CACHE, error_model="numpy")
def index_value(nll, smooth_sum, lse, n_classes, opts):
    """Class-index per-sample value from ``nll = w_t * loss_t`` and ``smooth_sum = -sum_c w_c lp_c``.

    ``(1 - eps) * nll + (eps / C) * smooth_sum`` under smoothing, else ``nll`` (docs/semantics.md
    §0, §5.1); formed in float64 from ``opts.eps`` on both backends. ``lse`` is the row's
    log-sum-exp, for options that depend on the normaliser.
    """
    if opts.smooth:
        return (1.0 - opts.eps) * nll + (opts.eps / n_classes) * smooth_sum
    return nll


@njit(inline="always", cache=CACHE, error_model="numpy")
def smooth_target(q, omeps, epsc, smooth):
    """torch's smoothed probability target ``(1 - eps) * q + eps / C`` (``q`` when not smoothing).

    ``omeps``/``epsc`` are passed in the target's dtype (docs/semantics.md §13).
    """
    if smooth:
        return omeps * q + epsc
    return q


@njit(inline="always", cache=CACHE, error_model="numpy")
def index_grad_scale(gs, wt, sumw, lse, opts):
    """The factor of ``p_j`` in the class-index gradient: ``g_s((1-eps) w_t + (eps/C) sum_c w_c)``.

    ``d/dx_j = p_j * index_grad_scale - g_s (eps/C) w_j - g_s (1-eps) w_t [j == t]``.
    """
    a = opts.omeps * (gs * wt)
    if opts.smooth:
        a = a + (opts.epsc * gs) * sumw
    if opts.zl:
        a = a + (gs * opts.zg) * lse
    return a


@njit(inline="always", cache=CACHE, error_model="numpy")
def index_grad_target(gs, wt, sumw, pm1, p_t, lse, opts):
    """``d/dx_t = g_s ((1-eps) w_t (p_t - 1) + (eps/C)(p_t sum_c w_c - w_t))``.

    ``pm1 = p_t - 1`` comes from a cancellation-free form (``expm1(-loss_t)`` or
    ``-s_other / s``) and ``p_t = e_t / s`` directly, never as ``1 + pm1``: for a
    small ``p_t`` (``p_t ~ 1/C`` under full smoothing) ``1 + pm1`` would lose
    ``log2(1/p_t)`` bits. The remaining difference ``p_t sum_c w_c - w_t`` carries only
    the rounding of its operands (relative error <= 3u of ``|p_t sum_c w_c|``), which is
    the conditioning of the gradient itself: a 1-ulp change of ``x_t`` moves ``p_t`` by
    as much (torch's autograd evaluates the same difference).
    """
    a = opts.omeps * (gs * wt)
    d = a * pm1
    if opts.smooth:
        d = d + (opts.epsc * gs) * (sumw * p_t - wt)
    if opts.zl:
        d = d + ((gs * opts.zg) * lse) * p_t
    return d


@njit(inline="always", cache=CACHE, error_model="numpy")
def index_grad_other(p_j, scale, gs, w_j, opts):
    """``d/dx_j`` for ``j != t``: ``p_j * scale - g_s (eps/C) w_j`` (``scale``: index_grad_scale)."""
    if opts.smooth:
        return p_j * scale - (opts.epsc * gs) * w_j
    return p_j * scale


@njit(inline="always", cache=CACHE, error_model="numpy")
def prob_grad_scale(gs, swq, lse, opts):
    """The factor of ``p_j`` in the probability-target gradient: ``g_s sum_c w_c q'_c``
    (+ ``g_s zg lse`` with the z-loss). ``d/dx_j = p_j * prob_grad_scale - g_s w_j q'_j``.
    """
    a = gs * swq
    if opts.zl:
        a = a + (gs * opts.zg) * lse
    return a
