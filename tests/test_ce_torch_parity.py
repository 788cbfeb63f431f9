"""Property tests: cross_entropy / nll_loss and their gradients against torch 2.13.

Values and gradients are compared with torch run in float64 on the same (exactly
representable) inputs, within the tolerance policy of ce_support; result shapes, dtypes,
NaN/inf patterns and signed zeros must match torch exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import nbxent

from ce_support import (
    K_GRAD,
    K_VALUE,
    assert_close,
    ce_scales,
    rounding_floor,
    torch_call,
    torch_grad,
    u,
)

pytest.importorskip("torch")

SETTINGS = settings(max_examples=int(__import__("os").environ.get("CE_EXAMPLES", 120)), deadline=None, derandomize=True)


@st.composite
def ce_cases(draw, nll=False):
    """A valid cross_entropy (or nll_loss) call: arrays plus keyword arguments."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layout = draw(st.sampled_from(["unbatched", "2d", "2d", "3d", "4d"]))
    C = draw(st.integers(1, 6))
    N = draw(st.integers(0, 4)) if layout != "unbatched" else 1
    spatial = {"unbatched": (), "2d": (), "3d": (draw(st.integers(0, 3)),),
               "4d": (draw(st.integers(1, 3)), draw(st.integers(1, 2)))}[layout]
    shape = (C,) if layout == "unbatched" else (N, C) + spatial
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([0.5, 3.0, 30.0]))
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if draw(st.booleans()) and x.size:
        specials = np.array([np.nan, np.inf, -np.inf, -np.inf], dtype=dtype)
        flat = x.reshape(-1)
        for pos in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            flat[pos] = specials[rng.integers(0, 4)]
    prob = (not nll) and draw(st.booleans())
    kw = {"reduction": draw(st.sampled_from(["none", "mean", "sum"]))}
    if draw(st.booleans()):
        w = rng.uniform(0.1, 3.0, C)
        if draw(st.booleans()):
            w[rng.integers(0, C)] *= -1.0      # negative weights are accepted by torch
        kw["weight"] = w.astype(dtype)
    if not nll:
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.2, float("nan")]))
    if prob:
        p = rng.uniform(-0.2, 1.0, shape).astype(dtype)   # torch does not validate targets
        kw["ignore_index"] = draw(st.sampled_from([-100, -1]))
        target = p
    else:
        tshape = () if layout == "unbatched" else (N,) + spatial
        t = rng.integers(0, C, tshape)
        ii = draw(st.sampled_from([-100, -100, 0, C + 2]))
        kw["ignore_index"] = ii
        if t.size and draw(st.booleans()):
            mask = rng.random(tshape) < 0.4
            t = np.where(mask, ii, t)
        target = np.asarray(t, dtype=np.int64)
    return x, target, kw, prob


def _value_tol(x, target, kw, prob, result):
    dt = x.dtype
    scale, _ = ce_scales(x, target, kw.get("weight"), kw.get("ignore_index", -100),
                         kw.get("label_smoothing", 0.0), prob)
    red = kw["reduction"]
    if red == "none" or np.ndim(x) == 1 and red == "sum":
        tol = scale.reshape(np.shape(result)) if red == "none" and np.ndim(x) > 1 else scale.sum()
    else:
        coef = 1.0
        if red == "mean" or np.ndim(x) == 1 and red == "mean":
            if prob:
                coef = 1.0 / max(scale.size, 1)
            else:
                w = kw.get("weight")
                t = np.asarray(target).reshape(-1)
                valid = t != kw.get("ignore_index", -100)
                C = x.shape[0] if x.ndim == 1 else x.shape[1]
                wt = (np.ones(C) if w is None else w.astype(np.float64))[np.where(valid, t, 0)]
                W = abs(wt[valid].sum()) if valid.any() else 0.0
                coef = 1.0 / W if W else 0.0
        tol = scale.sum() * coef
    with np.errstate(all="ignore"):
        return K_VALUE * u(dt) * (np.abs(np.asarray(result, np.float64)) + tol) + rounding_floor(dt)


@SETTINGS
@given(case=ce_cases())
def test_cross_entropy_value_matches_torch(case):
    x, target, kw, prob = case
    ours = nbxent.cross_entropy(x, target, **kw)
    same = torch_call("cross_entropy", x, target, **kw)
    assert not isinstance(same, Exception), f"torch raised {same!r}"
    assert ours.shape == same.shape and ours.dtype == same.dtype
    kw64 = dict(kw, weight=None if kw.get("weight") is None else kw["weight"].astype(np.float64))
    ref = torch_call("cross_entropy", x.astype(np.float64),
                     target.astype(np.float64) if prob else target, **kw64)
    assert_close(ours, ref, _value_tol(x, target, kw, prob, ref), "cross_entropy",
                 signed_zero=True)


@SETTINGS
@given(case=ce_cases(nll=True))
def test_nll_loss_value_matches_torch(case):
    x, target, kw, _ = case
    ours = nbxent.nll_loss(x, target, **kw)
    same = torch_call("nll_loss", x, target, **kw)
    assert not isinstance(same, Exception), f"torch raised {same!r}"
    assert ours.shape == same.shape and ours.dtype == same.dtype
    # nll_loss only multiplies and sums: 'none' is torch's own product, the reductions a
    # sum of them; bound: one rounding per sample of |x_t w_t| plus the final rounding.
    with np.errstate(all="ignore"):
        t = target.reshape(-1)
        valid = t != kw["ignore_index"]
        xs = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]) if x.ndim > 1 else x.reshape(1, -1)
        w = np.ones(xs.shape[1]) if kw.get("weight") is None else kw["weight"].astype(float)
        tc = np.where(valid, t, 0)
        mag = np.where(valid, np.abs(xs[np.arange(xs.shape[0]), tc] * w[tc]), 0.0)
        tol = 2 * u(x.dtype) * (np.abs(same.astype(float)) + (
            mag.reshape(same.shape) if same.ndim else mag.sum() / max(
                abs((w[tc] * valid).sum()) if kw["reduction"] == "mean" else 1.0, 1e-300)))
    assert_close(ours, same, tol, "nll_loss", signed_zero=True)


def _grad_tol(x, target, kw, prob, g, lse_and_scale=None):
    """Per-element bound of the tolerance policy for the input gradient."""
    dt = x.dtype
    unb = x.ndim == 1
    C = x.shape[0] if unb else x.shape[1]
    xs = x.astype(np.float64).reshape(1, -1) if unb else np.moveaxis(
        x.astype(np.float64), 1, -1).reshape(-1, C)
    S = xs.shape[0]
    w = np.ones(C) if kw.get("weight") is None else kw["weight"].astype(np.float64)
    eps = kw.get("label_smoothing", 0.0)
    eps = eps if eps > 0 else 0.0
    _, lse = ce_scales(x, target, kw.get("weight"), kw.get("ignore_index", -100), eps, prob)
    with np.errstate(all="ignore"):
        p = np.exp(xs - lse[:, None])
        # exp's condition number |x_j - lse| only matters where p_j > 0 (not at -inf logits).
        cond = np.where(p > 0, 1 + np.abs(xs) + np.abs(lse)[:, None], 0.0)
        red = kw["reduction"]
        if prob:
            q = target.astype(np.float64).reshape(1, -1) if unb else np.moveaxis(
                target.astype(np.float64), 1, -1).reshape(-1, C)
            if eps > 0:
                q = (1 - eps) * q + eps / C
            A = np.abs(w * q).sum(axis=1, keepdims=True)
            rest = np.abs(w * q)
            W = S
        else:
            t = np.asarray(target).reshape(-1)
            valid = t != kw.get("ignore_index", -100)
            tc = np.where(valid, t, 0)
            wt = w[tc]
            A = (np.abs((1 - eps) * wt) + eps / C * np.abs(w).sum())[:, None]
            rest = eps / C * np.abs(w)[None, :] + np.zeros((S, C))
            rest[np.arange(S), tc] += (1 - eps) * np.abs(wt)
            W = abs(wt[valid].sum())
        gs = np.broadcast_to(np.asarray(g, np.float64).reshape(-1)[:, None]
                             if red == "none" and not unb else np.asarray(g, np.float64), (S, 1))
        if red == "mean":
            gs = gs / W
        tol = K_GRAD * u(dt) * np.abs(gs) * (A * p * cond + rest) + rounding_floor(dt)
    # Rows whose reference is NaN/inf are compared by pattern in assert_close, not by tol.
    tol = np.where(np.isnan(tol), 0.0, tol)
    if unb:
        return tol.reshape(x.shape)
    return np.moveaxis(tol.reshape((x.shape[0],) + x.shape[2:] + (C,)), -1, 1)


@SETTINGS
@given(case=ce_cases(), gseed=st.integers(0, 1000))
def test_cross_entropy_grad_matches_torch_autograd(case, gseed):
    x, target, kw, prob = case
    out_shape = nbxent.cross_entropy(x, target, **kw).shape
    g = np.random.default_rng(gseed).uniform(-2, 2, out_shape).astype(x.dtype)
    ours = nbxent.cross_entropy_backward(g, x, target, **kw)
    kw64 = dict(kw, weight=None if kw.get("weight") is None else kw["weight"].astype(np.float64))
    ref = torch_grad("cross_entropy", x.astype(np.float64),
                     target.astype(np.float64) if prob else target, g.astype(np.float64), **kw64)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    assert_close(ours, ref, _grad_tol(x, target, kw, prob, g), "d cross_entropy / d input")


@SETTINGS
@given(case=ce_cases(), gseed=st.integers(0, 1000))
def test_prob_target_grad_matches_torch_autograd(case, gseed):
    x, target, kw, prob = case
    assume(prob)
    out_shape = nbxent.cross_entropy(x, target, **kw).shape
    g = np.random.default_rng(gseed).uniform(-2, 2, out_shape).astype(x.dtype)
    ours = nbxent.cross_entropy_backward(g, x, target, wrt="target", **kw)
    kw64 = dict(kw, weight=None if kw.get("weight") is None else kw["weight"].astype(np.float64))
    ref = torch_grad("cross_entropy", x.astype(np.float64), target.astype(np.float64),
                     g.astype(np.float64), wrt="target", **kw64)
    # d/dq = -(1-eps) g_s w_c lp_c: lp_c = x_c - lse carries a few roundings of |x_c| + |lse|.
    eps = kw.get("label_smoothing", 0.0)
    eps = eps if eps > 0 else 0.0
    _, lse = ce_scales(x, target, kw.get("weight"), kw["ignore_index"], eps, True)
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = np.ones(C) if kw.get("weight") is None else kw["weight"].astype(np.float64)
    wshape = (C,) if x.ndim == 1 else (1, C) + (1,) * (x.ndim - 2)
    lse_b = lse.reshape(()) if x.ndim == 1 else np.expand_dims(
        lse.reshape((x.shape[0],) + x.shape[2:]), 1)
    red = kw["reduction"]
    gs = np.asarray(g, np.float64)
    if red == "none" and x.ndim > 1:
        gs = np.expand_dims(gs, 1)
    if red == "mean":
        gs = gs / (np.prod(out_shape) if out_shape else max(x.size // max(C, 1), 1))
        if x.ndim > 1:
            gs = g.astype(np.float64) / max(x.size // max(C, 1), 1)
    with np.errstate(all="ignore"):
        tol = K_GRAD * u(x.dtype) * np.abs(gs) * np.abs(w.reshape(wshape)) * (
            1 + np.abs(x.astype(np.float64)) + np.abs(lse_b)) + rounding_floor(x.dtype)
    assert ours.dtype == target.dtype
    assert_close(ours, ref, np.where(np.isnan(tol), 0.0, tol), "d cross_entropy / d target")


@SETTINGS
@given(case=ce_cases(nll=True), gseed=st.integers(0, 1000))
def test_nll_grad_matches_torch_autograd(case, gseed):
    x, target, kw, _ = case
    out_shape = nbxent.nll_loss(x, target, **kw).shape
    g = np.random.default_rng(gseed).uniform(-2, 2, out_shape).astype(x.dtype)
    ours = nbxent.nll_loss_backward(g, x, target, **kw)
    ref = torch_grad("nll_loss", x, target, g, **kw)
    # Same-dtype torch: one product and (mean) one division g/W each; W is a sum of the
    # valid weights accumulated in a different order by each side (n_valid - 1 roundings).
    n_valid = int((target != kw["ignore_index"]).sum())
    tol = 2 * (2 + n_valid) * u(x.dtype) * np.abs(ref.astype(np.float64))
    assert ours.dtype == x.dtype
    assert_close(ours, ref, tol, "d nll_loss / d input", signed_zero=True)


@SETTINGS
@given(case=ce_cases())
def test_with_grad_equals_forward_and_backward(case):
    x, target, kw, prob = case
    loss, grad = nbxent.cross_entropy_with_grad(x, target, **kw)
    ref_loss = nbxent.cross_entropy(x, target, **kw)
    ones = np.ones(ref_loss.shape, dtype=ref_loss.dtype)
    ref_grad = nbxent.cross_entropy_backward(ones, x, target, **kw)
    # One code path: bit-identical, NaNs included.
    np.testing.assert_array_equal(loss, ref_loss)
    np.testing.assert_array_equal(grad, ref_grad)
    assert loss.dtype == ref_loss.dtype and grad.dtype == x.dtype
