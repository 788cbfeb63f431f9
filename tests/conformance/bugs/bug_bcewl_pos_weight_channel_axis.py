"""Seeded bug: a 1-D pos_weight is applied per channel (axis 1) instead of along the last axis (docs/semantics.md §8.3)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def _per_channel(input, pos_weight):
    x = np.asarray(input)
    if pos_weight is not None and np.ndim(pos_weight) == 1 and x.ndim >= 3:
        return np.asarray(pos_weight).reshape((-1,) + (1,) * (x.ndim - 2))
    return pos_weight


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    return ref.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                                pos_weight=_per_channel(input, pos_weight))


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None, reduction="mean",
                                              pos_weight=None):
    return ref.binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=weight,
                                                         reduction=reduction,
                                                         pos_weight=_per_channel(input, pos_weight))
