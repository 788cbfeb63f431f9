"""The float32 BCE kernels' fast paths: their special log1p forms, the range check counted
inside the kernel, the chunk loops, and that each path vectorizes and is thread-count
invariant.

The forms ``log1m_f32`` / ``log1p_unit_f32`` of ``nbxent._cpu.fastmath`` promise the bits
of ``log1p_f32`` on [0, 1], so they are compared bit for bit (every float32 of [0, 1] was
checked once, 1.07e9 values, 0 mismatches; here a strided subset and every value near the
places where the algorithm changes branch). The range check of the float32 BCE kernel
must raise exactly what the separate scan (``check_probabilities``) raises.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

import nbxent
from nbxent._cpu.fastmath import log1m_f32, log1p_f32, log1p_unit_f32
from nbxent.bce import cpu as _bce_cpu
from nbxent.bce import cpu_f32 as _bce_cpu_f32


@numba.njit(error_model="numpy")
def _forms(z, ref_m, got_m, ref_p, got_p):
    for j in range(z.size):
        ref_m[j] = log1p_f32(-z[j])
        got_m[j] = log1m_f32(z[j])
        ref_p[j] = log1p_f32(z[j])
        got_p[j] = log1p_unit_f32(z[j])


def _unit_interval_sample():
    one = int(np.float32(1.0).view(np.uint32))
    strided = np.arange(0, one + 1, 61, dtype=np.uint32)
    # near 0, the subnormal/normal edge, 2**-24 (where 1 - p first rounds), 1/2 (where
    # 1 - p becomes exact), sqrt(2) - 1 (log's split point for 1 + z) and 1
    edges = [0.0, 2.0**-126, 2.0**-24, 0.5, float(np.sqrt(np.float32(2)) - 1), 1.0]
    near = [np.arange(max(0, int(np.float32(e).view(np.uint32)) - 4096),
                      min(one, int(np.float32(e).view(np.uint32)) + 4096) + 1, dtype=np.uint32)
            for e in edges]
    z = np.concatenate([strided] + near).view(np.float32)
    return np.concatenate([z, np.array([np.nan, -0.0], dtype=np.float32)])


def test_log1p_forms_are_the_bits_of_log1p_f32_on_the_unit_interval():
    z = _unit_interval_sample()
    outs = [np.empty_like(z) for _ in range(4)]
    _forms(z, *outs)
    ref_m, got_m, ref_p, got_p = (o.view(np.uint32) for o in outs)
    for name, ref, got in (("log1m_f32", ref_m, got_m), ("log1p_unit_f32", ref_p, got_p)):
        bad = np.flatnonzero(ref != got)
        assert bad.size == 0, (f"{name}: {bad.size} of {z.size} differ from log1p_f32, first at "
                               f"z={z[bad[0]]!r}: {got[bad[0]]:#x} vs {ref[bad[0]]:#x}")


# ------------------------------------------------------------------------ range check
def _error(fn, *args, **kw):
    with pytest.raises(RuntimeError) as info:
        fn(*args, **kw)
    return str(info.value)


@pytest.mark.parametrize("where,what", [("input", np.nan), ("input", -1e-45), ("input", 1.0000001),
                                        ("target", 1.5), ("target", -0.25), ("target", np.inf)])
def test_the_fused_range_check_raises_what_the_separate_scan_raises(where, what):
    # A bad element deep in a later block, a second one after it, on both the float32 path
    # (check inside the kernel) and the float64 path (the scan before the kernel): the
    # messages must agree and name the first bad element.
    rng = np.random.default_rng(29)
    n = 3 * _bce_cpu.BLOCK_F32 + 77
    x = rng.random(n).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    first = 2 * _bce_cpu.BLOCK_F32 + 511
    (x if where == "input" else y)[first] = what
    x[first + 1000] = 2.0
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for fn, kw in ((nbxent.binary_cross_entropy, {}), (nbxent.binary_cross_entropy, {"reduction": "none"}),
                   (nbxent.binary_cross_entropy_with_grad, {"out": True}),
                   (nbxent.binary_cross_entropy_with_grad, {})):
        got = _error(fn, x, y, **{k: (np.empty_like(x) if k == "out" else v) for k, v in kw.items()})
        want = _error(fn, x64, y64, **{k: (np.empty_like(x64) if k == "out" else v) for k, v in kw.items()})
        assert got == want
        assert f"flat index {first})" in got and f"argument '{where}'" in got


def test_the_fused_range_check_runs_on_the_backward_passes_too():
    x = np.full(40000, 0.5, dtype=np.float32)
    y = np.full(40000, 0.5, dtype=np.float32)
    y[39999] = -1.0
    g = np.ones_like(x)
    for kw in ({}, {"reduction": "none"}):
        gg = g if kw else np.float32(1.0)
        msg = _error(nbxent.binary_cross_entropy_backward, gg, x, y, **kw)
        assert "flat index 39999" in msg and "'target'" in msg


def test_in_range_edge_values_pass_the_fused_check():
    # -0.0, the smallest subnormal, 0 and 1 are probabilities; the product test accepts them
    x = np.array([-0.0, 1e-45, 0.0, 1.0, 0.5] * 8000, dtype=np.float32)
    y = np.array([1.0, 0.0, -0.0, 1e-45, 1.0] * 8000, dtype=np.float32)
    loss, grad = nbxent.binary_cross_entropy_with_grad(x, y, reduction="sum")
    want, want_g = nbxent.binary_cross_entropy_with_grad(x.astype(np.float64), y.astype(np.float64),
                                                         reduction="sum")
    assert np.isfinite(loss) and abs(float(loss) - float(want)) <= 1e-6 * abs(float(want))
    np.testing.assert_array_equal(np.isinf(grad), np.isinf(want_g))


# ------------------------------------------------------------------ paths and threads
def _paths(logits):
    """(name, call) for each chunk-loop path of the float32 kernels."""
    rng = np.random.default_rng(31)
    n = 2 * _bce_cpu.BLOCK_F32 + _bce_cpu_f32.CHUNK + 5  # partial chunk and partial block
    shape = (n // 5, 5)
    x = (rng.standard_normal(shape) * 4 if logits else rng.random(shape)).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, (1, 5)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    fused = (nbxent.binary_cross_entropy_with_logits_with_grad if logits
             else nbxent.binary_cross_entropy_with_grad)
    fwd = nbxent.binary_cross_entropy_with_logits if logits else nbxent.binary_cross_entropy
    bwd = (nbxent.binary_cross_entropy_with_logits_backward if logits
           else nbxent.binary_cross_entropy_backward)
    extra = {"pos_weight": rng.uniform(0.5, 3.0, 5).astype(np.float32)} if logits else {}
    paths = {"fused plain": lambda: fused(x, y), "fused weighted": lambda: fused(x, y, weight=w, **extra),
             "fused none": lambda: fused(x, y, reduction="none"),
             "forward sum": lambda: fwd(x, y, reduction="sum"),
             "forward none weighted": lambda: fwd(x, y, weight=w, reduction="none", **extra),
             "backward per-element g": lambda: bwd(g, x, y, reduction="none"),
             "backward scalar g": lambda: bwd(np.float32(0.5), x, y, weight=w, **extra)}
    return paths, (x, y, w, g, extra)


@pytest.mark.parametrize("logits", [False, True])
def test_every_float32_path_is_bit_identical_for_one_and_two_threads(logits):
    paths, _ = _paths(logits)
    results = {}
    previous = numba.get_num_threads()
    try:
        for k in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(k)
            results[k] = {name: call() for name, call in paths.items()}
    finally:
        numba.set_num_threads(previous)
    one, two = results.values()
    for name in paths:
        a = one[name] if isinstance(one[name], tuple) else (one[name],)
        b = two[name] if isinstance(two[name], tuple) else (two[name],)
        for u, v in zip(a, b):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), name


@pytest.mark.parametrize("logits", [False, True])
def test_the_fused_pass_equals_its_forward_and_backward(logits):
    # The one-pass loop (loss and gradient together) and the separate loops evaluate the
    # same formulas: same bits for the elementwise losses and the gradient, and the same
    # per-lane partial sums for the reduced loss.
    paths, (x, y, w, g, extra) = _paths(logits)
    fwd = nbxent.binary_cross_entropy_with_logits if logits else nbxent.binary_cross_entropy
    bwd = (nbxent.binary_cross_entropy_with_logits_backward if logits
           else nbxent.binary_cross_entropy_backward)
    fused = (nbxent.binary_cross_entropy_with_logits_with_grad if logits
             else nbxent.binary_cross_entropy_with_grad)
    one = np.float32(1.0)
    for kw in ({}, {"weight": w, **extra}, {"reduction": "sum"}):
        loss, grad = fused(x, y, **kw)
        assert np.asarray(loss).tobytes() == np.asarray(fwd(x, y, **kw)).tobytes(), kw
        assert grad.tobytes() == bwd(one, x, y, **kw).tobytes(), kw
    loss, grad = fused(x, y, reduction="none")
    assert loss.tobytes() == fwd(x, y, reduction="none").tobytes()
    assert grad.tobytes() == bwd(np.ones_like(x), x, y, reduction="none").tobytes()


# ------------------------------------------------------------------------ vectorization
def _host_has(*flags):
    try:
        with open("/proc/cpuinfo") as f:
            have = f.read().split()
    except OSError:
        return False
    return all(fl in have for fl in flags)


N = 256
_f32 = lambda n: np.linspace(0.1, 0.9, n).astype(np.float32)  # noqa: E731
ONES = np.ones(N)
LOOPS = {  # (loop, arguments, packed instruction that only a vectorized build contains)
    "bce range count": ("_count_bad", lambda: (N, _f32(N), _f32(N), np.zeros(N, np.float32)),
                        "vcmp", "ps"),
    "bce loss+grad": ("_bce_loss_grads", lambda: (N, _f32(N), _f32(N), ONES, ONES, 1.0, 1.0, _f32(N),
                                                  _f32(N), np.zeros(N), _f32(N)), "vdiv", "pd"),
    "bce loss+grad plain": ("_bce_loss_grads_plain", lambda: (N, _f32(N), _f32(N), 1.0, 1.0, _f32(N),
                                                              _f32(N), np.zeros(N), _f32(N)),
                            "vdiv", "pd"),
    "bce losses none": ("_bce_losses_none", lambda: (N, _f32(N), ONES, _f32(N), _f32(N), _f32(N)),
                        "vmul", "pd"),
    "bcewl loss+grad": ("_bcewl_loss_grads", lambda: (N, _f32(N), _f32(N), ONES, ONES, True, _f32(N),
                                                      _f32(N), ONES, 1.0, 1.0, np.zeros(N), _f32(N)),
                        "vmul", "pd"),
    "bcewl loss+grad plain": ("_bcewl_loss_grads_plain", lambda: (N, _f32(N), _f32(N), 1.0, 1.0,
                                                                  _f32(N), _f32(N), np.zeros(N),
                                                                  _f32(N)), "vmul", "pd"),
    "bcewl losses none": ("_bcewl_losses_none", lambda: (N, _f32(N), _f32(N), ONES, ONES, False,
                                                         _f32(N), _f32(N)), "vmul", "pd"),
}


@pytest.mark.skipif(not _host_has("avx2", "fma"), reason="the check needs an AVX2+FMA host")
@pytest.mark.parametrize("name", LOOPS)
def test_chunk_loops_vectorize(name):
    # A fresh (uncached) compile of each loop, with the flags of its module, so its assembly
    # can be read: packed ...ps/...pd forms on ymm or zmm registers (a scalar build uses only
    # xmm ...ss/...sd forms).
    attr, make_args, op, suffix = LOOPS[name]
    src = getattr(_bce_cpu_f32, attr)
    flags = {k: v for k, v in src.targetoptions.items() if k in ("error_model", "fastmath")}
    loop = numba.njit(**flags)(src.py_func)
    loop(*make_args())
    asm = loop.inspect_asm(loop.signatures[0])
    ops = [ln.split()[0] for ln in asm.splitlines() if ("%ymm" in ln or "%zmm" in ln) and ln.strip()]
    assert any(o.startswith(op) and o.endswith(suffix) for o in ops), f"{name}: no {op}*{suffix}"
