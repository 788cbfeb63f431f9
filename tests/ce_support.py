"""Shared helpers of the cross_entropy / nll_loss tests: torch oracle, float64 reference,
tolerance policy and the one comparison helper.

Tolerance policy (error bounds, each derived from the dtype's epsilon and the case's scale;
``u = np.finfo(dtype).eps / 2`` is the unit roundoff):

* per-sample value: the loss ``lse - x_t`` is a difference of terms of size ``|lse|`` and
  ``|x_t|``; any correct evaluation in dtype commits a few roundings on each (the shift,
  exp, the sum, log, the weight product), so the absolute error is bounded by
  ``K_VALUE * u * scale_s`` with ``scale_s = sum over the terms of |coefficient| * (|x| + |lse|)``
  (for smoothing the sum runs over every class, weighted by ``eps/C * |w_c|``).
* reduced value: the sum of the per-sample bounds times the reduction's coefficient
  (1 for sum, 1/|W| for mean) plus ``K_VALUE * u * |result|`` for the final division/rounding.
* gradient element ``g_s * (A p_j - ...)``: ``p_j = exp(x_j - lse)`` carries the condition
  number of exp, ``|x_j - lse|``, on top of a few roundings, so the bound is
  ``K_GRAD * u * |g_s| * (|A| p_j (1 + |x_j| + |lse|) + |terms without p_j|)``.

K_VALUE = K_GRAD = 16: the longest chain of dependent roundings on the path is about 8
(shift, exp, block sum, float64 fold, log, subtraction, weight product, final rounding),
and the float64 torch reference adds its own few; 16 covers both without admitting a wrong
formula (a wrong term is O(1) * scale, i.e. >= 2**20 times larger in float32).
"""
from __future__ import annotations

import numpy as np

from conformance.compare import ulp_error as compare_ulp_error

from support import assert_within

K_VALUE = 16
K_GRAD = 16


def u(dtype) -> float:
    """Unit roundoff of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def rounding_floor(dtype) -> float:
    """Absolute error of rounding a result into ``dtype``'s subnormal range (half a spacing)."""
    return float(np.finfo(dtype).smallest_subnormal) / 2


# ----------------------------------------------------------------------------- torch oracle

def torch_call(name, *arrays, **kwargs):
    """Call ``torch.nn.functional.<name>`` on C-contiguous copies; returns ndarray or exception."""
    import torch
    import torch.nn.functional as F

    tens = [None if a is None else torch.from_numpy(np.array(a, order="C", copy=True))
            for a in arrays]
    kw = dict(kwargs)
    if kw.get("weight") is not None:
        kw["weight"] = torch.from_numpy(np.array(kw["weight"], order="C", copy=True))
    try:
        return getattr(F, name)(*tens, **kw).numpy()
    except Exception as exc:  # the exception *is* the oracle's answer here
        return exc


def torch_grad(name, x, target, grad_output=None, wrt="input", **kwargs):
    """Autograd gradient of ``F.<name>`` w.r.t. the input (or the probability target)."""
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(np.array(x, order="C", copy=True))
    tt = torch.from_numpy(np.array(target, order="C", copy=True))
    leaf = xt if wrt == "input" else tt
    leaf.requires_grad_(True)
    kw = dict(kwargs)
    if kw.get("weight") is not None:
        kw["weight"] = torch.from_numpy(np.ascontiguousarray(kw["weight"]))
    out = getattr(F, name)(xt, tt, **kw)
    go = torch.ones_like(out) if grad_output is None else torch.from_numpy(
        np.array(grad_output, order="C", copy=True)).to(out.dtype)
    out.backward(go)
    return leaf.grad.numpy()


# ----------------------------------------------------------------------------- float64 reference

def _classes_last(x, unbatched):
    """(S, C) float64 view of an input (classes last) and the 'none' output shape."""
    x = np.asarray(x, dtype=np.float64)
    if unbatched:
        return x.reshape(1, -1), ()
    moved = np.moveaxis(x, 1, -1)
    return moved.reshape(-1, x.shape[1]), moved.shape[:-1]


def ce_scales(x, target, weight=None, ignore_index=-100, label_smoothing=0.0, prob=False):
    """Per-sample scale ``scale_s`` of the tolerance policy and per-sample (lse, p) arrays."""
    unbatched = np.ndim(x) == 1
    xs, _ = _classes_last(x, unbatched)
    S, C = xs.shape
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    with np.errstate(all="ignore"):
        m = xs.max(axis=1, keepdims=True) if C else np.zeros((S, 1))
        lse = m + np.log(np.exp(xs - m).sum(axis=1, keepdims=True))
        mag = np.abs(xs) + np.abs(lse)
        eps = label_smoothing if label_smoothing > 0 else 0.0
        if prob:
            q, _ = _classes_last(target, unbatched)
            if eps > 0:
                q = (1 - eps) * q + eps / C
            scale = (np.abs(w * q) * mag).sum(axis=1)
        else:
            t = np.asarray(target).reshape(-1).astype(np.int64)
            valid = t != ignore_index
            tc = np.where(valid, t, 0)
            wt = w[tc] if C else np.zeros(S)
            scale = (1 - eps) * np.abs(wt) * mag[np.arange(S), tc] if C else np.zeros(S)
            if eps > 0:
                scale = scale + (eps / max(C, 1)) * (np.abs(w) * mag).sum(axis=1)
            scale = np.where(valid, scale, 0.0)
    return scale, lse[:, 0]


# ----------------------------------------------------------------------------- comparison

def assert_close(actual, expected, atol, what="value", check_dtype=None, signed_zero=False):
    """Elementwise ``|actual - expected| <= atol`` with identical NaN and inf patterns.

    ``atol`` is an array broadcastable to the values (from the tolerance policy above), never
    a generic constant; the comparison and its report are the suite's one helper
    (:func:`support.assert_within`). ``signed_zero`` also requires the sign of exact zeros
    to match (the harness's comparison treats signed zeros as equal).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if check_dtype is not None:
        assert actual.dtype == check_dtype, f"{what}: dtype {actual.dtype} != {check_dtype}"
    assert_within(actual, expected, atol, what, "K * u * scale (tests/ce_support.py)")
    if signed_zero:
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
        zs = (a == 0) & (e == 0) & (np.signbit(a) != np.signbit(e))
        assert not zs.any(), (f"{what} sign of zero: {int(zs.sum())} of {a.size} differ, first at "
                              f"{np.argwhere(zs)[0].tolist()}: actual {a[zs][0]!r} expected {e[zs][0]!r}")


def ulp_error(actual, exact, dtype):
    """Error of ``actual`` in units of the last place of ``exact`` in ``dtype`` (float64 array)."""
    return compare_ulp_error(np.asarray(actual, dtype=np.float64),
                             np.asarray(exact, dtype=np.float64), dtype)
