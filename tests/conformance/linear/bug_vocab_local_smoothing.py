"""Seeded bug: vocab-parallel label smoothing over the local vocabulary, as Megatron-LM does.

Megatron-LM's vocab-parallel cross-entropy (conventions library:
``vocab_parallel_local_smoothing``) takes ``vocab_size`` from the shard's own logits:
``smoothing = eps * Vs / (Vs - 1)`` and the mean log-probability over the shard's columns,
so the loss a rank reports depends on the split (here: the rank holding the first shard).
The shard-statistics protocol is nbxent's (docs/candidates.md); plain NumPy float64.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vocab_numpy import combine_parts, reduce, vocab_shard_stats  # noqa: E402,F401


def vocab_combine(stats, reduction="mean"):
    stats, lse, valid, nll, wt = combine_parts(stats)
    eps, x0 = stats[0]["eps"], stats[0]["x"]
    vs = x0.shape[1]
    sm = eps * vs / (vs - 1) if eps > 0 and vs > 1 else 0.0     # the bug: the local vocabulary size
    return reduce(np.where(valid, (1 - sm) * nll + sm * (lse[:, None] - x0).mean(axis=1), 0.0), wt, reduction)
