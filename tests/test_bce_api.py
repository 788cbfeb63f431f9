"""API behaviour of the BCE functions: the formulas of docs/semantics.md §0 (with torch 2.13's
printed values), dtypes, shapes, broadcasting, layouts, out= / in place,
determinism across thread counts, and the docstring examples."""
from __future__ import annotations

import doctest

import numba
import numpy as np
import pytest

import nbxent
from nbxent import functional as _bce_api
from nbxent.bce import cpu as _bce_cpu
from nbxent.bce.validate import plan_forward

BCE, BCEWL = nbxent.binary_cross_entropy, nbxent.binary_cross_entropy_with_logits
BCE_B, BCEWL_B = nbxent.binary_cross_entropy_backward, nbxent.binary_cross_entropy_with_logits_backward
NAN, INF = np.nan, np.inf
# BCE float64 reproduces torch's glibc log/log1p bit for bit (docs/semantics.md §2.7), so
# torch's values are
# compared exactly; BCE-with-logits differs from torch's evaluation order, so its values get
# 4 float64 roundings of the value (our <= 2 ulp, torch's SLEEF log_sigmoid <= 2 ulp).
RTOL64 = 4 * np.finfo(np.float64).eps


def a64(v):
    return np.array(v, dtype=np.float64)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(_bce_api, optionflags=doctest.ELLIPSIS, verbose=False)
    assert tried >= 6 and failures == 0


# ------------------------------------------------------- docs/semantics.md §0 formulas
def test_bce_formula_clamps_each_log_at_minus_100_semantics_7_1():
    x = a64([0.0, 1.0, 0.0, 1.0, 1e-50, 1e-43, 3.7e-44, 0.5, 0.0])
    y = a64([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    got = BCE(x, y, reduction="none")
    want = a64([100.0, 100.0, 0.0, -0.0, 100.0, 99.01115899874397, 100.0, 0.6931471805599453, 50.0])
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))


def test_bce_weight_broadcasts_and_mean_divides_by_numel_semantics_3_4_7_3():
    x = a64([[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]])
    y = a64([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    assert BCE(x, y, weight=a64([1.0, 2.0, 3.0])) == 1.2126588045157716
    got = BCE(x, y, weight=a64([[2.0], [3.0]]), reduction="none")
    assert np.array_equal(got, a64([[2.77258872223978114, 1.38629436111989057, 0.57536414490356180],
                                    [0.31608154697347890, 4.82831373730230062, 0.31608154697347884]]))
    assert BCE(x, y, reduction="sum") == np.sum(BCE(x, y, reduction="none"))


def test_bce_gradients_semantics_10_3():
    x = a64([0.0, 1.0, 0.0, 1e-13, 0.3, 0.5])
    y = a64([1.0, 0.0, 0.0, 1.0, 0.7, 0.5])
    g = a64(1.0)
    dx = BCE_B(g, x, y, reduction="sum")
    assert np.array_equal(dx, a64([-1000000003995.8029, 1000000003995.8029, 0.0, -1000000003995.7028,
                                   -1.9047619047619047, 0.0]))
    dy = BCE_B(g, x, y, reduction="sum", wrt="target")
    want = a64([INF, -INF, INF, 29.933606208922495, 0.8472978603872036, -0.0])
    np.testing.assert_allclose(dy, want, rtol=RTOL64)
    assert np.signbit(dy[-1])  # -logit(1/2) = -0.0, as torch
    # mean divides by numel after the weight multiply
    w = a64([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(BCE_B(g, x, y, weight=w), dx * w / 6)


def test_bce_with_logits_formula_and_pos_weight_semantics_8_1():
    x = a64([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    y = a64([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]])
    pw = a64([3.0, 0.5, 2.0])
    got = BCEWL(x, y, pos_weight=pw, reduction="none")
    want = a64([[1.42223095254032, 0.3132616875182228, 1.1903920165644588],
                [1.7014132779827524, 0.2879697099394218, 2.2737420122297998]])
    np.testing.assert_allclose(got, want, rtol=RTOL64)
    # the textbook form it equals: -[pw*y*log(sigmoid) + (1 - y)*log(1 - sigmoid)]
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(got, -(pw * y * np.log(s) + (1 - y) * np.log(1 - s)), rtol=1e-14)


def test_bce_with_logits_large_and_infinite_logits_semantics_8_2():
    x = a64([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4])
    # torch prints [0.0, 0.0, 2.061153026033935e-09, ...] for y = 0: its (1 - y)*x - logsig(x)
    # cancels for x < 0. The exact value is softplus(x) = log1p(exp(x)) (3.7e-44 at x = -100).
    np.testing.assert_allclose(BCEWL(x, np.zeros(7), reduction="none"),
                               [0.0, 3.720075976020836e-44, 2.0611536203143812e-09, 0.6931471805599453,
                                20.000000002061153, 100.0, 10000.0], rtol=RTOL64)
    assert np.log1p(np.exp(-20.0)) == pytest.approx(2.0611536203143812e-09, rel=RTOL64)
    np.testing.assert_allclose(BCEWL(x, np.ones(7), reduction="none"),
                               [10000.0, 100.0, 20.000000002061153, 0.6931471805599453, 2.061153620314381e-09,
                                3.720075976020836e-44, 0.0], rtol=RTOL64)
    xi = a64([-INF, INF, -INF, INF, NAN])
    got = BCEWL(xi, a64([0.0, 0.0, 1.0, 1.0, 0.5]), reduction="none")
    np.testing.assert_array_equal(got, [NAN, INF, NAN, NAN, NAN])
    got = BCEWL(xi[:2], a64([0.0, 1.0]), pos_weight=a64([2.0, 2.0]), reduction="none")
    np.testing.assert_array_equal(got, [NAN, NAN])
    got = BCEWL(a64([0.5, -0.5]), a64([2.0, -1.0]), reduction="none")  # targets outside [0, 1]
    np.testing.assert_allclose(got, [-0.025923015819893314] * 2, rtol=RTOL64)
    got = BCEWL(a64([0.5, -0.5]), a64([INF, -INF]), reduction="none")  # torch: -inf, not NaN
    np.testing.assert_array_equal(got, [-INF, -INF])


def test_bce_with_logits_gradients_semantics_10_4():
    x = a64([0.5, -2.0, 30.0, -1e4, INF, -INF])
    y = a64([1.0, 0.0, 0.25, 1.0, 0.0, 1.0])
    assert np.isnan(BCEWL(x, y, reduction="sum"))
    dx = BCEWL_B(a64(1.0), x, y, reduction="sum")
    np.testing.assert_allclose(dx, [-0.3775406687981454, 0.11920292202211755, 0.7499999999999065,
                                    -1.0, 1.0, -1.0], rtol=RTOL64)
    dy = BCEWL_B(a64(1.0), x, y, reduction="sum", wrt="target")
    np.testing.assert_array_equal(dy, [-0.5, 2.0, -30.0, 10000.0, -INF, INF])
    # with weight and pos_weight, 'mean': closed forms of docs/semantics.md §0
    x = a64([[0.5, -2.0, 3.0], [1.0, 0.0, -0.5]])
    y = a64([[1.0, 0.0, 0.25], [0.5, 1.0, 0.0]])
    pw, w = a64([2.0, 0.5, 3.0]), a64([[1.5], [0.5]])
    s = 1 / (1 + np.exp(-x))
    logsig = lambda v: -np.log1p(np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(BCEWL_B(a64(1.0), x, y, weight=w, pos_weight=pw),
                               ((pw * y + 1 - y) * s - pw * y) * w / 6, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(BCEWL_B(a64(1.0), x, y, weight=w, pos_weight=pw, wrt="target"),
                               (logsig(-x) - pw * logsig(x)) * w / 6, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(BCEWL_B(a64(1.0), x, y, wrt="target"), -x / 6, rtol=0)


def test_pos_weight_lines_up_with_the_last_dim_semantics_8_3():
    x, y = np.zeros((2, 3, 4)), np.ones((2, 3, 4))
    got = BCEWL(x, y, pos_weight=a64([1.0, 2.0, 3.0, 4.0]), reduction="none")
    np.testing.assert_allclose(got[0, 0], np.log(2) * a64([1, 2, 3, 4]), rtol=RTOL64)
    got = BCEWL(x, y, pos_weight=a64([[1.0], [2.0], [3.0]]), reduction="none")
    np.testing.assert_allclose(got[0, :, 0], np.log(2) * a64([1, 2, 3]), rtol=RTOL64)
    np.testing.assert_allclose(BCEWL(a64([0.5, -1.0]), a64([1.0, 0.0]), pos_weight=a64(2.0), reduction="none"),
                               [0.9481539683602134, 0.3132616875182228], rtol=RTOL64)


def test_zero_d_and_empty_inputs_semantics_1_4():
    x, y = a64(0.25), a64(1.0)
    for red in ("none", "mean", "sum"):
        r1, r2 = BCE(x, y, reduction=red), BCEWL(x, y, reduction=red)
        assert r1.shape == () and r2.shape == ()
        assert r1 == 1.38629436111989057
        np.testing.assert_allclose(r2, 0.57593941987884356, rtol=RTOL64)
    e = np.zeros((0, 3))
    assert np.isnan(BCE(e, e)) and BCE(e, e, reduction="sum") == 0.0
    assert BCEWL(e, e, reduction="none").shape == (0, 3)
    assert BCE_B(a64(1.0), e, e).shape == (0, 3)


def test_result_dtypes_semantics_2_5_2_6():
    x32, y32 = np.array([0.25, 0.5], np.float32), np.array([1.0, 0.0], np.float32)
    assert BCE(x32, y32, weight=np.ones(2)).dtype == np.float32  # weight dtype does not promote
    assert BCE(x32.astype(np.float16), y32.astype(np.float16)).dtype == np.float16
    for xd, yd, want in [(np.float64, np.float16, 0.3935546875), (np.float16, np.float32, None),
                         (np.float32, np.float64, None)]:
        r = BCEWL(np.array([0.5, -1.0], xd), np.array([1.0, 0.0], yd))
        assert r.dtype == yd  # the target's dtype
        if want is not None:
            assert r == want
    assert BCEWL_B(np.array(1.0, np.float16), np.zeros(2), np.zeros(2, np.float16), wrt="target").dtype == np.float16
    assert BCEWL_B(np.array(1.0, np.float16), np.zeros(2), np.zeros(2, np.float16)).dtype == np.float64
    with pytest.warns(UserWarning, match="elementwise_mean"):
        assert BCE(x32, y32, reduction="elementwise_mean") == BCE(x32, y32)


def test_float16_is_rounded_once_from_the_float64_value():
    rng = np.random.default_rng(7)
    x = rng.random(999).astype(np.float16)
    y = rng.random(999).astype(np.float16)
    got = BCE(x, y, reduction="none")
    want = BCE(x.astype(np.float64), y.astype(np.float64), reduction="none").astype(np.float16)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------- broadcasting / layouts
@pytest.mark.parametrize("wshape,materialise", [
    ((5,), False), ((4, 1), False), ((3, 1, 1), False), ((2, 1, 1, 1), False), ((3, 4, 5), False),
    ((), False), ((2, 3, 4, 5), False), ((1, 3, 1, 5), True), ((2, 1, 4, 1), True)])
def test_weight_and_pos_weight_patterns(wshape, materialise):
    rng = np.random.default_rng(3)
    shape = (2, 3, 4, 5)
    x, y = rng.standard_normal(shape), rng.random(shape)
    w = rng.random(wshape)
    plan = plan_forward("t", True, x, y, w, w, "none")
    assert plan.weight.materialise is materialise
    if not materialise:  # the weight is read through strides, never expanded
        assert plan.weight.strides.count(0) >= 1 or wshape == shape
    base = BCEWL(x, y, reduction="none")
    np.testing.assert_array_equal(BCEWL(x, y, weight=w, reduction="none"), base * w)
    np.testing.assert_array_equal(BCE(1 / (1 + np.exp(-x)), y, weight=w, reduction="none"),
                                  BCE(1 / (1 + np.exp(-x)), y, reduction="none") * w)
    got = BCEWL(x, y, pos_weight=w, reduction="none")
    want = BCEWL(x, y, pos_weight=np.broadcast_to(w, shape).copy(), reduction="none")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("wshape", [(), (4099,), (5, 1), (3, 1, 1), (3, 5, 4099), (1, 5, 1)])
def test_float32_kernels_agree_with_float64_over_many_blocks(wshape):
    # (3, 5, 4099) spans 16 blocks whose boundaries cut grid rows, so every block gathers
    # its weight / pos_weight / grad_output from a different offset. The float32 kernels
    # must give the float64 kernels' values (same float32 inputs) up to their documented
    # bounds: losses 2*eps32 of lw*L (BCE: 1*eps32 of each log term) plus the float32
    # rounding; d/dx 1*eps32 of its terms plus the rounding (BCE d/dx: the rounding only).
    rng = np.random.default_rng(29)
    shape = (3, 5, 4099)
    x = rng.standard_normal(shape).astype(np.float32) * 4
    p = rng.random(shape).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, wshape)
    g = rng.uniform(-2.0, 2.0, shape).astype(np.float32)
    eps32 = float(np.finfo(np.float32).eps)
    x64, p64, y64, g64 = (a.astype(np.float64) for a in (x, p, y, g))
    wb = np.broadcast_to(w, shape)

    def close(got, want, extra):
        assert got.dtype == np.float32
        allowed = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) / 2 + extra
        err = np.abs(got.astype(np.float64) - want)
        assert np.all(err <= allowed), (np.argmax(err - allowed), float(np.max(err / allowed)))

    L = np.log1p(np.exp(-np.abs(x64)))
    lw = np.abs((w - 1.0) * y64 + 1.0)
    close(BCEWL(x, y, weight=w, pos_weight=w, reduction="none"),
          BCEWL(x64, y64, weight=w, pos_weight=w, reduction="none"), 2 * eps32 * lw * L * wb + 1e-300)
    s = 1 / (1 + np.exp(-x64))
    terms = (np.abs((1 - y64) * s) + np.abs(w * y64 * (1 - s))) * np.abs(g64 * wb)
    close(BCEWL_B(g, x, y, weight=w, pos_weight=w, reduction="none"),
          BCEWL_B(g64, x64, y64, weight=w, pos_weight=w, reduction="none"), eps32 * terms + 1e-300)
    want = BCE(p64, y64, weight=w, reduction="none")
    close(BCE(p, y, weight=w, reduction="none"), want, eps32 * np.abs(want))
    close(BCE_B(g, p, y, weight=w, reduction="none"),
          BCE_B(g64, p64, y64, weight=w, reduction="none"), 0.0)


@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed"])
def test_non_contiguous_inputs_give_the_contiguous_results(layout):
    rng = np.random.default_rng(5)
    base_x, base_y = rng.random((6, 8)), rng.random((6, 8))
    make = {"fortran": np.asfortranarray, "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
            "reversed": lambda a: a[::-1, ::-1].copy()[::-1, ::-1]}[layout]
    x, y = make(base_x), make(base_y)
    assert np.array_equal(x, base_x)
    for fn in (BCE, BCEWL):
        np.testing.assert_array_equal(fn(x, y, reduction="none"), fn(base_x, base_y, reduction="none"))
        np.testing.assert_array_equal(fn(x, y), fn(base_x, base_y))
    g = make(rng.random((6, 8)))
    np.testing.assert_array_equal(BCE_B(g, x, y, reduction="none"),
                                  BCE_B(np.ascontiguousarray(g), base_x, base_y, reduction="none"))


def test_inputs_are_never_modified():
    rng = np.random.default_rng(11)
    x, y, w, pw = rng.random((5, 7)), rng.random((5, 7)), rng.random(7), rng.random(7)
    g = rng.random((5, 7))
    copies = [a.copy() for a in (x, y, w, pw, g)]
    BCE(x, y, weight=w), BCEWL(x, y, weight=w, pos_weight=pw)
    BCE_B(g, x, y, weight=w, reduction="none")
    BCEWL_B(g, x, y, weight=w, pos_weight=pw, reduction="none", wrt="target")
    nbxent.binary_cross_entropy_with_grad(x, y, weight=w)
    nbxent.binary_cross_entropy_with_logits_with_grad(x, y, weight=w, pos_weight=pw)
    for a, c in zip((x, y, w, pw, g), copies):
        assert np.array_equal(a, c)


# -------------------------------------------------------------------- out= / in place
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("logits", [False, True])
def test_with_grad_equals_forward_and_backward_and_writes_out(dtype, logits):
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((30, 700)) if logits else rng.random((30, 700))).astype(dtype)
    y = rng.random((30, 700)).astype(dtype)
    w = rng.random(700)
    fwd, bwd = (BCEWL, BCEWL_B) if logits else (BCE, BCE_B)
    fused = nbxent.binary_cross_entropy_with_logits_with_grad if logits else nbxent.binary_cross_entropy_with_grad
    for red in ("none", "mean", "sum"):
        one = np.ones(x.shape if red == "none" else (), dtype)
        loss, grad = fused(x, y, weight=w, reduction=red)
        np.testing.assert_array_equal(loss, fwd(x, y, weight=w, reduction=red))
        np.testing.assert_array_equal(grad, bwd(one, x, y, weight=w, reduction=red))
        out = np.empty_like(x)
        loss2, grad2 = fused(x, y, weight=w, reduction=red, out=out)
        assert grad2 is out
        np.testing.assert_array_equal(out, grad)
        xin = x.copy()
        loss3, grad3 = fused(xin, y, weight=w, reduction=red, out=xin)  # in place over the input
        assert grad3 is xin
        np.testing.assert_array_equal(xin, grad)
        np.testing.assert_array_equal(loss3, loss)


def test_out_overlapping_the_input_by_a_shift_is_still_correct():
    rng = np.random.default_rng(17)
    buf = rng.standard_normal(10001)
    x = buf[1:].copy()
    y = rng.random(10000)
    _, want = nbxent.binary_cross_entropy_with_logits_with_grad(x, y, reduction="none")
    buf[1:] = x
    out = buf[:-1]  # element i of out is element i+1 of the input
    _, got = nbxent.binary_cross_entropy_with_logits_with_grad(buf[1:], y, reduction="none", out=out)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("logits", [False, True])
def test_results_are_bit_identical_for_one_and_two_threads(logits):
    rng = np.random.default_rng(19)
    n = 3 * _bce_cpu.SERIAL_MAX + 123  # above the one-thread threshold: many blocks in prange
    x = (rng.standard_normal(n) * 10 if logits else rng.random(n)).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    fwd = BCEWL if logits else BCE
    fused = nbxent.binary_cross_entropy_with_logits_with_grad if logits else nbxent.binary_cross_entropy_with_grad
    results = {}
    previous = numba.get_num_threads()
    try:
        for k in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(k)
            results[k] = [fwd(x, y, reduction=r) for r in ("sum", "mean", "none")] + list(fused(x, y))
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(*results.values()):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("logits", [False, True])
def test_float64_reductions_are_the_rounded_exact_sum(logits):
    # float64 sum = the correctly rounded sum of the elementwise losses: compensated block
    # partials + fsum lose ~1e-32 relative, far below float64's half ulp except at ties.
    import math
    rng = np.random.default_rng(23)
    n = 50_000
    x = rng.standard_normal(n) * 3 if logits else rng.random(n)
    y = rng.random(n)
    fwd = BCEWL if logits else BCE
    exact = math.fsum(fwd(x, y, reduction="none"))
    assert fwd(x, y, reduction="sum") == exact
    assert fwd(x, y, reduction="mean") == exact / n


@pytest.mark.parametrize("logits", [False, True])
def test_float32_reductions_are_within_the_transcendentals_bound(logits):
    # float32: each element is the float64 formula of float32 exp/log/log1p values (<= 1 ulp
    # each, so <= eps32 * |value|), summed in float64 (lanes of 32 terms, then 8 interleaved sums of 64 lanes per block:
    # < 600 * eps64 relative) and rounded once. Against the exact sum of the exact losses
    # (the float64 path, within ~1e-16 relative) the error is at most half a float32 ulp of
    # the result plus: BCE 1 * eps32 per log term, and all terms are >= 0, so 1 * eps32 * sum;
    # BCE-with-logits 2 * eps32 * sum(L) (exp then log1p, condition number <= 1, lw = 1).
    import math
    rng = np.random.default_rng(23)
    n = 50_000
    x = (rng.standard_normal(n) * 3 if logits else rng.random(n)).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    fwd = BCEWL if logits else BCE
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    exact = math.fsum(fwd(x64, y64, reduction="none"))
    eps32, eps64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
    terms = math.fsum(np.log1p(np.exp(-np.abs(x64)))) * 2 if logits else exact
    for red, want in (("sum", exact), ("mean", exact / n)):
        got = float(fwd(x, y, reduction=red))
        scale = 1.0 if red == "sum" else 1.0 / n
        allowed = (float(np.spacing(np.float32(want))) / 2 + eps32 * terms * scale
                   + 600 * eps64 * abs(want) + 4 * eps64 * abs(want))
        assert abs(got - want) <= allowed, (red, got, want, allowed)
