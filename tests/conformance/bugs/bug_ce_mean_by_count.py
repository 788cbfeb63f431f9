"""Seeded bug: weighted cross_entropy 'mean' divides by the number of valid samples, not by sum w[t] (docs/semantics.md §3.1)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if reduction != "mean" or np.asarray(target).shape == np.asarray(input).shape:
        return ref.cross_entropy(input, target, reduction=reduction, **kw)
    total = ref.cross_entropy(input, target, reduction="sum", **kw)
    n = int((np.asarray(target) != ignore_index).sum())
    return (total / np.float64(n)).astype(total.dtype)
