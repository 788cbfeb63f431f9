"""Moving arguments to the device in the kernels' layout, and results back.

Host (NumPy) arguments are converted on the host and copied once. Device
arguments (numba device arrays, or anything with ``__cuda_array_interface__``)
are used in place when they already have the dtype and C-contiguous layout the
kernel wants; a dtype change runs a cast kernel on the device. Nothing here
copies a whole device array to the host.
"""
from __future__ import annotations

import numpy as np

from nbxent.cuda import _runtime


def to_kernel(cuda, fname, name, arr, dtype, shape):
    """``arr`` as a C-contiguous device array of ``dtype`` reshaped to ``shape``.

    Raises:
        ValueError: a device array that is not C-contiguous (a strided device view
            would need a gather kernel per layout; make it contiguous first).
    """
    dtype = np.dtype(dtype)
    if not _runtime.is_device(arr):
        return cuda.to_device(np.ascontiguousarray(arr, dtype=dtype).reshape(shape))
    d = _runtime.as_device(cuda, arr)
    if d.size and not d.is_c_contiguous():
        raise ValueError(f"{fname}: argument '{name}' is a non-contiguous device array "
                         f"(strides {tuple(d.strides)}); pass a C-contiguous array")
    if d.size == 0:
        return cuda.device_array(shape, dtype=dtype)
    if np.dtype(d.dtype) != dtype:
        d = cast(cuda, d, dtype)
    return d.reshape(shape)


def cast(cuda, d, dtype):
    """A device copy of the C-contiguous device array ``d`` converted to ``dtype``."""
    from nbxent.cuda._reduce_kernels import cast_kernel

    out = cuda.device_array(d.shape, dtype=dtype)
    if d.size:
        flat_in, flat_out = d.reshape(d.size), out.reshape(d.size)
        cast_kernel[_runtime.grid_for(d.size), _runtime.threads_per_block()](flat_in, flat_out)
    return out


def finish(cuda, d, dtype, shape, on_device, out=None):
    """A kernel result in the caller's form: ``dtype``, ``shape``, device or host.

    With ``out`` (a caller-owned array of ``shape`` and ``dtype``) the result is
    written there and ``out`` is returned.
    """
    dtype = np.dtype(dtype)
    if on_device:
        if np.dtype(d.dtype) != dtype:
            d = cast(cuda, d, dtype)
        d = d.reshape(shape)
        if out is not None:
            _runtime.as_device(cuda, out).copy_to_device(d)  # device-to-device
            return out
        return d
    host = d.copy_to_host().reshape(shape).astype(dtype, copy=False)
    if out is not None:
        np.copyto(out, host)
        return out
    return host
