"""Seeded bug: nll_loss 'mean' divides by all samples, ignored ones included (docs/semantics.md §3.1/§4)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    if reduction != "mean":
        return ref.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    total = ref.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    t = np.asarray(target).reshape(-1)
    wc = np.ones(1) if weight is None else np.asarray(weight, np.float64)
    W = float(t.size) if weight is None else wc[np.where(t != ignore_index, t, 0)].sum()
    return np.asarray(total / W).astype(total.dtype)
