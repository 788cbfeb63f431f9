"""Argument rules shared by every loss and both backends (nbxent/_core/arrays.py).

* any array-like is read through ``np.asarray`` (lists, non-native byte order);
* ``out=`` may be the input itself; any other overlap with an argument gives the result a
  separate buffer would receive (the argument is copied first);
* an untargeted NaN/inf class weight does not reach the gradient without smoothing.

Every test runs on the backend of the session (``backend`` fixture: CPU, or CUDA under the
simulator); shapes are small because the simulator runs a Python thread per GPU thread.
"""
from __future__ import annotations

import numpy as np
import pytest

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
T = np.array([2, 0])
P = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
XS = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7 - 1.0
TS = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
PB = np.array([[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]])
YB = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])

#: (name, function, input, target, keywords) of every fused loss-and-gradient call.
WITH_GRAD = [
    ("ce index", "cross_entropy_with_grad", X, T, {}),
    ("ce index smoothed", "cross_entropy_with_grad", X, T, {"label_smoothing": 0.2}),
    ("ce spatial", "cross_entropy_with_grad", XS, TS, {"reduction": "sum"}),
    ("ce prob", "cross_entropy_with_grad", X, P, {}),
    ("nll", "nll_loss_with_grad", X, T, {"reduction": "sum"}),
    ("bce", "binary_cross_entropy_with_grad", PB, YB, {}),
    ("bce logits", "binary_cross_entropy_with_logits_with_grad", X, YB, {"reduction": "sum"}),
]


def _overlapping(x, shift):
    """``x`` copied into a buffer, and an ``out`` view of the same buffer ``shift`` elements on."""
    big = np.zeros(x.size + abs(shift))
    start_x, start_out = (0, shift) if shift > 0 else (-shift, 0)
    xv = big[start_x:start_x + x.size].reshape(x.shape)
    xv[...] = x
    return xv, big[start_out:start_out + x.size].reshape(x.shape)


@pytest.mark.parametrize("shift", [1, -1])
@pytest.mark.parametrize("case", WITH_GRAD, ids=[c[0] for c in WITH_GRAD])
def test_out_partly_overlapping_the_input_gives_the_separate_buffer_result(backend, case, shift):
    _, fn, x, t, kw = case
    want_loss, want_grad = getattr(backend, fn)(x, t, **kw)
    xv, out = _overlapping(x, shift)
    loss, grad = getattr(backend, fn)(xv, t, out=out, **kw)
    assert grad is out
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad)


@pytest.mark.parametrize("case", WITH_GRAD, ids=[c[0] for c in WITH_GRAD])
def test_out_equal_to_the_input_is_in_place(backend, case):
    _, fn, x, t, kw = case
    want_loss, want_grad = getattr(backend, fn)(x, t, **kw)
    xi = x.copy()
    loss, grad = getattr(backend, fn)(xi, t, out=xi, **kw)
    assert grad is xi
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad)


def test_out_overlapping_a_probability_target_gives_the_separate_buffer_result(backend):
    want = backend.cross_entropy_with_grad(X, P)
    pv, out = _overlapping(P, 2)
    loss, grad = backend.cross_entropy_with_grad(X, pv, out=out)
    np.testing.assert_array_equal(loss, want[0])
    np.testing.assert_array_equal(grad, want[1])


CALLS = [
    ("cross_entropy", (X, T), {"weight": np.array([0.2, 1.0, 3.0])}),
    ("cross_entropy", (XS, TS), {"reduction": "none"}),
    ("cross_entropy", (X, P), {"label_smoothing": 0.1}),
    ("cross_entropy_backward", (np.array(1.0), X, T), {}),
    ("nll_loss", (X, T), {"weight": np.array([0.2, 1.0, 3.0])}),
    ("nll_loss_backward", (np.array(2.0), X, T), {"reduction": "sum"}),
    ("binary_cross_entropy", (PB, YB), {"weight": np.array([1.0, 2.0, 3.0])}),
    ("binary_cross_entropy_backward", (np.array(1.0), PB, YB), {}),
    ("binary_cross_entropy_with_logits", (X, YB), {"pos_weight": np.array([2.0, 1.0, 0.5])}),
    ("binary_cross_entropy_with_logits_backward", (np.array(1.0), X, YB), {"wrt": "target"}),
]


def _convert(args, kw, how):
    return [how(a) for a in args], {k: how(v) if isinstance(v, np.ndarray) else v
                                    for k, v in kw.items()}


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_python_lists_are_read_as_arrays(backend, case):
    fn, args, kw = case
    want = getattr(backend, fn)(*args, **kw)
    largs, lkw = _convert(args, kw, lambda a: a.tolist())
    got = getattr(backend, fn)(*largs, **lkw)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_non_native_byte_order_is_converted(backend, case):
    fn, args, kw = case
    want = getattr(backend, fn)(*args, **kw)
    swapped = lambda a: a.astype(a.dtype.newbyteorder("S"))  # noqa: E731
    bargs, bkw = _convert(args, kw, swapped)
    assert not bargs[0].dtype.isnative
    got = getattr(backend, fn)(*bargs, **bkw)
    np.testing.assert_array_equal(got, want)
    assert got.dtype.isnative


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", ["rows", "spatial"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_an_untargeted_non_finite_weight_does_not_reach_the_gradient(backend, bad, shape,
                                                                     reduction):
    # docs/semantics.md §3.1: weights are read at targeted classes only; without smoothing
    # the gradient does not involve the other weights either (torch's is finite).
    x, t = (X, np.array([0, 1])) if shape == "rows" else (XS, np.where(TS == 2, 0, TS))
    w_bad = np.array([0.2, 1.0, bad])
    w_fin = np.array([0.2, 1.0, 7.0])
    loss, grad = backend.cross_entropy_with_grad(x, t, weight=w_bad, reduction=reduction)
    ref_loss, ref_grad = backend.cross_entropy_with_grad(x, t, weight=w_fin, reduction=reduction)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(loss, ref_loss)
    np.testing.assert_array_equal(grad, ref_grad)
    g = backend.cross_entropy_backward(np.array(1.0), x, t, weight=w_bad, reduction=reduction)
    np.testing.assert_array_equal(g, ref_grad)


def test_full_smoothing_gradient_at_the_target_is_accurate(backend):
    # label_smoothing = 1: d/dx_t = g (p_t - 1/C), a difference of two terms of size ~1/C
    # at C = 1000. Written as (p_t C - 1)/C with p_t = e_t/s (never 1 + (p_t - 1)), its
    # error is a few roundings of those terms (nbxent/xent/formulas.py: index_grad_target).
    pytest.importorskip("scipy", reason="the reference comes from the conformance oracles")
    from support import assert_matches_reference

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1000))
    t = np.array([3, 999])
    _, grad = backend.cross_entropy_with_grad(x, t, label_smoothing=1.0, reduction="sum")
    assert_matches_reference("cross_entropy", "grad", grad, x, t, label_smoothing=1.0,
                             reduction="sum")


@pytest.mark.parametrize("fn", ["binary_cross_entropy_backward",
                                "binary_cross_entropy_with_grad"])
def test_bce_gradients_at_zero_and_one_are_infinite_not_an_error(backend, fn):
    # docs/semantics.md §10.3: d/dy = log((1 - x)/x) is +inf at x = 0 and -inf at x = 1.
    x = np.array([0.0, 1.0, 0.5, 1.0])
    y = np.array([0.0, 1.0, 0.5, 0.0])
    gy = backend.binary_cross_entropy_backward(np.array(1.0), x, y, reduction="sum",
                                               wrt="target")
    assert gy[0] == np.inf and gy[1] == -np.inf and gy[2] == 0.0
    if fn == "binary_cross_entropy_with_grad":
        _, gx = backend.binary_cross_entropy_with_grad(x, y, reduction="sum")
    else:
        gx = backend.binary_cross_entropy_backward(np.array(1.0), x, y, reduction="sum")
    assert np.isfinite(gx).all()


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_torch_cpu_tensors_are_read_as_arrays(backend, case):
    torch = pytest.importorskip("torch")
    fn, args, kw = case
    want = getattr(backend, fn)(*args, **kw)
    targs, tkw = _convert(args, kw, torch.from_numpy)
    got = getattr(backend, fn)(*targs, **tkw)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_a_tensor_that_requires_grad_is_refused_by_name(backend, case):
    torch = pytest.importorskip("torch")
    fn, args, kw = case
    names = (["grad_output"] if fn.endswith("_backward") else []) + ["input", "target"]
    i = names.index("input")
    targs = list(args)
    targs[i] = torch.from_numpy(args[i].copy()).requires_grad_(True)
    with pytest.raises(TypeError) as info:
        getattr(backend, fn)(*targs, **kw)
    msg = str(info.value)
    assert msg.startswith(f"{fn}: argument 'input'") and "requires grad" in msg and "detach" in msg
