"""Argument normalisation shared by every loss and both backends.

Everything here is plain Python/NumPy and runs before any JIT call, so a bad
argument raises a real exception that names the function, the argument and
the value, and the kernels see one normalised signature per float dtype.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

# Reduction codes as the kernels see them.
NONE, MEAN, SUM = 0, 1, 2
_REDUCTIONS = {"none": NONE, "mean": MEAN, "sum": SUM}


def parse_reduction(fname: str, reduction) -> int:
    """Map torch's reduction string to a kernel code.

    torch accepts the deprecated alias ``'elementwise_mean'`` (with a warning)
    and rejects everything else, including ``None``, with ``ValueError``.
    """
    if isinstance(reduction, str):
        code = _REDUCTIONS.get(reduction)
        if code is not None:
            return code
        if reduction == "elementwise_mean":
            warnings.warn(
                "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                UserWarning,
                stacklevel=3,
            )
            return MEAN
    raise ValueError(
        f"{fname}: {reduction} is not a valid value for reduction "
        f"(argument 'reduction'={reduction!r}; expected 'none', 'mean' or 'sum')"
    )


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a kernel computes in for an input of ``dtype``.

    float16 is computed in float32 and rounded once at the end (a deliberate
    difference from torch, which accumulates half losses in half precision).
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def is_device_array(obj) -> bool:
    """True for CUDA device arrays (numba device arrays, CuPy, torch CUDA tensors).

    Checked by attribute only, so the CPU path never imports ``numba.cuda``.
    The CUDA simulator's device arrays carry ``__cuda_ndarray__`` instead of
    ``__cuda_array_interface__``.
    """
    if isinstance(obj, np.ndarray):
        return False
    return hasattr(obj, "__cuda_array_interface__") or bool(getattr(obj, "__cuda_ndarray__", False))


def _cache_dir_usable() -> bool:
    """True when Numba can write its on-disk cache for this package.

    Numba writes beside the module (``__pycache__``), else in the user's cache
    directory, else under ``NUMBA_CACHE_DIR``; when none is writable
    ``cache=True`` raises at decoration time, so kernels compile in memory.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("NUMBA_CACHE_DIR"), os.path.join(here, "__pycache__"), here,
                  os.path.join(os.path.expanduser("~"), ".cache")]
    return any(c and os.path.isdir(c) and os.access(c, os.W_OK) for c in candidates)


#: Whether module-level kernels are compiled with ``cache=True``.
CACHE: bool = _cache_dir_usable()
