"""Seeded bugs, three at once, as real libraries ship them: an out-of-range label gives NaN instead of
raising; the weighted 'mean' divides by the number of valid samples (docs/semantics.md §3.1); the
gradient leaves out label smoothing. One run must report each as its own failure class."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything these bugs leave correct)


def _out_of_range(input, target, ignore_index):
    x, t = np.asarray(input), np.asarray(target)
    if t.shape == x.shape or x.ndim == 0 or not np.issubdtype(t.dtype, np.integer):
        return False
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    return bool(((t != ignore_index) & ((t < 0) | (t >= C))).any())


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if _out_of_range(input, target, ignore_index):
        return np.asarray(np.nan, dtype=np.asarray(input).dtype)
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if reduction != "mean" or weight is None or np.asarray(target).shape == np.asarray(input).shape:
        return ref.cross_entropy(input, target, reduction=reduction, **kw)
    total = ref.cross_entropy(input, target, reduction="sum", **kw)
    n = int((np.asarray(target) != ignore_index).sum())
    return (total / np.float64(n)).astype(total.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    return ref.cross_entropy_backward(grad_output, input, target, weight=weight, ignore_index=ignore_index,
                                      reduction=reduction, label_smoothing=0.0)
