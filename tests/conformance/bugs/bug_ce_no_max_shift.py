"""Seeded bug: log_softmax as x - log(sum(exp(x))) without the max shift: overflows for large logits."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def _naive_log_softmax(xr):
    return xr - np.log(np.exp(xr).sum(axis=1, keepdims=True))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    ref._validate("cross_entropy", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                  label_smoothing=label_smoothing)
    with np.errstate(all="ignore"):
        return ref._class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing,
                          lsm=_naive_log_softmax)
