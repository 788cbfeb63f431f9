"""Seeded bug: the cross_entropy gradient leaves out label smoothing (softmax - onehot only)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    return ref.cross_entropy_backward(grad_output, input, target, weight=weight, ignore_index=ignore_index,
                                      reduction=reduction, label_smoothing=0.0)
