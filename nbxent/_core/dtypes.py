"""Dtype tables: what the kernels compute in, and torch's names for messages."""
from __future__ import annotations

import numpy as np

#: The NumPy float dtypes nbxent accepts. NumPy has no bfloat16: cross_entropy and
#: nll_loss also accept ``ml_dtypes.bfloat16`` (:func:`is_bfloat16`), recognised by name so
#: that nbxent never imports ml_dtypes.
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def is_bfloat16(dtype) -> bool:
    """Whether ``dtype`` is ml_dtypes' bfloat16 (a NumPy extension dtype named 'bfloat16')."""
    dt = np.dtype(dtype)
    return dt.kind == "V" and dt.name == "bfloat16"


def is_float(dtype) -> bool:
    """A float dtype cross_entropy / nll_loss accept: float16/32/64 or bfloat16."""
    return np.dtype(dtype) in FLOATS or is_bfloat16(dtype)


def result_type(*dtypes) -> np.dtype:
    """NumPy's promotion, with torch's rule for bfloat16: with float16 it gives float32
    (NumPy has no common type for the two), with float32/float64 the wider float."""
    dts = [np.dtype(d) for d in dtypes]
    if not any(is_bfloat16(d) for d in dts):
        return np.result_type(*dts)
    others = [d for d in dts if not is_bfloat16(d)]
    if not others:
        return dts[0]
    return np.result_type(np.float32, *others)

_TORCH_NAMES = {
    "float16": "Half", "bfloat16": "BFloat16", "float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
    "int16": "Short", "int8": "Char", "uint8": "Byte", "uint16": "UInt16", "uint32": "UInt32",
    "uint64": "UInt64", "bool": "Bool", "complex64": "ComplexFloat", "complex128": "ComplexDouble",
}


def torch_dtype_name(dtype) -> str:
    """torch's name for a NumPy dtype (``float32`` -> ``Float``), as used in its messages."""
    name = np.dtype(dtype).name
    return _TORCH_NAMES.get(name, name)


def compute_dtype(dtype) -> np.dtype:
    """The dtype a kernel computes in for an input of ``dtype``.

    float16 and bfloat16 are computed in float32 and rounded once at the end (a deliberate
    difference from torch, which rounds intermediate results to the half type:
    docs/semantics.md §2.8).
    """
    if np.dtype(dtype) == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)
