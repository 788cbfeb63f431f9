"""nbxent.torch's surface: optional import, torch's signatures, errors, modules, doctests."""
from __future__ import annotations

import doctest
import inspect
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import nbxent.torch as nt
from nbxent.torch import _functional, _modules

FUNCTIONS = ["cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
MODULES = ["CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


# --------------------------------------------------------------------------- import

def test_importing_nbxent_does_not_import_torch():
    out = _run("import sys, nbxent\nprint('torch' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_nbxent_torch_without_torch_is_a_clear_import_error():
    # sys.modules['torch'] = None makes `import torch` raise ImportError, as when it is absent
    out = _run("import sys\nsys.modules['torch'] = None\nimport nbxent\n"
               "try:\n    import nbxent.torch\nexcept ImportError as e:\n    print('ImportError:', e)\n")
    assert out.returncode == 0, out.stderr
    assert "ImportError: nbxent.torch needs PyTorch" in out.stdout


def test_public_surface():
    assert sorted(nt.__all__) == sorted(FUNCTIONS + MODULES)
    for name in nt.__all__:
        assert getattr(nt, name).__doc__, f"nbxent.torch.{name} has no docstring"


# --------------------------------------------------------------------------- signatures

@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signature_is_torchs(name):
    ours = inspect.signature(getattr(nt, name)).parameters
    theirs = inspect.signature(getattr(F, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == \
           [(p.name, p.kind, p.default) for p in theirs.values()]


@pytest.mark.parametrize("name", MODULES)
def test_module_constructor_signature_is_torchs(name):
    ours = inspect.signature(getattr(nt, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters
    assert [(p.name, p.default) for p in ours.values()] == [(p.name, p.default) for p in theirs.values()]


# --------------------------------------------------------------------------- errors

def _args(name, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    if name in ("cross_entropy", "nll_loss"):
        return torch.randn(4, 3, generator=g, dtype=dtype), torch.tensor([0, 2, 1, 0])
    x = torch.rand(4, 3, generator=g, dtype=torch.float64).to(dtype)
    return x, torch.rand(4, 3, generator=g, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("legacy, reduction", [({"size_average": False}, "sum"),
                                               ({"reduce": False}, "none"),
                                               ({"size_average": True, "reduce": True}, "mean")])
def test_legacy_arguments_are_refused_with_the_equivalent_reduction(name, legacy, reduction):
    with pytest.raises(TypeError, match=f"nbxent.torch.{name}: the legacy arguments .* pass "
                                        f"reduction='{reduction}' instead"):
        getattr(nt, name)(*_args(name), **legacy)


@pytest.mark.parametrize("name", MODULES)
def test_modules_refuse_legacy_arguments(name):
    with pytest.raises(TypeError, match=f"nbxent.torch.{name}: the legacy arguments"):
        getattr(nt, name)(size_average=False)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bfloat16_is_a_clear_type_error(name):
    x, t = _args(name)
    with pytest.raises(TypeError, match=f"nbxent.torch.{name}: argument 'input' has dtype "
                                        "torch.bfloat16, which nbxent does not support yet"):
        getattr(nt, name)(x.bfloat16(), t)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_non_tensor_argument_is_a_type_error(name):
    x, t = _args(name)
    with pytest.raises(TypeError, match=f"nbxent.torch.{name}: argument 'target' must be a "
                                        "torch.Tensor, not ndarray"):
        getattr(nt, name)(x, t.numpy())


def test_unsupported_device_is_refused():
    x, t = _args("cross_entropy")
    with pytest.raises(RuntimeError, match="tensors on device 'meta' are not supported"):
        nt.cross_entropy(x.to("meta"), t.to("meta"))


def test_nbxent_errors_carry_the_torch_function_name():
    x, _ = _args("cross_entropy")
    with pytest.raises(IndexError, match=r"^nbxent.torch.cross_entropy: .*Target 7 is out of bounds"):
        nt.cross_entropy(x, torch.tensor([0, 7, 1, 0]))
    with pytest.raises(ValueError, match="nbxent.torch.nll_loss: .*not a valid value for reduction"):
        nt.nll_loss(x, torch.tensor([0, 1, 1, 0]), reduction="avg")
    xb, yb = _args("binary_cross_entropy")
    with pytest.raises(RuntimeError, match="nbxent.torch.binary_cross_entropy: "):
        nt.binary_cross_entropy(xb + 1, yb)


@pytest.mark.parametrize("name, arg, op", [
    ("cross_entropy", "weight", "nll_loss_forward"),
    ("nll_loss", "weight", "nll_loss_forward"),
    ("binary_cross_entropy", "weight", "binary_cross_entropy"),
    ("binary_cross_entropy_with_logits", "weight", "binary_cross_entropy_with_logits"),
    ("binary_cross_entropy_with_logits", "pos_weight", "binary_cross_entropy_with_logits"),
])
def test_weights_torch_cannot_differentiate_are_refused_as_in_torch(name, arg, op):
    x, t = _args(name)
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=f"not differentiable with respect to argument '{arg}'"):
        getattr(F, name)(x, t, **{arg: w})            # torch refuses it ...
    with pytest.raises(RuntimeError, match=rf"nbxent.torch.{name} is not differentiable with "
                                           rf"respect to argument '{arg}' \(neither is torch's '{op}'\)"):
        getattr(nt, name)(x, t, **{arg: w})           # ... and so does nbxent.torch
    with torch.no_grad():                             # outside grad mode both accept it
        assert torch.equal(getattr(nt, name)(x, t, **{arg: w}),
                           getattr(nt, name)(x, t, **{arg: w.detach()}))


def test_spatial_cross_entropy_names_torchs_2d_op():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="neither is torch's 'nll_loss2d_forward'"):
        nt.cross_entropy(x, torch.zeros(2, 4, dtype=torch.long), w)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_double_backward_is_refused(name):
    x, t = _args(name)
    x = x.requires_grad_()
    out = getattr(nt, name)(x, t)
    with pytest.raises(RuntimeError, match=f"nbxent.torch.{name} has no second derivative"):
        torch.autograd.grad(out, x, create_graph=True)
    g, = torch.autograd.grad(getattr(nt, name)(x, t), x)  # a first-order backward still works
    assert g.shape == x.shape


def test_no_autograd_needed_means_no_function_node():
    x, t = _args("cross_entropy")
    assert nt.cross_entropy(x, t).grad_fn is None
    with torch.no_grad():
        assert nt.cross_entropy(x.requires_grad_(), t).grad_fn is None
    assert type(nt.cross_entropy(x, t).grad_fn).__name__ == "CrossEntropyBackward"


def test_probability_targets_differentiate_target_and_weight_only_when_asked():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), 1)
    w = torch.rand(3, generator=g, dtype=torch.float64)
    out = nt.cross_entropy(x, p, w)
    out.backward()
    assert x.grad is not None and p.grad is None and w.grad is None
    p.requires_grad_()
    w.requires_grad_()
    x.grad = None
    nt.cross_entropy(x.detach(), p, w).backward()     # input not needed: value-only forward
    pt, wt = p.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.cross_entropy(x.detach(), pt, wt).backward()
    assert torch.allclose(p.grad, pt.grad, rtol=0, atol=1e-15)
    assert torch.allclose(w.grad, wt.grad, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- modules

def _module_case(name):
    g = torch.Generator().manual_seed(5)
    w = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    kw = {"weight": w, "reduction": "sum"}
    if name == "CrossEntropyLoss":
        kw.update(ignore_index=1, label_smoothing=0.1)
    elif name == "NLLLoss":
        kw.update(ignore_index=1)
    elif name == "BCEWithLogitsLoss":
        kw.update(pos_weight=torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
    fn = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "BCELoss": "binary_cross_entropy",
          "BCEWithLogitsLoss": "binary_cross_entropy_with_logits"}[name]
    return fn, kw


@pytest.mark.parametrize("name", MODULES)
def test_module_is_its_function_with_the_constructor_arguments(name):
    fn, kw = _module_case(name)
    x, t = _args(fn)
    x = x.requires_grad_()
    module = getattr(nt, name)(**kw)
    got = module(x, t)
    want = getattr(nt, fn)(x, t, **kw)
    assert torch.equal(got, want)
    (gm,), (gf,) = torch.autograd.grad(got, [x]), torch.autograd.grad(want, [x])
    assert torch.equal(gm, gf)
    theirs = getattr(torch.nn, name)(**kw)(x, t)
    assert torch.allclose(got, theirs, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", MODULES)
def test_module_weights_are_buffers(name):
    fn, kw = _module_case(name)
    module = getattr(nt, name)(**kw)
    torch_module = getattr(torch.nn, name)(**kw)
    assert dict(module.named_buffers()).keys() == dict(torch_module.named_buffers()).keys()
    assert module.state_dict().keys() == torch_module.state_dict().keys()
    assert list(module.parameters()) == []
    half = module.to(torch.float32)
    assert all(b.dtype == torch.float32 for b in half.buffers())
    x, t = _args(fn, torch.float32)
    assert half(x, t).dtype == torch.float32


@pytest.mark.parametrize("name", MODULES)
def test_module_without_weight_has_a_none_buffer(name):
    module = getattr(nt, name)()
    assert module.weight is None
    assert "weight" not in module.state_dict()


# --------------------------------------------------------------------------- docs

@pytest.mark.parametrize("module", [_functional, _modules], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_cpu_use_does_not_import_numba_cuda():
    # the CUDA backend (and numba.cuda) is imported only when a CUDA tensor arrives
    code = ("import sys, torch, nbxent.torch as nt\n"
            "x = torch.zeros(2, 3, requires_grad=True)\n"
            "nt.cross_entropy(x, torch.tensor([0, 1])).backward()\n"
            "print(any(m == 'numba.cuda' or m.startswith('numba.cuda.') for m in sys.modules))")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_cpu_tensors_reach_the_kernels_without_a_copy_when_contiguous():
    from nbxent.torch._tensors import Host

    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert Host.array(x).ctypes.data == x.data_ptr()          # shared memory
    strided = x.detach().t()
    a = Host.array(strided)                                   # copied to C order
    assert a.ctypes.data != strided.data_ptr() and a.flags.c_contiguous
    assert torch.equal(torch.from_numpy(a), strided)
    assert Host.tensor(Host.array(x)).data_ptr() == x.data_ptr()   # and back, still shared


def _counting(f, name, calls):
    def counted(*a, **k):
        calls.append(name)
        return f(*a, **k)
    return counted


@pytest.mark.parametrize("name", FUNCTIONS)
def test_one_fused_pass_and_a_backward_that_reads_no_logits(name, monkeypatch):
    # forward: exactly one call, to <loss>_with_grad; backward (input gradient only): no call
    # into nbxent at all, so the logits are not read again and no target gradient is computed
    import nbxent

    calls = []
    for fn in [f for f in nbxent.__all__ if f.startswith(name) and
               f.removeprefix(name) in ("", "_with_grad", "_backward")]:
        monkeypatch.setattr(nbxent, fn, _counting(getattr(nbxent, fn), fn, calls))
    x, t = _args(name)
    x = x.requires_grad_()
    out = getattr(nt, name)(x, t, reduction="none")
    assert calls == [f"{name}_with_grad"]
    out.backward(torch.full(out.shape, 0.5, dtype=out.dtype))
    assert calls == [f"{name}_with_grad"]
    if name.startswith("binary"):                     # a target gradient only when asked
        y = t.clone().requires_grad_()
        getattr(nt, name)(x, y).backward()
        assert calls[-2:] == [f"{name}_with_grad", f"{name}_backward"]
