"""A correct linear_cross_entropy in plain NumPy float64: logits materialised, no special cases.

Written the way a user would, from the formula (docs/linear.md): it must pass the harness
(value checks against the float64 and exact oracles, and the metamorphic checks).
"""
import numpy as np


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, chunk_size=None):
    if reduction == "elementwise_mean":
        reduction = "mean"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if input.ndim not in (1, 2) or input.shape[-1] != linear_weight.shape[1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions")
    if input.ndim == 1:                     # unbatched: one sample, a 0-d loss whatever the reduction
        t1 = target.reshape((1,) + target.shape)
        out = linear_cross_entropy(input[None], linear_weight, t1, linear_bias=linear_bias, weight=weight,
                                   reduction="sum" if reduction == "none" else reduction, ignore_index=ignore_index,
                                   label_smoothing=label_smoothing,
                                   chunk_size=chunk_size)
        return np.asarray(out, dtype=input.dtype)
    if np.issubdtype(target.dtype, np.floating):
        return _prob(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing)
    z, valid, t, w = class_index_parts(input, linear_weight, target, linear_bias, weight, ignore_index)
    N, C = z.shape
    eps = label_smoothing if label_smoothing > 0 else 0.0
    per = np.zeros(N)
    wt = np.zeros(N)
    step = N if chunk_size is None else chunk_size
    for r0 in range(0, N, max(step, 1)):
        r1 = min(N, r0 + step)
        lp = _log_softmax(z[r0:r1]) if C else z[r0:r1]
        rows = np.arange(r1 - r0)
        wt[r0:r1] = np.where(valid[r0:r1], w[t[r0:r1]], 0.0)
        nll = -lp[rows, t[r0:r1]] * wt[r0:r1]
        smooth = -(lp * w).sum(axis=1)
        per[r0:r1] = np.where(valid[r0:r1], (1 - eps) * nll + eps / C * smooth, 0.0)
    return reduce_losses(per, wt, reduction, input.dtype)


def reduce_losses(per, wt, reduction, dtype):
    """'none': the per-sample losses; 'sum'; 'mean': divided by the sum of the targets' weights."""
    if reduction == "none":
        return per.astype(dtype)
    with np.errstate(all="ignore"):
        out = per.sum() if reduction == "sum" else per.sum() / wt.sum()
    return np.asarray(out, dtype=dtype)


def class_index_parts(input, linear_weight, target, linear_bias, weight, ignore_index):
    """(float64 logits, non-ignored mask, targets with ignored ones at 0, class weights), validated."""
    if target.shape != (input.shape[0],):
        raise ValueError("batch size mismatch")
    ii = -100 if ignore_index is None else ignore_index
    z = input.astype(np.float64) @ linear_weight.astype(np.float64).T
    if linear_bias is not None:
        z = z + linear_bias
    valid = target != ii
    if ((target[valid] < 0) | (target[valid] >= z.shape[1])).any():
        raise IndexError("target out of bounds")
    w = np.ones(z.shape[1]) if weight is None else weight.astype(np.float64)
    return z, valid, np.where(valid, target, 0), w


def _prob(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing):
    """Probability targets: sum_c w_c q_c (lse - z_c), q smoothed towards 1/C; 'mean' over the samples."""
    if ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    z = input.astype(np.float64) @ linear_weight.astype(np.float64).T
    if linear_bias is not None:
        z = z + linear_bias
    if target.shape != z.shape:
        raise ValueError("target shape mismatch")
    C = z.shape[1]
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    eps = label_smoothing if label_smoothing > 0 else 0.0
    q = (1 - eps) * target.astype(np.float64) + eps / C
    per = -(w * q * _log_softmax(z)).sum(axis=1) if C else np.zeros(z.shape[0])
    if reduction == "none":
        return per.astype(input.dtype)
    with np.errstate(all="ignore"):
        return np.asarray(per.sum() if reduction == "sum" else per.sum() / per.size, dtype=input.dtype)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """cross_entropy as the linear one with an identity matrix: the 'materialised' check's partner."""
    eye = np.eye(input.shape[1], dtype=input.dtype)
    return linear_cross_entropy(input, eye, target, weight=weight, reduction=reduction,
                                ignore_index=ignore_index, label_smoothing=label_smoothing)


# Its cross_entropy covers only what the 'materialised' check sends it (2-D class-index logits):
# it is not itself a cross_entropy candidate, so no dtype of that loss is declared for checking.
CONFORMANCE = {"losses": {"cross_entropy": {"dtypes": []}}}


def linear_cross_entropy_with_grad(input, linear_weight, target, *, linear_bias=None, weight=None,
                                   reduction="mean", ignore_index=None, label_smoothing=0.0):
    """(loss, grad_input, grad_linear_weight, grad_linear_bias): the gradients of loss.sum(), from
    the logit gradient G = g (B p - c) (p the softmax, c the target's coefficients, B = sum c)."""
    loss = linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias, weight=weight,
                                reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)
    x = input.astype(np.float64).reshape(-1, input.shape[-1])
    W = linear_weight.astype(np.float64)
    z = x @ W.T + (0.0 if linear_bias is None else linear_bias)
    N, C = z.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    eps = label_smoothing if label_smoothing > 0 else 0.0
    if np.issubdtype(target.dtype, np.floating):
        c = w * ((1 - eps) * target.astype(np.float64).reshape(N, C) + eps / C)
        g = np.full(N, 1.0 / N if reduction not in ("none", "sum") else 1.0)
    else:
        t = target.reshape(-1)
        valid = t != (-100 if ignore_index is None else ignore_index)
        c = np.where(valid[:, None], eps / C * w, 0.0)
        r = np.flatnonzero(valid)
        c[r, t[r]] += (1 - eps) * w[t[r]]
        Wsum = np.where(valid, w[np.where(valid, t, 0)], 0.0).sum()
        with np.errstate(all="ignore"):
            g = np.where(valid, 1.0 / Wsum if reduction not in ("none", "sum") else 1.0, 0.0)
    p = np.exp(_log_softmax(z)) if C else z
    with np.errstate(all="ignore"):
        G = g[:, None] * (c.sum(axis=1, keepdims=True) * p - c)
    gi = (G @ W).reshape(input.shape).astype(input.dtype)
    gW = (G.T @ x).astype(input.dtype)
    gb = None if linear_bias is None else G.sum(axis=0).astype(input.dtype)
    return loss, gi, gW, gb
