"""cross_entropy / nll_loss on the CUDA backend against torch float64 autograd."""
import numpy as np
import pytest

import nbxent.cuda as nc

from _cuda_helpers import assert_close, tol, torch_ce

C = 37  # not a multiple of the block size: the class loop has a ragged tail


def _case(dtype, seed=0, N=4, C=C):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = rng.integers(0, C, N)
    t[1] = -100
    w = rng.uniform(0.1, 2.0, C).astype(dtype)
    return x, t, w


def _scale(x, w=None):
    # lse and softmax terms are combined from |x| + log(C) sized values, times the weights
    wmax = 1.0 if w is None else float(np.max(np.abs(w)))
    return (1.0 + np.max(np.abs(x)) + np.log(x.shape[1])) * wmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_index_targets_loss_and_grad(dtype, reduction, eps):
    x, t, w = _case(dtype)
    x0 = x.copy()
    loss, g = nc.cross_entropy_with_grad(x, t, weight=w, reduction=reduction, label_smoothing=eps)
    want_l, want_g, _ = torch_ce(x, t, w, reduction=reduction, label_smoothing=eps)
    assert loss.dtype == dtype and g.dtype == dtype and g.shape == x.shape
    # loss: each sample is a log-sum-exp of |x|-sized terms times w; a sum adds N of them
    n_terms = 1 if reduction == "none" else x.shape[0]
    assert_close("loss", loss, want_l, tol(dtype, _scale(x, w) * n_terms))
    assert_close("grad", g, want_g, tol(dtype, _scale(x, w)))
    np.testing.assert_array_equal(x, x0)  # inputs are never modified
    assert (g[1] == 0).all() and not np.signbit(g[1]).any()  # the ignored sample: exactly +0.0


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_backward_with_upstream_gradient(reduction):
    x, t, w = _case(np.float64, seed=1)
    g = np.array(0.75) if reduction == "mean" else np.linspace(-1, 2, x.shape[0])
    got = nc.cross_entropy_backward(g, x, t, weight=w, reduction=reduction, label_smoothing=0.1)
    _, want, _ = torch_ce(x, t, w, reduction=reduction, label_smoothing=0.1, g=g)
    assert_close("grad", got, want, tol(np.float64, _scale(x, w) * 2))


def test_kdim_input_class_stride():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3, 2))
    t = rng.integers(0, 5, (2, 3, 2))
    t[0, 1, 1] = -100
    w = rng.uniform(0.5, 1.5, 5)
    loss, g = nc.cross_entropy_with_grad(x, t, weight=w, reduction="none", label_smoothing=0.3)
    want_l, want_g, _ = torch_ce(x, t, w, reduction="none", label_smoothing=0.3)
    assert loss.shape == (2, 3, 2)
    assert_close("loss", loss, want_l, tol(np.float64, _scale(x, w)))
    assert_close("grad", g, want_g, tol(np.float64, _scale(x, w)))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_probability_targets_and_target_gradient(reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 2))
    p = rng.uniform(-0.2, 1.0, (3, 6, 2))  # torch does not validate probabilities
    w = rng.uniform(0.5, 1.5, 6)
    loss, g = nc.cross_entropy_with_grad(x, p, weight=w, reduction=reduction, label_smoothing=0.25)
    gq = nc.cross_entropy_backward(np.ones(loss.shape), x, p, weight=w, reduction=reduction,
                                   label_smoothing=0.25, wrt="target")
    want_l, want_g, want_q = torch_ce(x, p, w, reduction=reduction, label_smoothing=0.25)
    n_terms = 1 if reduction == "none" else 6
    # probability terms: |w q| * |lp| summed over C classes
    scale = _scale(x, w) * 6 * n_terms
    assert_close("loss", loss, want_l, tol(np.float64, scale))
    assert_close("grad", g, want_g, tol(np.float64, scale))
    assert_close("grad_target", gq, want_q, tol(np.float64, scale))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss(reduction):
    x, t, w = _case(np.float32, seed=4)
    loss, g = nc.nll_loss_with_grad(x, t, weight=w, reduction=reduction)
    want_l, want_g, _ = torch_ce(x, t, w, reduction=reduction, nll=True)
    # one product per sample (exact in float64), then a float32 rounding and a sum
    n_terms = 1 if reduction == "none" else x.shape[0]
    assert_close("loss", loss, want_l, tol(np.float32, np.max(np.abs(x)) * 2 * n_terms, ulps=2))
    assert_close("grad", g, want_g, tol(np.float32, 2.0, ulps=2))


def test_c_equals_one_signed_zeros():
    x = np.array([[0.5], [-1.0]])
    t = np.array([0, 0])
    none = nc.cross_entropy(x, t, reduction="none")
    assert (none == 0).all() and np.signbit(none).all()       # torch: -(lp * w) = -0.0
    s = nc.cross_entropy(x, t, reduction="sum")
    assert s == 0 and not np.signbit(s)                        # torch: 0 - 0 = +0.0
    _, g = nc.cross_entropy_with_grad(x, t)
    assert (g == 0).all()


def test_empty_batch_and_all_ignored():
    x = np.zeros((0, 3))
    e = np.zeros(0, dtype=np.int64)
    assert np.isnan(nc.cross_entropy(x, e))
    assert nc.cross_entropy(x, e, reduction="sum") == 0
    assert nc.cross_entropy(x, e, reduction="none").shape == (0,)
    s = nc.cross_entropy(x, np.zeros((0, 3)), reduction="sum")
    assert s == 0 and np.signbit(s)                            # torch: -(empty sum) = -0.0
    xa = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    ta = np.array([-100, -100])
    loss, g = nc.cross_entropy_with_grad(xa, ta, label_smoothing=0.1)
    assert np.isnan(loss) and (g == 0).all()                   # 0/0 forward, zero gradient
    assert nc.nll_loss(xa, ta, reduction="sum") == 0


def test_nonfinite_rows_follow_torch():
    inf, nan = np.inf, np.nan
    x = np.array([[inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf] * 3, [nan, 0.0, 1.0]])
    t = np.array([1, 0, 1, 0, -100])
    got = nc.cross_entropy(x, t, reduction="none")
    want, _, _ = torch_ce(x, t, reduction="none")
    assert_close("loss", got, want, tol(np.float64, 4.0))
    # the ignored NaN row does not leak into the mean; its gradient is NaN as torch's
    loss, g = nc.cross_entropy_with_grad(x[1:3], t[1:3])
    want_l, want_g, _ = torch_ce(x[1:3], t[1:3])
    assert_close("mean", loss, want_l, tol(np.float64, 4.0))
    assert_close("grad", g, want_g, tol(np.float64, 4.0))
    xm = np.array([[nan, 0.0, 1.0], [0.5, 0.2, 0.1]])
    loss, g = nc.cross_entropy_with_grad(xm, np.array([-100, 1]))
    want_l, want_g, _ = torch_ce(xm, np.array([-100, 1]))
    assert_close("mean", loss, want_l, tol(np.float64, 4.0))
    assert_close("grad", g, want_g, tol(np.float64, 4.0))


def test_unbatched_input_with_weight():
    x = np.array([0.5, -1.0, 2.0])
    w = np.array([1.0, 3.0, 1.0])
    for red in ("none", "mean", "sum"):
        got = nc.cross_entropy(x, np.array(1), weight=w, reduction=red)
        want, _, _ = torch_ce(x, np.array(1), w, reduction=red)
        assert got.shape == ()
        assert_close(red, got, want, tol(np.float64, 3 * _scale(x[None], w)))


def test_confident_rows_keep_tiny_losses():
    # torch's lse - x_t cancels to 0 in float32; the split-sum form keeps exp(-40) * 2
    x = np.array([[40.0, 0.0, 0.0]], dtype=np.float32)
    loss, g = nc.cross_entropy_with_grad(x, np.array([0]), reduction="sum")
    exact = np.log1p(2 * np.exp(-40.0))
    assert abs(float(loss) - exact) <= tol(np.float32, exact)
    assert abs(float(g[0, 0]) + exact) <= tol(np.float32, exact)  # p_t - 1 = -(tail) to ~1 ulp


def test_float16_is_computed_in_float32_and_rounded_once():
    x, t, _ = _case(np.float32, seed=5)
    x16 = x.astype(np.float16)
    got = nc.cross_entropy(x16, t, reduction="none")
    ref = nc.cross_entropy(x16.astype(np.float32), t, reduction="none")
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, ref.astype(np.float16))


def test_reproducible_run_to_run():
    x, t, w = _case(np.float32, seed=6, N=6)
    a = nc.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
    b = nc.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
