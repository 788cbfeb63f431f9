"""Seeded bug: binary_cross_entropy without torch's clamp of each log at -100 (docs/semantics.md §7.1)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    ref._validate("binary_cross_entropy", input, target, weight=weight, reduction=reduction)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    with np.errstate(all="ignore"):
        return ref._reduce(((y - 1) * np.log1p(-x) - y * np.log(x)) * w, reduction, np.asarray(input).dtype)
