"""A correct candidate: the four losses in plain NumPy, computed in float64, returned in torch's dtype.

The harness's control: it must pass every campaign (tests/conformance/test_engine_bugs.py).
The values and gradients are written here independently of the oracles; argument
validation reuses the harness's table of torch's exceptions (conformance.oracles.validate)
because re-deriving spec section 11 a second time would test nothing new.
Every seeded-bug candidate in this folder is this module with one realistic mistake.
"""
import builtins

import numpy as np

from conformance.oracles.validate import expected_error

CONFORMANCE = {"dtypes": ["float32", "float64"]}


def _validate(name, input, target, **kw):
    arrays = {"input": np.asarray(input), "target": np.asarray(target)}
    arrays.update({k: np.asarray(v) for k, v in kw.items() if k in ("weight", "pos_weight") and v is not None})
    err = expected_error(name, arrays, {k: v for k, v in kw.items() if k not in ("weight", "pos_weight")})
    if err:
        raise getattr(builtins, err)(f"{name}: invalid arguments (torch raises {err})")


def rows(x):
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def unrows(r, shape):
    if len(shape) == 1:
        return r.reshape(shape)
    return np.moveaxis(r.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


def log_softmax(xr):
    m = xr.max(axis=1, keepdims=True) if xr.shape[1] else 0.0
    return (xr - m) - np.log(np.exp(xr - m).sum(axis=1, keepdims=True))


def _per_sample_g(g, red, n, denom):
    g = np.asarray(g, dtype=np.float64)
    if red == "none":
        return np.broadcast_to(g, (n,)).astype(np.float64) if g.ndim == 0 else g.reshape(-1)
    return np.full(n, g / denom if red in ("mean", "elementwise_mean") else g)


def _class(name, input, target, weight, ignore_index, reduction, eps, grad_output=None, lsm=log_softmax):
    x = np.asarray(input)
    xr = rows(x)
    S, C = xr.shape
    eps = eps if eps > 0 else 0.0
    prob = name == "cross_entropy" and np.asarray(target).shape == x.shape
    wc = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    lp = lsm(xr) if name == "cross_entropy" else xr
    if prob:
        q = rows(target)
        q = (1 - eps) * q + eps / C if eps > 0 else q
        per = -(lp * q * wc).sum(axis=1)
        W = float(S)
        valid = np.ones(S, bool)
        glp_unit = -q * wc
        dtype = np.result_type(x.dtype, np.asarray(target).dtype, *(() if weight is None else (weight.dtype,)))
    else:
        t = np.asarray(target).astype(np.int64).reshape(-1)
        valid = t != ignore_index
        tc = np.where(valid, t, 0)
        wt = np.where(valid, wc[tc], 0.0)
        nll = np.where(valid, -lp[np.arange(S), tc] * wt, 0.0)
        smooth = np.where(valid, -(lp * wc).sum(axis=1), 0.0)
        per = (1 - eps) * nll + eps / C * smooth if eps > 0 else nll
        W = wt.sum()
        glp_unit = np.zeros((S, C))
        glp_unit[np.arange(S)[valid], tc[valid]] = -(1 - eps) * wt[valid]
        if eps > 0:
            glp_unit[valid] -= eps / C * wc
        dtype = x.dtype
    red = "sum" if (x.ndim == 1 and reduction == "none") else reduction
    if grad_output is not None:
        # ignored rows get exactly 0, even when g/W is inf or nan (all ignored: W = 0)
        # a term whose coefficient is 0 is absent (0, not 0 * inf) except at the target, where torch
        # multiplies the target's weight by g/W even when that weight is 0 (docs/semantics.md §10.2)
        used = glp_unit != 0
        if not prob:
            used[np.arange(S)[valid], tc[valid]] = True
        glp = np.where(valid[:, None] & used, glp_unit * _per_sample_g(grad_output, red, S, W)[:, None], 0.0)
        if name == "cross_entropy":
            glp = glp - np.exp(lp) * glp.sum(axis=1, keepdims=True)
        return unrows(glp, x.shape).astype(x.dtype)
    if red == "none":
        out = per.reshape((x.shape[0],) + tuple(x.shape[2:]))
    elif red == "sum":
        out = per.sum()
    elif prob:
        out = per.sum() / S
    else:
        out = ((1 - eps) * (nll.sum() / W) + eps / C * (smooth.sum() / W)) if eps > 0 else nll.sum() / W
    return np.asarray(out).astype(dtype)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    _validate("cross_entropy", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
              label_smoothing=label_smoothing)
    with np.errstate(all="ignore"):
        return _class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    _validate("cross_entropy", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
              label_smoothing=label_smoothing)
    with np.errstate(all="ignore"):
        return _class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing, grad_output)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    _validate("nll_loss", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    with np.errstate(all="ignore"):
        return _class("nll_loss", input, target, weight, ignore_index, reduction, 0.0)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    _validate("nll_loss", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    with np.errstate(all="ignore"):
        return _class("nll_loss", input, target, weight, ignore_index, reduction, 0.0, grad_output)


def _reduce(l, reduction, dtype):
    out = l if reduction == "none" else l.sum() if reduction == "sum" else l.sum() / l.size
    return np.asarray(out).astype(dtype)


def _gscale(grad_output, reduction, shape):
    g = np.asarray(grad_output, dtype=np.float64)
    return np.broadcast_to(g if reduction not in ("mean", "elementwise_mean") else g / max(int(np.prod(shape)), 1), shape)


BCE_FLOOR = float(np.float32(1e-12))


def bce_terms(x, y):
    return (y - 1) * np.maximum(np.log1p(-x), -100.0) - y * np.maximum(np.log(x), -100.0)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    _validate("binary_cross_entropy", input, target, weight=weight, reduction=reduction)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    with np.errstate(all="ignore"):
        return _reduce(bce_terms(x, y) * w, reduction, np.asarray(input).dtype)


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean"):
    _validate("binary_cross_entropy", input, target, weight=weight, reduction=reduction)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    g = _gscale(grad_output, reduction, x.shape)
    return np.asarray(g * (x - y) / np.maximum((1 - x) * x, BCE_FLOOR) * w).astype(np.asarray(input).dtype)


def log_sigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    _validate("binary_cross_entropy_with_logits", input, target, weight=weight, reduction=reduction,
              pos_weight=pos_weight)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    lw = 1.0 if pos_weight is None else (np.asarray(pos_weight, np.float64) - 1) * y + 1
    with np.errstate(all="ignore"):
        return _reduce(((1 - y) * x - lw * log_sigmoid(x)) * w, reduction, np.asarray(target).dtype)


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None, reduction="mean",
                                              pos_weight=None):
    _validate("binary_cross_entropy_with_logits", input, target, weight=weight, reduction=reduction,
              pos_weight=pos_weight)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    sig = 1.0 / (1.0 + np.exp(-x))
    with np.errstate(all="ignore"):
        g = _gscale(grad_output, reduction, x.shape) * w * ((pw * y + 1 - y) * sig - pw * y)
    return np.asarray(g).astype(np.asarray(input).dtype)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    """cross_entropy of the logits input @ linear_weight.T + linear_bias, formed in float64."""
    z = np.asarray(input, np.float64) @ np.asarray(linear_weight, np.float64).T
    if linear_bias is not None:
        z = z + np.asarray(linear_bias, np.float64)
    w = None if weight is None else np.asarray(weight, np.float64)
    out = cross_entropy(z, target, weight=w, ignore_index=-100 if ignore_index is None else ignore_index,
                        reduction=reduction, label_smoothing=label_smoothing)
    return np.asarray(out).astype(input.dtype)
