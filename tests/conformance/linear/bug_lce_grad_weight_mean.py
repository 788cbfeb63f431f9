"""Seeded bug: the weight gradient of a 'mean' loss is not divided by the mean's denominator.

A chunked implementation that folds each chunk's unscaled logit gradient into grad_linear_weight
and applies the 1/W of the mean to grad_input only (nbxent applies it to both after the GEMMs,
docs/linear.md). The loss and grad_input are right; only the gradient check of grad_linear_weight
can catch it.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lce_numpy import linear_cross_entropy, linear_cross_entropy_with_grad as _correct  # noqa: E402,F401


def linear_cross_entropy_with_grad(input, linear_weight, target, *, reduction="mean", **kwargs):
    loss, gi, gW, gb = _correct(input, linear_weight, target, reduction=reduction, **kwargs)
    if reduction not in ("mean", "elementwise_mean") or input.ndim != 2:
        return loss, gi, gW, gb
    _, _, gW_sum, _ = _correct(input, linear_weight, target, reduction="sum", **kwargs)
    return loss, gi, gW_sum, gb                 # the bug: the 'sum' weight gradient under a 'mean' loss
