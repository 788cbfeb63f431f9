"""The tolerance policy: how far a candidate may be from the exact value.

One table, :data:`POLICY`, keyed by (loss, output kind, dtype). The allowed
error of each output element is

    tol = eps(dtype) * (k_elem * E + k_sum * Q)  +  eps(float64) * (E + Q)   [reference's own error]
          + tiny(dtype)                             [flush-to-zero; float16: see below]

where ``E`` and ``Q`` are computed from the case in float64 and measured in
units of eps (docs/semantics.md §13: bound the error by the size of the terms combined, not
by the size of the result):

* ``E``, elementwise rounding: the magnitudes of the terms an output element
  is formed from (e.g. ``|x_t| + |max| + |log sum exp|`` for a log-softmax
  value, ``|softmax_j| * sum|w q| + |w_j q_j|`` for a soft-target gradient),
  each counted once. ``k_elem`` is the number of roundings allowed per term.
* ``Q``, summation: ``n_eff(n)/2 * sum|terms|`` for every sum of ``n`` terms
  (the C-term exp-sum of a log-sum-exp, the batch reduction, the weight
  denominator). ``n_eff(n) = ceil(n/32) + 5`` is Higham's serial bound for a
  sum carried in 32 independent partial sums that are then combined pairwise
  (SIMD lanes and unrolling, a blocked cascade, or pairwise summation all do
  at least this well). A plain serial float32 sum has ``n`` in place of
  ``n/32`` and is caught once it actually loses digits (catalogue case
  ``ce_large_vocab_constant_tail``: torch 2.13 float32 is at 0.40 of the bound
  there, a serial float32 sum at 4.7 times it).

The ``tiny`` term (the smallest normal number) lets a result in the subnormal
range be flushed to zero, as SIMD exp/log libraries do (torch float32 turns a
softmax of 7.5e-44 into 0). float16 is different: its results are computed in
float32 (nbxent, torch's log_softmax) or per operation in float32 and rounded to
half (torch's NLL cascade and BCE, docs/semantics.md §2.7/§7.4), and a float32 -> float16
conversion keeps half subnormals; nothing flushes at float16's tiny (6.1e-5,
which would accept 0 for any loss below it). There a rounding that lands in the
subnormal range is absolute, at most half a subnormal spacing, so the floor is
``k_elem`` such roundings: ``k_elem * smallest_subnormal / 2`` (2.4e-7 for k_elem = 8).

float16 entries (k_elem = 8, k_sum = 2): eps16 = 2**-10 makes the summation bound Q of a
serial half cascade (torch, docs/semantics.md §2.7) dominate; candidates that compute in float32 and
round once (nbxent) sit far inside. Inputs for float16 are drawn at scales that keep every
loss and sum finite in half (strategies.py), so no overflow is judged here.

Ignored samples get ``E = Q = 0``: their output must be exactly 0.

Calibration (this machine, torch 2.13 CPU as the candidate, 750 fuzzed cases per loss over
three seeds, exact mpmath/float64 references): the largest error was 0.41 of this bound
(nll_loss float32 value), 0.25 for cross_entropy float32 gradients, below 0.1 for the
BCE losses. Every seeded bug in tests/conformance/bugs/ exceeds it.
NaN/inf elements are compared by pattern, not by this bound (compare.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from conformance.compare import finfo
from conformance.oracles._layout import bce_broadcast, from_rows, sample_shape, to_rows

LANES = 32


@dataclass(frozen=True)
class Policy:
    k_elem: float     # roundings allowed per unit of E
    k_sum: float      # multiplier on the summation bound Q
    reason: str


_W_ELEM = ("4 roundings per term: exp/log/log1p from libm or SLEEF are within 1-3 ulp "
           "(docs/semantics.md §2.7 measured 2-3 ulp for torch's log_sigmoid/log_softmax), plus the subtraction")
_W_SUM = "summation bound Q taken at face value: it is already a worst-case (Higham) bound"

#: (loss, kind, dtype) -> Policy. kind is 'value' or 'grad'.
POLICY: dict[tuple[str, str, str], Policy] = {}
# linear_cross_entropy: cross_entropy's rule on the logits; the GEMM's own bound is in Q (conformance/linear_ce.py)
for _loss in ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "linear_cross_entropy"):
    for _kind in ("value", "grad"):
        for _dt in ("float32", "float64"):
            POLICY[(_loss, _kind, _dt)] = Policy(4.0, 1.0, f"{_W_ELEM}; {_W_SUM}")
        # float16 is only tested for candidates that declare it. Most compute in float32 and round
        # once, but torch itself rounds every add of the NLL cascade to half (docs/semantics.md §2.7), so a
        # half-precision cascade must pass: 8 roundings per term and twice the summation bound.
        POLICY[(_loss, _kind, "float16")] = Policy(8.0, 2.0, "half: per-op rounding to float16 (docs/semantics.md §2.7, §7.4)")
for _loss in ("cross_entropy", "nll_loss"):
    for _kind in ("value", "grad"):
        # bfloat16 (ml_dtypes): like float16, torch rounds log_softmax to bfloat16 before the gather and the
        # sum (docs/semantics.md §2.8); a candidate that computes in float32 and rounds once uses a fraction.
        POLICY[(_loss, _kind, "bfloat16")] = Policy(8.0, 2.0, "bfloat16: per-op rounding to bfloat16 (docs/semantics.md §2.8)")
# NLL only gathers, multiplies by the weight and sums: one rounding per term (docs/semantics.md §10.1: bit-exact in torch).
for _dt in ("float32", "float64"):
    POLICY[("nll_loss", "value", _dt)] = Policy(1.0, 1.0, "gather * weight is one rounding; sums bounded by Q")
    POLICY[("nll_loss", "grad", _dt)] = Policy(2.0, 1.0, "-g*w/W: two roundings, W bounded by Q")


def n_eff(n: int) -> float:
    """Effective serial length of a correct float reduction of ``n`` terms (see module docstring)."""
    return math.ceil(n / LANES) + 5 if n > 0 else 0.0


def _finite(a):
    return np.where(np.isfinite(a), a, 0.0)


def _reduce_units(E, Q, per, red, denom):
    """Units of a reduction of per-sample losses ``per`` with units (E, Q)."""
    if red == "none":
        return E, Q
    E_sum, Q_sum = E.sum(), Q.sum() + 0.5 * n_eff(per.size) * np.abs(per).sum()
    if red == "sum":
        return np.asarray(E_sum), np.asarray(Q_sum)
    d = abs(denom) if denom != 0 else np.inf
    mean = abs(per.sum()) / d
    return np.asarray(E_sum / d + 2 * mean), np.asarray(Q_sum / d + 0.5 * n_eff(per.size) * mean)


def _grad_mean_units(E, Q, grad, red, n_denom):
    if red == "mean":   # g/W: the denominator's own summation error is relative
        Q = Q + 0.5 * n_eff(n_denom) * np.abs(grad)
    return E, Q


def _rows_stats(xr):
    """Per row: finite logits, the lse error terms a_s, log-softmax and softmax (all float64)."""
    xf = _finite(xr)
    xl = np.where(np.isfinite(xr), xr, -np.inf)
    C = xr.shape[1]
    if C == 0:
        z = np.zeros((xr.shape[0], 1))
        return xf, z, xf, xf
    with np.errstate(all="ignore"):
        m = np.max(xl, axis=1, keepdims=True)
        lse = logsumexp(xl, axis=1, keepdims=True)
        a = _finite(np.abs(m) + np.abs(lse - m)) + 2.0
        lp = _finite(xl - lse)
        sm = np.exp(lp) * np.isfinite(xr)
    return xf, a, lp, sm


def class_units(case, kind):
    """(E, Q) of a cross_entropy / nll_loss output (see the module docstring).

    With the LLM options (docs/semantics.md §13.1): ``softcap`` evaluates the terms on the
    capped logits ``y``, each of which carries 3 roundings of its own (``x / c``, ``tanh``,
    ``c *``: ``|x_c - m|`` grows to ``4|y|``), and the gradient's chain factor adds its
    condition number ``2|x / c|`` plus 6 roundings; the z-loss adds its own units.
    """
    E, Q = _class_units_main(case, kind)
    kw = case.kwargs
    if case.loss != "cross_entropy" or not float(kw.get("lse_square_scale", 0.0)):
        return E, Q
    Ez, Qz = _z_units(case, kind)
    return E + Ez, Q + Qz


def _capped_rows(case):
    """``(y, slope, |x / c|)`` rows of the case's logits (``slope`` None without softcap)."""
    from conformance.oracles.scipy_ref import softcap_rows

    xr = to_rows(case.arrays["input"])
    if case.loss != "cross_entropy" or case.kwargs.get("softcap") is None:
        return xr, None, None
    y, slope = softcap_rows(xr, case.kwargs)
    return y, slope, np.abs(_finite(xr / float(case.kwargs["softcap"])))


def _z_units(case, kind):
    """(E, Q) of the z-loss term ``z lse^2``: ``lse`` is good to ``a`` units (the row's
    log-sum-exp terms), so ``lse^2`` to ``2|lse| a``, plus 2 roundings of the product; the
    gradient term ``2 z lse p_j g_z`` combines that with ``p_j``'s error."""
    arrays, kw = case.arrays, case.kwargs
    x = arrays["input"]
    xr, slope, u = _capped_rows(case)
    S, C = xr.shape
    z = abs(float(kw["lse_square_scale"]))
    red = kw.get("reduction", "mean")
    prob = arrays["target"].shape == x.shape
    if prob:
        valid = np.ones(S, bool)
    else:
        valid = np.asarray(arrays["target"]).astype(np.int64).reshape(-1) != kw.get("ignore_index", -100)
    xf, a, lp, sm = _rows_stats(xr)
    if slope is not None:
        xf = 4 * np.abs(xf)
    lse = np.abs(_finite(logsumexp(np.where(np.isfinite(xr), xr, -np.inf), axis=1))) if C else np.zeros(S)
    nC = 0.5 * n_eff(C)
    r = "sum" if (x.ndim == 1 and red == "none") else red
    n = float(np.count_nonzero(valid))
    if kind == "value":
        zper = np.where(valid, z * lse * lse, 0.0)
        E = np.where(valid, z * 2 * lse * a[:, 0] + 2 * zper, 0.0)
        Q = np.where(valid, z * 2 * lse * nC, 0.0)
        E, Q = _reduce_units(E, Q, zper, r, n)
        if r == "none":
            E, Q = E.reshape(sample_shape(x.shape)), Q.reshape(sample_shape(x.shape))
        return E, Q
    g = np.abs(_finite(np.asarray(arrays["grad_output"], dtype=np.float64))).reshape(-1)
    gz = g if r == "none" else np.full(S, g[0] / (n if r == "mean" and n else 1.0))
    gz = np.where(valid, gz, 0.0)[:, None]
    gr = gz * 2 * z * lse[:, None] * sm
    E = gz * 2 * z * sm * (lse[:, None] * (np.abs(xf) + a + 2) + a) + 2 * gr
    Q = gr * nC
    E, Q = _grad_mean_units(E, Q, gr, r, S)
    if slope is not None:
        E = E * slope + np.abs(gr * slope) * (2 * u + 6)
        Q = Q * slope
    return from_rows(E, x.shape), from_rows(Q, x.shape)


def _class_units_main(case, kind):
    arrays, kw = case.arrays, case.kwargs
    x = arrays["input"]
    xr, slope, u = _capped_rows(case)
    S, C = xr.shape
    red = kw.get("reduction", "mean")
    prob = case.loss == "cross_entropy" and arrays["target"].shape == x.shape
    eps = float(kw.get("label_smoothing", 0.0)) if case.loss == "cross_entropy" else 0.0
    eps = eps if eps > 0 else 0.0
    w = arrays.get("weight")
    wc = np.abs(_finite(np.ones(C) if w is None else np.asarray(w, dtype=np.float64)))
    xf, a, lp, sm = _rows_stats(xr)
    if slope is not None:
        xf = 4 * np.abs(xf)          # 3 roundings of each capped logit (see class_units)
    nC = 0.5 * n_eff(C)
    if case.loss == "nll_loss":
        lp = xf
    g = None
    if kind == "grad":
        g = np.abs(_finite(np.asarray(arrays["grad_output"], dtype=np.float64))).reshape(-1)
    if prob:
        q = np.abs(_finite((1 - eps) * to_rows(arrays["target"]) + eps / C if eps > 0 else to_rows(arrays["target"])))
        wq = wc * q
        per = _finite(-(lp * wq).sum(axis=1))
        if kind == "value":
            E = (wq * (np.abs(xf) + a)).sum(axis=1) + 3 * np.abs(lp * wq).sum(axis=1)
            Q = nC * wq.sum(axis=1) + nC * np.abs(lp * wq).sum(axis=1)
            E, Q = _reduce_units(E, Q, per, red, S)
            if red == "none":
                E, Q = E.reshape(sample_shape(x.shape)), Q.reshape(sample_shape(x.shape))
            return E, Q
        gs = (g if red == "none" else np.full(S, g[0] / (S if red == "mean" else 1))).reshape(S, 1) if S else np.zeros((0, 1))
        swq = wq.sum(axis=1, keepdims=True)
        grad = gs * np.abs(sm * swq - wq)
        E = gs * (sm * swq * (np.abs(xf) + a + 2) + 2 * wq) + 2 * grad
        Q = gs * sm * swq * 2 * nC
        if slope is not None:
            E, Q = E * slope + grad * slope * (2 * u + 6), Q * slope
        return from_rows(E, x.shape), from_rows(Q, x.shape)
    tr = np.asarray(arrays["target"]).astype(np.int64).reshape(-1)
    valid = tr != kw.get("ignore_index", -100)
    tc = np.where(valid & (tr >= 0) & (tr < C), tr, 0)
    rows = np.arange(S)
    wt = np.where(valid, wc[tc], 0.0) if C else np.zeros(S)
    W = abs(float(np.where(valid, (np.ones(C) if w is None else np.asarray(w, np.float64))[tc], 0.0).sum())) if C else 0.0
    lpt = lp[rows, tc] if C else np.zeros(S)
    per = np.where(valid, _finite(-(1 - eps) * wt * lpt - (eps / C) * (wc * lp).sum(axis=1) if C else 0.0), 0.0)
    unbatched = x.ndim == 1
    if kind == "value":
        if case.loss == "nll_loss":
            E, Q = np.abs(per), np.zeros(S)
        else:
            E = (1 - eps) * wt * (np.abs(xf[rows, tc]) + a[:, 0]) + (eps / C) * (wc * (np.abs(xf) + a)).sum(axis=1) \
                + 2 * np.abs(per)
            Q = nC * ((1 - eps) * wt + (eps / C) * wc.sum()) + (eps / C) * nC * np.abs(wc * lp).sum(axis=1)
        E, Q = np.where(valid, E, 0.0), np.where(valid, Q, 0.0)
        r = "sum" if (unbatched and red == "none") else red
        E, Q = _reduce_units(E, Q, per, r, W)
        if r == "none":
            E, Q = E.reshape(sample_shape(x.shape)), Q.reshape(sample_shape(x.shape))
        return E, Q
    r = "sum" if (unbatched and red == "none") else red
    if r == "none":
        gs = g
    else:
        gs = np.full(S, g[0] / (W if r == "mean" and W else 1.0))
    gs = np.where(valid, gs, 0.0)[:, None]
    hot = np.zeros((S, C))
    if C:
        hot[rows, tc] = (1 - eps) * wt
    smooth = (eps / C) * wc[None, :] if C else hot
    if case.loss == "nll_loss":
        grad = gs * hot
        E, Q = 2 * grad, np.zeros_like(grad)
    else:
        B = (1 - eps) * wt[:, None] + (eps / C) * wc.sum()
        grad = gs * np.abs(sm * B - hot - smooth)
        E = gs * (sm * B * (np.abs(xf) + a + 2) + hot + smooth) + 2 * grad
        Q = gs * sm * B * nC
    E, Q = _grad_mean_units(E, Q, grad, r, S)
    if slope is not None:
        E, Q = E * slope + grad * slope * (2 * u + 6), Q * slope
    return from_rows(E, x.shape), from_rows(Q, x.shape)


def elementwise_units(case, kind):
    """(E, Q) of a binary_cross_entropy(_with_logits) output."""
    arrays, red = case.arrays, case.kwargs.get("reduction", "mean")
    x = _finite(np.asarray(arrays["input"], dtype=np.float64))
    y = _finite(np.asarray(arrays["target"], dtype=np.float64))
    w = np.abs(_finite(bce_broadcast(arrays.get("weight"), x.shape)))
    pw = _finite(bce_broadcast(arrays.get("pos_weight"), x.shape))
    n = x.size
    g = None
    if kind == "grad":
        g = np.abs(_finite(np.asarray(arrays["grad_output"], dtype=np.float64)))
        g = np.broadcast_to(g if red == "none" else g / (n if red == "mean" and n else 1), x.shape)
    with np.errstate(all="ignore"):
        if case.loss == "binary_cross_entropy":
            L1 = np.maximum(np.log1p(-x), -100.0)
            L2 = np.maximum(np.log(x), -100.0)
            per = _finite(((y - 1) * L1 - y * L2) * w)
            if kind == "value":
                E = w * 3 * (np.abs((y - 1) * L1) + np.abs(y * L2)) + 2 * np.abs(per)
                return _reduce_units(E, np.zeros_like(E), per, red, n)
            grad = _finite(g * np.abs(x - y) / np.maximum((1 - x) * x, 1e-12) * w)
            return 6 * grad + (2 * grad if red == "mean" else 0), np.zeros_like(grad)
        ls_terms = np.abs(np.minimum(x, 0)) + np.log1p(np.exp(-np.abs(x)))
        lw = (pw - 1) * y + 1
        per = _finite(((1 - y) * x - lw * (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))))) * w)
        if kind == "value":
            E = w * (2 * np.abs((1 - y) * x) + 3 * (np.abs(lw) + np.abs((pw - 1) * y)) * ls_terms) + 2 * np.abs(per)
            return _reduce_units(E, np.zeros_like(E), per, red, n)
        sig = expit(x)
        grad = g * w * np.abs((pw * y + 1 - y) * sig - pw * y)
        E = g * w * ((np.abs(pw * y) + 1 + np.abs(y)) * sig * 4 + 2 * np.abs(pw * y)) + grad
        return E, np.zeros_like(E)


def units(case, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(E, Q) for the case's ``kind`` output ('value' or 'grad'), in units of eps, output-shaped."""
    from conformance import losses
    with np.errstate(all="ignore"):
        return losses.get(case.loss).entry("units")(case, kind)


def tolerance(case, kind: str, dtype: str, ref_exact: bool = False) -> tuple[np.ndarray, str]:
    """Allowed absolute error per output element, and the policy entry with its numbers.

    ``dtype`` is the candidate's output dtype; ``ref_exact`` drops the float64
    reference's own error term (the reference is mpmath's, correctly rounded).
    """
    key = (case.loss, kind, dtype if (case.loss, kind, dtype) in POLICY else "float64")
    pol = POLICY[key]
    fi = finfo(key[2])
    E, Q = units(case, kind)
    ref = 0.0 if ref_exact else float(np.finfo(np.float64).eps) * (np.asarray(E) + np.asarray(Q))
    floor = pol.k_elem * float(fi.smallest_subnormal) / 2 if key[2] == "float16" else float(fi.tiny)
    tol = float(fi.eps) * (pol.k_elem * np.asarray(E) + pol.k_sum * np.asarray(Q)) + ref + floor
    desc = (f"{key[0]}/{kind}/{key[2]}: eps*({pol.k_elem:g}*E + {pol.k_sum:g}*Q)"
            f"{'' if ref_exact else ' + eps64*(E+Q)'}, eps={float(fi.eps):.3g} ({pol.reason})")
    return np.asarray(tol, dtype=np.float64), desc
