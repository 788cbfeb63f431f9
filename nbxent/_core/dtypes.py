"""Dtype tables: what the kernels compute in, and torch's names for messages."""
from __future__ import annotations

import numpy as np

#: The float dtypes nbxent accepts (NumPy has no bfloat16).
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

_TORCH_NAMES = {
    "float16": "Half", "float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
    "int16": "Short", "int8": "Char", "uint8": "Byte", "uint16": "UInt16", "uint32": "UInt32",
    "uint64": "UInt64", "bool": "Bool", "complex64": "ComplexFloat", "complex128": "ComplexDouble",
}


def torch_dtype_name(dtype) -> str:
    """torch's name for a NumPy dtype (``float32`` -> ``Float``), as used in its messages."""
    name = np.dtype(dtype).name
    return _TORCH_NAMES.get(name, name)


def compute_dtype(dtype) -> np.dtype:
    """The dtype a kernel computes in for an input of ``dtype``.

    float16 is computed in float32 and rounded once at the end (a deliberate
    difference from torch, which accumulates half losses in half precision).
    """
    if np.dtype(dtype) == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)
