"""Seeded bug: the label-smoothing term averaged over the chunk's rows (a reduction over the wrong axis).

Each sample's smoothing term should be its own ``-(eps/C) sum_c w_c log p_c``; here it is the
mean of that term over the rows of the chunk (four rows at a time), so a sample's ``'none'``
loss depends on its neighbours. The batch-invariance check catches it (the halves of the
batch give other losses), as do the value checks on smoothed cases.
"""
import numpy as np

CHUNK = 4


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    if input.ndim != 2 or input.shape[1] != linear_weight.shape[1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions")
    if target.shape != (input.shape[0],):
        raise ValueError("batch size mismatch")
    ii = -100 if ignore_index is None else ignore_index
    z = input.astype(np.float64) @ linear_weight.astype(np.float64).T
    if linear_bias is not None:
        z = z + linear_bias
    N, C = z.shape
    valid = target != ii
    if ((target[valid] < 0) | (target[valid] >= C)).any():
        raise IndexError("target out of bounds")
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    t = np.where(valid, target, 0)
    eps = label_smoothing if label_smoothing > 0 else 0.0
    per, wt = np.zeros(N), np.where(valid, w[t], 0.0)
    for r0 in range(0, N, CHUNK):
        r1 = min(N, r0 + CHUNK)
        lp = _log_softmax(z[r0:r1])
        nll = -lp[np.arange(r1 - r0), t[r0:r1]] * wt[r0:r1]
        smooth = -(lp * w).sum(axis=1).mean()          # the bug: one number for the whole chunk
        per[r0:r1] = np.where(valid[r0:r1], (1 - eps) * nll + eps / C * smooth, 0.0)
    if reduction == "none":
        return per.astype(input.dtype)
    with np.errstate(all="ignore"):
        out = per.sum() if reduction == "sum" else per.sum() / wt.sum()
    return np.asarray(out, dtype=input.dtype)
