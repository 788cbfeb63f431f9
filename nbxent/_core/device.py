"""Which backend runs a call: the arrays decide, unless ``nbxent.cuda`` pinned it.

``nbxent.<fn>`` runs on the CPU for host arguments and on CUDA when any argument is a
device array; ``nbxent.cuda.<fn>`` is the same function with the backend pinned to
CUDA (host arguments are copied to the device, results come back as NumPy). The pin
is a context variable set for the duration of one call, so threads and async tasks
never see each other's choice.
"""
from __future__ import annotations

import contextvars
import functools

import numpy as np

CPU, CUDA = "cpu", "cuda"

_PINNED: contextvars.ContextVar = contextvars.ContextVar("nbxent_backend", default=None)


def is_device_array(obj) -> bool:
    """True for CUDA device arrays (numba device arrays, CuPy, torch CUDA tensors).

    Checked by attribute only, so the CPU path never imports ``numba.cuda``. The CUDA
    simulator's device arrays carry ``__cuda_ndarray__`` instead of
    ``__cuda_array_interface__``.
    """
    if isinstance(obj, np.ndarray) or obj is None:
        return False
    return bool(getattr(obj, "__cuda_ndarray__", False)) or hasattr(obj, "__cuda_array_interface__")


def pinned_backend():
    """The backend ``nbxent.cuda`` pinned for the current call, or None."""
    return _PINNED.get()


def backend_for(*arrays) -> str:
    """The backend of one call: the pinned one, else CUDA when any argument is on the device."""
    pinned = _PINNED.get()
    if pinned is not None:
        return pinned
    for a in arrays:
        if a is not None and type(a) is not np.ndarray and is_device_array(a):
            return CUDA
    return CPU


def pinned(fn, backend: str):
    """``fn`` with the backend fixed to ``backend``: same signature, docstring and checks."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        token = _PINNED.set(backend)
        try:
            return fn(*args, **kwargs)
        finally:
            _PINNED.reset(token)

    return call
