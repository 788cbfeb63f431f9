"""cross_entropy / nll_loss on the session's backend against the harness's oracles.

Runs on the CPU and, under the CUDA simulator, on CUDA (``backend`` fixture). References are
mpmath (exact) for these small cases, or torch in float64 where torch's own NaN/inf pattern is
the point; tolerances are the harness's policy (tests/support.py).
"""
import numpy as np
import pytest
from scipy.special import logsumexp

from support import assert_matches_reference, assert_within, make_case, reference

C = 37  # not a multiple of the block size: the class loop has a ragged tail


def _case(dtype, seed=0, N=4, C=C):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = rng.integers(0, C, N)
    t[1] = -100
    w = rng.uniform(0.1, 2.0, C).astype(dtype)
    return x, t, w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_index_targets_loss_and_grad(backend, dtype, reduction, eps):
    x, t, w = _case(dtype)
    x0 = x.copy()
    loss, g = backend.cross_entropy_with_grad(x, t, weight=w, reduction=reduction,
                                              label_smoothing=eps)
    assert loss.dtype == dtype and g.dtype == dtype and g.shape == x.shape
    kw = dict(reduction=reduction, label_smoothing=eps)
    assert_matches_reference("cross_entropy", "value", loss, x, t, w, **kw)
    assert_matches_reference("cross_entropy", "grad", g, x, t, w, **kw)
    np.testing.assert_array_equal(x, x0)  # inputs are never modified
    assert (g[1] == 0).all() and not np.signbit(g[1]).any()  # the ignored sample: exactly +0.0


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_backward_with_upstream_gradient(backend, reduction):
    x, t, w = _case(np.float64, seed=1)
    g = np.array(0.75) if reduction == "mean" else np.linspace(-1, 2, x.shape[0])
    got = backend.cross_entropy_backward(g, x, t, weight=w, reduction=reduction,
                                         label_smoothing=0.1)
    assert_matches_reference("cross_entropy", "grad", got, x, t, w, grad_output=g,
                             reduction=reduction, label_smoothing=0.1)


def test_kdim_input_class_stride(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3, 2))
    t = rng.integers(0, 5, (2, 3, 2))
    t[0, 1, 1] = -100
    w = rng.uniform(0.5, 1.5, 5)
    kw = dict(reduction="none", label_smoothing=0.3)
    loss, g = backend.cross_entropy_with_grad(x, t, weight=w, **kw)
    assert loss.shape == (2, 3, 2)
    assert_matches_reference("cross_entropy", "value", loss, x, t, w, **kw)
    assert_matches_reference("cross_entropy", "grad", g, x, t, w, **kw)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_probability_targets_and_target_gradient(backend, reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 2))
    p = rng.uniform(-0.2, 1.0, (3, 6, 2))  # torch does not validate probabilities
    w = rng.uniform(0.5, 1.5, 6)
    kw = dict(reduction=reduction, label_smoothing=0.25)
    loss, g = backend.cross_entropy_with_grad(x, p, weight=w, **kw)
    gq = backend.cross_entropy_backward(np.ones(loss.shape), x, p, weight=w, wrt="target", **kw)
    assert_matches_reference("cross_entropy", "value", loss, x, p, w, **kw)
    assert_matches_reference("cross_entropy", "grad", g, x, p, w, **kw)
    # d/dp_c = -(1 - eps) g_s w_c lp_c (docs/semantics.md §0): lp_c = (x_c - m) - log(s) is
    # within a few roundings of |x_c| + |lse|, and the product adds three: 8 float64 roundings
    # of (|x_c| + |lse|) |w_c g_s| bound it.
    lse = logsumexp(x, axis=1, keepdims=True)
    g_s = 1.0 / (3 * 2) if reduction == "mean" else 1.0
    want = -(1 - 0.25) * g_s * w[None, :, None] * (x - lse)
    tol = 8 * np.finfo(np.float64).eps * (np.abs(x) + np.abs(lse)) * np.abs(g_s * w[None, :, None])
    assert_within(gq, want, tol, "d/dtarget", "8 float64 roundings of (|x| + |lse|) |g w|")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss(backend, reduction):
    x, t, w = _case(np.float32, seed=4)
    loss, g = backend.nll_loss_with_grad(x, t, weight=w, reduction=reduction)
    assert_matches_reference("nll_loss", "value", loss, x, t, w, reduction=reduction)
    assert_matches_reference("nll_loss", "grad", g, x, t, w, reduction=reduction)


def test_c_equals_one_signed_zeros(backend):
    x = np.array([[0.5], [-1.0]])
    t = np.array([0, 0])
    none = backend.cross_entropy(x, t, reduction="none")
    assert (none == 0).all() and np.signbit(none).all()       # torch: -(lp * w) = -0.0
    s = backend.cross_entropy(x, t, reduction="sum")
    assert s == 0 and not np.signbit(s)                        # torch: 0 - 0 = +0.0
    _, g = backend.cross_entropy_with_grad(x, t)
    assert (g == 0).all()


def test_empty_batch_and_all_ignored(backend):
    x = np.zeros((0, 3))
    e = np.zeros(0, dtype=np.int64)
    assert np.isnan(backend.cross_entropy(x, e))
    assert backend.cross_entropy(x, e, reduction="sum") == 0
    assert backend.cross_entropy(x, e, reduction="none").shape == (0,)
    s = backend.cross_entropy(x, np.zeros((0, 3)), reduction="sum")
    assert s == 0 and np.signbit(s)                            # torch: -(empty sum) = -0.0
    xa = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    ta = np.array([-100, -100])
    loss, g = backend.cross_entropy_with_grad(xa, ta, label_smoothing=0.1)
    assert np.isnan(loss) and (g == 0).all()                   # 0/0 forward, zero gradient
    assert backend.nll_loss(xa, ta, reduction="sum") == 0


def test_nonfinite_rows_follow_torch(backend):
    # docs/semantics.md §9, §10.2: torch's NaN/inf patterns (torch is the oracle here)
    inf, nan = np.inf, np.nan
    x = np.array([[inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf] * 3, [nan, 0.0, 1.0]])
    t = np.array([1, 0, 1, 0, -100])
    got = backend.cross_entropy(x, t, reduction="none")
    assert_matches_reference("cross_entropy", "value", got, x, t, reduction="none", oracle="torch")
    # the ignored NaN row does not leak into the mean; its gradient is NaN as torch's
    loss, g = backend.cross_entropy_with_grad(x[1:3], t[1:3])
    assert_matches_reference("cross_entropy", "value", loss, x[1:3], t[1:3], oracle="torch")
    assert_matches_reference("cross_entropy", "grad", g, x[1:3], t[1:3], oracle="torch")
    xm = np.array([[nan, 0.0, 1.0], [0.5, 0.2, 0.1]])
    tm = np.array([-100, 1])
    loss, g = backend.cross_entropy_with_grad(xm, tm)
    assert_matches_reference("cross_entropy", "value", loss, xm, tm, oracle="torch")
    assert_matches_reference("cross_entropy", "grad", g, xm, tm, oracle="torch")
    assert np.isnan(g[0]).all()


def test_unbatched_input_with_weight(backend):
    x = np.array([0.5, -1.0, 2.0])
    w = np.array([1.0, 3.0, 1.0])
    for red in ("none", "mean", "sum"):
        got = backend.cross_entropy(x, np.array(1), weight=w, reduction=red)
        assert got.shape == ()
        assert_matches_reference("cross_entropy", "value", got, x, np.array(1), w, reduction=red)


def test_confident_rows_keep_tiny_losses(backend):
    # torch's lse - x_t cancels to 0 in float32; the split-sum form keeps exp(-40) * 2, and
    # p_t - 1 = -(tail): both to a few ulp of their own (tiny) size, which the policy's
    # term-size bound would not resolve (docs/semantics.md §14)
    x = np.array([[40.0, 0.0, 0.0]], dtype=np.float32)
    t = np.array([0])
    loss, g = backend.cross_entropy_with_grad(x, t, reduction="sum")
    case = make_case("cross_entropy", x, t, reduction="sum")
    exact_l = reference(case, "value")
    exact_g = reference(case, "grad")
    four_ulp = 4 * np.finfo(np.float32).eps
    assert_within(loss, exact_l, four_ulp * np.abs(exact_l), "tiny loss", "4 float32 ulp")
    assert_within(g[0, 0], exact_g[0, 0], four_ulp * abs(exact_g[0, 0]), "p_t - 1", "4 float32 ulp")


def test_float16_is_computed_in_float32_and_rounded_once(backend):
    x, t, _ = _case(np.float32, seed=5)
    x16 = x.astype(np.float16)
    got = backend.cross_entropy(x16, t, reduction="none")
    ref = backend.cross_entropy(x16.astype(np.float32), t, reduction="none")
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, ref.astype(np.float16))


def test_reproducible_run_to_run(backend):
    x, t, w = _case(np.float32, seed=6, N=6)
    a = backend.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
    b = backend.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
