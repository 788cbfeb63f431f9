"""Combining vocabulary shards' statistics into the loss and the per-row gradient factors.

Pure NumPy in float64 (the statistics are O(N) per shard). The combine is split in the
two steps a collective needs, so the in-process combine (:func:`combine`, shards summed
in ascending ``vocab_start`` order) and the ``torch.distributed`` one (all-reduce MAX of
the row maxima, then one all-reduce SUM of :func:`rebase`'s columns) run the same code::

    M     = max over shards of row_max                       (exact, any order)
    parts = rebase(shard, M)  -> columns  z exp(m - M), W_s (M - m) - sm, xt, wt, owned
    sums  = sum over shards of parts                         (float64)
    finish(M, sums, weight_sum, ...) -> loss, lse and the gradient factors a, b, d

Which results are bitwise identical for any number of shards: ``M``, the target logit
``xt`` and weight ``wt`` (one shard holds each, the others add exact zeros), the ignore
mask and the 'mean' denominator ``W = sum wt`` (summed over samples in sample order).
``Z_o``, ``W_sum`` and the smoothing sum are float64 sums whose rounding depends on the
partition: the loss and gradients agree across shard counts to the bound in docs/linear.md
(a few float64 ulps before the one rounding to the logits' dtype, so float32 results
differ by at most one float32 ulp and are almost always bitwise equal).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

COLUMNS = ("sum_exp", "smooth_term", "target_logit", "target_weight", "owned")


class ShardStats(NamedTuple):
    """Per-row statistics of one vocabulary shard (float64, shape ``(N,)`` unless noted)."""
    vocab_start: int
    vocab_end: int
    num_classes: int
    dtype: np.dtype            # the logits' dtype (results are rounded to it)
    label_smoothing: float     # normalised: 0.0 when off
    valid: np.ndarray          # bool: target != ignore_index
    row_max: np.ndarray        # m: max of the shard's logits
    sum_exp: np.ndarray        # z: sum of exp(x - m) over the shard, the target's term left out
    target_logit: np.ndarray   # xt: x[t] if the shard holds t, else 0
    target_weight: np.ndarray  # wt: w[t] if the shard holds t, else 0
    smooth: np.ndarray         # sm: sum_j w_j (x_j - m) (zeros without smoothing)
    owned: np.ndarray          # 1.0 where the shard holds t
    weight_sum: float          # W_s: sum of the shard's class weights


class VocabCombined(NamedTuple):
    """The combined statistics: the loss and what each shard's gradient needs (float64 ``(N,)``)."""
    loss: np.ndarray           # in the logits' dtype; (N,) for 'none', else 0-d
    lse: np.ndarray            # log-sum-exp over the full vocabulary
    a: np.ndarray              # gradient = a * softmax - b * onehot(t) - d * w
    b: np.ndarray
    d: np.ndarray
    denom: float               # 'mean' denominator W = sum w[t] over non-ignored rows
    num_classes: int


def rebase(st: ShardStats, big_m: np.ndarray) -> np.ndarray:
    """The shard's summable columns (``COLUMNS``) relative to the global row max ``M``, ``(5, N)``."""
    with np.errstate(all="ignore"):
        z = np.where(st.sum_exp == 0.0, 0.0, st.sum_exp * np.exp(st.row_max - big_m))
        if st.label_smoothing > 0.0:
            # W_s (M - m_s) - sm_s: both terms >= 0 for w >= 0 (no cancellation); an
            # empty or all -inf shard contributes only its -sm (0 or +inf)
            dead = st.row_max == -np.inf
            term = np.where(dead, -st.smooth, st.weight_sum * (big_m - st.row_max) - st.smooth)
            term = np.where(dead & (st.smooth == 0.0), 0.0, term)
        else:
            term = np.zeros_like(z)
    out = np.stack([z, term, st.target_logit, st.target_weight, st.owned])
    out[1:, ~st.valid] = 0.0   # an ignored row keeps only its mass z (see finish)
    return out


def finish(big_m, sums, weight_sum, valid, num_classes, label_smoothing, reduction, dtype,
           fname="vocab_combine"):
    """Loss and gradient factors from the reduced statistics (see the module docstring)."""
    z_o, term, xt, wt, owned = sums
    if np.any(owned[valid] != 1.0):
        bad = int(np.flatnonzero(valid & (owned != 1.0))[0])
        raise ValueError(f"{fname}: the shards do not partition the vocabulary: row {bad}'s "
                         f"target is held by {owned[bad]:g} shards (expected exactly 1)")
    eps = float(label_smoothing)
    with np.errstate(all="ignore"):
        # an ignored row contributes nothing, but its lse is formed as torch's autograd forms
        # it: its gradient is 0 * softmax, NaN where the row's softmax is (a NaN or +inf logit)
        m = big_m
        xt = np.where(valid, xt, 0.0)
        s = z_o + np.where(valid, np.exp(xt - m), 0.0)
        log_s = np.log(s)
        lse = m + log_s
        # lse - xt: log1p of the other classes' mass when the target is the max (tiny losses
        # keep their relative accuracy), else two non-negative terms
        nll = np.where((xt == m) & np.isfinite(m), np.log1p(z_o), (m - xt) + log_s)
        if eps > 0.0:
            per = (1.0 - eps) * wt * nll + (eps / num_classes) * (weight_sum * log_s + term)
        else:
            per = wt * nll
        per = np.where(valid, per, 0.0)
        denom = float(np.sum(np.where(valid, wt, 0.0)))
        if reduction == "mean":
            g = np.float64(1.0) / np.float64(denom)
        else:
            g = np.float64(1.0)
        g = np.where(valid, g, 0.0)
        a = g * ((1.0 - eps) * wt + (eps / num_classes) * weight_sum)
        b = g * (1.0 - eps) * wt
        d = g * (eps / num_classes)
    if reduction == "none":
        loss = per.astype(dtype)
    else:
        total = math.fsum(per) if np.isfinite(per).all() else float(np.sum(per))
        with np.errstate(all="ignore"):
            value = np.float64(total) / np.float64(denom) if reduction == "mean" else total
        loss = np.asarray(value, dtype=dtype)
    a, b, d = (np.where(valid, v, 0.0) for v in (a, b, d))
    return VocabCombined(loss, lse, a, b, d, denom, int(num_classes))


def combine(stats, reduction="mean", fname="vocab_combine") -> VocabCombined:
    """Combine the statistics of shards that partition the vocabulary (any order given)."""
    stats = list(stats)
    if not stats or not all(isinstance(s, ShardStats) for s in stats):
        raise TypeError(f"{fname}: argument 'stats' must be a non-empty sequence of ShardStats "
                        f"(from vocab_shard_stats)")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{fname}: {reduction} is not a valid value for reduction (argument "
                         f"'reduction'={reduction!r}; expected 'none', 'mean' or 'sum')")
    stats.sort(key=lambda s: (s.vocab_start, s.vocab_end))
    first = stats[0]
    for s in stats:
        for field in ("num_classes", "label_smoothing", "dtype"):
            if getattr(s, field) != getattr(first, field):
                raise ValueError(f"{fname}: shards disagree on {field}: {getattr(first, field)} "
                                 f"vs {getattr(s, field)}")
        if s.valid.shape != first.valid.shape or not np.array_equal(s.valid, first.valid):
            raise ValueError(f"{fname}: shards were computed for different targets")
    edges = [0] + [e for s in stats for e in (s.vocab_start, s.vocab_end)] + [first.num_classes]
    if any(edges[2 * k] != edges[2 * k + 1] for k in range(len(stats) + 1)):
        spans = [(s.vocab_start, s.vocab_end) for s in stats]
        raise ValueError(f"{fname}: the shards' vocabulary ranges {spans} do not partition "
                         f"[0, {first.num_classes})")
    big_m = stats[0].row_max.copy()
    for s in stats[1:]:
        big_m = np.maximum(big_m, s.row_max)     # NaN propagates
    sums = rebase(stats[0], big_m)
    weight_sum = stats[0].weight_sum
    for s in stats[1:]:
        sums += rebase(s, big_m)                 # fixed order: ascending vocab_start
        weight_sum += s.weight_sum
    return finish(big_m, sums, weight_sum, first.valid, first.num_classes,
                  first.label_smoothing, reduction, first.dtype, fname)
