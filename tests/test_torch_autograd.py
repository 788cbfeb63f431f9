"""nbxent.torch against torch.nn.functional and against finite differences.

* ``torch.autograd.gradcheck`` (float64) for every option: weight, ignore_index (some
  and all ignored), label_smoothing, probability targets (with target and weight
  gradients), K-dim and unbatched inputs, every reduction, pos_weight, BCE targets.
* Values and gradients (random ``grad_output``, not 1) equal torch's within twice the
  harness's tolerance: conformance.tolerances bounds each implementation's distance from
  the exact value, so two correct ones are within the sum of their bounds (triangle
  inequality). Target/weight gradients, which the policy does not tabulate, get a bound
  derived below from the size of their terms.
* Inputs are not modified; non-contiguous tensors give the contiguous answer.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nbxent.torch as nt
from conformance.compare import compare
from conformance.model import Case
from conformance.tolerances import tolerance

EPS64 = float(np.finfo(np.float64).eps)
DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------- cases

def _ce_case(shape, prob, weighted, ignore, eps, reduction, dtype, seed):
    """Tensors and keywords of one cross_entropy / nll_loss case (C = shape[0] or shape[1])."""
    g = torch.Generator().manual_seed(seed)
    C = shape[0] if len(shape) == 1 else shape[1]
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).to(dtype)
    sample = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
    if prob:
        t = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    else:
        t = torch.randint(0, C, sample, generator=g)
        if ignore == "some" and t.dim():
            t.view(-1)[::3] = -100
        elif ignore == "all":
            t.fill_(-100)
    w = (torch.rand(C, generator=g, dtype=torch.float64) + 0.25).to(dtype) if weighted else None
    kw = {"reduction": reduction}
    if eps:
        kw["label_smoothing"] = eps
    return {"input": x, "target": t, "weight": w}, kw


def _bce_case(loss, shape, weighted, pos, reduction, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if loss == "binary_cross_entropy":
        # inside [0.05, 0.95]: finite differences in gradcheck stay away from the clamp at 0 and 1
        x = torch.rand(shape, generator=g, dtype=torch.float64) * 0.9 + 0.05
    else:
        x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    y = torch.rand(shape, generator=g, dtype=torch.float64)
    tail = tuple(shape[-1:])
    w = torch.rand(tail, generator=g, dtype=torch.float64) + 0.25 if weighted else None
    pw = torch.rand(tail, generator=g, dtype=torch.float64) * 2 + 0.25 if pos else None
    arrays = {"input": x.to(dtype), "target": y.to(dtype),
              "weight": None if w is None else w.to(dtype)}
    if loss == "binary_cross_entropy_with_logits":
        arrays["pos_weight"] = None if pw is None else pw.to(dtype)
    return arrays, {"reduction": reduction}


CE_SHAPES = [(6, 5), (3, 5, 4), (5,)]
REDUCTIONS = ["none", "mean", "sum"]
CE_GRID = [dict(shape=s, prob=p, weighted=w, ignore="none" if p else "some", eps=e, reduction=r)
           for s, p, w, e, r in itertools.product(CE_SHAPES, [False, True], [False, True],
                                                  [0.0, 0.15], REDUCTIONS)]
NLL_GRID = [dict(shape=s, prob=False, weighted=w, ignore="some", eps=0.0, reduction=r)
            for s, w, r in itertools.product(CE_SHAPES, [False, True], REDUCTIONS)]
BCE_SHAPES = [(), (7,), (3, 4)]
BCE_GRID = [("binary_cross_entropy", s, w, False, r)
            for s, w, r in itertools.product(BCE_SHAPES, [False, True], REDUCTIONS)]
BCE_GRID += [("binary_cross_entropy_with_logits", s, w, p, r)
             for s, w, p, r in itertools.product(BCE_SHAPES, [False, True], [False, True], REDUCTIONS)]


def _ids(grid):
    return ["-".join(f"{k}={v}" for k, v in d.items()) if isinstance(d, dict) else
            "-".join(map(str, d)) for d in grid]


def _call(mod, loss, arrays, kw):
    args = {k: v for k, v in arrays.items() if k not in ("input", "target")}
    return getattr(mod, loss)(arrays["input"], arrays["target"], **args, **kw)


def _differentiable(loss, arrays):
    """The arguments torch differentiates: input; target for prob-CE and BCE*; weight for prob-CE."""
    names = ["input"]
    prob = arrays["target"].is_floating_point()
    if prob or loss.startswith("binary"):
        names.append("target")
    if loss == "cross_entropy" and prob and arrays["weight"] is not None:
        names.append("weight")
    return names


# --------------------------------------------------------------------------- gradcheck

def _gradcheck(loss, arrays, kw):
    names = _differentiable(loss, arrays)
    leaves = {k: v.detach().clone().requires_grad_(k in names) if v is not None else None
              for k, v in arrays.items()}

    def fn(*diff):
        call = dict(leaves, **dict(zip(names, diff)))
        return _call(nt, loss, call, kw)

    assert torch.autograd.gradcheck(fn, tuple(leaves[k] for k in names))


@pytest.mark.parametrize("opts", CE_GRID, ids=_ids(CE_GRID))
def test_cross_entropy_gradcheck(opts):
    arrays, kw = _ce_case(**opts, dtype=torch.float64, seed=1)
    _gradcheck("cross_entropy", arrays, kw)


@pytest.mark.parametrize("opts", NLL_GRID, ids=_ids(NLL_GRID))
def test_nll_loss_gradcheck(opts):
    arrays, kw = _ce_case(**opts, dtype=torch.float64, seed=2)
    arrays["input"] = torch.log_softmax(arrays["input"], dim=0 if arrays["input"].dim() == 1 else 1)
    _gradcheck("nll_loss", arrays, kw)


@pytest.mark.parametrize("case", BCE_GRID, ids=_ids(BCE_GRID))
def test_binary_gradcheck(case):
    loss, shape, weighted, pos, reduction = case
    arrays, kw = _bce_case(loss, shape, weighted, pos, reduction, torch.float64, seed=3)
    _gradcheck(loss, arrays, kw)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_all_ignored_gradcheck(loss, reduction):
    # 'mean' with every target ignored is NaN (0/0), which finite differences cannot check;
    # its gradient (exactly zero, as torch) is checked against torch below.
    arrays, kw = _ce_case((4, 3), False, True, "all", 0.1 if loss == "cross_entropy" else 0.0,
                          reduction, torch.float64, seed=4)
    _gradcheck(loss, arrays, kw)


# --------------------------------------------------------------------------- against torch

def _np(t):
    return None if t is None else t.detach().numpy()


def assert_matches_torch(loss, kind, got, want, arrays, kw, grad_output=None):
    """|got - want| <= 2 * tol, tol = the harness's bound on one result's error (see module doc)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape,
                                                                 want.shape)
    case_arrays = {k: _np(v) for k, v in arrays.items() if v is not None}
    if grad_output is not None:
        case_arrays["grad_output"] = _np(grad_output)
    dtype = str(got.dtype).removeprefix("torch.")
    tol, desc = tolerance(Case(loss, case_arrays, kw), kind, dtype)
    c = compare(_np(got).astype(np.float64), _np(want).astype(np.float64), 2 * tol, dtype, desc)
    assert c.pattern_ok, f"{loss} {kind}: NaN/inf pattern differs: {c.pattern_examples}"
    assert c.value_ok, f"{loss} {kind}: {c.measure}"


def _close_by_scale(what, got, want, scale, k=4.0):
    """Target/weight gradients: each result within k*eps*scale of exact, so 2x between two."""
    tol = 2 * k * EPS64 * scale
    diff = (got - want).abs()
    bad = diff > tol
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.numel()} beyond 2*{k}*eps*scale; "
                           f"max |diff| {diff.max().item():.3g}, at {int(torch.argmax(diff - tol))}")


def _target_grad_scale(loss, arrays, g):
    """Sizes of the terms of the target gradient (float64), the input's shape.

    CE prob:  d/dp_sc = -(1-eps) g_s w_c lp_sc, lp_sc = x_sc - lse_s: lp carries the rounding
              of x, the max and the log-sum-exp (|x| + |max| + |lse - max| + 2, the same
              terms as conformance.tolerances' a_s), then three products.
    BCE:      g w (log1p(-x) - log(x)): two logs and a subtraction.
    BCEwL:    g w (logsig(-x) - pw logsig(x)): the two log-sigmoids and |x| (their stable forms
              use max(-x, 0) and min(x, 0)).
    """
    x = arrays["input"].detach().double()
    w = arrays["weight"]
    if loss == "cross_entropy":
        cd = 0 if x.dim() == 1 else 1
        m = x.max(dim=cd, keepdim=True).values
        lse = torch.logsumexp(x, dim=cd, keepdim=True)
        a = x.abs() + m.abs() + (lse - m).abs() + 2
        ws = torch.ones(()) if w is None else w.double().view(-1, *([1] * (x.dim() - 2)))
        gs = g if g.dim() == 0 else g.unsqueeze(1)
        return gs.abs() * ws.abs() * a
    ws = 1.0 if w is None else w.double().abs()
    if loss == "binary_cross_entropy":
        return g.abs() * ws * (torch.log1p(-x).abs() + torch.log(x).abs())
    pw = arrays["pos_weight"]
    pw = 1.0 if pw is None else pw.double().abs()
    return g.abs() * ws * (F.logsigmoid(-x).abs() + pw * F.logsigmoid(x).abs() + x.abs())


def _weight_grad_scale(arrays, kw, g):
    """d/dw_c = -sum_s g_s q_sc lp_sc: per term the target-gradient sizes, plus the sum's bound.

    The sum of S terms is bounded for any summation order by S * eps * sum|terms| (Higham's
    gamma_S), so each term's size counts 1 + S times.
    """
    x, p = arrays["input"].detach().double(), arrays["target"].detach().double()
    eps = kw.get("label_smoothing", 0.0)
    C = x.shape[0] if x.dim() == 1 else x.shape[1]
    q = (1 - eps) * p + eps / C if eps > 0 else p
    terms = _target_grad_scale("cross_entropy", dict(arrays, weight=None), g) * q.abs()
    dims = [d for d in range(x.dim()) if d != (0 if x.dim() == 1 else 1)]
    S = x.numel() // C
    summed = terms.sum(dim=dims) if dims else terms
    return summed * (1 + S)


def _compare_case(loss, arrays, kw, seed, ours=nt):
    """Values and every gradient of ``ours`` (nbxent.torch's functions) against torch's."""
    names = _differentiable(loss, arrays)
    grads = {}
    outs = {}
    for mod in ("nbxent", "torch"):
        leaves = {k: v.detach().clone().requires_grad_(k in names) if v is not None else None
                  for k, v in arrays.items()}
        out = _call(ours if mod == "nbxent" else F, loss, leaves, kw)
        if mod == "nbxent":
            gen = torch.Generator().manual_seed(seed)
            grad_output = (torch.rand(out.shape, generator=gen, dtype=torch.float64) + 0.5).to(out.dtype)
        outs[mod] = out
        grads[mod] = torch.autograd.grad(out, [leaves[k] for k in names], grad_output)
    assert_matches_torch(loss, "value", outs["nbxent"], outs["torch"], arrays, kw)
    assert_matches_torch(loss, "grad", grads["nbxent"][0], grads["torch"][0], arrays, kw, grad_output)
    g64 = grad_output.double()
    for name, got, want in zip(names[1:], grads["nbxent"][1:], grads["torch"][1:]):
        assert got.dtype == want.dtype and got.shape == want.shape
        if got.dtype != torch.float64:
            continue  # the target/weight bounds below are derived for float64
        n = arrays["input"].numel() if loss.startswith("binary") else \
            arrays["input"].numel() // (arrays["input"].shape[0 if arrays["input"].dim() == 1 else 1])
        g = g64 / n if kw["reduction"] == "mean" else g64
        scale = _target_grad_scale(loss, arrays, g) if name == "target" else \
            _weight_grad_scale(arrays, kw, g)
        _close_by_scale(f"{loss} d/d{name}", got, want, scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opts", CE_GRID, ids=_ids(CE_GRID))
def test_cross_entropy_matches_torch(opts, dtype):
    arrays, kw = _ce_case(**opts, dtype=DTYPES[dtype], seed=5)
    _compare_case("cross_entropy", arrays, kw, seed=6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("opts", NLL_GRID, ids=_ids(NLL_GRID))
def test_nll_loss_matches_torch(opts, dtype):
    arrays, kw = _ce_case(**opts, dtype=torch.float64, seed=7)
    arrays["input"] = torch.log_softmax(arrays["input"], dim=0 if arrays["input"].dim() == 1 else 1)
    arrays = {k: v if v is None or not v.is_floating_point() else v.to(DTYPES[dtype])
              for k, v in arrays.items()}
    _compare_case("nll_loss", arrays, kw, seed=8)


# float16 on the 2-D cases only (elementwise losses: the rank changes only the weight
# broadcast, which float32/float64 cover at every rank)
BCE_DTYPED = [(c, d) for c in BCE_GRID for d in ("float16", "float32", "float64")
              if d != "float16" or len(c[1]) == 2]


@pytest.mark.parametrize("case, dtype", BCE_DTYPED,
                         ids=[f"{i}-{d}" for i, (_, d) in zip(_ids([c for c, _ in BCE_DTYPED]), BCE_DTYPED)])
def test_binary_matches_torch(case, dtype):
    loss, shape, weighted, pos, reduction = case
    arrays, kw = _bce_case(loss, shape, weighted, pos, reduction, DTYPES[dtype], seed=9)
    _compare_case(loss, arrays, kw, seed=10)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_cross_entropy_float16_matches_torch(shape, reduction):
    arrays, kw = _ce_case(shape, False, True, "some", 0.1, reduction, torch.float16, seed=11)
    _compare_case("cross_entropy", arrays, kw, seed=12)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_all_ignored_mean_is_nan_with_zero_gradient(loss):
    arrays, kw = _ce_case((4, 3), False, True, "all", 0.0, "mean", torch.float64, seed=13)
    x = arrays["input"].clone().requires_grad_()
    out = _call(nt, loss, dict(arrays, input=x), kw)
    out.backward()
    assert torch.isnan(out)
    assert torch.equal(x.grad, torch.zeros_like(x)) and not torch.signbit(x.grad).any()


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_ignored_samples_get_zero_gradient_whatever_grad_output(loss):
    # torch never multiplies an ignored sample's zero by grad_output, so inf/NaN there give 0
    arrays, kw = _ce_case((5, 4), False, False, "some", 0.0, "none", torch.float64, seed=14)
    ignored = arrays["target"] == -100
    grad_output = torch.where(ignored, torch.tensor(float("nan"), dtype=torch.float64),
                              torch.tensor(2.0, dtype=torch.float64))
    got = {}
    for name, mod in (("nbxent", nt), ("torch", F)):
        x = arrays["input"].clone().requires_grad_()
        _call(mod, loss, dict(arrays, input=x), kw).backward(grad_output)
        got[name] = x.grad
    assert ignored.any() and not torch.isnan(got["nbxent"]).any()
    assert torch.equal(got["nbxent"][ignored], torch.zeros_like(got["nbxent"][ignored]))
    assert_matches_torch(loss, "grad", got["nbxent"], got["torch"], arrays, kw, grad_output)


# --------------------------------------------------------------------------- layout and inputs

def _strided_pair(loss):
    """A case and the same case with every tensor argument non-contiguous."""
    g = torch.Generator().manual_seed(15)
    if loss in ("cross_entropy", "nll_loss"):
        base = torch.randn(5, 8, 3, generator=g, dtype=torch.float64)
        x = base.transpose(0, 2)[:, ::2]                  # (3, 4, 5), strided
        t = torch.randint(0, 4, (5, 3), generator=g).t()  # (3, 5), transposed view
        w = (torch.rand(8, generator=g, dtype=torch.float64) + 0.5)[::2]
        if loss == "nll_loss":  # log-probabilities in the same strided layout
            x = torch.empty(5, 4, 3, dtype=torch.float64).transpose(0, 2).copy_(torch.log_softmax(x, 1))
        return {"input": x, "target": t, "weight": w}, {"reduction": "none"}
    x = (torch.rand(4, 6, generator=g, dtype=torch.float64) * 0.9 + 0.05).t()
    y = torch.rand(4, 6, generator=g, dtype=torch.float64).t()
    w = torch.rand(4, 2, generator=g, dtype=torch.float64)[:, 0] + 0.5
    arrays = {"input": x, "target": y, "weight": w}
    if loss == "binary_cross_entropy_with_logits":
        arrays["input"] = (torch.randn(4, 6, generator=g, dtype=torch.float64) * 3).t()
        arrays["pos_weight"] = torch.rand(4, 3, generator=g, dtype=torch.float64)[:, 1] + 0.5
    return arrays, {"reduction": "none"}


LOSSES = ["cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]


@pytest.mark.parametrize("loss", LOSSES)
def test_non_contiguous_tensors_give_the_contiguous_answer(loss):
    arrays, kw = _strided_pair(loss)
    assert not arrays["input"].is_contiguous() and not arrays["target"].is_contiguous()
    results = []
    for layout in (arrays, {k: v.contiguous() for k, v in arrays.items()}):
        x = layout["input"].detach().requires_grad_()  # a view: keeps the layout
        out = _call(nt, loss, dict(layout, input=x), kw)
        gen = torch.Generator().manual_seed(16)
        out.backward(torch.rand(out.shape, generator=gen, dtype=torch.float64))
        results.append((out.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("loss", LOSSES)
def test_inputs_are_not_modified(loss):
    arrays, kw = _strided_pair(loss)
    arrays = {k: v.contiguous() for k, v in arrays.items()}
    names = _differentiable(loss, arrays)
    leaves = {k: v.clone().requires_grad_(k in names) for k, v in arrays.items()}
    before = {k: v.detach().clone() for k, v in leaves.items()}
    out = _call(nt, loss, leaves, kw)
    grad_output = torch.full(out.shape, 0.75, dtype=torch.float64)
    before_g = grad_output.clone()
    torch.autograd.grad(out, [leaves[k] for k in names], grad_output)
    for k in leaves:
        assert torch.equal(leaves[k].detach(), before[k]), f"{loss}: argument '{k}' was modified"
    assert torch.equal(grad_output, before_g), f"{loss}: grad_output was modified"


def test_unit_grad_output_returns_the_saved_gradient_unchanged():
    # loss.backward() on a scalar loss: the fused gradient is the answer, bit for bit
    import nbxent

    arrays, kw = _ce_case((6, 5), False, True, "some", 0.1, "mean", torch.float64, seed=17)
    x = arrays["input"].clone().requires_grad_()
    nt.cross_entropy(x, arrays["target"], arrays["weight"], **kw).backward()
    _, want = nbxent.cross_entropy_with_grad(arrays["input"].numpy(), arrays["target"].numpy(),
                                             arrays["weight"].numpy(), **kw)
    assert np.array_equal(x.grad.numpy(), want)


def test_retain_graph_backward_twice_gives_the_same_gradient():
    arrays, kw = _ce_case((6, 5), False, False, "none", 0.0, "sum", torch.float64, seed=18)
    x = arrays["input"].clone().requires_grad_()
    out = nt.cross_entropy(x, arrays["target"], **kw)
    g1, = torch.autograd.grad(out, x, retain_graph=True)
    g2, = torch.autograd.grad(out, x)
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_torch_comparison_detects_a_wrong_gradient(dtype):
    # the comparison above must be able to fail: torch's own gradient with one element moved
    # by 1e4 eps relative (the bound is ~2 * 4 * (|x| + lse terms) ~ 1e2 eps here) is rejected
    arrays, kw = _ce_case((6, 5), False, True, "some", 0.1, "mean", DTYPES[dtype], seed=19)
    x = arrays["input"].clone().requires_grad_()
    out = F.cross_entropy(x, arrays["target"], arrays["weight"], **kw)
    grad_output = torch.ones((), dtype=x.dtype)
    good, = torch.autograd.grad(out, x, grad_output)
    bad = good.clone()
    bad[1, 2] *= 1 + 1e4 * torch.finfo(x.dtype).eps
    assert_matches_torch("cross_entropy", "grad", good, good, arrays, kw, grad_output)
    with pytest.raises(AssertionError, match="n_bad=1"):
        assert_matches_torch("cross_entropy", "grad", bad, good, arrays, kw, grad_output)
