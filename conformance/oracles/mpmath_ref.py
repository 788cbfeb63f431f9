"""The exact oracle: 50-digit mpmath evaluation of the losses for small cases.

Values are exact mathematical limits, not torch's rounding or its NaN quirks
(docs/semantics.md §14): a term whose coefficient is exactly zero (weight 0, target
probability 0, ``1 - eps`` at eps = 1, ``1 - y`` at y = 1) is absent instead of
``0 * inf = nan``, the log-sum-exp is evaluated without a max shift (mpmath
has no overflow, so ``exp(+inf) = inf`` gives the +inf limit), and
BCE-with-logits uses the softplus split that reaches +inf at infinite logits.
Where torch's float64 value and this one differ, the engine records a Finding.
The results are rounded once to float64.
"""
from __future__ import annotations

import mpmath
import numpy as np

from conformance import losses
from conformance.oracles import Reference
from conformance.oracles._layout import bce_broadcast, from_rows, sample_shape, to_rows
from conformance.oracles.validate import expected_error

DPS = 50
#: Finite cases larger than this are left to the float64 oracles (mpmath costs microseconds per
#: operation), whose value agrees with the exact one there within the reference's error term.
MAX_ELEMENTS = 256
#: A case with a NaN or infinite value is where torch's NaN and the exact limit part ways
#: (docs/semantics.md §14): the exact oracle takes those up to this size (C = 20000 x 2 rows: ~2 s).
MAX_NONFINITE_ELEMENTS = 1 << 16
_BCE_GRAD_FLOOR = mpmath.mpf(float(np.float32(1e-12)))
NAN = mpmath.mpf("nan")


def _mul(c, v):
    """c*v where an exactly-zero coefficient removes the term (the limit of c*v as c -> 0)."""
    return mpmath.mpf(0) if c == 0 else c * v


def _div(a, b):
    """a/b with IEEE conventions (mpmath raises on division by zero)."""
    if b == 0:
        if a == 0 or mpmath.isnan(a):
            return NAN
        return mpmath.inf if a > 0 else -mpmath.inf
    return a / b


def _mp(a) -> np.ndarray:
    with np.errstate(all="ignore"):       # NaN/inf inputs are converted, not warned about
        return np.vectorize(mpmath.mpf, otypes=[object])(np.asarray(a, dtype=np.float64))


def _to_f64(a) -> np.ndarray:
    with np.errstate(all="ignore"):       # exact values beyond float64's range round to +-inf
        return np.vectorize(float, otypes=[np.float64])(np.asarray(a, dtype=object))


def _lse(row):
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))


def _reduce(per: list, red: str, shape, denom):
    if red == "none":
        return np.array(per, dtype=object).reshape(shape)
    total = mpmath.fsum(per) if per else mpmath.mpf(0)
    return np.array(total if red == "sum" else _div(total, denom), dtype=object)


def _gs(g, red, n, denom):
    g = np.asarray(g, dtype=np.float64)
    if red == "none":
        return [mpmath.mpf(v) for v in np.broadcast_to(g, (n,)).reshape(-1)] if g.ndim == 0 \
            else [mpmath.mpf(v) for v in g.reshape(-1)]
    gg = mpmath.mpf(float(g))
    return [gg if red == "sum" else _div(gg, denom)] * n


def _softcap(xr, kwargs):
    """The capped logits ``c tanh(x / c)`` (docs/semantics.md §13.1), or ``xr`` without softcap."""
    c = kwargs.get("softcap")
    if c is None:
        return xr
    c = mpmath.mpf(float(c))
    return np.vectorize(lambda v: c * mpmath.tanh(v / c), otypes=[object])(xr)


def _softcap_slope(xr, kwargs):
    """``d/dx c tanh(x / c) = 1 / cosh(x / c)^2`` (0 at +-inf), or None without softcap."""
    c = kwargs.get("softcap")
    if c is None:
        return None
    c = mpmath.mpf(float(c))
    return np.vectorize(lambda v: mpmath.mpf(0) if mpmath.isinf(v) else mpmath.sech(v / c) ** 2,
                        otypes=[object])(xr)


def _z_terms(kwargs, lses, valid, red, shape, unbatched, g, want_grad):
    """The z-loss ``z lse^2`` per valid sample, reduced with the non-ignored count as the
    'mean' denominator (unweighted: docs/semantics.md §13.1); and its upstream gradient per sample."""
    z = mpmath.mpf(float(kwargs.get("lse_square_scale", 0.0)))
    per = [z * lse * lse if ok else mpmath.mpf(0) for lse, ok in zip(lses, valid)]
    n = mpmath.mpf(sum(1 for ok in valid if ok))
    if red == "none" and not unbatched:
        value = _reduce(per, "none", shape, n)
    else:
        value = _reduce(per, "sum" if red == "none" else red, (), n)
    gz = None
    if want_grad:
        gz = _gs(g, "sum" if (red == "none" and unbatched) else red, len(lses), n)
    return z, value, gz


def _class_index(loss, arrays, kwargs, want_grad):
    x = arrays["input"]
    xraw = _mp(to_rows(x))
    xr = _softcap(xraw, kwargs)
    S, C = xr.shape
    tr = np.asarray(arrays["target"]).astype(np.int64).reshape(-1)
    ii = kwargs.get("ignore_index", -100)
    red = kwargs.get("reduction", "mean")
    eps = float(kwargs.get("label_smoothing", 0.0)) if loss == "cross_entropy" else 0.0
    eps = mpmath.mpf(eps if eps > 0 else 0.0)
    w = arrays.get("weight")
    wc = [mpmath.mpf(1)] * C if w is None else [mpmath.mpf(float(v)) for v in w]
    per, lses, W = [], [], mpmath.mpf(0)
    for s in range(S):
        row = xr[s]
        lse = _lse(row) if loss == "cross_entropy" else mpmath.mpf(0)
        lses.append(lse)
        if tr[s] == ii:
            per.append(mpmath.mpf(0))
            continue
        t = int(tr[s])
        W += wc[t]
        lp = (lambda c: row[c] - lse) if loss == "cross_entropy" else (lambda c: row[c])
        val = _mul((1 - eps) * wc[t], -lp(t))
        if eps > 0:
            val += _mul(eps / C, mpmath.fsum(_mul(wc[c], -lp(c)) for c in range(C)))
        per.append(val)
    unbatched = x.ndim == 1
    if red == "none" and not unbatched:
        value = _reduce(per, "none", sample_shape(x.shape), W)
    else:
        value = _reduce(per, "sum" if red == "none" else red, (), W)
    zl = loss == "cross_entropy" and float(kwargs.get("lse_square_scale", 0.0)) != 0.0
    if zl:
        valid = [tr[s] != ii for s in range(S)]
        z, zval, gz = _z_terms(kwargs, lses, valid, red, sample_shape(x.shape), unbatched,
                               arrays.get("grad_output"), want_grad)
        value = value + zval
    grad = None
    if want_grad:
        gs = _gs(arrays["grad_output"], "sum" if (red == "none" and unbatched) else red, S, W)
        sw = mpmath.fsum(wc)
        out = np.empty((S, C), dtype=object)
        for s in range(S):
            if tr[s] == ii:
                out[s] = mpmath.mpf(0)
                continue
            t = int(tr[s])
            B = (1 - eps) * wc[t] + eps / C * sw
            for j in range(C):
                hot = (1 - eps) * wc[t] if j == t else 0
                if loss == "cross_entropy":
                    sm = mpmath.exp(xr[s, j] - lses[s])
                    out[s, j] = gs[s] * (_mul(B, sm) - hot - eps / C * wc[j])
                    if zl:
                        out[s, j] += gz[s] * 2 * z * lses[s] * sm
                else:
                    out[s, j] = _mul(gs[s], -hot) if j == t else mpmath.mpf(0)
        slope = _softcap_slope(xraw, kwargs) if loss == "cross_entropy" else None
        if slope is not None:
            out = out * slope
        grad = from_rows(out, x.shape)
    return value, grad


def _class_prob(arrays, kwargs, want_grad):
    x = arrays["input"]
    xraw, pr = _mp(to_rows(x)), _mp(to_rows(arrays["target"]))
    xr = _softcap(xraw, kwargs)
    S, C = xr.shape
    red = kwargs.get("reduction", "mean")
    eps = float(kwargs.get("label_smoothing", 0.0))
    eps = mpmath.mpf(eps if eps > 0 else 0.0)
    w = arrays.get("weight")
    wc = [mpmath.mpf(1)] * C if w is None else [mpmath.mpf(float(v)) for v in w]
    q = (1 - eps) * pr + eps / C if eps > 0 else pr
    per, lses = [], []
    for s in range(S):
        lse = _lse(xr[s])
        lses.append(lse)
        per.append(mpmath.fsum(_mul(wc[c] * q[s, c], lse - xr[s, c]) for c in range(C)))
    value = _reduce(per, red, sample_shape(x.shape), mpmath.mpf(S))
    zl = float(kwargs.get("lse_square_scale", 0.0)) != 0.0
    if zl:
        z, zval, _ = _z_terms(kwargs, lses, [True] * S, red, sample_shape(x.shape), x.ndim == 1,
                              None, False)
        value = value + zval
    grad = None
    if want_grad:
        gs = _gs(arrays["grad_output"], red, S, mpmath.mpf(S))
        out = np.empty((S, C), dtype=object)
        for s in range(S):
            swq = mpmath.fsum(wc[c] * q[s, c] for c in range(C))
            for j in range(C):
                sm = mpmath.exp(xr[s, j] - lses[s])
                out[s, j] = gs[s] * (_mul(swq, sm) - wc[j] * q[s, j])
                if zl:
                    out[s, j] += gs[s] * 2 * z * lses[s] * sm
        slope = _softcap_slope(xraw, kwargs)
        if slope is not None:
            out = out * slope
        grad = from_rows(out, x.shape)
    return value, grad


def _elementwise(arrays, kwargs, want_grad, loss):
    x = _mp(arrays["input"])
    y = _mp(arrays["target"])
    w = _mp(bce_broadcast(arrays.get("weight"), x.shape))
    pw = arrays.get("pos_weight")
    pwb = _mp(bce_broadcast(pw, x.shape))
    red = kwargs.get("reduction", "mean")
    l = np.empty(x.shape, dtype=object)
    g = np.empty(x.shape, dtype=object) if want_grad else None
    n = x.size
    gs = _gs(arrays["grad_output"], red, n, mpmath.mpf(n)) if want_grad else None
    for i, idx in enumerate(np.ndindex(x.shape)):
        xi, yi, wi, pi = x[idx], y[idx], w[idx], pwb[idx]
        if loss == "binary_cross_entropy":
            l1 = mpmath.log1p(-xi) if xi < 1 else -mpmath.inf
            l2 = mpmath.log(xi) if xi > 0 else -mpmath.inf
            li = (yi - 1) * max(l1, mpmath.mpf(-100)) - yi * max(l2, mpmath.mpf(-100))
            if want_grad:
                g[idx] = gs[i] * (xi - yi) / max((1 - xi) * xi, _BCE_GRAD_FLOOR) * wi
        else:
            lw = (pi - 1) * yi + 1
            if mpmath.isnan(xi) or mpmath.isnan(yi):
                li = NAN
            elif xi >= 0:   # (1-y)*x + lw*softplus(-x)
                li = _mul(1 - yi, xi) + _mul(lw, mpmath.log1p(mpmath.exp(-xi)))
            else:           # the same, rewritten so x -> -inf reaches its limit: -pw*y*x + lw*softplus(x)
                li = _mul(-pi * yi, xi) + _mul(lw, mpmath.log1p(mpmath.exp(xi)))
            if want_grad:
                sig = 1 / (1 + mpmath.exp(-xi))
                g[idx] = gs[i] * wi * ((pi * yi + 1 - yi) * sig - pi * yi)
        l[idx] = _mul(wi, li)
    return _reduce(list(l.reshape(-1)), red, x.shape, mpmath.mpf(n)), g


def class_loss(loss, arrays, kwargs, want_grad):
    """cross_entropy / nll_loss: exact (value, grad) as arrays of mpf."""
    if loss == "cross_entropy" and arrays["target"].shape == arrays["input"].shape:
        return _class_prob(arrays, kwargs, want_grad)
    return _class_index(loss, arrays, kwargs, want_grad)


def elementwise_loss(loss, arrays, kwargs, want_grad):
    """binary_cross_entropy / binary_cross_entropy_with_logits: exact (value, grad)."""
    return _elementwise(arrays, kwargs, want_grad, loss)


class MpmathOracle:
    """Exact values (50 digits, rounded once to float64) for the cases :meth:`applies` accepts."""

    name = "mpmath"
    exact = True

    def applies(self, case) -> bool:
        """Whether the exact value is computed for ``case``: small cases, and cases with non-finite values."""
        n = case.arrays["input"].size
        if n <= MAX_ELEMENTS:
            return True
        if n > MAX_NONFINITE_ELEMENTS:
            return False
        with np.errstate(all="ignore"):
            return any(np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all()
                       for k, v in case.arrays.items() if k != "grad_output")

    def evaluate(self, case, want_grad: bool = True) -> Reference:
        err = expected_error(case.loss, case.arrays, case.kwargs)
        if err is not None:
            return Reference(self.name, error=err, exact=True)
        want_grad = want_grad and "grad_output" in case.arrays
        with mpmath.workdps(DPS):
            value, grad = losses.get(case.loss).entry("mpmath")(case.loss, case.arrays, case.kwargs, want_grad)
            value = _to_f64(value)
            grad = None if grad is None else _to_f64(grad).reshape(case.arrays["input"].shape)
        return Reference(self.name, value=value, grad=grad, exact=True)
