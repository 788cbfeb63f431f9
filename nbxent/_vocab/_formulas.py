"""Per-row formulas of vocab-parallel cross-entropy, shared by the CPU and CUDA kernels.

Plain Python over ``math`` and array indexing only: compiled for the CPU with
``numba.njit(inline="always")`` and for CUDA with ``cuda.jit(device=True)`` from the
same source, so the two backends cannot drift. Everything is carried in float64.

A shard holds logit columns ``[v0, v0 + Vs)`` of the full vocabulary ``C``. For one
row ``x`` with class-index target ``t`` its statistics are::

    m     = max_j x_j                                  (-inf for an empty shard)
    z     = sum_{j, v0 + j != t} exp(x_j - m)          (the target's own term left out)
    xt    = x[t - v0] if the shard owns t, else 0      (exactly one shard owns it)
    wt    = w[t - v0] if the shard owns t, else 0
    sm    = sum_j w_j (x_j - m)                        (label smoothing only; <= 0 for w >= 0)

and the combine over shards ``s`` (``M = max_s m_s``, all in float64)::

    Z_o   = sum_s z_s exp(m_s - M),   e_t = exp(xt - M),   lse = M + log(Z_o + e_t)
    lse - xt = log1p(Z_o)                 if xt == M  (full relative accuracy for tiny losses)
             = (M - xt) + log(Z_o + e_t)  otherwise   (both terms >= 0: no cancellation)
    sum_c w_c (lse - x_c) = W_sum (lse - M) + sum_s [W_s (M - m_s) - sm_s]

The last form keeps every term non-negative for non-negative weights, where the naive
``W_sum * lse - sum_c w_c x_c`` cancels. ``z`` leaves the target out for the same
reason as nbxent's cross_entropy: ``log1p`` of the other classes' mass.
"""
from __future__ import annotations

import math


def row_stats(x, i, v0, t, w, has_weight, smooth):
    """Statistics of row ``i`` of the shard ``x`` (see the module docstring).

    Returns ``(m, z, xt, wt, sm, owned)``; ``owned`` is 1.0 when the shard holds ``t``.
    """
    vs = x.shape[1]
    j_t = t - v0
    owned = 0.0
    xt = 0.0
    wt = 0.0
    if 0 <= j_t < vs:
        owned = 1.0
        xt = float(x[i, j_t])
        wt = float(w[j_t]) if has_weight else 1.0
    m = -math.inf
    nan = False
    for j in range(vs):
        v = float(x[i, j])
        if v > m:
            m = v
        elif v != v:
            nan = True
    if nan:
        m = math.nan
    z = 0.0
    sm = 0.0
    if m == -math.inf:
        # every logit is -inf (or the shard is empty): no mass here, and the smoothing term
        # of a -inf logit is +inf (torch: -w_c * log_softmax = +inf) unless its weight is 0
        if smooth:
            for j in range(vs):
                wj = float(w[j]) if has_weight else 1.0
                if wj != 0.0:
                    sm = -math.inf
        return m, z, xt, wt, sm, owned
    for j in range(vs):
        v = float(x[i, j])
        if j != j_t:
            z += math.exp(v - m)
        if smooth:
            wj = float(w[j]) if has_weight else 1.0
            sm += wj * (v - m)
    return m, z, xt, wt, sm, owned


def grad_row(x, i, v0, t, w, has_weight, lse, a, b, d, out):
    """Row ``i`` of the shard's gradient: ``a * p_c - b * [c == t] - d * w_c``, p_c = exp(x_c - lse).

    ``a = g ((1 - eps) w_t + (eps / C) W_sum)``, ``b = g (1 - eps) w_t``, ``d = g eps / C``
    with ``g`` the sample's upstream factor (1, or 1/W for 'mean').
    """
    vs = x.shape[1]
    j_t = t - v0
    for j in range(vs):
        wj = float(w[j]) if has_weight else 1.0
        g = a * math.exp(float(x[i, j]) - lse) - d * wj
        if j == j_t:
            g -= b
        out[i, j] = g
