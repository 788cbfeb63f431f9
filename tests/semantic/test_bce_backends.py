"""binary_cross_entropy(_with_logits) on the session's backend against the harness's oracles.

Runs on the CPU and, under the CUDA simulator, on CUDA (``backend`` fixture); references are
mpmath (exact) or torch in float64, tolerances the harness's policy (tests/support.py).
"""
import numpy as np
import pytest

from support import assert_matches_reference, assert_within, make_case, reference

F64_EPS = float(np.finfo(np.float64).eps)


def _probs(dtype, seed, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.02, 0.98, shape).astype(dtype)
    y = rng.uniform(0.0, 1.0, shape).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_loss_and_grads(backend, dtype, reduction):
    x, y = _probs(dtype, 0)
    w = np.array([0.5, 1.0, 2.0, 3.0])  # (C,) weight along the last dim, float64 as torch allows
    loss, gx = backend.binary_cross_entropy_with_grad(x, y, weight=w, reduction=reduction)
    g = np.ones(loss.shape)
    gy = backend.binary_cross_entropy_backward(g, x, y, weight=w, reduction=reduction,
                                               wrt="target")
    assert loss.dtype == dtype and gx.dtype == dtype and gy.dtype == dtype
    assert_matches_reference("binary_cross_entropy", "value", loss, x, y, w, reduction=reduction)
    assert_matches_reference("binary_cross_entropy", "grad", gx, x, y, w, reduction=reduction)
    # d/dy = g w log((1 - x) / x) / n (docs/semantics.md §0). The kernels evaluate it in float64
    # and round once; the CUDA simulator runs float32 inputs in float32 (NumPy's weak promotion
    # of Python floats), a few float32 roundings: 4 ulp of the dtype, plus 8 float64 roundings
    # of the logs' size for the reference
    n = x.size if reduction == "mean" else 1
    x64 = x.astype(np.float64)
    want = w * (np.log1p(-x64) - np.log(x64)) / n
    ulp = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    tol = 4 * ulp + 8 * F64_EPS * np.abs(w) * (np.abs(np.log1p(-x64)) + np.abs(np.log(x64))) / n
    assert_within(gy, want, tol, "d/dtarget", "4 ulp + 8 float64 roundings of the logs")


def test_bce_clamp_and_signed_zero(backend):
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    got = backend.binary_cross_entropy(x, y, reduction="none")
    want = reference(make_case("binary_cross_entropy", x, y, reduction="none"), "value", "torch")
    np.testing.assert_array_equal(got, want)  # same glibc-order formula: exact
    assert np.signbit(got[3])                  # x = 1, y = 1: -0.0 as torch


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bcewl_pos_weight_and_weight(backend, reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)) * 4
    y = rng.uniform(0, 1, (2, 3, 4))
    pw = np.array([[3.0], [0.5], [2.0]])   # per channel: (C, 1) against (2, 3, 4)
    w = np.array([[1.5], [0.5]])[:, :, None]  # (2, 1, 1): per batch row
    loss, gx = backend.binary_cross_entropy_with_logits_with_grad(
        x, y, weight=w, reduction=reduction, pos_weight=pw)
    g = np.ones(loss.shape)
    gy = backend.binary_cross_entropy_with_logits_backward(
        g, x, y, weight=w, reduction=reduction, pos_weight=pw, wrt="target")
    name = "binary_cross_entropy_with_logits"
    assert_matches_reference(name, "value", loss, x, y, w, pw, reduction=reduction)
    assert_matches_reference(name, "grad", gx, x, y, w, pw, reduction=reduction)
    # d/dy = g w (logsig(-x) - pw logsig(x)) / n: float64 terms of size (1 + |x|) |w| (1 + |pw|)
    n = x.size if reduction == "mean" else 1
    logsig = lambda v: np.minimum(v, 0) - np.log1p(np.exp(-np.abs(v)))
    want = w * (logsig(-x) - pw * logsig(x)) / n
    tol = 8 * F64_EPS * (1 + np.abs(x)) * np.abs(w) * (1 + np.abs(pw)) / n
    assert_within(gy, want, tol, "d/dtarget", "8 float64 roundings of the terms' size")


def test_bcewl_infinite_logits_and_target_dtype(backend):
    inf = np.inf
    x = np.array([-inf, inf, -inf, inf])
    y = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    loss, gx = backend.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    assert loss.dtype == np.float32                 # torch: the result has the target's dtype
    case = make_case("binary_cross_entropy_with_logits", x, y, reduction="none",
                     grad_output=np.ones(4))
    # torch's pattern (docs/semantics.md §8.2, §10.4): NaN except (+inf, 0) -> inf; the
    # gradient is finite, sigmoid(+-inf) - y, exactly
    np.testing.assert_array_equal(loss, reference(case, "value", "torch"))
    np.testing.assert_array_equal(gx, reference(case, "grad", "torch"))


def test_bcewl_tiny_loss_is_kept_in_float32(backend):
    x = np.array([-20.0], dtype=np.float32)
    y = np.zeros(1, np.float32)
    got = backend.binary_cross_entropy_with_logits(x, y, reduction="sum")
    # torch float32 returns 0 here; the exact value to 2 float32 ulp (docs/semantics.md §14)
    assert_matches_reference("binary_cross_entropy_with_logits", "value", got, x, y,
                             reduction="sum")
    exact = reference(make_case("binary_cross_entropy_with_logits", x, y, reduction="sum"), "value")
    assert_within(got, exact, 2 * np.finfo(np.float32).eps * exact, "tiny loss", "2 float32 ulp")


def test_bce_half_precision_result(backend):
    x, y = _probs(np.float16, 2)
    got = backend.binary_cross_entropy(x, y, reduction="none")
    assert got.dtype == np.float16
    want = reference(make_case("binary_cross_entropy", x, y, reduction="none"), "value")
    # float64 evaluation, one rounding to half: within one half-precision ulp of the exact value
    assert_within(got, want, np.abs(want) * float(np.finfo(np.float16).eps), "float16 loss",
                  "one float16 rounding")
