"""Seeded bug: 'mean' is the mean of per-chunk means (normalised over the chunk, not the batch)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lce_numpy import linear_cross_entropy as _correct  # noqa: E402


def linear_cross_entropy(input, linear_weight, target, *, reduction="mean", chunk_size=None, **kwargs):
    if reduction not in ("mean", "elementwise_mean") or input.ndim != 2:      # one sample: no chunks
        return _correct(input, linear_weight, target, reduction=reduction, chunk_size=chunk_size, **kwargs)
    N = input.shape[0]
    step = 2 if chunk_size is None else chunk_size
    means = [_correct(input[r0:r0 + step], linear_weight, target[r0:r0 + step], reduction="mean", **kwargs)
             for r0 in range(0, N, step)]
    return np.asarray(np.mean(means) if means else np.nan, dtype=input.dtype)
