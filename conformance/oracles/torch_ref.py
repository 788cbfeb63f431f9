"""The torch oracle: ``torch.nn.functional`` in float64, autograd for gradients.

Arrays are handed to torch as C-contiguous copies (``nll_loss`` backward rejects
non-contiguous 4-D inputs, docs/semantics.md §13) and an unbatched input's 1-element 1-D
target becomes 0-d when a gradient is wanted (torch's backward raises for the
1-D form although the forward accepts it, docs/semantics.md §13).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from conformance import losses
from conformance.oracles import Reference

_FUNCS = {
    "cross_entropy": F.cross_entropy,
    "nll_loss": F.nll_loss,
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "linear_cross_entropy": F.linear_cross_entropy,
}


def _tensor(a: np.ndarray, as_float64: bool) -> torch.Tensor:
    # np.array(order='C') keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-D)
    if a.dtype.name == "bfloat16":     # ml_dtypes' bfloat16: torch.from_numpy does not take it
        t = torch.from_numpy(np.array(a, dtype=np.float32 if not as_float64 else np.float64, order="C"))
        return t if as_float64 else t.to(torch.bfloat16)
    dtype = np.float64 if as_float64 and np.issubdtype(a.dtype, np.floating) else a.dtype
    return torch.from_numpy(np.array(a, dtype=dtype, order="C", copy=True))


def call_torch(loss: str, arrays: dict, kwargs: dict, as_float64: bool, want_grad: bool):
    """Run torch on the case; returns (output tensor, input tensor). Exceptions propagate."""
    with warnings.catch_warnings():        # reduction='elementwise_mean' is deprecated: torch warns
        warnings.simplefilter("ignore")
        return _call_torch(loss, arrays, kwargs, as_float64, want_grad)


def _call_torch(loss, arrays, kwargs, as_float64, want_grad):
    x = _tensor(arrays["input"], as_float64)
    if want_grad:
        x.requires_grad_(True)
    t_np = arrays["target"]
    if want_grad and loss in ("cross_entropy", "nll_loss") and x.ndim == 1 and t_np.shape == (1,) \
            and not np.issubdtype(t_np.dtype, np.floating):
        t_np = t_np.reshape(())
    kw = dict(kwargs)
    for key in ("weight", "pos_weight", "linear_bias"):
        if key in arrays:
            kw[key] = _tensor(arrays[key], as_float64)
    if loss == "cross_entropy" and ("softcap" in kw or "lse_square_scale" in kw):
        return _llm_cross_entropy(x, _tensor(t_np, as_float64), kw), x
    middle = [_tensor(arrays[k], as_float64) for k in losses.get(loss).positional[1:-1]]   # linear_weight
    return _FUNCS[loss](x, *middle, _tensor(t_np, as_float64), **kw), x


def _llm_cross_entropy(x, t, kw):
    """cross_entropy with the LLM options composed from torch ops (torch has none of them):
    the softcap by hand, the z-loss from ``logsumexp`` (docs/semantics.md §13.1)."""
    cap = kw.pop("softcap", None)
    z = float(kw.pop("lse_square_scale", 0.0))
    y = x if cap is None else cap * torch.tanh(x / cap)
    out = F.cross_entropy(y, t, **kw)
    if z == 0.0:
        return out
    cdim = 0 if y.ndim == 1 else 1
    lse = torch.logsumexp(y, dim=cdim)
    if t.shape == y.shape:
        valid = torch.ones_like(lse, dtype=torch.bool)
    else:
        valid = (t != kw.get("ignore_index", -100)).reshape(lse.shape)
    zv = torch.where(valid, z * lse * lse, torch.zeros_like(lse))
    red = kw.get("reduction", "mean")
    if red == "none" and y.ndim > 1:
        return out + zv
    if red in ("none", "sum"):
        return out + zv.sum()
    return out + zv.sum() / valid.sum()


class TorchOracle:
    """torch.nn.functional evaluated in float64."""

    name = "torch"
    exact = False

    def __init__(self):
        # Oracle cases are tiny: one intra-op thread. With two on a 2-core machine shared with the
        # worker processes, a (4, 5) cross_entropy forward+backward took 24 ms instead of 0.12 ms.
        torch.set_num_threads(1)

    def evaluate(self, case, want_grad: bool = True) -> Reference:
        want_grad = want_grad and "grad_output" in case.arrays
        if want_grad and losses.get(case.loss).grad_name.endswith("_with_grad"):
            return self._with_grad(case)
        try:
            out, x = call_torch(case.loss, case.arrays, case.kwargs, True, want_grad)
            grad = None
            if want_grad:
                g = torch.from_numpy(np.asarray(case.arrays["grad_output"], dtype=np.float64).copy())
                out.backward(g.reshape(out.shape))
                grad = x.grad.numpy().astype(np.float64)
        except Exception as exc:  # an invalid case: torch's exception type is the reference
            return Reference(self.name, error=type(exc).__name__)
        return Reference(self.name, value=out.detach().numpy().astype(np.float64), grad=grad)

    def _with_grad(self, case) -> Reference:
        """The ``<loss>_with_grad`` protocol (linear_cross_entropy): the gradients of ``loss.sum()``
        with respect to every float array the loss is linear in, packed (conformance/linear_ce.py)."""
        from conformance.linear_ce import pack
        a = case.arrays
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ts = {k: _tensor(a[k], True).requires_grad_(True) for k in ("input", "linear_weight", "linear_bias")
                      if k in a}
                kw = dict(case.kwargs)
                if "weight" in a:
                    kw["weight"] = _tensor(a["weight"], True)
                out = F.linear_cross_entropy(ts["input"], ts["linear_weight"], _tensor(a["target"], True),
                                             linear_bias=ts.get("linear_bias"), **kw)
                out.sum().backward()
        except Exception as exc:
            return Reference(self.name, error=type(exc).__name__)
        grads = [ts[k].grad.numpy().astype(np.float64) if k in ts else None
                 for k in ("input", "linear_weight", "linear_bias")]
        return Reference(self.name, value=out.detach().numpy().astype(np.float64), grad=pack(*grads))

    def native_error(self, case) -> str | None:
        """The exception type torch raises on the case in its own dtypes, or None."""
        msg = self.native_error_message(case)
        return None if msg is None else msg.partition(":")[0]

    def native_error_message(self, case) -> str | None:
        """``'Type: message'`` of the exception torch raises on the case in its own dtypes, or None."""
        try:
            call_torch(case.loss, case.arrays, case.kwargs, False, False)
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return None
