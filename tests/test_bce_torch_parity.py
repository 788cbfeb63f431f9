"""binary_cross_entropy(_with_logits) against torch 2.13: values, NaN/inf patterns, shapes,
dtypes, weight/pos_weight broadcasting, exception types, gradients (autograd), and
central finite differences in float64.

Tolerances (``bce_support.torch_close``): ``k * eps(dtype) * scale``, where ``scale`` is
the sum of the absolute terms torch's formula combines (float64, from the inputs). torch
rounds every operation in ``dtype`` (float16: each op; float32: logf/log1pf, products,
the in-place weight multiply) and cancels in BCE-with-logits' ``(1 - y)*x - lw*logsig(x)``
and in ``logit(x)``; nbxent is within about an ulp of exact. ``k`` counts torch's roundings
plus ours (derivations inline); reductions add torch's float32 summation error, bounded by
``log2(n) + 1`` more roundings of the summed magnitudes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbxent

from bce_support import torch_close

torch = pytest.importorskip("torch")
F = torch.nn.functional

SETTINGS = settings(max_examples=40, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.float16, np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def T(a):
    return None if a is None else torch.from_numpy(np.array(a, order="C"))  # keeps 0-d


@st.composite
def cases(draw, logits: bool):
    """(x, y, weight, pos_weight, reduction, grad_output) from a seeded generator."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    red = draw(st.sampled_from(REDUCTIONS))

    def side():  # None, or a shape that broadcasts into `shape` (trailing dims, some 1s)
        if not draw(st.booleans()):
            return None
        k = draw(st.integers(0, len(shape)))
        s = tuple(d if draw(st.booleans()) else 1 for d in shape[len(shape) - k:])
        return rng.uniform(-0.5, 2.0, size=s)

    if logits:
        scale = draw(st.sampled_from([1.0, 8.0, 60.0]))
        x = rng.standard_normal(shape) * scale
        special = rng.random(shape)
        x = np.where(special < 0.03, np.inf, np.where(special < 0.06, -np.inf, x))
        x = np.where((special > 0.06) & (special < 0.08), np.nan, x)
        y = rng.choice([0.0, 1.0, 0.25, 2.0, -0.5], size=shape) if draw(st.booleans()) \
            else rng.random(shape)
    else:
        lo = 0.01 if dtype == np.float16 else 0.0  # half: torch's floor half(1e-12) is 0 (0/0)
        x = rng.uniform(lo, 1.0 - lo, size=shape)
        y = rng.random(shape)
        if dtype != np.float16:
            m = rng.random(shape)
            x = np.where(m < 0.1, 0.0, np.where(m > 0.9, 1.0, x))
    ydt = draw(st.sampled_from(DTYPES)) if logits else dtype
    x, y = x.astype(dtype), y.astype(ydt)
    w = side()
    pw = side() if logits else None
    out_shape = shape if red == "none" else ()
    g = rng.uniform(-2.0, 2.0, size=out_shape).astype(ydt if logits else dtype)
    return x, y, w, pw, red, g


def _sum_scale(scale, red, n):
    """Scale of a reduced value and the extra roundings torch's float32 sum may add."""
    if red == "none":
        return scale, 0.0
    extra = math.log2(max(n, 1)) + 1
    s = float(np.sum(scale))
    return (s / n if (red == "mean" and n) else s), extra


def _bce_terms(x, y):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(divide="ignore"):
        lo = np.maximum(np.log1p(-x64), -100.0)
        lx = np.maximum(np.log(x64), -100.0)
    return np.abs((y64 - 1) * lo) + np.abs(y64 * lx)


def _bcewl_terms(x, y, pw):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    p = 1.0 if pw is None else np.broadcast_to(pw, x.shape)
    lw = (p - 1.0) * y64 + 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        logsig = np.minimum(x64, 0) - np.log1p(np.exp(-np.abs(x64)))
        return np.abs((1 - y64) * x64) + np.abs(lw * logsig), logsig


# k for the forward against torch: float64 torch ~3 roundings of the term sizes + ours 1;
# float32 logf/log1pf/products/difference 3 + ours 1; float16 5 half roundings + ours 1.
K_FWD = {np.dtype(np.float64): 4, np.dtype(np.float32): 4, np.dtype(np.float16): 6}
# gradients: torch's 4-5 multiplicative roundings (g, w, numel and the formula's own) + ours 1
K_GRAD = {np.dtype(np.float64): 6, np.dtype(np.float32): 6, np.dtype(np.float16): 8}
# When input and target are both float32, nbxent's exp/log/log1p are float32 functions
# (<= 1 ulp <= eps32*|value| each; see tests/test_bce_golden.py), which adds to "ours":
# BCE loss 1 (each log, times its term); BCE-with-logits loss 2 (exp, then log1p with
# condition number <= 1: 2*eps32*|lw*L| <= 2*eps32*|lw*logsig|) and d/dx 1 (the sigmoids
# move by at most eps32 times themselves). Below 2**-126 exp_f32 is subnormal, absolute
# error 2**-149: covered by torch_close's float32-tiny absolute term.
K_F32_TRANSCENDENTALS = {"bce": (1, 0), "bcewl": (2, 1)}  # (loss, d/dx)


def _k_f32(fn, x, y):
    both32 = x.dtype == np.float32 and y.dtype == np.float32
    return K_F32_TRANSCENDENTALS[fn] if both32 else (0, 0)


@SETTINGS
@given(cases(logits=False))
def test_bce_matches_torch(case):
    x, y, w, _, red, g = case
    ours = nbxent.binary_cross_entropy(x, y, weight=w, reduction=red)
    xt, yt = T(x).requires_grad_(), T(y).requires_grad_()
    ref = F.binary_cross_entropy(xt, yt, weight=T(w), reduction=red)
    assert ours.dtype == np.dtype(str(ref.dtype).replace("torch.", "")) and ours.shape == tuple(ref.shape)
    wabs = 1.0 if w is None else np.abs(np.broadcast_to(w, x.shape))
    scale, extra = _sum_scale(_bce_terms(x, y) * wabs, red, x.size)
    k_loss, _ = _k_f32("bce", x, y)
    torch_close(ours, ref.detach().numpy(), scale, x.dtype, K_FWD[x.dtype] + k_loss + extra,
                f"bce {red}")
    ref.backward(T(g))
    n = x.size if red == "mean" else 1
    gabs = np.abs(np.broadcast_to(g.astype(np.float64), x.shape)) * wabs / n
    gx = nbxent.binary_cross_entropy_backward(g, x, y, weight=w, reduction=red)
    gy = nbxent.binary_cross_entropy_backward(g, x, y, weight=w, reduction=red, wrt="target")
    assert gx.dtype == x.dtype and gy.dtype == y.dtype and gx.shape == x.shape
    x64 = x.astype(np.float64)
    den = np.maximum((1 - x64) * x64, float(np.float32(1e-12)))
    torch_close(gx, xt.grad.numpy(), gabs / den, x.dtype, K_GRAD[x.dtype], "bce d/dx")
    with np.errstate(divide="ignore"):
        logit_terms = 1.0 + np.abs(np.log(x64)) + np.abs(np.log1p(-x64))  # torch's log(x/(1-x))
    torch_close(gy, yt.grad.numpy(), gabs * logit_terms, x.dtype, K_GRAD[x.dtype], "bce d/dy")


@SETTINGS
@given(cases(logits=True))
def test_bce_with_logits_matches_torch(case):
    x, y, w, pw, red, g = case
    ours = nbxent.binary_cross_entropy_with_logits(x, y, weight=w, reduction=red, pos_weight=pw)
    xt, yt = T(x).requires_grad_(), T(y).requires_grad_()
    ref = F.binary_cross_entropy_with_logits(xt, yt, weight=T(w), reduction=red, pos_weight=T(pw))
    rdt = y.dtype  # result dtype is the target's
    assert ours.dtype == rdt and ours.shape == tuple(ref.shape)
    wabs = 1.0 if w is None else np.abs(np.broadcast_to(w, x.shape))
    terms, logsig = _bcewl_terms(x, y, pw)
    scale, extra = _sum_scale(terms * wabs, red, x.size)
    # torch evaluates log_sigmoid in the input dtype, the rest in the target's: the coarser counts
    eps_dt = x.dtype if np.finfo(x.dtype).eps > np.finfo(rdt).eps else rdt
    k_loss, k_gx = _k_f32("bcewl", x, y)
    torch_close(ours, ref.detach().numpy(), scale, eps_dt, K_FWD[np.dtype(eps_dt)] + k_loss + extra,
                f"bcewl {red}")
    ref.backward(T(g))
    n = x.size if red == "mean" else 1
    gabs = np.abs(np.broadcast_to(g.astype(np.float64), x.shape)) * wabs / n
    kw = dict(weight=w, reduction=red, pos_weight=pw)
    gx = nbxent.binary_cross_entropy_with_logits_backward(g, x, y, **kw)
    gy = nbxent.binary_cross_entropy_with_logits_backward(g, x, y, wrt="target", **kw)
    assert gx.dtype == x.dtype and gy.dtype == y.dtype
    p = 1.0 if pw is None else np.abs(np.broadcast_to(pw, x.shape))
    y64 = np.abs(y.astype(np.float64))
    with np.errstate(invalid="ignore"):
        sx = gabs * (p * y64 + (p * y64 + 1 + y64))  # |pw*y| + |(pw*y + 1 - y)*sigmoid|
        logsig_neg = logsig - x.astype(np.float64)  # log(1 - sigmoid(x)) = logsig(x) - x
        sy = gabs * (np.abs(logsig_neg) + p * np.abs(logsig) + np.abs(x.astype(np.float64)))
    torch_close(gx, xt.grad.numpy(), sx, eps_dt, K_GRAD[np.dtype(eps_dt)] + k_gx, "bcewl d/dx")
    torch_close(gy, yt.grad.numpy(), sy, eps_dt, K_GRAD[np.dtype(eps_dt)], "bcewl d/dy")


@settings(max_examples=25, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), logits=st.booleans(), pw_on=st.booleans())
def test_gradients_match_central_differences_float64(seed, logits, pw_on):
    """d/dx and d/dy of the elementwise loss vs central differences with step h.

    Error bound: truncation h**2/6 * max|f'''| plus rounding 2*eps*|f|/h (h = 1e-5). BCE on
    x in [0.1, 0.9]: |f'''| <= 2/x**3 + 2/(1-x)**3 <= 4/0.1**3 (d/dx), 0 (d/dy is linear);
    BCE-with-logits: |f'''| <= lw*max|sigmoid''| <= 0.1*lw, and 0 in y (linear).
    """
    rng = np.random.default_rng(seed)
    h, n = 1e-5, 64
    y = rng.random(n)
    pw = rng.uniform(0.0, 3.0, n) if (logits and pw_on) else None
    if logits:
        x = rng.uniform(-6, 6, n)
        f = lambda a, b: nbxent.binary_cross_entropy_with_logits(a, b, reduction="none", pos_weight=pw)  # noqa
        b = lambda **k: nbxent.binary_cross_entropy_with_logits_backward(np.ones(n), x, y, reduction="none", pos_weight=pw, **k)  # noqa
        lw = 1.0 if pw is None else np.abs((pw - 1) * y + 1)
        m3 = 0.1 * np.maximum(lw, 1.0)
    else:
        x = rng.uniform(0.1, 0.9, n)
        f = lambda a, b_: nbxent.binary_cross_entropy(a, b_, reduction="none")  # noqa
        b = lambda **k: nbxent.binary_cross_entropy_backward(np.ones(n), x, y, reduction="none", **k)  # noqa
        m3 = 4.0 / 0.1**3
    fx = np.abs(f(x, y)) + 1.0
    fd_x = (f(x + h, y) - f(x - h, y)) / (2 * h)
    fd_y = (f(x, y + h) - f(x, y - h)) / (2 * h)
    eps = np.finfo(np.float64).eps
    tol_x = h**2 / 6 * m3 + 4 * eps * fx / h
    tol_y = 4 * eps * fx / h
    assert np.all(np.abs(b() - fd_x) <= tol_x), np.max(np.abs(b() - fd_x) / tol_x)
    assert np.all(np.abs(b(wrt="target") - fd_y) <= tol_y), np.max(np.abs(b(wrt="target") - fd_y) / tol_y)


def _exc(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001  (the type is what is compared)
        return type(e)
    return None


@pytest.mark.parametrize("make", [
    lambda m: m.bce(np.full((2,), 0.5), np.zeros(3)),
    lambda m: m.bce(np.full((2,), 1.5), np.zeros(2)),
    lambda m: m.bce(np.full((2,), 0.5), np.full((2,), np.nan)),
    lambda m: m.bce(np.full((2,), 0.5, np.float32), np.zeros(2)),
    lambda m: m.bce(np.full((2, 3), 0.5), np.zeros((2, 3)), weight=np.ones(2)),
    lambda m: m.bce(np.full((2, 3), 0.5), np.zeros((2, 3)), weight=np.ones((2, 2, 3))),
    lambda m: m.bce(np.array([0, 1]), np.array([0, 1])),
    lambda m: m.bce(np.full((2,), 0.5), np.zeros(2), reduction="avg"),
    lambda m: m.bcewl(np.zeros(2), np.zeros(3)),
    lambda m: m.bcewl(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=np.ones(2)),
    lambda m: m.bcewl(np.zeros((2, 3)), np.zeros((2, 3)), weight=np.ones(2)),
    lambda m: m.bcewl(np.zeros((2, 3)), np.zeros((2, 3), dtype=np.int64)),
    lambda m: m.bcewl(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool)),
    lambda m: m.bcewl(np.array([1, 2]), np.array([1.0, 0.0])),
    lambda m: m.bcewl(np.array(0.5), np.array(1.0), pos_weight=np.ones(1)),
])
def test_exception_types_match_torch(make):
    class Ours:
        bce = staticmethod(nbxent.binary_cross_entropy)
        bcewl = staticmethod(nbxent.binary_cross_entropy_with_logits)

    class Torch:
        @staticmethod
        def bce(x, y, weight=None, reduction="mean"):
            return F.binary_cross_entropy(T(x), T(y), weight=T(weight), reduction=reduction)

        @staticmethod
        def bcewl(x, y, weight=None, reduction="mean", pos_weight=None):
            return F.binary_cross_entropy_with_logits(T(x), T(y), weight=T(weight), reduction=reduction,
                                                      pos_weight=T(pos_weight))

    expected = _exc(lambda: make(Torch))
    assert expected is not None
    assert _exc(lambda: make(Ours)) is expected
