"""Seeded bug: vocab-parallel label smoothing over the local vocabulary, as Megatron-LM does.

Megatron-LM's vocab-parallel cross-entropy (conventions library:
``vocab_parallel_local_smoothing``) takes ``vocab_size`` from the shard's own logits:
``smoothing = eps * Vs / (Vs - 1)`` and the mean log-probability over the shard's columns,
so the loss a rank reports depends on the split (here: the rank holding the first shard).
The shard-statistics protocol is nbxent's (docs/candidates.md); plain NumPy float64.
"""
import numpy as np
from scipy.special import logsumexp


def vocab_shard_stats(local_logits, target, vocab_start, num_classes, *, weight=None, ignore_index=-100,
                      label_smoothing=0.0):
    x = np.asarray(local_logits, np.float64)
    return dict(x=x, t=np.asarray(target), v0=vocab_start, C=num_classes, ii=ignore_index,
                eps=label_smoothing if label_smoothing > 0 else 0.0,
                w=np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64))


def vocab_combine(stats, reduction="mean"):
    stats = sorted(stats, key=lambda s: s["v0"])
    s0 = stats[0]
    lse = logsumexp(np.concatenate([s["x"] for s in stats], axis=1), axis=1)
    t, ii, eps = s0["t"], s0["ii"], s0["eps"]
    valid = t != ii
    nll, wt = np.zeros(len(t)), np.zeros(len(t))
    for s in stats:
        vs = s["x"].shape[1]
        held = valid & (t >= s["v0"]) & (t < s["v0"] + vs)
        j = np.where(held, t - s["v0"], 0)
        rows = np.arange(len(t))
        wt += np.where(held, s["w"][j], 0.0)
        nll += np.where(held, s["w"][j] * (lse - s["x"][rows, j]), 0.0)
    x0 = s0["x"]
    vs = x0.shape[1]
    sm = eps * vs / (vs - 1) if eps > 0 and vs > 1 else 0.0     # the bug: the local vocabulary size
    per = np.where(valid, (1 - sm) * nll + sm * (lse[:, None] - x0).mean(axis=1), 0.0)
    if reduction == "none":
        return per
    with np.errstate(all="ignore"):
        return np.asarray(per.sum() if reduction == "sum" else per.sum() / wt.sum())
