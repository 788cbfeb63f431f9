"""Seeded bug: the BCE gradient floor is 1e-12 in float64, not torch's float32(1e-12) (docs/semantics.md §10.3)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean"):
    ref._validate("binary_cross_entropy", input, target, weight=weight, reduction=reduction)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    g = ref._gscale(grad_output, reduction, x.shape)
    return np.asarray(g * (x - y) / np.maximum((1 - x) * x, 1e-12) * w).astype(np.asarray(input).dtype)
