"""Tensors in and out of nbxent's array API, argument checks, and the backward's scaling.

A *backend* turns tensors into the arrays nbxent's functions take and their
results back into tensors, and says which of nbxent's two function sets runs:

* CPU tensors -> ``nbxent.*`` on NumPy arrays: ``tensor.detach().numpy()`` shares
  the tensor's memory (no copy) when the tensor is contiguous; a non-contiguous
  tensor is copied to C order first (``.contiguous()``). Results come back with
  ``torch.from_numpy`` (no copy).
* CUDA tensors -> ``nbxent.cuda.*`` on numba device arrays made with
  ``numba.cuda.as_cuda_array`` (zero-copy through ``__cuda_array_interface__``;
  non-contiguous tensors are made contiguous first, since nbxent.cuda rejects
  strided device arrays). Results come back with ``torch.as_tensor`` (zero-copy).
  nbxent.cuda launches on numba's default stream; see :meth:`Device.launch`.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

import nbxent

# dtypes torch has and NumPy has not; float16/32/64 are the float dtypes nbxent computes in.
_NO_NUMPY_DTYPE = {torch.bfloat16, torch.complex32}
_NO_NUMPY_DTYPE.update(getattr(torch, name) for name in dir(torch) if name.startswith("float8_"))

# The standard exception types nbxent raises; re-raised with the nbxent.torch function's name.
_RENAMED = (ValueError, TypeError, IndexError, RuntimeError, NotImplementedError)


def check_tensor(fname: str, name: str, t) -> None:
    """Type and dtype of one tensor argument (None passes: the optional ones)."""
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"nbxent.torch.{fname}: argument '{name}' must be a torch.Tensor, "
                        f"not {type(t).__name__}")
    if t.dtype in _NO_NUMPY_DTYPE:
        raise TypeError(f"nbxent.torch.{fname}: argument '{name}' has dtype {t.dtype}, which nbxent "
                        f"does not support yet (float16, float32 and float64 are supported); cast "
                        f"it (e.g. .float()) or use torch.nn.functional.{fname}")


def reject_legacy(fname: str, size_average, reduce) -> None:
    """nbxent has no ``size_average``/``reduce``: say which ``reduction`` torch maps them to."""
    if size_average is None and reduce is None:
        return
    from torch.nn import _reduction

    equivalent = _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    raise TypeError(f"nbxent.torch.{fname}: the legacy arguments size_average={size_average!r} and "
                    f"reduce={reduce!r} are not supported (torch deprecated them); pass "
                    f"reduction={equivalent!r} instead")


def reject_grad(fname: str, name: str, t, torch_op: str) -> None:
    """torch refuses (at the forward, in grad mode) an argument it cannot differentiate."""
    if t is not None and t.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"nbxent.torch.{fname} is not differentiable with respect to argument "
                           f"'{name}' (neither is torch's '{torch_op}'). This input cannot have "
                           f"requires_grad True.")


def needs_autograd(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@contextlib.contextmanager
def named(fname: str):
    """Prefix nbxent's exception messages with the nbxent.torch function the user called."""
    try:
        yield
    except _RENAMED as exc:
        if type(exc) not in _RENAMED:  # a subclass may take other constructor arguments
            raise
        raise type(exc)(f"nbxent.torch.{fname}: {exc}") from exc


class Host:
    """CPU tensors through NumPy, on nbxent's CPU kernels."""

    api = nbxent

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def array(t):
        # .contiguous() is the tensor itself when already contiguous, so .numpy() shares its memory
        return None if t is None else t.detach().contiguous().numpy()

    @staticmethod
    def tensor(a) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a))

    @staticmethod
    def launch():
        return contextlib.nullcontext()


class Device:
    """CUDA tensors through ``__cuda_array_interface__``, on nbxent.cuda's kernels."""

    def __init__(self, device: torch.device):
        from numba import cuda as numba_cuda

        from nbxent import cuda

        self.api = cuda
        self.device = device
        self._numba = numba_cuda

    def array(self, t):
        return None if t is None else self._numba.as_cuda_array(t.detach().contiguous())

    def tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(a, device=self.device)

    @contextlib.contextmanager
    def launch(self):
        """Run nbxent.cuda on the tensors' GPU, ordered with torch's current stream.

        nbxent.cuda launches on numba's default stream (the legacy default
        stream, torch's ``default_stream()``). torch's side streams are
        non-blocking, so they do not order themselves with it: when a side
        stream is current, the default stream first waits for the work queued
        on it (which produced the inputs), and afterwards the current stream
        waits for nbxent's kernels (which produced the outputs). Both waits are
        device-side events; the host does not block on them.
        """
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        current = torch.cuda.current_stream(index)
        default = torch.cuda.default_stream(index)
        with self._numba.gpus[index]:
            if current != default:
                default.wait_stream(current)
            yield
            if current != default:
                current.wait_stream(default)


def backend_for(fname: str, **tensors):
    """The backend for the tensors' device; all tensors must be on one device, as in torch."""
    for name, t in tensors.items():
        check_tensor(fname, name, t)
    devices = {t.device for t in tensors.values() if t is not None}
    if len(devices) > 1:
        found = ", ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"nbxent.torch.{fname}: expected all tensors to be on the same device, "
                           f"but found {found}")
    device = devices.pop()
    if device.type == "cpu":
        return Host(device)
    if device.type == "cuda":
        return Device(device)
    raise RuntimeError(f"nbxent.torch.{fname}: tensors on device '{device}' are not supported "
                       f"(cpu and cuda are)")


def empty_like(t: torch.Tensor) -> torch.Tensor:
    """A C-contiguous buffer of ``t``'s shape, dtype and device (nbxent's ``out=`` wants C order)."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def scale(grad: torch.Tensor, grad_output: torch.Tensor, class_dim: int | None) -> torch.Tensor:
    """``grad_output * grad``: the saved gradient of ``sum(loss)`` scaled to the upstream gradient.

    Why this is the whole backward: each per-sample (or per-element) loss ``l_s``
    depends only on its own row of logits ``x_s`` (CE/NLL: ``x[n, :, d...]``;
    BCE: one element), and the saved ``grad`` is ``d(sum_s l_s)/dx`` (``'none'``) or
    ``d(loss)/dx`` with ``grad_output = 1`` (``'mean'``/``'sum'``). By the chain rule
    ``dL/dx_s = grad_output_s * dl_s/dx_s = grad_output_s * grad[s]`` for ``'none'``
    (``grad_output`` broadcast along the class dimension) and
    ``dL/dx = grad_output * grad`` for the scalar reductions.

    The product is formed in the wider of the two dtypes (at least float32) and
    rounded once to the input's dtype. A CPU scalar ``grad_output`` of exactly 1
    (``loss.backward()``) returns ``grad`` itself: no pass over it at all.
    """
    if grad_output.dim() == 0 and grad_output.device.type == "cpu" and grad_output.item() == 1.0:
        return grad
    g = grad_output
    if g.dim() and class_dim is not None:
        g = g.unsqueeze(class_dim)
    compute = torch.promote_types(torch.promote_types(grad.dtype, g.dtype), torch.float32)
    return (grad.to(compute) * g.to(compute)).to(grad.dtype)
