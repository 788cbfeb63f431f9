"""linear_cross_entropy on NumPy: every cross-entropy option against the float64 reference
(cross_entropy on the materialised logits) and torch's F.linear_cross_entropy, chunk-size and
batch invariance, memory, inputs left alone. Bounds: tests/test_linear_ce_bounds.py."""
from __future__ import annotations

import doctest
import tracemalloc

import numpy as np
import pytest
from test_linear_ce_bounds import check, reference, tolerances

import nbxent
import nbxent._linear._api

lce = nbxent.linear_cross_entropy
lce_grad = nbxent.linear_cross_entropy_with_grad


def make(seed, N=23, H=12, V=31, dtype=np.float32, out_features=(), scale=1.0):
    rng = np.random.default_rng(seed)
    h = (scale * rng.standard_normal((N, H))).astype(dtype)
    W = (rng.standard_normal((V,) + out_features + (H,)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal((V,) + out_features).astype(dtype)
    t = rng.integers(0, V, (N,) + out_features)
    w = rng.uniform(0.2, 2.0, V).astype(dtype)
    return h, W, b, t, w


OPTIONS = [
    dict(),
    dict(weight=True),
    dict(label_smoothing=0.15),
    dict(weight=True, label_smoothing=0.3),
    dict(ignore_index=4),            # an ordinary class id used as the ignore value
    dict(weight=True, ignore_index=-1, label_smoothing=1.0),
]


def _kw(opt, w):
    kw = dict(opt)
    if kw.pop("weight", False):
        kw["weight"] = w
    return kw


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_every_option_matches_cross_entropy_on_materialised_logits(opt, reduction):
    h, W, b, t, w = make(1)
    t[::4] = opt.get("ignore_index", -100)
    kw = _kw(opt, w)
    ref = reference(h, W, t, linear_bias=b, reduction=reduction, **kw)
    for cs in (1, 5, None):
        got = lce_grad(h, W, t, linear_bias=b, reduction=reduction, chunk_size=cs, **kw)
        check(got, ref, np.float32, f"{opt} {reduction} chunk={cs}")
        check((lce(h, W, t, linear_bias=b, reduction=reduction, chunk_size=cs, **kw),),
              ref, np.float32, "forward only")


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_float64_and_float16(dtype):
    h, W, b, t, w = make(2, dtype=dtype)
    t[1] = -100
    for red in ("mean", "none"):
        ref = reference(h, W, t, linear_bias=b, weight=w, reduction=red, label_smoothing=0.1)
        got = lce_grad(h, W, t, linear_bias=b, weight=w, reduction=red, label_smoothing=0.1,
                       chunk_size=4)
        check(got, ref, dtype, f"{np.dtype(dtype).name} {red}")


def test_probability_targets_kdim_weight_unbatched_and_no_bias():
    rng = np.random.default_rng(3)
    h, W, b, t, w = make(3)
    q = rng.dirichlet(np.ones(W.shape[0]), h.shape[0]).astype(np.float32)
    for red in ("mean", "sum", "none"):
        ref = reference(h, W, q, linear_bias=b, reduction=red, label_smoothing=0.2)
        check(lce_grad(h, W, q, linear_bias=b, reduction=red, label_smoothing=0.2, chunk_size=6),
              ref, np.float32, f"prob {red}")
    # K-dimensional loss: linear_weight (C, d, H) -> logits (N, C, d), softmax over C
    h, W, b, t, w = make(4, out_features=(3,))
    t[0, 1] = -100
    for red in ("mean", "none"):
        ref = reference(h, W, t, linear_bias=b, weight=w, reduction=red, label_smoothing=0.1)
        check(lce_grad(h, W, t, linear_bias=b, weight=w, reduction=red, label_smoothing=0.1,
                       chunk_size=5), ref, np.float32, f"kdim {red}")
    # unbatched (H,) input with a 0-d target: 'none' is 0-d, 'mean' divides by w[t]
    h, W, b, t, w = make(5)
    for red in ("mean", "none"):
        ref = reference(h[0], W, np.asarray(t[0]), weight=w, reduction=red)
        got = lce_grad(h[0], W, np.asarray(t[0]), weight=w, reduction=red)
        assert got[0].shape == () and got[1].shape == h[0].shape and got[3] is None
        check(got, ref, np.float32, f"unbatched {red}")


def test_agrees_with_torch_linear_cross_entropy():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W, b, t, w = make(6, N=40, H=16, V=50)
    t[::3] = -100
    for kw in (dict(), dict(weight=w, label_smoothing=0.2)):
        for red in ("mean", "sum", "none"):
            # oracle: torch's own function in float64 on the same (float32) inputs
            th, tW, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True)
                          for a in (h, W, b))
            tkw = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, np.ndarray) else v
                   for k, v in kw.items()}
            loss = F.linear_cross_entropy(th, tW, torch.tensor(t), linear_bias=tb,
                                          reduction=red, **tkw)
            loss.sum().backward()
            ref = reference(h, W, t, linear_bias=b, reduction=red, **kw)
            tol = tolerances(ref, np.float32)
            torch_ref = dict(ref, loss=loss.detach().numpy(), grad_input=th.grad.numpy(),
                             grad_weight=tW.grad.numpy(), grad_bias=tb.grad.numpy())
            # torch float64 agrees with the float64 reference to float64 rounding ...
            check([torch_ref[k] for k in ("loss", "grad_input", "grad_weight", "grad_bias")],
                  ref, np.float64, f"torch64 vs ref {red}")
            # ... and nbxent float32 is within the float32 bound of torch's float64 answer
            check(lce_grad(h, W, t, linear_bias=b, reduction=red, chunk_size=7, **kw),
                  torch_ref, np.float32, f"nbxent vs torch64 {red}", tol=tol)


def test_torch_float32_chunked_path_within_the_same_bound():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W, b, t, w = make(7, N=32, H=16, V=40)
    t[::5] = -100
    ref = reference(h, W, t, linear_bias=b, weight=w)
    th, tW, tb = (torch.tensor(a, requires_grad=True) for a in (h, W, b))
    loss = F.linear_cross_entropy(th, tW, torch.tensor(t), linear_bias=tb,
                                  weight=torch.tensor(w),
                                  options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=8))
    loss.backward()
    # the bound is for any correct float32 evaluation: torch's chunked path is one
    check((loss.detach().numpy(), th.grad.numpy(), tW.grad.numpy(), tb.grad.numpy()), ref,
          np.float32, "torch float32 chunked")


def _exact_gemm_case(seed=8, N=29, H=10, V=37):
    # dyadic inputs with few bits: every logit is exact in float32, so any difference
    # between chunk sizes could only come from the chunk loop itself
    rng = np.random.default_rng(seed)
    h = (rng.integers(-4, 5, (N, H)) / 4).astype(np.float32)
    W = (rng.integers(-4, 5, (V, H)) / 8).astype(np.float32)
    b = (rng.integers(-4, 5, V) / 2).astype(np.float32)
    t = rng.integers(0, V, N)
    t[::6] = -100
    z = h.astype(np.float64) @ W.T.astype(np.float64) + b
    assert np.array_equal((h @ W.T + b).astype(np.float64), z)
    return h, W, b, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_chunk_size_invariance(reduction):
    h, W, b, t = _exact_gemm_case()
    kw = dict(linear_bias=b, reduction=reduction, label_smoothing=0.1)
    runs = {cs: lce_grad(h, W, t, chunk_size=cs, **kw) for cs in (1, 2, 3, 8, 29, None, 1000)}
    base = runs[29]
    ref = reference(h, W, t, **kw)
    tol = tolerances(ref, np.float32)
    for cs, got in runs.items():
        # the loss is a correctly rounded sum of per-sample losses in sample order: with
        # exact logits it is bitwise the same for every chunk size
        assert np.array_equal(got[0], base[0]), (cs, got[0], base[0])
        # the gradients differ only by the GEMMs' rounding: within the sum of two bounds
        for k, name in enumerate(("grad_input", "grad_weight", "grad_bias"), start=1):
            diff = np.abs(got[k].astype(np.float64) - base[k])
            assert np.all(diff <= 2 * tol[name]), (cs, name, diff.max())


def test_chunk_size_invariance_with_rounded_logits():
    h, W, b, t, w = make(9, N=40)
    t[::7] = -100
    ref = reference(h, W, t, linear_bias=b, weight=w, label_smoothing=0.05)
    tol = tolerances(ref, np.float32)
    runs = [lce_grad(h, W, t, linear_bias=b, weight=w, label_smoothing=0.05, chunk_size=cs)
            for cs in (1, 3, 16, 40)]
    for got in runs[1:]:
        for k, name in enumerate(("loss", "grad_input", "grad_weight", "grad_bias")):
            diff = np.abs(np.asarray(got[k], np.float64) - runs[0][k])
            assert np.all(diff <= 2 * tol[name]), (name, diff.max())


def test_batch_invariance():
    # a sample's loss and input gradient do not depend on its neighbours
    h, W, b, t, w = make(10, N=30)
    t[::4] = -100
    kw = dict(linear_bias=b, weight=w, reduction="none", label_smoothing=0.1, chunk_size=7)
    loss, gh, _, _ = lce_grad(h, W, t, **kw)
    perm = np.random.default_rng(0).permutation(30)
    loss_p, gh_p, _, _ = lce_grad(h[perm], W, t[perm], **kw)
    sub = perm[:9]
    loss_s, gh_s, _, _ = lce_grad(h[sub], W, t[sub], **kw)
    ref = reference(h, W, t, **{k: v for k, v in kw.items() if k != "chunk_size"})
    tol = tolerances(ref, np.float32)
    for got_l, got_g, idx in ((loss_p, gh_p, perm), (loss_s, gh_s, sub)):
        assert np.all(np.abs(got_l - loss[idx]) <= 2 * tol["loss"][idx])
        assert np.all(np.abs(got_g - gh[idx]) <= 2 * tol["grad_input"][idx])


def test_all_ignored_zero_weight_and_empty_match_torch_reference_path():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W, b, t, w = make(11, N=6, H=4, V=5)
    cases = [(np.full(6, -100), None), (t, np.zeros(5, np.float32))]
    for tt, ww in cases:
        th, tW, tb = (torch.tensor(a, requires_grad=True) for a in (h, W, b))
        loss = F.linear_cross_entropy(th, tW, torch.tensor(tt), linear_bias=tb,
                                      weight=None if ww is None else torch.tensor(ww))
        loss.backward()
        got = lce_grad(h, W, tt, linear_bias=b, weight=ww, chunk_size=4)
        for g, want in zip(got, (loss, th.grad, tW.grad, tb.grad)):
            want = want.detach().numpy()
            assert np.array_equal(np.isnan(g), np.isnan(want)), (g, want)
            np.testing.assert_array_equal(np.nan_to_num(g), np.nan_to_num(want))
    e = lce_grad(h[:0], W, t[:0], linear_bias=b)
    assert np.isnan(e[0]) and e[1].shape == (0, 4) and not e[2].any() and not e[3].any()
    assert float(lce(h[:0], W, t[:0], reduction="sum")) == 0.0


def test_inputs_are_not_modified():
    h, W, b, t, w = make(12)
    t[2] = -100
    copies = [a.copy() for a in (h, W, b, t, w)]
    lce_grad(h, W, t, linear_bias=b, weight=w, chunk_size=3, label_smoothing=0.1)
    lce(h, W, t, linear_bias=b, weight=w)
    for a, c in zip((h, W, b, t, w), copies):
        np.testing.assert_array_equal(a, c)


def test_peak_memory_is_a_chunk_not_the_logits():
    # logits would be N*V*4 = 4 MiB; a chunk of 16 rows is 64 KiB
    N, H, V, cs = 512, 32, 2048, 16
    h, W, b, t, w = make(13, N=N, H=H, V=V)
    lce_grad(h[:cs], W, t[:cs], linear_bias=b, chunk_size=cs)       # compile outside the trace
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = lce_grad(h, W, t, linear_bias=b, chunk_size=cs)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    grads = sum(g.nbytes for g in out[1:])
    chunk = cs * V * 4
    # gradients + the chunk buffer + the weight-gradient scratch (<= one chunk) + O(N + V)
    # float64 vectors; far below the N*V logits
    allowance = grads + 2 * chunk + 16 * (N + V) * 8
    assert peak <= allowance, (peak, allowance, N * V * 4)
    assert peak < grads + N * V * 4 / 4


def test_default_chunk_size_is_torchs_rule_with_a_floor():
    from nbxent._linear._plan import MIN_CHUNK_LOGITS, aspect_ratio_chunk, default_chunk_size
    torch = pytest.importorskip("torch")
    opts = torch.nn.LinearCrossEntropyOptions()
    for n, h, v in ((4096, 2048, 32000), (8192, 4096, 128256), (6, 4, 5), (1000, 64, 50),
                    (1, 8, 100000), (100000, 64, 3_000_000)):
        torch_rule = opts._adjust(n, h, v, torch.float32, torch.device("cpu")).batch_chunk_size
        assert aspect_ratio_chunk(n, h, v) == torch_rule, (n, h, v)
        got = default_chunk_size(n, h, v)
        assert 1 <= got <= n and got >= torch_rule
        # above torch's rule only to reach the floor (or all N rows), and never past it
        assert got == torch_rule or got * v <= MIN_CHUNK_LOGITS, (n, h, v, got)
        assert got in (torch_rule, n) or MIN_CHUNK_LOGITS < 2 * got * v, (n, h, v, got)
    assert default_chunk_size(4096, 2048, 32000) == 512
    assert default_chunk_size(8192, 4096, 128256) == 128


def _raises(exc, match, *args, **kw):
    with pytest.raises(exc, match=match):
        lce(*args, **kw)


def test_bad_inputs_raise_torch_types_with_names():
    h, W, b, t, w = make(14, N=6, H=4, V=5)
    fn = "linear_cross_entropy"
    _raises(RuntimeError, f"{fn}.*dimensionality 1 or 2, got 3.*reshape", h.reshape(2, 3, 4),
            W, t.reshape(2, 3))
    _raises(RuntimeError, f"{fn}.*in_features.*4 and 3", h, W[:, :3], t)
    _raises(RuntimeError, f"{fn}.*linear_weight with dimensionality", h, W[0], t)
    _raises(RuntimeError, f"{fn}.*same dtype.*float64 != float32", h.astype(np.float64), W, t)
    _raises(RuntimeError, f"{fn}.*linear_bias shape", h, W, t, linear_bias=b[:4])
    _raises(RuntimeError, f"{fn}.*linear_bias dtype", h, W, t, linear_bias=b.astype(np.float64))
    _raises(IndexError, f"{fn}: Target 5 is out of bounds.*'target'", h, W,
            np.array([0, 1, 2, 3, 4, 5]))
    _raises(IndexError, f"{fn}: Target -3 is out of bounds", h, W, np.array([0, 1, 2, 3, 4, -3]))
    _raises(ValueError, f"{fn}: Expected input batch_size \\(6\\) to match target batch_size "
            "\\(5\\)", h, W, t[:5])
    _raises(ValueError, f"{fn}: avg is not a valid value for reduction", h, W, t,
            reduction="avg")
    _raises(RuntimeError, f"{fn}: ignore_index cannot be specified", h, W,
            np.full((6, 5), 0.2, np.float32), ignore_index=-100)
    _raises(RuntimeError, f"{fn}: label_smoothing must be between 0.0 and 1.0", h, W, t,
            label_smoothing=1.5)
    _raises(RuntimeError, f"{fn}: weight tensor should be defined", h, W, t, weight=w[:4])
    _raises(RuntimeError, f"{fn}.*target dtype", h, W, t.astype(np.float32))
    _raises(ValueError, f"{fn}: argument 'chunk_size' must be positive, got 0", h, W, t,
            chunk_size=0)
    _raises(TypeError, f"{fn}: argument 'chunk_size' must be int", h, W, t, chunk_size=2.0)
    _raises(TypeError, f"{fn}: argument 'input' must be an array", h.tolist(), W, t)
    _raises(TypeError, f"{fn}: argument 'ignore_index' must be int", h, W, t, ignore_index=1.5)
    _raises(NotImplementedError, f"{fn}: not implemented for dtype int64", h.astype(np.int64),
            W.astype(np.int64), t)
    _raises(RuntimeError, f"{fn}: K-dimensional loss.*requires batched", h[0],
            W.reshape(5, 1, 4), np.asarray(0))
    with pytest.raises(ValueError, match="linear_cross_entropy_with_grad: avg"):
        lce_grad(h, W, t, reduction="avg")


def test_error_types_agree_with_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W, b, t, w = make(15, N=6, H=4, V=5)
    cases = [
        dict(input=h.reshape(2, 3, 4), target=t.reshape(2, 3)),
        dict(linear_weight=W[:, :3]),
        dict(target=np.array([0, 1, 2, 3, 4, 5])),
        dict(target=t[:5]),
        dict(reduction="avg"),
        dict(linear_bias=b[:4]),
        dict(label_smoothing=1.5),
        dict(weight=w[:4]),
        dict(target=np.full((6, 5), 0.2, np.float32), ignore_index=-100),
    ]
    for case in cases:
        args = dict(input=h, linear_weight=W, target=t)
        args.update(case)
        kw = {k: args.pop(k) for k in list(args) if k not in ("input", "linear_weight", "target")}
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        with pytest.raises(Exception) as mine:
            lce(args["input"], args["linear_weight"], args["target"], **kw)
        with pytest.raises(Exception) as theirs:
            F.linear_cross_entropy(*(torch.tensor(args[k]) for k in
                                     ("input", "linear_weight", "target")), **tkw)
        assert mine.type is theirs.type, (case, mine.value, theirs.value)


def test_docstring_examples():
    res = doctest.testmod(nbxent._linear._api, verbose=False)
    assert res.attempted >= 3 and res.failed == 0
