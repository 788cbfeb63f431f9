"""Array arguments: one coercion rule, one ``out=`` check and one overlap rule for every loss.

* Arguments: any array-like goes through ``np.asarray`` (lists, scalars, torch CPU tensors,
  anything with ``__array__``) and non-native byte order is converted to native; CUDA device
  arrays pass through untouched. A torch tensor that requires grad is refused with a
  ``TypeError``: reading it would silently drop it from the autograd graph.
* ``out=``: a writeable C-contiguous array (NumPy, or a device array) with the input's shape
  and dtype. Overlap rule: ``out`` may be the input itself (the gradient is written in
  place, each element read before it is overwritten); any other overlap between ``out``
  and an argument is resolved by copying that argument first (:func:`unaliased`), so the
  result is always the one a separate buffer would receive.
"""
from __future__ import annotations

import numpy as np

from nbxent._core.device import is_device_array


def _is_torch_tensor(obj) -> bool:
    return type(obj).__module__.partition(".")[0] == "torch" and hasattr(obj, "requires_grad")


def as_array(fname: str, name: str, obj):
    """The argument ``name`` of ``fname`` as an array the validators can read.

    Returns ``None`` for ``None``, device arrays unchanged, and a NumPy array in native byte
    order for everything else.

    Raises:
        TypeError: a torch tensor that requires grad.
    """
    if obj is None:
        return None
    if _is_torch_tensor(obj) and obj.requires_grad:
        raise TypeError(f"{fname}: argument '{name}' is a torch tensor that requires grad; "
                        f"pass {name}.detach() (nbxent returns arrays, not autograd results)")
    if is_device_array(obj):
        return obj
    arr = np.asarray(obj)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def is_array(obj) -> bool:
    """True for objects with ``shape``, ``dtype`` and ``ndim`` (NumPy or device arrays)."""
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "ndim")


def require_array(fname: str, name: str, obj) -> None:
    """Raise TypeError unless ``obj`` is an array (after :func:`as_array`)."""
    if not is_array(obj):
        raise TypeError(f"{fname}: argument '{name}' must be an array (numpy.ndarray or CUDA "
                        f"device array), not {type(obj).__name__}")


def _c_contiguous(obj) -> bool:
    flags = getattr(obj, "flags", None)
    if flags is not None:
        try:
            return bool(flags["C_CONTIGUOUS"])
        except (KeyError, TypeError):
            return bool(getattr(flags, "c_contiguous", True))
    if hasattr(obj, "is_c_contiguous"):
        return bool(obj.is_c_contiguous())
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None and cai.get("strides") is not None:
        itemsize = np.dtype(cai["typestr"]).itemsize
        expected = itemsize
        for dim, stride in zip(reversed(cai["shape"]), reversed(cai["strides"])):
            if dim > 1 and stride != expected:
                return False
            expected *= dim
    return True


def check_out(fname: str, out, shape: tuple, dtype) -> None:
    """``out=`` must be a writeable C-contiguous array of ``shape`` and ``dtype``.

    Raises:
        ValueError: anything else, naming the function and what is wrong with ``out``.
    """
    if out is None:
        return
    if (type(out) is np.ndarray and out.shape == shape and out.dtype == dtype
            and out.flags.c_contiguous and out.flags.writeable):
        return                      # the common case, without building the message
    dtype = np.dtype(dtype)
    want = (f"it must be a writeable C-contiguous array of the input's shape {tuple(shape)} "
            f"and dtype {dtype.name}")
    problem = None
    if not (isinstance(out, np.ndarray) or is_device_array(out)):
        problem = f"is a {type(out).__name__}, not an array"
    elif tuple(out.shape) != tuple(shape):
        problem = f"has shape {tuple(out.shape)}"
    elif np.dtype(out.dtype) != dtype:
        problem = f"has dtype {np.dtype(out.dtype).name}"
    elif not _c_contiguous(out):
        problem = "is not C-contiguous"
    elif isinstance(out, np.ndarray) and not out.flags.writeable:
        problem = "is read-only"
    if problem:
        raise ValueError(f"{fname}: argument 'out' {problem}; {want}")


def same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` view exactly the same elements in the same layout."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def unaliased(read: np.ndarray, write: np.ndarray, in_place_ok: bool) -> np.ndarray:
    """``read``, copied when writes to ``write`` could change it before the kernel reads it.

    ``in_place_ok``: the kernel reads each element of ``read`` before writing the same
    element of ``write``, so the exact same buffer is safe (the in-place gradient); any
    other overlap is copied.
    """
    if read.size == 0 or write.size == 0 or not np.may_share_memory(read, write):
        return read
    if in_place_ok and read.size == write.size and (
            read.__array_interface__["data"][0] == write.__array_interface__["data"][0]
            and read.dtype == write.dtype and read.flags.c_contiguous
            and write.flags.c_contiguous):
        return read
    return read.copy()


def target_out_of_bounds(fname: str, value: int, flat_index: int, shape: tuple,
                         n_classes: int) -> IndexError:
    """torch's ``Target t is out of bounds.``, with the argument and the first bad position."""
    where = tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()
    return IndexError(f"{fname}: Target {value} is out of bounds. (argument 'target' at index "
                      f"{where}, C={n_classes})")
