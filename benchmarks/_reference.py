"""Accuracy of one benchmark result against a higher-precision reference.

``errors(case, arrays, results)`` returns one ``(loss_err, grad_err)`` per
``(loss, grad)`` result, in units of the case dtype's epsilon:

* ``loss_err = |loss - ref| / (eps * |ref|)`` for the reduced loss;
* ``grad_err = max_i |grad_i - ref_i| / (eps * max(|ref_i|, tiny))`` (elementwise
  relative, ``tiny`` the smallest normal number; for label smoothing ``|ref_i|`` is the
  sum of the magnitudes of the element's terms, see ``_ce_rows``; for BCE with logits
  ``sigmoid(x) + y``), None for a forward.

The reference evaluates torch's formula on the exact inputs in
float64 for float32 cases and in long double (x87, 64-bit significand) for float64 cases,
max-shifted, chunk by chunk (a 4096 x 128256 float32 input is 2.1 GB, its float64 copy
twice that), so it needs a few hundred MB whatever the case. Its own error is far below
the float32 eps (2**-24 relative against 2**-53) and, for float64 cases, below a
sixteenth of the float64 eps (long double: 2**-64).
"""
from __future__ import annotations

import math

import numpy as np

_CHUNK = 1 << 22          # elements per reference chunk (32 MB in float64)


def _np(a):
    if a is None:
        return None
    if hasattr(a, "detach"):
        a = a.detach().numpy()
    return np.asarray(a)


def _grad_err(g, ref, eps, tiny, scale=None):
    d = np.abs(g.astype(ref.dtype) - ref)
    return float(np.max(d / np.maximum(np.abs(ref) if scale is None else scale, tiny))) / eps


def _ce_rows(x, t, w, ii, eps_ls, rdt):
    """Per-sample values, gradient of the summed loss and its error scale, in ``rdt``.

    ``x`` is (n, C, K), ``t`` (n, K); torch's formula with weight, ignore_index and label
    smoothing. The scale of an element is the sum of its terms' magnitudes, so a gradient
    element that cancels (label smoothing: ``A p_j ~ (eps/C) w_j``) is judged by what its
    terms' rounding can do, not relative to a near-zero difference. The target's
    ``p_t - 1`` is formed as ``-sum_{j != t} p_j``, without cancellation.
    """
    xr = x.astype(rdt)
    C = x.shape[1]
    m = xr.max(axis=1, keepdims=True)
    e = np.exp(xr - m)
    s = e.sum(axis=1, keepdims=True)
    lp = xr - (m + np.log(s))                            # log-softmax
    valid = t != ii
    tt = np.where(valid, t, 0)
    wv = np.ones(C, dtype=rdt) if w is None else w.astype(rdt)
    wt = wv[tt] * valid                                  # (n, K)
    lpt = np.take_along_axis(lp, tt[:, None, :], axis=1)[:, 0, :]
    val = -(1 - eps_ls) * wt * lpt
    onehot = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(onehot, tt[:, None, :], True, axis=1)
    p = e / s
    pm = np.where(onehot, -np.where(onehot, 0, e).sum(axis=1, keepdims=True) / s, p)  # p - 1[j=t]
    grad = (1 - eps_ls) * wt[:, None, :] * pm
    scale = np.abs(grad)
    if eps_ls > 0:
        wl = (wv[None, :, None] * lp).sum(axis=1)
        val = val - (eps_ls / C) * wl * valid
        sumw = wv.sum()
        vb = valid[:, None, :]
        grad = grad + (eps_ls / C) * vb * (sumw * p - wv[None, :, None])
        scale = scale + (eps_ls / C) * vb * (sumw * p + wv[None, :, None])
    return val, grad, scale


def _loss_err(loss, ref, eps):
    return abs(float(np.asarray(loss, dtype=ref.dtype) - ref)) / (eps * abs(float(ref)))


class _Worst:
    """Running max of the elementwise gradient error of each result."""

    def __init__(self, results, eps, tiny):
        self.results, self.eps, self.tiny = results, eps, tiny
        self.worst = [0.0 if g is not None else None for _, g in results]

    def update(self, ref, sl, scale=None):
        for k, (_, g) in enumerate(self.results):
            if g is not None:
                self.worst[k] = max(self.worst[k], _grad_err(g[sl], ref, self.eps, self.tiny, scale))


def _ce_errors(case, arrays, results, rdt, eps, tiny):
    x, t, w = arrays["x"], arrays["t"], arrays["w"]
    N, C = x.shape[0], x.shape[1]
    K = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    x3 = x.reshape(N, C, K)
    t2 = t.reshape(N, K)
    ii = case.options.get("ignore_index", -100)
    ls = case.options.get("label_smoothing", 0.0)
    valid = t2 != ii
    W = rdt(valid.sum()) if w is None else np.sum(w.astype(rdt)[np.where(valid, t2, 0)] * valid)
    grads = _Worst([(lv, None if g is None else g.reshape(N, C, K)) for lv, g in results], eps, tiny)
    rows = max(1, _CHUNK // (C * K))
    vals = []
    for a in range(0, N, rows):
        b = min(N, a + rows)
        v, g, sc = _ce_rows(x3[a:b], t2[a:b], w, ii, ls, rdt)
        vals.append(v.reshape(-1))
        grads.update(g / W, slice(a, b), sc / abs(W))   # 'mean': the summed loss divided by W
    ref = np.sum(np.concatenate(vals), dtype=rdt) / W
    return [(_loss_err(lv, ref, eps), gw) for (lv, _), gw in zip(results, grads.worst)]


def _nll_errors(arrays, results, rdt, eps, tiny):
    x, t = arrays["x"], arrays["t"]
    N = x.shape[0]
    xt = np.take_along_axis(x, t[:, None], axis=1)[:, 0].astype(rdt)
    ref = -np.sum(xt, dtype=rdt) / rdt(N)
    gref = np.zeros(x.shape, dtype=rdt)
    np.put_along_axis(gref, t[:, None], rdt(-1.0) / rdt(N), axis=1)
    grads = _Worst(results, eps, tiny)
    grads.update(gref, slice(None))
    return [(_loss_err(lv, ref, eps), gw) for (lv, _), gw in zip(results, grads.worst)]


def _bce_errors(case, arrays, results, rdt, eps, tiny):
    x, y = arrays["x"].reshape(-1), arrays["t"].reshape(-1)
    n = x.size
    grads = _Worst([(lv, None if g is None else g.reshape(-1)) for lv, g in results], eps, tiny)
    total = rdt(0.0)
    for a in range(0, n, _CHUNK):
        xr = x[a:a + _CHUNK].astype(rdt)
        yr = y[a:a + _CHUNK].astype(rdt)
        if case.loss == "bce":
            # torch clamps each log at -100 and the gradient's denominator at 1e-12
            lv = -(yr * np.maximum(np.log(xr), -100) + (1 - yr) * np.maximum(np.log1p(-xr), -100))
            gr = (xr - yr) / np.maximum((1 - xr) * xr, rdt(1e-12))
            sc = np.abs(gr)
        else:
            lv = np.maximum(xr, 0) - xr * yr + np.log1p(np.exp(-np.abs(xr)))
            sg = 1 / (1 + np.exp(-xr))
            gr = sg - yr
            sc = sg + yr        # sigmoid(x) - y cancels where the two agree: terms' scale
        total += np.sum(lv, dtype=rdt)
        grads.update(gr / rdt(n), slice(a, a + _CHUNK), sc / rdt(n))
    ref = total / rdt(n)
    return [(_loss_err(lv, ref, eps), gw) for (lv, _), gw in zip(results, grads.worst)]


def errors(case, arrays, results):
    """``[(loss_err, grad_err)]`` in eps of the case dtype, one per ``(loss, grad)`` result.

    One reference pass serves every result (mean reduction, the cases' only one).
    """
    results = [(_np(lv), _np(g)) for lv, g in results]
    dt = np.dtype(case.dtype)
    rdt = np.longdouble if dt == np.float64 else np.float64
    fi = np.finfo(dt)
    eps, tiny = float(fi.eps), float(fi.tiny)
    if case.loss == "ce":
        return _ce_errors(case, arrays, results, rdt, eps, tiny)
    if case.loss == "nll":
        return _nll_errors(arrays, results, rdt, eps, tiny)
    return _bce_errors(case, arrays, results, rdt, eps, tiny)


def fmt(err):
    """An error in eps as printed in the table."""
    if err is None or (isinstance(err, float) and math.isnan(err)):
        return "-"
    return f"{err:.2f}" if err < 100 else f"{err:.0e}"
