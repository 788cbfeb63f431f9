"""Seeded bug: cross_entropy subtracts the row maximum from the caller's array in place."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    out = ref.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                            label_smoothing=label_smoothing)
    if isinstance(input, np.ndarray) and input.ndim == 2 and input.size and np.isfinite(input).all():
        input -= input.max(axis=1, keepdims=True)           # "normalise" the logits, forgetting to copy
    return out
