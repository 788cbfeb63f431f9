"""cross_entropy / nll_loss API: torch's worked examples (every formula of docs/semantics.md §0 for
CE/NLL), layouts, dtypes, out= / in-place, input immutability, docstring examples."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import nbxent
import nbxent.functional

from ce_support import K_VALUE, assert_close, u

F64 = np.float64
X2 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], F64)
X3 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0]], F64)
P2 = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], F64)
W3 = np.array([0.2, 1.0, 3.0], F64)


def near(actual, expected, mag=8.0):
    """Reference values are torch's float64 prints, whose log_softmax carries an absolute error of
    a few roundings of ``|x| + |lse|`` (docs/semantics.md §2.7); ``mag`` = 8 bounds that for these rows
    (|x| <= 3, lse <= 4). Semantics are checked here; accuracy in test_ce_golden."""
    e = np.asarray(expected, F64)
    assert_close(actual, e, K_VALUE * u(F64) * (np.abs(e) + mag), "torch example")


def test_docstring_examples_run():
    res = doctest.testmod(nbxent.functional, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 6 and res.failed == 0


# --------------------------------------------------- docs/semantics.md §0, §1

def test_unbatched_index_nll_and_prob_targets():
    x = np.array([1.0, 2.0, 3.0])
    near(nbxent.cross_entropy(x, np.array(2), reduction="none"), 0.40760596444438041)
    near(nbxent.cross_entropy(x, np.array([2]), reduction="none"), 0.40760596444438041)
    assert nbxent.nll_loss(x, np.array([2]), reduction="none") == -3.0
    near(nbxent.cross_entropy(x, np.array([0.2, 0.3, 0.5]), reduction="none"),
         1.10760596444438053)
    assert nbxent.cross_entropy(x, np.array(2), reduction="none").shape == ()


def test_spatial_values_and_shapes():
    x = np.arange(24, dtype=F64).reshape(2, 3, 4) / 7
    got = nbxent.cross_entropy(x, np.array([[0, 1, 2, 0], [2, 2, 1, 0]]), reduction="none")
    near(got, [[1.77605508437333626, 1.20462651294476464, 0.63319794151619335,
                1.77605508437333626],
               [0.63319794151619324, 0.63319794151619324, 1.20462651294476464,
                1.77605508437333626]])
    x5 = np.zeros((2, 3, 2, 2, 2))
    assert nbxent.cross_entropy(x5, np.zeros((2, 2, 2, 2), np.int64),
                                reduction="none").shape == (2, 2, 2, 2)


@pytest.mark.parametrize("red,expect", [("none", (0,)), ("mean", np.nan), ("sum", 0.0)])
def test_empty_batch(red, expect):
    x = np.zeros((0, 3))
    ce = nbxent.cross_entropy(x, np.zeros(0, np.int64), reduction=red)
    nll = nbxent.nll_loss(x, np.zeros(0, np.int64), reduction=red)
    prob = nbxent.cross_entropy(x, np.zeros((0, 3)), reduction=red)
    ls = nbxent.cross_entropy(x, np.zeros(0, np.int64), label_smoothing=0.1, reduction=red)
    for r in (ce, nll, prob, ls):
        if red == "none":
            assert r.shape == expect and r.dtype == F64
        elif red == "mean":
            assert r.shape == () and np.isnan(r)
        else:
            assert r == 0.0
    if red == "sum":
        assert not np.signbit(ce) and np.signbit(prob)       # -(sum of empty) for prob targets
    loss, grad = nbxent.cross_entropy_with_grad(x, np.zeros(0, np.int64))
    assert np.isnan(loss) and grad.shape == (0, 3)
    e = nbxent.cross_entropy(np.zeros((2, 3, 0)), np.zeros((2, 0), np.int64), reduction="none")
    assert e.shape == (2, 0)


def test_c_equals_one_signed_zeros_and_zero_gradient():
    x = np.array([[0.5], [-1.0]])
    t = np.array([0, 0])
    none = nbxent.cross_entropy(x, t, reduction="none")
    assert np.all(none == 0) and np.all(np.signbit(none))             # -lp*w = -0.0
    for red in ("mean", "sum"):
        r = nbxent.cross_entropy(x, t, reduction=red)
        assert r == 0 and not np.signbit(r)
    np.testing.assert_array_equal(nbxent.nll_loss(x, t, reduction="none"), [-0.5, 1.0])
    assert nbxent.nll_loss(x, t) == 0.25 and nbxent.nll_loss(x, t, reduction="sum") == 0.5
    un = nbxent.cross_entropy(np.array([0.3]), np.array(0))
    pr = nbxent.cross_entropy(np.array([0.3]), np.array([0.5]))
    assert un == 0 and not np.signbit(un) and pr == 0 and np.signbit(pr)
    g = nbxent.cross_entropy_backward(np.array(1.0), x, t)
    assert np.all(g == 0)
    with pytest.raises(IndexError, match="Target 1"):
        nbxent.cross_entropy(x, np.array([0, 1]))


# ------------------------------------------------------- docs/semantics.md §2

def test_integer_target_dtypes_accepted():
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    ref = nbxent.cross_entropy(x, np.array([1]))
    for dt in (np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64):
        assert nbxent.cross_entropy(x, np.array([1], dt)) == ref
    xs = np.zeros((1, 3, 2), np.float32)
    r = nbxent.cross_entropy(xs, np.array([[1, 0]], np.uint8))   # torch rejects uint8 here
    assert r == nbxent.cross_entropy(xs, np.array([[1, 0]]))


def test_result_dtypes():
    x = np.array([[1.0, 2.0, 3.0]])
    for dt in (np.float16, np.float32, np.float64):
        assert nbxent.cross_entropy(x.astype(dt), np.array([2])).dtype == dt
        assert nbxent.nll_loss(x.astype(dt), np.array([2])).dtype == dt
    p = np.array([[0.2, 0.3, 0.5]])
    assert nbxent.cross_entropy(x.astype(np.float32), p).dtype == F64
    assert nbxent.cross_entropy(x.astype(np.float16), p.astype(np.float16)).dtype == np.float16
    assert nbxent.cross_entropy(x.astype(np.float16), p.astype(np.float32)).dtype == np.float32
    w = np.array([1.0, 2.0, 3.0])
    assert nbxent.cross_entropy(x.astype(np.float32), p.astype(np.float32),
                                weight=w).dtype == F64
    # Deliberate difference: a float64 weight is accepted on the index path (cast to f32).
    r = nbxent.cross_entropy(x.astype(np.float32), np.array([1]), weight=w)
    assert r.dtype == np.float32


def test_float16_is_computed_in_float32_and_rounded_once():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70000, 2)).astype(np.float16)
    t = np.zeros(70000, np.int64)
    got = nbxent.cross_entropy(x, t)                      # torch: 0.0 (count overflows half)
    ref = np.float16(nbxent.cross_entropy(x.astype(np.float32), t))
    assert got.dtype == np.float16 and got == ref
    x1 = np.zeros((70000, 2), np.float16)
    x1[:, 0] = -1.0
    assert nbxent.nll_loss(x1, t) == np.float16(1.0)     # torch: nan


# ----------------------------------------------------- docs/semantics.md §3-6

def test_weighted_mean_divides_by_target_weights():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0], [2.0, 2.0, 2.0]])
    t = np.array([2, 0, 1, -100])
    near(nbxent.cross_entropy(x, t, weight=W3, reduction="none"),
         [0.72393388997147112, 0.06613452188144482, 0.16984601955628548, 0.0])
    near(nbxent.cross_entropy(x, t, weight=W3, reduction="sum"), 0.9599144314092014)
    near(nbxent.cross_entropy(x, t, weight=W3), 0.2285510550974289)


def test_zero_and_negative_weight_sums():
    t = np.array([0, 2])
    r = [nbxent.cross_entropy(X2, t, weight=np.array([0.0, 1.0, 0.0]), reduction=red)
         for red in ("none", "mean", "sum")]
    assert np.all(r[0] == 0) and np.isnan(r[1]) and r[2] == 0
    near(nbxent.cross_entropy(X2, t, weight=np.array([-1.0, 1.0, 2.0])), 3.420033922157291)
    assert nbxent.cross_entropy(X2, t, weight=np.array([-2.0, 1.0, 2.0])) == np.inf
    near(nbxent.cross_entropy(X2, np.array([1, 2]), weight=np.array([np.nan, 1.0, 2.0])),
         2.80088550515720192)


def test_all_ignored():
    t = np.array([-100, -100])
    for fn, kw in ((nbxent.cross_entropy, {}), (nbxent.nll_loss, {}),
                   (nbxent.cross_entropy, {"weight": W3, "label_smoothing": 0.1})):
        assert np.all(fn(X2, t, reduction="none", **kw) == 0)
        assert np.isnan(fn(X2, t, **kw)) and fn(X2, t, reduction="sum", **kw) == 0
    loss, grad = nbxent.cross_entropy_with_grad(X2, t, weight=W3, label_smoothing=0.3)
    assert np.isnan(loss) and np.all(grad == 0) and not np.signbit(grad).any()
    x1 = np.array([1.0, 2.0, 3.0], np.float32)
    assert np.isnan(nbxent.cross_entropy(x1, np.array(-100)))
    assert nbxent.cross_entropy(x1, np.array(-100), reduction="sum") == 0


def test_unbatched_with_weight():
    x = np.array([0.5, -1.0, 2.0])
    w = np.array([1.0, 3.0, 1.0])
    for red, nll, ce in (("none", 3.0, 9.723933889971471), ("mean", 1.0, 3.241311296657157),
                         ("sum", 3.0, 9.723933889971471)):
        near(nbxent.nll_loss(x, np.array(1), weight=w, reduction=red), nll)
        near(nbxent.cross_entropy(x, np.array(1), weight=w, reduction=red), ce)


def test_ignore_index_checked_before_bounds():
    t = np.array([0, 1, 2])
    near(nbxent.cross_entropy(X3, t, ignore_index=0, reduction="none"),
         [0.0, 1.58067260940722409, 2.16984601955628564])
    near(nbxent.cross_entropy(X3, t, ignore_index=0), 1.87525931448175487)
    near(nbxent.cross_entropy(X2, np.array([0, 3]), ignore_index=3, reduction="none"),
         [1.74131129665715711, 0.0])


def test_label_smoothing_with_weights_formula():
    t = np.array([2, 0, -100])
    near(nbxent.cross_entropy(X3, t, weight=W3, label_smoothing=0.2, reduction="none"),
         [0.8667142750411809, 0.6788292814725119, 0.0])
    near(nbxent.cross_entropy(X3, t, weight=W3, label_smoothing=0.2), 0.482982361410529)
    near(nbxent.cross_entropy(X3, t, label_smoothing=0.2), 0.5526586196988572)


@pytest.mark.parametrize("eps,idx,prob", [
    (0.0, 2.1609919530321906, 0.8859919530321906), (1.0, 1.6193252863655236, 1.6193252863655239),
    (-0.1, 2.1609919530321906, 0.8859919530321906), (-5.0, 2.1609919530321906, 0.8859919530321906),
    (float("nan"), 2.1609919530321906, 0.8859919530321906)])
def test_label_smoothing_range(eps, idx, prob):
    near(nbxent.cross_entropy(X2, np.array([0, 2]), label_smoothing=eps), idx)
    near(nbxent.cross_entropy(X2, P2, label_smoothing=eps), prob)


def test_label_smoothing_nan_weight_and_unbatched():
    r = nbxent.cross_entropy(X2, np.array([1, 2]), weight=np.array([np.nan, 1.0, 2.0]),
                             label_smoothing=0.1, reduction="none")
    assert np.all(np.isnan(r))
    for red in ("none", "mean", "sum"):
        near(nbxent.cross_entropy(X2[0], np.array(1), label_smoothing=0.1, reduction=red),
             3.091311296657157)


def test_probability_targets():
    near(nbxent.cross_entropy(X2, P2, weight=W3, reduction="none"),
         [1.40401278584916911, 0.06613452188144482])
    near(nbxent.cross_entropy(X2, P2, weight=W3), 0.73507365386530699)
    near(nbxent.cross_entropy(X2, P2, weight=W3, reduction="sum"), 1.47014730773061397)
    near(nbxent.cross_entropy(X2, P2, weight=W3, label_smoothing=0.3, reduction="none"),
         [1.4141596946904242, 0.9851766612680455])
    r = nbxent.cross_entropy(X2, np.array([[2.0, 3.0, -1.0], [0.0, 0.0, 0.0]]), reduction="none")
    near(r[0], 12.96524518662862846)
    assert r[1] == 0 and np.signbit(r[1])
    for ii in (-100, -1, -7):
        near(nbxent.cross_entropy(X2, P2, ignore_index=ii), 0.8859919530321906)
    x = np.array([[0.0, -np.inf, 1.0]])
    assert np.isnan(nbxent.cross_entropy(x, np.array([[0.5, 0.0, 0.5]]), reduction="none")[0])


# ---------------------------------------------------- docs/semantics.md §9-10

def test_nan_inf_propagation():
    x = np.array([[np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0],
                  [-np.inf] * 3, [1e308, 0.0, -1e308]])
    r = nbxent.cross_entropy(x, np.array([1, 0, 1, 0, 2]), reduction="none")
    assert np.isnan(r[0]) and r[1] == np.inf and np.isnan(r[3]) and r[4] == np.inf
    near(r[2], 1.3132616875182228)
    xn = np.array([[np.nan, 0.0, 1.0], [0.5, 0.2, 0.1]])
    t = np.array([-100, 1])
    for red in ("none", "mean", "sum"):
        ce = nbxent.cross_entropy(xn, t, reduction=red)
        ls = nbxent.cross_entropy(xn, t, reduction=red, label_smoothing=0.1)
        nl = nbxent.nll_loss(xn, t, reduction=red)
        assert not np.isnan(ce).any() and not np.isnan(ls).any() and not np.isnan(nl).any()
        near(ce if red != "none" else ce[1], 1.1800989458406055)
        near(ls if red != "none" else ls[1], 1.1734322791739389)
    np.testing.assert_array_equal(nbxent.nll_loss(xn, np.array([1, 1]), reduction="none"),
                                  [-0.0, -0.2])


def test_gradients_of_semantics_section_10():
    g = nbxent.cross_entropy_backward(np.array(1.0), X2, np.array([1, -100]))
    near(g[0], [0.1752903921400367, -0.9608874267293126, 0.7855970345892759])
    assert np.all(g[1] == 0) and not np.signbit(g[1]).any()
    np.testing.assert_array_equal(
        nbxent.nll_loss_backward(np.array(1.0), X2, np.array([1, -100])),
        [[0.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    g0 = nbxent.cross_entropy_backward(np.array(1.0), X2, np.array([0, 2]),
                                       weight=np.array([0.0, 1.0, 0.0]))
    assert np.all(np.isnan(g0))                                        # 0 * (g / 0)
    xn = np.array([[np.nan, 0.0, 1.0], [0.5, 0.2, 0.1]])
    loss, gn = nbxent.cross_entropy_with_grad(xn, np.array([-100, 1]))
    near(loss, 1.1800989458406055)
    assert np.all(np.isnan(gn[0]))                                     # exp(nan) * 0
    near(gn[1], [0.4147418726680696, -0.692751663847837, 0.2780097911797676])


@pytest.mark.parametrize("kind", ["index", "smooth_weight", "prob", "prob_target", "nll"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradient_matches_central_differences(kind, reduction):
    # Independent of torch: d/dx by central differences in float64. The truncation error is
    # O(h^2 * |f'''|) ~ 1e-10 for these O(1) rows and h = 1e-5; the rounding error is
    # u * |f| / h ~ 1e-11; so 1e-8 separates a right formula from a wrong one by far.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 2))
    t = np.array([[0, 3], [2, -100], [1, 1]])
    p = rng.random((3, 4, 2))
    w = rng.uniform(0.5, 2.0, 4)
    fn, kw, tgt = {
        "index": (nbxent.cross_entropy, {}, t),
        "smooth_weight": (nbxent.cross_entropy, {"weight": w, "label_smoothing": 0.3}, t),
        "prob": (nbxent.cross_entropy, {"weight": w, "label_smoothing": 0.2}, p),
        "prob_target": (nbxent.cross_entropy, {"weight": w, "label_smoothing": 0.2}, p),
        "nll": (nbxent.nll_loss, {"weight": w}, t)}[kind]
    g_out = rng.uniform(-1, 1, (3, 2)) if reduction == "none" else np.array(0.7)
    var = p if kind == "prob_target" else x

    def f(v):
        args = (x, v) if kind == "prob_target" else (v, tgt)
        return float(np.sum(fn(*args, reduction=reduction, **kw) * g_out))

    h = 1e-5
    num = np.zeros_like(var)
    for i in np.ndindex(var.shape):
        vp, vm = var.copy(), var.copy()
        vp[i] += h
        vm[i] -= h
        num[i] = (f(vp) - f(vm)) / (2 * h)
    back = nbxent.nll_loss_backward if kind == "nll" else nbxent.cross_entropy_backward
    extra = {"wrt": "target"} if kind == "prob_target" else {}
    got = back(g_out, x, tgt, reduction=reduction, **kw, **extra)
    np.testing.assert_allclose(got, num, rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- layouts, out=

def _big_case(dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((5, 6, 3, 4)) * 3).astype(dtype)
    t = rng.integers(0, 6, (5, 3, 4))
    t[0, 0, :] = -100
    return x, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fortran_and_strided_inputs_give_identical_answers(dtype):
    x, t = _big_case(dtype)
    ref = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    xf = np.asfortranarray(x)
    tf = np.asfortranarray(t)
    wide = np.zeros((5, 12, 3, 8), dtype)
    wide[:, ::2, :, ::2] = x
    xs = wide[:, ::2, :, ::2]                       # a strided view with the same values
    for xv, tv in ((xf, tf), (xs, t)):
        got = nbxent.cross_entropy_with_grad(xv, tv, reduction="none")
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    p = np.random.default_rng(1).random(x.shape).astype(dtype)
    np.testing.assert_array_equal(nbxent.cross_entropy(xs, np.asfortranarray(p)),
                                  nbxent.cross_entropy(x, p))


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_inputs_are_not_modified(fn):
    x, t = _big_case(np.float32)
    w = np.linspace(0.5, 2, 6).astype(np.float32)
    copies = [a.copy() for a in (x, t, w)]
    getattr(nbxent, fn)(x, t, weight=w)
    getattr(nbxent, fn + "_with_grad")(x, t, weight=w)
    getattr(nbxent, fn + "_backward")(np.array(1.0, np.float32), x, t, weight=w)
    for a, c in zip((x, t, w), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (3, 5, 4)])
def test_out_and_in_place(fn, dtype, shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, 5, (shape[0],) + shape[2:])
    kw = {"label_smoothing": 0.1} if fn == "cross_entropy" else {}
    ref_loss, ref_grad = getattr(nbxent, fn + "_with_grad")(x, t, **kw)
    out = np.full_like(x, np.nan)
    loss, grad = getattr(nbxent, fn + "_with_grad")(x, t, out=out, **kw)
    assert grad is out and loss == ref_loss
    np.testing.assert_array_equal(out, ref_grad)
    xin = x.copy()
    loss, grad = getattr(nbxent, fn + "_with_grad")(xin, t, out=xin, **kw)
    assert grad is xin and loss == ref_loss                # the loss saw the original logits
    np.testing.assert_array_equal(xin, ref_grad)


def test_prob_targets_in_place():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 9)).astype(np.float32)
    p = rng.random((6, 9)).astype(np.float32)
    ref = nbxent.cross_entropy_with_grad(x, p, reduction="sum")
    xin = x.copy()
    loss, grad = nbxent.cross_entropy_with_grad(xin, p, reduction="sum", out=xin)
    assert loss == ref[0] and grad is xin
    np.testing.assert_array_equal(xin, ref[1])


def test_large_rows_use_parallel_path_and_match_serial():
    # Same rows through the parallel driver (many rows) and the serial one (a single row).
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((64, 2000)) * 5).astype(np.float32)
    t = rng.integers(0, 2000, 64)
    big_loss, big_grad = nbxent.cross_entropy_with_grad(x, t, reduction="none")
    for i in (0, 31, 63):
        l1, g1 = nbxent.cross_entropy_with_grad(x[i:i + 1], t[i:i + 1], reduction="none")
        assert l1[0] == big_loss[i]
        np.testing.assert_array_equal(g1[0], big_grad[i])
