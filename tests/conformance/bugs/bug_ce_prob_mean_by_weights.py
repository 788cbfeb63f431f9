"""Seeded bug: probability-target cross_entropy 'mean' divides by sum(w * p) instead of the sample count (docs/semantics.md §6)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    x, p = np.asarray(input), np.asarray(target)
    if reduction != "mean" or p.shape != x.shape:
        return ref.cross_entropy(input, target, reduction=reduction, **kw)
    total = ref.cross_entropy(input, target, reduction="sum", **kw)
    wc = 1.0 if weight is None else np.asarray(weight, np.float64)
    return np.asarray(total / (ref.rows(p) * wc).sum()).astype(total.dtype)
