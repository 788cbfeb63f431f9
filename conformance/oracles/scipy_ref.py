"""The float64 oracle: the formulas of docs/semantics.md §0 on NumPy and scipy.special.

This is an independent transcription of the behavioural contract (docs/semantics.md), not of any
candidate: torch's semantics (ignore_index masking, weighted-mean denominator,
label smoothing weights, the BCE clamp at -100 and the 1e-12f gradient floor,
BCE-with-logits' NaN at infinite logits) are reproduced, and the gradients use
the closed forms of docs/semantics.md §0 written the way torch applies them
(gradient w.r.t. log-probabilities, then the log_softmax backward), so NaN in
an ignored row reaches the gradient exactly as it does in torch (docs/semantics.md §10.2).
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from conformance import losses
from conformance.oracles import Reference
from conformance.oracles._layout import bce_broadcast, from_rows, sample_shape, to_rows
from conformance.oracles.validate import expected_error

#: torch's BCE gradient floor is the float32 constant 1e-12 even for float64 (docs/semantics.md §10.3).
BCE_GRAD_FLOOR = float(np.float32(1e-12))


def log_softmax_rows(xr: np.ndarray) -> np.ndarray:
    """Row-wise log_softmax with torch's mechanics: ``(x - max) - log(sum(exp(x - max)))``.

    A +inf logit makes the whole row NaN (``inf - inf``) and an all -inf row is NaN,
    as in torch (docs/semantics.md §9); scipy's own ``log_softmax`` keeps the finite entries instead.
    """
    if xr.shape[1] == 0:
        return xr.copy()
    shifted = xr - np.max(xr, axis=1, keepdims=True)
    return shifted - logsumexp(shifted, axis=1, keepdims=True)


def _per_sample_grad(g: np.ndarray, reduction: str, n: int, denom: float) -> np.ndarray:
    """Upstream gradient per sample: g for sum, g/denom for mean, elementwise for none."""
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        return np.broadcast_to(g, (n,)).copy() if g.ndim == 0 else g.reshape(-1)
    # mean with a zero denominator: 0/0 -> nan, g/0 -> +-inf, as in torch (docs/semantics.md §10.2)
    scalar = np.float64(g) if reduction == "sum" else np.float64(g) / np.float64(denom)
    return np.full(n, scalar)


def softcap_rows(xr: np.ndarray, kwargs) -> tuple[np.ndarray, np.ndarray | None]:
    """``(c tanh(x / c), 1 - tanh(x / c)^2)`` (docs/semantics.md §13.1), or ``(xr, None)`` without softcap.

    The slope as ``4a / (1 + a)^2`` with ``a = exp(-2|x / c|)``: no cancellation where
    ``tanh`` rounds to +-1.
    """
    c = kwargs.get("softcap")
    if c is None:
        return xr, None
    c = float(c)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.exp(-2.0 * np.abs(xr / c))
        return c * np.tanh(xr / c), 4.0 * a / (1.0 + a) ** 2


def z_loss_terms(kwargs, lse, valid, red, x_shape, g, want_grad):
    """The z-loss ``z lse^2`` per valid sample, unweighted, its 'mean' over the valid count
    (docs/semantics.md §13.1); and its upstream gradient per sample (None without ``want_grad``)."""
    z = float(kwargs.get("lse_square_scale", 0.0))
    with np.errstate(over="ignore", invalid="ignore"):
        per = np.where(valid, z * lse * lse, 0.0)
    n = np.float64(np.count_nonzero(valid))
    if red == "none" and len(x_shape) > 1:
        value = per.reshape(sample_shape(x_shape))
    elif red in ("none", "sum"):
        value = np.asarray(per.sum())
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.asarray(np.float64(per.sum()) / n)
    gz = None
    if want_grad:
        red_g = "sum" if (red == "none" and len(x_shape) == 1) else red
        with np.errstate(divide="ignore", invalid="ignore"):
            gz = _per_sample_grad(g, red_g, lse.shape[0], n)
    return z, value, gz


def _class_index(loss, arrays, kwargs, want_grad):
    x = arrays["input"]
    xr = to_rows(x)
    slope = None
    if loss == "cross_entropy":
        xr, slope = softcap_rows(xr, kwargs)
    S, C = xr.shape
    tr = np.asarray(arrays["target"]).astype(np.int64).reshape(-1)
    ii = kwargs.get("ignore_index", -100)
    red = kwargs.get("reduction", "mean")
    eps = float(kwargs.get("label_smoothing", 0.0)) if loss == "cross_entropy" else 0.0
    eps = eps if eps > 0 else 0.0                            # eps < 0 or NaN behave like 0 (docs/semantics.md §5.2)
    w = arrays.get("weight")
    wc = np.ones(C) if w is None else np.asarray(w, dtype=np.float64)
    lp = xr if loss == "nll_loss" else log_softmax_rows(xr)
    valid = tr != ii
    tc = np.where(valid, tr, 0)
    rows = np.arange(S)
    wt = np.where(valid, wc[tc], 0.0) if C else np.zeros(S)
    nll = np.where(valid, -(lp[rows, tc] * wt), 0.0) if C else np.zeros(S)
    smooth = np.where(valid, -(lp * wc).sum(axis=1), 0.0) if eps > 0 else np.zeros(S)
    # torch forms eps / C in the input's dtype (docs/semantics.md §13): a tiny eps makes it 0 in float32,
    # and 0 * inf then gives NaN where the float64 coefficient would give inf
    ec = eps / C if C and np.asarray(eps, x.dtype) / np.asarray(C, x.dtype) != 0 else 0.0
    per = (1 - eps) * nll + ec * smooth if eps > 0 else nll
    W = wt.sum()
    if red == "none" and x.ndim > 1:
        value = per.reshape(sample_shape(x.shape))
    elif red in ("none", "sum"):
        value = np.asarray(per.sum())
    else:
        # two divisions, as torch (docs/semantics.md §0): with W == 0 the nll term is 0/0 = nan even at eps = 1
        W = np.float64(W)
        value = (1 - eps) * (nll.sum() / W) + ec * (smooth.sum() / W) if eps > 0 else nll.sum() / W
        value = np.asarray(value)
    zl = loss == "cross_entropy" and float(kwargs.get("lse_square_scale", 0.0)) != 0.0
    if zl:
        lse = logsumexp(xr, axis=1) if C else np.full(S, -np.inf)
        z, zval, gz = z_loss_terms(kwargs, lse, valid, red, x.shape, arrays.get("grad_output"),
                                   want_grad)
        value = value + zval
    grad = None
    if want_grad:
        red_g = "sum" if (red == "none" and x.ndim == 1) else red
        gs = _per_sample_grad(arrays["grad_output"], red_g, S, W)
        glp = np.zeros((S, C))
        vr = rows[valid]
        glp[vr, tc[valid]] = -(1 - eps) * wt[valid] * gs[valid]
        if eps > 0:
            glp[valid] += -ec * wc[None, :] * gs[valid, None]
        if loss == "cross_entropy":
            glp = glp - np.exp(lp) * glp.sum(axis=1, keepdims=True)   # log_softmax backward
            if zl:
                glp[valid] += (2.0 * z * gz[valid] * lse[valid])[:, None] * np.exp(lp[valid])
            if slope is not None:
                glp = glp * slope
        grad = from_rows(glp, x.shape)
    return value, grad, str(x.dtype)


def _class_prob(arrays, kwargs, want_grad):
    x, p, w = arrays["input"], arrays["target"], arrays.get("weight")
    xr, pr = to_rows(x), to_rows(p)
    xr, slope = softcap_rows(xr, kwargs)
    S, C = xr.shape
    red = kwargs.get("reduction", "mean")
    eps = float(kwargs.get("label_smoothing", 0.0))
    q = (1 - eps) * pr + eps / C if eps > 0 else pr
    wc = np.ones(C) if w is None else np.asarray(w, dtype=np.float64)
    lp = log_softmax_rows(xr)
    per = -((lp * q) * wc).sum(axis=1)
    if red == "none":
        value = per.reshape(sample_shape(x.shape))
    elif red == "sum":
        value = np.asarray(per.sum())
    else:
        value = np.asarray(np.float64(per.sum()) / np.float64(S) if C else np.nan)
    zl = float(kwargs.get("lse_square_scale", 0.0)) != 0.0
    if zl:
        lse = logsumexp(xr, axis=1) if C else np.full(S, -np.inf)
        z, zval, _ = z_loss_terms(kwargs, lse, np.ones(S, bool), red, x.shape, None, False)
        value = value + zval
    grad = None
    if want_grad:
        gs = _per_sample_grad(arrays["grad_output"], red, S, S)
        glp = -gs[:, None] * q * wc
        dx = glp - np.exp(lp) * glp.sum(axis=1, keepdims=True)
        if zl:
            dx = dx + (2.0 * z * gs * lse)[:, None] * np.exp(lp)
        if slope is not None:
            dx = dx * slope
        grad = from_rows(dx, x.shape)
    dts = [x.dtype, p.dtype] + ([w.dtype] if w is not None else [])
    return value, grad, str(np.result_type(*dts))


def _reduce_elementwise(l: np.ndarray, red: str) -> np.ndarray:
    if red == "none":
        return l
    if red == "sum":
        return np.asarray(l.sum())
    return np.asarray(np.float64(l.sum()) / np.float64(l.size))


def _elementwise_grad(arrays, red, shape):
    g = np.asarray(arrays["grad_output"], dtype=np.float64)
    n = int(np.prod(shape))
    if red == "none":
        return np.broadcast_to(g, shape)
    return np.broadcast_to(g if red == "sum" else g / np.float64(n), shape)


def _bce(arrays, kwargs, want_grad):
    x = np.asarray(arrays["input"], dtype=np.float64)
    y = np.asarray(arrays["target"], dtype=np.float64)
    w = bce_broadcast(arrays.get("weight"), x.shape)
    red = kwargs.get("reduction", "mean")
    # Each log is clamped at -100 before it meets its coefficient (docs/semantics.md §7.1).
    l = ((y - 1) * np.maximum(np.log1p(-x), -100.0) - y * np.maximum(np.log(x), -100.0)) * w
    grad = None
    if want_grad:
        gs = _elementwise_grad(arrays, red, x.shape)
        # float16: the float32(1e-12) floor rounds to 0 in half, so torch 2.13 gives nan at x == y in
        # {0, 1} and +-inf at x != y there (measured; bfloat16 keeps the floor). The exact limit is
        # the floored one (mpmath), so a candidate computing in float32 gets torch_differs there.
        floor = 0.0 if arrays["input"].dtype == np.float16 else BCE_GRAD_FLOOR
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = gs * (x - y) / np.maximum((1 - x) * x, floor) * w
    return _reduce_elementwise(l, red), grad, str(arrays["input"].dtype)


def _bcewl(arrays, kwargs, want_grad):
    x = np.asarray(arrays["input"], dtype=np.float64)
    y = np.asarray(arrays["target"], dtype=np.float64)
    w = bce_broadcast(arrays.get("weight"), x.shape)
    red = kwargs.get("reduction", "mean")
    pw = arrays.get("pos_weight")
    logsig = log_expit(x)                                  # min(x,0) - log1p(exp(-|x|))
    if pw is None:
        l = ((1 - y) * x - logsig) * w
    else:
        pwb = bce_broadcast(pw, y.shape)
        l = ((1 - y) * x - ((pwb - 1) * y + 1) * logsig) * w
    grad = None
    if want_grad:
        gs = _elementwise_grad(arrays, red, x.shape)
        if pw is None:
            grad = gs * w * (expit(x) - y)
        else:
            grad = gs * w * ((pwb * y + 1 - y) * expit(x) - pwb * y)
    return _reduce_elementwise(l, red), grad, str(arrays["target"].dtype)


def class_loss(loss, arrays, kwargs, want_grad):
    """cross_entropy / nll_loss: (value, grad, result dtype) in float64 with torch's semantics."""
    if loss == "cross_entropy" and arrays["target"].shape == arrays["input"].shape:
        return _class_prob(arrays, kwargs, want_grad)
    return _class_index(loss, arrays, kwargs, want_grad)


def bce_loss(loss, arrays, kwargs, want_grad):
    """binary_cross_entropy: (value, grad, result dtype)."""
    return _bce(arrays, kwargs, want_grad)


def bcewl_loss(loss, arrays, kwargs, want_grad):
    """binary_cross_entropy_with_logits: (value, grad, result dtype)."""
    return _bcewl(arrays, kwargs, want_grad)


class ScipyOracle:
    """Float64 reference with torch semantics; decides which cases are invalid."""

    name = "scipy"
    exact = False

    def evaluate(self, case, want_grad: bool = True) -> Reference:
        err = expected_error(case.loss, case.arrays, case.kwargs)
        if err is not None:
            return Reference(self.name, error=err)
        want_grad = want_grad and "grad_output" in case.arrays
        with np.errstate(all="ignore"):
            value, grad, dtype = losses.get(case.loss).entry("scipy")(case.loss, case.arrays, case.kwargs, want_grad)
        grad = None if grad is None else np.array(grad, dtype=np.float64)
        return Reference(self.name, value=np.asarray(value, dtype=np.float64), grad=grad, dtype=dtype)
