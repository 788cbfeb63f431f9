"""Seeded bug: float32 log-sum-exp with the exp terms added one by one in float32.

Loses digits at large vocabularies (catalogue ce_large_vocab_constant_tail, C = 1e5).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from reference import *  # noqa: E402,F401,F403  (everything this bug leaves correct)


def _make_lsm(dtype):
    def lsm(xr):
        x = xr.astype(dtype)
        m = x.max(axis=1, keepdims=True)
        s = np.cumsum(np.exp(x - m), axis=1, dtype=dtype)[:, -1:]     # a serial sum in the input dtype
        return ((x - m) - np.log(s)).astype(np.float64)
    return lsm


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    ref._validate("cross_entropy", input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                  label_smoothing=label_smoothing)
    with np.errstate(all="ignore"):
        return ref._class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing,
                          lsm=_make_lsm(np.asarray(input).dtype))
