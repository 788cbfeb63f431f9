"""Seeded bug: the bias is accepted and silently dropped (logits = input @ W.T only)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lce_numpy import linear_cross_entropy as _correct  # noqa: E402


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, **kwargs):
    return _correct(input, linear_weight, target, **kwargs)
