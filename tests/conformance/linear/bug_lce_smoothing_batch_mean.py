"""Seeded bug: the label-smoothing term averaged over the chunk's rows (a reduction over the wrong axis).

Each sample's smoothing term should be its own ``-(eps/C) sum_c w_c log p_c``; here it is the
mean of that term over the rows of the chunk (four rows at a time), so a sample's ``'none'``
loss depends on its neighbours. The batch-invariance check catches it (the halves of the
batch give other losses), as do the value checks on smoothed cases.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lce_numpy import _log_softmax, class_index_parts, reduce_losses  # noqa: E402

CHUNK = 4


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    if input.ndim != 2 or input.shape[1] != linear_weight.shape[1] or np.issubdtype(target.dtype, np.floating):
        raise RuntimeError("2-D input and class-index targets only")
    z, valid, t, w = class_index_parts(input, linear_weight, target, linear_bias, weight, ignore_index)
    N, C = z.shape
    eps = label_smoothing if label_smoothing > 0 else 0.0
    per, wt = np.zeros(N), np.where(valid, w[t], 0.0)
    for r0 in range(0, N, CHUNK):
        r1 = min(N, r0 + CHUNK)
        lp = _log_softmax(z[r0:r1])
        nll = -lp[np.arange(r1 - r0), t[r0:r1]] * wt[r0:r1]
        smooth = -(lp * w).sum(axis=1).mean()          # the bug: one number for the whole chunk
        per[r0:r1] = np.where(valid[r0:r1], (1 - eps) * nll + eps / C * smooth, 0.0)
    return reduce_losses(per, wt, reduction, input.dtype)
