"""Vocab-parallel cross-entropy on NumPy: shard statistics + combine + shard gradients equal the
unsharded cross_entropy for any partition of the vocabulary.

Bound (derived; ``u`` = unit roundoff): the shard statistics and the combine are float64
computations on logits that float64 holds exactly, rounded once to the logits' dtype. The
float64 part commits at most ``(C + K) u64`` relative error in the exp-sum (C terms, any
order; K = 16 further roundings: exp, log, the shift, the weight products, as in
tests/ce_support.py), so per row

    loss:  |d l| <= u_dt |l| + (C + K) u64 * sum_j |c_j| (1 + |lse| + |z_j|)
    grad:  |d g| <= u_dt |g| + (C + K) u64 (|A| p_j (1 + |z_j| + |lse|) + |c_j|)

with ``c`` the coefficients of ``l = sum_j c_j (lse - z_j)`` and ``A = sum_j c_j`` (the
float64 reference commits the same float64 part again; 'mean'/'sum' add the reduction's
rounding). For float32/float16 the ``u_dt`` term dominates by ~2**29: two shard counts
give roundings of float64 values far closer than half an ulp, hence results within one
ulp of each other (and of the correctly rounded value).
"""
from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.special import logsumexp

import nbxent
import nbxent._vocab._api
from conformance.compare import compare, ulp_error

K = 16
U64 = 2.0 ** -53


def u(dt):
    return float(np.finfo(dt).eps) / 2


def reference(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Float64 loss, gradient and tolerances of the unsharded cross_entropy."""
    x64 = np.asarray(x, np.float64)
    N, C = x64.shape
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    eps = label_smoothing if label_smoothing > 0 else 0.0
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    c = np.zeros((N, C))
    c[np.arange(N)[valid], tc[valid]] = (1 - eps) * w[tc[valid]]
    c[valid] += (eps / C) * w
    with np.errstate(all="ignore"):
        lse = logsumexp(x64, axis=1, keepdims=True)
        lp = x64 - lse
        per = np.where(valid, -(c * np.where(c != 0, lp, 0)).sum(axis=1), 0.0)
        p = np.exp(lp)
        W = float(np.sum(w[tc] * valid))
        s = 1 / W if reduction == "mean" else 1.0
        G = s * (c.sum(axis=1, keepdims=True) * p - c)
        G[~valid] = 0
        f64 = (C + K) * U64
        dl = f64 * (np.abs(c) * (1 + np.abs(lse) + np.abs(x64))).sum(axis=1)
        dg = abs(s) * f64 * (np.abs(c).sum(axis=1, keepdims=True) * p * (1 + np.abs(x64) + np.abs(lse))
                             + np.abs(c))
    dt = np.dtype(x.dtype)
    if reduction == "none":
        loss, tl = per, 2 * dl + u(dt) * np.abs(per)
    else:
        tot = per.sum() / (W if reduction == "mean" else 1.0)
        loss = np.asarray(tot)
        tl = np.asarray(abs(s) * (2 * dl.sum() + U64 * N * np.abs(per).sum()) + 2 * u(dt) * abs(tot))
    tg = 2 * np.nan_to_num(dg) + u(dt) * np.nan_to_num(np.abs(G))
    if dt == np.float16:
        tl = tl + float(np.finfo(np.float16).smallest_subnormal)
        tg = tg + float(np.finfo(np.float16).smallest_subnormal)
    return loss, G, np.nan_to_num(tl), tg


def sharded(x, t, cuts, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
            order=None):
    spans = list(zip(cuts[:-1], cuts[1:]))
    C = x.shape[1]
    stats = [nbxent.vocab_shard_stats(x[:, a:b], t, a, C, ignore_index=ignore_index,
                                      weight=None if weight is None else weight[a:b],
                                      label_smoothing=label_smoothing) for a, b in spans]
    if order is not None:
        stats = [stats[k] for k in order]
    comb = nbxent.vocab_combine(stats, reduction)
    g = np.concatenate([nbxent.vocab_shard_grad(x[:, a:b], t, a, comb, ignore_index=ignore_index,
                                                weight=None if weight is None else weight[a:b])
                        for a, b in spans], axis=1)
    return comb, g


def assert_within(got, want, tol, dt, what):
    assert np.shape(got) == np.shape(want), f"{what}: shape {np.shape(got)} != {np.shape(want)}"
    cmp = compare(got, want, tol, dt, "vocab-parallel bound (module docstring)")
    assert cmp.pattern_ok, f"{what}: NaN/inf pattern: {cmp.pattern_examples}"
    assert cmp.value_ok, f"{what}: {cmp.measure}"


def make(seed, N=17, C=29, dtype=np.float32, scale=3.0):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((N, C))).astype(dtype)
    t = rng.integers(0, C, N)
    w = rng.uniform(0.1, 2.0, C).astype(dtype)
    return x, t, w


def partitions(C, seed=0):
    rng = np.random.default_rng(seed)
    inner = sorted(rng.choice(np.arange(1, C), 4, replace=False).tolist())
    return {1: [0, C], 2: [0, C // 2, C], 3: [0, 1, 11, C], 5: [0] + inner + [C],
            "empty": [0, 0, 9, 9, C], C: list(range(C + 1))}


OPTIONS = [dict(), dict(weight=True), dict(label_smoothing=0.2),
           dict(weight=True, label_smoothing=0.5, ignore_index=3), dict(label_smoothing=1.0)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_any_partition_equals_unsharded(opt, reduction):
    x, t, w = make(1)
    kw = dict(opt)
    if kw.pop("weight", False):
        kw["weight"] = w
    t[::5] = kw.get("ignore_index", -100)
    loss, G, tl, tg = reference(x, t, reduction=reduction, **kw)
    results = {}
    for name, cuts in partitions(x.shape[1]).items():
        comb, g = sharded(x, t, cuts, reduction=reduction, order=None, **kw)
        assert comb.loss.dtype == x.dtype and g.dtype == x.dtype
        assert_within(comb.loss, loss, tl, x.dtype, f"loss, {name} shards")
        assert_within(g, G, tg, x.dtype, f"grad, {name} shards")
        results[name] = (comb, g)
    base_c, base_g = results[1]
    for name, (comb, g) in results.items():
        # bitwise for any shard count: the 'mean' denominator (and so the ignore mask)
        assert comb.denom == base_c.denom
        # float32: roundings of float64 values ~2**-29 ulp apart: at most one ulp apart
        assert np.all(ulp_error(comb.loss, base_c.loss, x.dtype) <= 1), name
        assert np.all(ulp_error(g, base_g, x.dtype) <= 1), name


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_dtypes(dtype):
    x, t, w = make(2, dtype=dtype, scale=2.0)
    t[0] = -100
    for red in ("mean", "none"):
        loss, G, tl, tg = reference(x, t, weight=w, reduction=red, label_smoothing=0.1)
        comb, g = sharded(x, t, [0, 5, 20, 29], weight=w, reduction=red, label_smoothing=0.1)
        assert_within(comb.loss, loss, tl, dtype, f"{np.dtype(dtype).name} loss")
        assert_within(g, G, tg, dtype, f"{np.dtype(dtype).name} grad")


def test_shard_order_does_not_matter_bitwise():
    x, t, w = make(3)
    a = sharded(x, t, [0, 4, 13, 29], weight=w, label_smoothing=0.1)
    b = sharded(x, t, [0, 4, 13, 29], weight=w, label_smoothing=0.1, order=[2, 0, 1])
    assert np.array_equal(a[0].loss, b[0].loss) and np.array_equal(a[1], b[1])


def test_agrees_with_torch_and_nbxent_cross_entropy():
    torch = pytest.importorskip("torch")
    x, t, w = make(4, N=12, C=40)
    t[::4] = -100
    for red in ("mean", "sum", "none"):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(xt, torch.tensor(t), weight=torch.tensor(w, dtype=torch.float64),
                                               reduction=red, label_smoothing=0.1)
        lt.sum().backward()
        loss, G, tl, tg = reference(x, t, weight=w, reduction=red, label_smoothing=0.1)
        # the float64 reference is torch's float64 answer (to float64 rounding) ...
        np.testing.assert_allclose(lt.detach().numpy(), loss, rtol=64 * U64, atol=64 * U64)
        np.testing.assert_allclose(xt.grad.numpy(), G, rtol=64 * U64, atol=64 * U64)
        comb, g = sharded(x, t, [0, 7, 40], weight=w, reduction=red, label_smoothing=0.1)
        assert_within(comb.loss, lt.detach().numpy(), tl, x.dtype, "vs torch64")
        # ... and nbxent's own cross_entropy on the unsharded float32 logits agrees with both
        # to its float32 accuracy (tests/ce_support.py's K_VALUE * u * scale)
        l2, g2 = nbxent.cross_entropy_with_grad(x, t, w, -100, red, 0.1)
        scale = np.abs(x).max() + np.abs(loss).max() + 1
        assert np.all(np.abs(comb.loss - l2) <= 16 * u(np.float32) * scale * (40 if red == "sum" else 1))
        assert np.all(np.abs(g - g2) <= 16 * u(np.float32) * scale * np.abs(G).max())


def test_large_logits_and_tiny_losses_keep_relative_accuracy():
    # shift-invariance at |x| ~ 1e4 and a confident row whose loss is ~1e-20: the log1p form
    # keeps full relative accuracy in both the sharded and unsharded computation
    C = 24
    x = np.zeros((2, C), np.float32)
    x[0] = 1e4 + np.arange(C, dtype=np.float32)
    x[1, 5] = 50.0
    t = np.array([C - 1, 5])
    comb, g = sharded(x, t, [0, 10, C], reduction="none")
    exact1 = (C - 1) * np.exp(-50.0)             # log1p(y) = y to relative y/2 here
    assert abs(comb.loss[1] - exact1) <= 2 * u(np.float32) * exact1
    want0 = np.log1p(np.sum(np.exp(-np.arange(1.0, C))))
    assert abs(comb.loss[0] - want0) <= 2 * u(np.float32) * want0


def test_nonfinite_logits_match_unsharded_cross_entropy():
    x, t, w = make(5, N=6, C=9)
    x[0, 2] = np.inf        # +inf anywhere: NaN row
    x[1, 4] = np.nan        # NaN anywhere: NaN row
    x[2, :] = -np.inf       # all -inf: NaN
    x[3, t[3]] = -np.inf    # -inf target logit: +inf loss
    x[4, 0] = np.nan        # NaN in an ignored row: loss 0, gradient NaN (torch: 0 * softmax)
    t[4] = -100
    x[5, 1] = 1e30          # a huge finite logit in an ignored row: loss 0, gradient +0.0
    t[5] = -100
    for ls in (0.0, 0.3):
        want, wg = nbxent.cross_entropy_with_grad(x, t, None, -100, "none", ls)
        comb, g = sharded(x, t, [0, 3, 6, 9], reduction="none", label_smoothing=ls)
        assert np.array_equal(np.isnan(comb.loss), np.isnan(want)), (comb.loss, want)
        assert np.array_equal(np.isinf(comb.loss), np.isinf(want))
        assert np.array_equal(np.isnan(g), np.isnan(wg))
        fin = np.isfinite(want)
        np.testing.assert_allclose(comb.loss[fin], want[fin], rtol=1e-5)
        assert comb.loss[4] == 0 and np.isnan(g[4]).all()
        assert comb.loss[5] == 0 and np.array_equal(g[5], wg[5]) and not g[5].any()


def test_all_ignored_and_zero_weight_means_are_nan_like_cross_entropy():
    x, t, w = make(6, N=5, C=7)
    for tt, ww in ((np.full(5, -100), None), (t, np.zeros(7, np.float32))):
        want, wg = nbxent.cross_entropy_with_grad(x, tt, ww, -100, "mean", 0.0)
        comb, g = sharded(x, tt, [0, 3, 7], weight=ww)
        assert np.isnan(comb.loss) and np.isnan(want)
        assert np.array_equal(np.isnan(g), np.isnan(wg))


def test_out_and_inputs_untouched():
    x, t, w = make(7)
    xc, tc = x.copy(), t.copy()
    st = nbxent.vocab_shard_stats(x, t, 0, x.shape[1])
    comb = nbxent.vocab_combine([st])
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(t, tc)
    want = nbxent.vocab_shard_grad(x, t, 0, comb)
    out = nbxent.vocab_shard_grad(x, t, 0, comb, out=x)   # in place, as documented
    assert out is x and np.array_equal(x, want)


def test_bad_inputs():
    x, t, w = make(8, N=4, C=10)
    st = lambda *a, **k: nbxent.vocab_shard_stats(*a, **k)  # noqa: E731
    with pytest.raises(ValueError, match=r"vocab_shard_stats: columns \[5, 15\).*\[0, 10\)"):
        st(x, t, 5, 10)
    with pytest.raises(IndexError, match="vocab_shard_stats: Target 12 is out of bounds"):
        st(x, np.array([0, 1, 2, 12]), 0, 10)
    with pytest.raises(ValueError, match="argument 'target' must have shape"):
        st(x, t[:3], 0, 10)
    with pytest.raises(ValueError, match="must be 2-D"):
        st(x[0], t, 0, 10)
    with pytest.raises(RuntimeError, match="integer class indices"):
        st(x, t.astype(np.float32), 0, 10)
    with pytest.raises(RuntimeError, match="shard's slice of the class weights"):
        st(x[:, :5], t, 0, 10, weight=w)
    with pytest.raises(RuntimeError, match="label_smoothing must be between"):
        st(x, t, 0, 10, label_smoothing=2.0)
    with pytest.raises(TypeError, match="argument 'vocab_start' must be int"):
        st(x, t, 0.0, 10)
    a, b = st(x[:, :4], t, 0, 10), st(x[:, 5:], t, 5, 10)
    with pytest.raises(ValueError, match="do not partition"):
        nbxent.vocab_combine([a, b])
    with pytest.raises(ValueError, match="do not partition"):
        nbxent.vocab_combine([a, st(x[:, 3:], t, 3, 10)])
    with pytest.raises(ValueError, match="different targets"):
        nbxent.vocab_combine([a, st(x[:, 4:], np.array([-100, 1, 2, 3]), 4, 10)])
    with pytest.raises(ValueError, match="disagree on label_smoothing"):
        nbxent.vocab_combine([a, st(x[:, 4:], t, 4, 10, label_smoothing=0.1)])
    with pytest.raises(ValueError, match="avg is not a valid value"):
        nbxent.vocab_combine([st(x, t, 0, 10)], "avg")
    with pytest.raises(TypeError, match="ShardStats"):
        nbxent.vocab_combine([])
    comb = nbxent.vocab_combine([st(x, t, 0, 10)])
    with pytest.raises(ValueError, match="vocab_shard_grad: argument 'combined' is for 4 rows"):
        nbxent.vocab_shard_grad(x[:3], t[:3], 0, comb)


def test_docstring_examples():
    res = doctest.testmod(nbxent._vocab._api, verbose=False)
    assert res.attempted >= 4 and res.failed == 0
