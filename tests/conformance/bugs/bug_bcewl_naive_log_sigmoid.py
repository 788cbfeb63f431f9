"""Seeded bug: log_sigmoid as log(1 / (1 + exp(-x))): inf at large negative logits, 0 for tiny losses."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    ref._validate("binary_cross_entropy_with_logits", input, target, weight=weight, reduction=reduction,
                  pos_weight=pos_weight)
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    lw = 1.0 if pos_weight is None else (np.asarray(pos_weight, np.float64) - 1) * y + 1
    with np.errstate(all="ignore"):
        logsig = np.log(1.0 / (1.0 + np.exp(-x)))
        return ref._reduce(((1 - y) * x - lw * logsig) * w, reduction, np.asarray(target).dtype)
