"""binary_cross_entropy(_with_logits) on the CUDA backend against torch float64 autograd."""
import numpy as np
import pytest

import nbxent.cuda as nc

from _cuda_helpers import assert_close, tol, torch_bce


def _probs(dtype, seed, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.02, 0.98, shape).astype(dtype)
    y = rng.uniform(0.0, 1.0, shape).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_loss_and_grads(dtype, reduction):
    x, y = _probs(dtype, 0)
    w = np.array([0.5, 1.0, 2.0, 3.0])  # (C,) weight along the last dim, float64 as torch allows
    loss, gx = nc.binary_cross_entropy_with_grad(x, y, weight=w, reduction=reduction)
    g = np.ones(loss.shape)
    gy = nc.binary_cross_entropy_backward(g, x, y, weight=w, reduction=reduction, wrt="target")
    want_l, want_gx, want_gy = torch_bce(x, y, w, reduction)
    assert loss.dtype == dtype and gx.dtype == dtype and gy.dtype == dtype
    # each element is evaluated in float64 and rounded once to the dtype; sums add 12 terms
    n_terms = 1 if reduction == "none" else x.size
    assert_close("loss", loss, want_l, tol(dtype, np.abs(want_l).max() * n_terms + 1e-300, 2))
    assert_close("grad_x", gx, want_gx, tol(dtype, np.abs(want_gx), 2))
    assert_close("grad_y", gy, want_gy, tol(dtype, np.abs(want_gy), 4))


def test_bce_clamp_and_signed_zero():
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    got = nc.binary_cross_entropy(x, y, reduction="none")
    want, _, _ = torch_bce(x, y, reduction="none")
    np.testing.assert_array_equal(got, want)  # same glibc-order formula: exact
    assert np.signbit(got[3])                  # x = 1, y = 1: -0.0 as torch


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bcewl_pos_weight_and_weight(reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)) * 4
    y = rng.uniform(0, 1, (2, 3, 4))
    pw = np.array([[3.0], [0.5], [2.0]])   # per channel: (C, 1) against (2, 3, 4)
    w = np.array([[1.5], [0.5]])[:, :, None]  # (2, 1, 1): per batch row
    loss, gx = nc.binary_cross_entropy_with_logits_with_grad(x, y, weight=w, reduction=reduction,
                                                             pos_weight=pw)
    g = np.ones(loss.shape)
    gy = nc.binary_cross_entropy_with_logits_backward(g, x, y, weight=w, reduction=reduction,
                                                      pos_weight=pw, wrt="target")
    want_l, want_gx, want_gy = torch_bce(x, y, w, reduction, pw, logits=True)
    n_terms = 1 if reduction == "none" else x.size
    # terms are |x|-sized products of pw, y and w (max 3 * 1.5)
    scale = (1 + np.abs(x)) * 4.5
    assert_close("loss", loss, want_l, tol(np.float64, scale.max() * n_terms))
    assert_close("grad_x", gx, want_gx, tol(np.float64, 4.5))
    assert_close("grad_y", gy, want_gy, tol(np.float64, scale))


def test_bcewl_infinite_logits_and_target_dtype():
    inf = np.inf
    x = np.array([-inf, inf, -inf, inf])
    y = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    loss, gx = nc.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    assert loss.dtype == np.float32                 # torch: the result has the target's dtype
    want_l, want_gx, _ = torch_bce(x, y, reduction="none", logits=True)
    assert_close("loss", loss, want_l, 0.0)         # NaN except (+inf, 0) -> inf
    assert_close("grad", gx, want_gx, 0.0)          # finite: sigmoid(+-inf) - y


def test_bcewl_tiny_loss_is_kept_in_float32():
    x = np.array([-20.0], dtype=np.float32)
    got = float(nc.binary_cross_entropy_with_logits(x, np.zeros(1, np.float32), reduction="sum"))
    exact = np.log1p(np.exp(-20.0))               # torch float32 returns 0 here
    assert abs(got - exact) <= tol(np.float32, exact, 2)


def test_bce_half_precision_result():
    x, y = _probs(np.float16, 2)
    got = nc.binary_cross_entropy(x, y, reduction="none")
    assert got.dtype == np.float16
    want, _, _ = torch_bce(x, y, reduction="none")
    # float64 evaluation, one rounding to half
    assert_close("loss", got, want, np.abs(want) * float(np.finfo(np.float16).eps))
