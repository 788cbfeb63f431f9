"""Seeded bug: the label-smoothing term is added for ignored samples too (docs/semantics.md §5.1: they contribute 0)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    base = ref.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                             label_smoothing=label_smoothing)
    x, t = np.asarray(input), np.asarray(target)
    if label_smoothing <= 0 or t.shape == x.shape:
        return base
    xr = ref.rows(x)
    C = xr.shape[1]
    wc = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    tt = t.reshape(-1)
    extra = np.where(tt == ignore_index, -(ref.log_softmax(xr) * wc).sum(axis=1) * label_smoothing / C, 0.0)
    if reduction == "none" and x.ndim > 1:
        return (base + extra.reshape(base.shape)).astype(base.dtype)
    if reduction == "mean":
        W = np.where(tt != ignore_index, wc[np.where(tt != ignore_index, tt, 0)], 0.0).sum()
        return np.asarray(base + extra.sum() / W).astype(base.dtype)
    return np.asarray(base + extra.sum()).astype(base.dtype)
