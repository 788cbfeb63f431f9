"""Seeded bug: the bias is accepted and silently dropped (logits = input @ W.T only)."""
from lce_numpy import linear_cross_entropy as _correct


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, **kwargs):
    return _correct(input, linear_weight, target, **kwargs)
