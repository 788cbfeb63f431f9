"""cross_entropy's LLM options (z-loss, softcap, returned z-loss and lse) on the session's backend.

Runs on the CPU and, under the CUDA simulator, on CUDA (``backend`` fixture). Values and
gradients are compared with the harness's mpmath oracle (exact, which defines the options
from their formulas: docs/semantics.md §13.1) through the one comparison helper
(tests/support.py); the returned z-loss and lse with compositions of the formulas in
float64 (scipy's logsumexp of the capped logits).
"""
import numpy as np
import pytest
from scipy.special import logsumexp

from support import assert_matches_reference, assert_within

C = 13
Z = 1e-2          # large enough that the z-loss is a visible part of every value and gradient


def _index_case(dtype, seed=0, N=4):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 4).astype(dtype)
    t = rng.integers(0, C, N)
    t[1] = -100
    w = rng.uniform(0.1, 2.0, C).astype(dtype)
    return x, t, w


def _lse_ref(x, cap):
    """float64 composition: the log-sum-exp of the capped logits along the class axis."""
    x = np.asarray(x, dtype=np.float64)
    y = x if cap is None else cap * np.tanh(x / cap)
    return logsumexp(y, axis=0 if x.ndim == 1 else 1)


def _lse_tol(x, cap, dtype):
    """A few roundings of the terms of ``lse = m + log(sum exp(y - m))`` in the result's dtype
    (the capped logit itself carries 3 more): ``8 eps (|m| + |lse - m| + 1)``."""
    x = np.asarray(x, dtype=np.float64)
    y = x if cap is None else cap * np.tanh(x / cap)
    ax = 0 if x.ndim == 1 else 1
    m = np.max(y, axis=ax)
    lse = logsumexp(y, axis=ax)
    return 8 * float(np.finfo(dtype).eps) * (np.abs(m) + np.abs(lse - m) + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("cap,z,eps", [(None, Z, 0.0), (3.0, 0.0, 0.0), (3.0, Z, 0.2)])
def test_index_targets(backend, dtype, reduction, cap, z, eps):
    x, t, w = _index_case(dtype)
    x0 = x.copy()
    kw = dict(reduction=reduction, label_smoothing=eps, lse_square_scale=z, softcap=cap)
    out = backend.cross_entropy_with_grad(x, t, weight=w, return_z_loss=True,
                                          return_lse=True, **kw)
    assert out.loss.dtype == dtype and out.grad.dtype == dtype and out.z_loss.dtype == dtype
    assert out.lse.dtype == dtype and out.lse.shape == (x.shape[0],)
    assert_matches_reference("cross_entropy", "value", out.loss, x, t, w, **kw)
    assert_matches_reference("cross_entropy", "grad", out.grad, x, t, w, **kw)
    np.testing.assert_array_equal(x, x0)
    assert (out.grad[1] == 0).all() and not np.signbit(out.grad[1]).any()
    # the returned lse: every sample, the ignored one included
    assert_within(out.lse, _lse_ref(x, cap), _lse_tol(x, cap, dtype), "lse",
                  "8 eps (|m| + |lse - m| + 1)")
    # the z-loss: z * lse^2 over the non-ignored samples, 'mean' over their count (unweighted)
    lse = _lse_ref(x, cap)
    zv = np.where(t != -100, z * lse ** 2, 0.0)
    want = {"none": zv, "sum": zv.sum(), "mean": zv.sum() / np.count_nonzero(t != -100)}
    tol = 3 * 2 * _lse_tol(x, cap, dtype) * np.abs(z * lse) + float(np.finfo(dtype).eps) * 4 * zv
    if reduction != "none":
        tol = tol.sum()
    assert_within(out.z_loss, want[reduction], tol, "z_loss", "d(z lse^2) = 2 z lse d(lse)")
    # the same options through the forward and the backward alone
    loss = backend.cross_entropy(x, t, weight=w, **kw)
    g = backend.cross_entropy_backward(np.ones(loss.shape), x, t, weight=w, **kw)
    assert_matches_reference("cross_entropy", "value", loss, x, t, w, **kw)
    assert_matches_reference("cross_entropy", "grad", g, x, t, w, **kw)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_probability_targets_kdim(backend, reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 3)) * 5
    p = rng.uniform(0.0, 1.0, (2, 6, 3))
    w = rng.uniform(0.5, 1.5, 6)
    kw = dict(reduction=reduction, label_smoothing=0.1, lse_square_scale=Z, softcap=2.5)
    out = backend.cross_entropy_with_grad(x, p, weight=w, return_lse=True, **kw)
    assert out.z_loss is None and out.lse.shape == (2, 3)
    assert_matches_reference("cross_entropy", "value", out.loss, x, p, w, **kw)
    assert_matches_reference("cross_entropy", "grad", out.grad, x, p, w, **kw)
    assert_within(out.lse, _lse_ref(x, 2.5), _lse_tol(x, 2.5, np.float64), "lse",
                  "8 eps (|m| + |lse - m| + 1)")


def test_index_kdim_and_unbatched(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)) * 3
    t = rng.integers(0, 5, (2, 3))
    t[0, 1] = -100
    kw = dict(reduction="none", lse_square_scale=Z, softcap=1.5)
    loss, g = backend.cross_entropy_with_grad(x, t, **kw)
    assert_matches_reference("cross_entropy", "value", loss, x, t, **kw)
    assert_matches_reference("cross_entropy", "grad", g, x, t, **kw)
    xu = x[0, :, 0].copy()
    kw = dict(reduction="mean", lse_square_scale=Z, softcap=1.5)
    out = backend.cross_entropy_with_grad(xu, np.array(2), return_lse=True, **kw)
    assert out.loss.shape == () and out.lse.shape == ()
    assert_matches_reference("cross_entropy", "value", out.loss, xu, np.array(2), **kw)
    assert_matches_reference("cross_entropy", "grad", out.grad, xu, np.array(2), **kw)


def test_softcap_extremes(backend):
    """Huge and infinite logits stay finite under the cap; a tiny and a huge cap are stable."""
    x = np.array([[1e30, -np.inf, 0.5, np.inf], [3.0, -2.0, 1e-300, 7.0]])
    t = np.array([0, 2])
    for cap in (1e-3, 30.0, 1e300):
        kw = dict(reduction="none", softcap=cap)
        loss, g = backend.cross_entropy_with_grad(x, t, **kw)
        assert np.isfinite(loss).all() and np.isfinite(g).all()
        assert_matches_reference("cross_entropy", "value", loss, x, t, **kw)
        assert_matches_reference("cross_entropy", "grad", g, x, t, **kw)


def test_in_place_and_options_off_bits(backend):
    x, t, w = _index_case(np.float32, seed=5)
    # every option at its default: the very same bits as the call without the keywords
    a = backend.cross_entropy_with_grad(x, t, weight=w)
    b = backend.cross_entropy_with_grad(x, t, weight=w, lse_square_scale=0.0, softcap=None)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # in place with the options on equals the out-of-place result
    kw = dict(lse_square_scale=Z, softcap=4.0)
    want = backend.cross_entropy_with_grad(x, t, weight=w, **kw)
    if backend.__name__ == "nbxent":        # out= is a host array on the CPU backend
        xi = x.copy()
        got = backend.cross_entropy_with_grad(xi, t, weight=w, out=xi, **kw)
        assert got[1] is xi
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])


def test_all_ignored_and_empty(backend):
    x = np.zeros((2, 3))
    t = np.array([-100, -100])
    out = backend.cross_entropy(x, t, lse_square_scale=Z, return_z_loss=True)
    assert np.isnan(out.loss) and np.isnan(out.z_loss)
    out = backend.cross_entropy(x, t, lse_square_scale=Z, return_z_loss=True, reduction="sum")
    assert out.loss == 0 and out.z_loss == 0
    e = backend.cross_entropy(np.zeros((0, 3)), np.zeros(0, np.int64), lse_square_scale=Z,
                              return_lse=True, reduction="none")
    assert e.loss.shape == (0,) and e.lse.shape == (0,)


@pytest.mark.parametrize("kw,exc,text", [
    (dict(softcap=0.0), ValueError, "'softcap'"),
    (dict(softcap=-1.0), ValueError, "'softcap'"),
    (dict(softcap=np.inf), ValueError, "'softcap'"),
    (dict(softcap="3"), TypeError, "'softcap'"),
    (dict(lse_square_scale=np.nan), ValueError, "'lse_square_scale'"),
    (dict(lse_square_scale=None), TypeError, "'lse_square_scale'"),
    (dict(return_lse=1), TypeError, "'return_lse'"),
    (dict(return_z_loss="yes"), TypeError, "'return_z_loss'"),
])
def test_option_errors(backend, kw, exc, text):
    with pytest.raises(exc, match=f"cross_entropy: argument {text}"):
        backend.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **kw)


@pytest.mark.parametrize("kw", [dict(), dict(lse_square_scale=Z, softcap=3.0, label_smoothing=0.1)])
def test_bfloat16(backend, kw):
    """bfloat16 inputs: computed in float32 and rounded once (docs/semantics.md §2.8)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x, t, w = _index_case(np.float32, seed=6)
    xb, wb = x.astype(bf16), w.astype(bf16)
    for red in ("none", "mean"):
        out = backend.cross_entropy_with_grad(xb, t, weight=wb, reduction=red, return_lse=True,
                                              **kw)
        assert out.loss.dtype == bf16 and out.grad.dtype == bf16 and out.lse.dtype == np.float32
        args = dict(reduction=red, **kw)
        assert_matches_reference("cross_entropy", "value", out.loss, xb, t, wb, **args)
        assert_matches_reference("cross_entropy", "grad", out.grad, xb, t, wb, **args)
        # rounded once: the float32 computation on the same values, rounded to bfloat16 (its
        # float64 -> float32 -> bfloat16 differs from one rounding only where the float32 value
        # is a bfloat16 tie, ~2^-16 per element: none in this seeded case)
        loss32, grad32 = backend.cross_entropy_with_grad(xb.astype(np.float32), t,
                                                         weight=wb.astype(np.float32), **args)
        np.testing.assert_array_equal(out.loss, np.asarray(loss32).astype(bf16))
        np.testing.assert_array_equal(out.grad, np.asarray(grad32).astype(bf16))
    p = np.abs(x) / np.abs(x).sum(axis=1, keepdims=True)
    loss = backend.cross_entropy(xb, p.astype(bf16), **kw)
    assert loss.dtype == bf16
    assert_matches_reference("cross_entropy", "value", loss, xb, p.astype(bf16), **kw)


@pytest.mark.parametrize("shape", [(2, 3), (1, 3, 2)])
def test_zloss_target_far_below_the_max(backend, shape):
    """lse comes from the row max, not from ``x_t + loss_t`` (which cancels to 0 here)."""
    x = np.array([[0.0, 0.0, -1e25], [1.0, -1e25, 0.5]])
    t = np.array([2, 1])
    if len(shape) == 3:
        x, t = np.stack([x[0], x[1]], axis=-1)[None], t[None]
    kw = dict(reduction="none", lse_square_scale=0.1)
    out = backend.cross_entropy_with_grad(x, t, return_lse=True, **kw)
    assert_matches_reference("cross_entropy", "value", out.loss, x, t, **kw)
    assert_matches_reference("cross_entropy", "grad", out.grad, x, t, **kw)
    assert_within(out.lse, _lse_ref(x, None), _lse_tol(x, None, np.float64), "lse",
                  "8 eps (|m| + |lse - m| + 1)")
