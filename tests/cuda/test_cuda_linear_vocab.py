"""CUDA backend of linear_cross_entropy (chunk loop on device arrays; GEMMs on the host under the
simulator) and of the vocab-parallel shard statistics/gradient. Tiny shapes: the simulator runs
a Python thread per GPU thread. Bounds: tests/test_linear_ce_bounds.py and
tests/test_vocab_parallel.py (the CUDA kernels compute the same float64 formulas)."""
from __future__ import annotations

import numpy as np
import pytest
from test_linear_ce_bounds import check, reference

import nbxent
import nbxent.cuda as nc


def _case(seed=0, N=6, H=4, V=5):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, H)).astype(np.float32)
    W = rng.standard_normal((V, H)).astype(np.float32)
    b = rng.standard_normal(V).astype(np.float32)
    t = rng.integers(0, V, N)
    t[2] = -100
    w = rng.uniform(0.5, 1.5, V).astype(np.float32)
    return h, W, b, t, w


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_ce_matches_reference_and_cpu(reduction):
    h, W, b, t, w = _case()
    kw = dict(linear_bias=b, weight=w, reduction=reduction, label_smoothing=0.1)
    ref = reference(h, W, t, **kw)
    cpu = nbxent.linear_cross_entropy_with_grad(h, W, t, chunk_size=4, **kw)
    for cs in ((2, 4) if reduction == "mean" else (3,)):
        got = nc.linear_cross_entropy_with_grad(h, W, t, chunk_size=cs, **kw)
        assert all(isinstance(g, np.ndarray) for g in got)     # host in, host out
        check(got, ref, np.float32, f"cuda chunk={cs}")
        # the loss is the same correctly rounded sum of the same per-sample losses
        np.testing.assert_allclose(got[0], cpu[0], rtol=4 * np.finfo(np.float32).eps)
    fwd = nc.linear_cross_entropy(h, W, t, chunk_size=4, **kw)
    check((fwd,), ref, np.float32, "cuda forward")


def test_linear_ce_device_arrays_probability_targets():
    from numba import cuda
    h, W, b, t, w = _case(1, N=5)
    q = np.random.default_rng(2).dirichlet(np.ones(5), 5).astype(np.float32)
    ref = reference(h, W, q, linear_bias=b, reduction="sum")
    dh, dW, db, dq = (cuda.to_device(a) for a in (h, W, b, q))
    # nbxent.linear_cross_entropy dispatches on device arrays, like the other losses
    got = nbxent.linear_cross_entropy_with_grad(dh, dW, dq, linear_bias=db, reduction="sum",
                                                chunk_size=3)
    assert all(hasattr(g, "copy_to_host") for g in got)        # device in, device out
    check(tuple(g.copy_to_host() for g in got), ref, np.float32, "cuda device prob")


def test_linear_ce_same_errors_as_cpu():
    h, W, b, t, w = _case()
    for args, kw in (((h, W[:, :3], t), {}), ((h, W, np.array([0, 1, 2, 3, 4, 9])), {}),
                     ((h, W, t), dict(reduction="avg")), ((h.reshape(2, 3, 4), W, t), {})):
        with pytest.raises(Exception) as a:
            nbxent.linear_cross_entropy(*args, **kw)
        with pytest.raises(Exception) as c:
            nc.linear_cross_entropy(*args, **kw)
        assert a.type is c.type and str(a.value) == str(c.value)


def test_vocab_shard_stats_and_grad_on_device_match_cpu():
    from numba import cuda
    rng = np.random.default_rng(3)
    N, C = 5, 9
    x = (3 * rng.standard_normal((N, C))).astype(np.float32)
    t = rng.integers(0, C, N)
    t[1] = -100
    w = rng.uniform(0.5, 1.5, C).astype(np.float32)
    cuts = [0, 4, C]
    for on_device in (False, True):
        stats_d, stats_h = [], []
        for a, bnd in zip(cuts[:-1], cuts[1:]):
            xs = x[:, a:bnd]
            arg = cuda.to_device(np.ascontiguousarray(xs))
            stats_d.append(nbxent.vocab_shard_stats(arg, t, a, C, weight=w[a:bnd],
                                                    label_smoothing=0.2))
            stats_h.append(nbxent.vocab_shard_stats(xs, t, a, C, weight=w[a:bnd],
                                                    label_smoothing=0.2))
        for sd, sh in zip(stats_d, stats_h):
            for f in ("row_max", "target_logit", "target_weight", "owned"):
                assert np.array_equal(getattr(sd, f), getattr(sh, f)), f   # exact quantities
            for f in ("sum_exp", "smooth"):
                # float64 sums of <= C terms from the same formula: (C + 16) u64 relative
                np.testing.assert_allclose(getattr(sd, f), getattr(sh, f), rtol=(C + 16) * 2.0 ** -53,
                                           atol=0)
        comb = nbxent.vocab_combine(stats_d)
        ref = nbxent.cross_entropy(x, t, w, -100, "mean", 0.2)
        np.testing.assert_allclose(comb.loss, ref, rtol=16 * np.finfo(np.float32).eps)
        for a, bnd in zip(cuts[:-1], cuts[1:]):
            xs = np.ascontiguousarray(x[:, a:bnd])
            src = cuda.to_device(xs) if on_device else xs
            g = nbxent.vocab_shard_grad(src, t, a, comb, weight=w[a:bnd])
            g = g.copy_to_host() if hasattr(g, "copy_to_host") else g
            gh = nbxent.vocab_shard_grad(xs, t, a, comb, weight=w[a:bnd])
            # float64 formula rounded once to float32 on both: at most one float32 ulp apart
            assert np.all(np.abs(g - gh) <= np.spacing(np.abs(gh))), (g, gh)
            assert not g[1].any()
