"""A correct shard-statistics candidate in plain NumPy float64 (the protocol of docs/candidates.md)."""
import numpy as np
from scipy.special import logsumexp


def vocab_shard_stats(local_logits, target, vocab_start, num_classes, *, weight=None, ignore_index=-100,
                      label_smoothing=0.0):
    x = np.asarray(local_logits, np.float64)
    return dict(x=x, t=np.asarray(target), v0=vocab_start, C=num_classes, ii=ignore_index,
                eps=label_smoothing if label_smoothing > 0 else 0.0,
                w=np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64))


def combine_parts(stats):
    """(shards in vocabulary order, lse, valid rows, weighted nll, w[t]) from all shards."""
    stats = sorted(stats, key=lambda s: s["v0"])
    t, ii = stats[0]["t"], stats[0]["ii"]
    lse = logsumexp(np.concatenate([s["x"] for s in stats], axis=1), axis=1)
    valid = t != ii
    rows = np.arange(len(t))
    nll, wt = np.zeros(len(t)), np.zeros(len(t))
    for s in stats:
        held = valid & (t >= s["v0"]) & (t < s["v0"] + s["x"].shape[1])
        j = np.where(held, t - s["v0"], 0)
        wt += np.where(held, s["w"][j], 0.0)
        nll += np.where(held, s["w"][j] * (lse - s["x"][rows, j]), 0.0)
    return stats, lse, valid, nll, wt


def reduce(per, wt, reduction):
    if reduction == "none":
        return per
    with np.errstate(all="ignore"):
        return np.asarray(per.sum() if reduction == "sum" else per.sum() / wt.sum())


def vocab_combine(stats, reduction="mean"):
    stats, lse, valid, nll, wt = combine_parts(stats)
    eps, C = stats[0]["eps"], stats[0]["C"]
    smooth = sum(eps / C * (s["w"] * (lse[:, None] - s["x"])).sum(axis=1) for s in stats)
    return reduce(np.where(valid, (1 - eps) * nll + smooth, 0.0), wt, reduction)
