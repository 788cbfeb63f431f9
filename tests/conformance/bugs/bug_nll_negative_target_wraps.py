"""Seeded bug: no bounds check on negative targets: x[s, -1] silently reads the last class (NumPy indexing).

torch raises IndexError 'Target -1 is out of bounds.' (docs/semantics.md §4).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def _wrap(input, target, ignore_index):
    x, t = np.asarray(input), np.asarray(target)
    C = x.shape[0] if x.ndim == 1 else x.shape[1] if x.ndim > 1 else 1
    if t.dtype.kind != "i" or C == 0:
        return t
    return np.where((t < 0) & (t != ignore_index), t % C, t)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return ref.nll_loss(input, _wrap(input, target, ignore_index), weight=weight, ignore_index=ignore_index,
                        reduction=reduction)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    return ref.nll_loss_backward(grad_output, input, _wrap(input, target, ignore_index), weight=weight,
                                 ignore_index=ignore_index, reduction=reduction)
