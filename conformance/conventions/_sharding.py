"""Known conventions of vocab-parallel cross-entropy: how sharded implementations depart from torch.

A sharded loss takes logits split by vocabulary columns ``[v_s, v_{s+1})`` over ranks and
combines per-shard statistics. Each :class:`ShardConvention` is a float64 reference of the
loss the *first* shard's rank reports under that convention, given the full logits and the
split; ``None`` where the convention makes no difference for the case. The metamorphic
shard check (conformance/metamorphic.py) asks :func:`diagnose_shards` which convention
reproduces a failing split. ``followed_by`` names libraries only where their public source
shows the behaviour; docs/conventions.md lists the same table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import logsumexp

__all__ = ["SHARD_CONVENTIONS", "ShardConvention", "diagnose_shards"]


@dataclass(frozen=True)
class ShardConvention:
    id: str
    summary: str
    loss: Callable      # (z float64 (N, C), target, bounds, kwargs, weight) -> per-sample losses, or None
    followed_by: tuple[str, ...] = ()
    section: str = ""


def _rows(z, target, kwargs):
    ii = kwargs.get("ignore_index", -100)
    valid = target != (-100 if ii is None else ii)
    t = np.where(valid, target, 0)
    return valid, t, np.arange(z.shape[0])


def _local_smoothing(z, target, bounds, kwargs, weight):
    """Megatron-LM: smoothing ``eps * Vs / (Vs - 1)`` against the mean log-probability over the
    first shard's ``Vs`` columns (``vocab_size = exp_logits.size(-1)`` is the partition's)."""
    eps = float(kwargs.get("label_smoothing", 0.0))
    vs = bounds[1] - bounds[0]
    if not eps > 0 or weight is not None or vs < 2:
        return None
    valid, t, rows = _rows(z, target, kwargs)
    lse = logsumexp(z, axis=1)
    s = eps * vs / (vs - 1)
    per = (1 - s) * (lse - z[rows, t]) + s * (lse[:, None] - z[:, bounds[0]:bounds[1]]).mean(axis=1)
    return np.where(valid, per, 0.0)


def _unscaled_sums(z, target, bounds, kwargs, weight):
    """Each shard's ``sum exp(x - m_s)`` added without rescaling to the global max: a known
    mistake of hand-written combines (exact only when every shard has the same max)."""
    if len(bounds) < 3 or kwargs.get("label_smoothing", 0.0) > 0:
        return None
    valid, t, rows = _rows(z, target, kwargs)
    M = z.max(axis=1)
    tot = sum(np.exp(z[:, a:b] - z[:, a:b].max(axis=1, keepdims=True)).sum(axis=1)
              for a, b in zip(bounds[:-1], bounds[1:]))
    w = np.ones(z.shape[1]) if weight is None else np.asarray(weight, np.float64)
    return np.where(valid, w[t] * (M + np.log(tot) - z[rows, t]), 0.0)


SHARD_CONVENTIONS = {c.id: c for c in [
    ShardConvention("vocab_parallel_local_smoothing",
                    "label smoothing over the shard's local vocabulary: eps*Vs/(Vs-1) against the mean "
                    "log-probability of the rank's own columns (torch: eps/C over all C)",
                    _local_smoothing,
                    ("Megatron-LM (megatron/core/tensor_parallel/cross_entropy.py: vocab_size = "
                     "exp_logits.size(-1), the partition's; smoothing = eps*V/(V-1))",
                     "MindFormers (VocabParallelCrossEntropy, the same formula)"),
                    "docs/semantics.md §5.1"),
    ShardConvention("vocab_parallel_unscaled_sums",
                    "shards' sums of exp(x - local max) added without rescaling to the global max",
                    _unscaled_sums, (), "docs/semantics.md §0"),
]}


def reduce(per, red: str, target, weight, kwargs):
    """A per-sample loss reduced as torch reduces cross_entropy (weighted 'mean')."""
    if red == "none":
        return per
    if red == "sum":
        return np.asarray(per.sum())
    valid, t, _ = _rows(np.zeros((len(target), 1)), target, kwargs)
    w = np.ones(int(t.max()) + 1 if t.size else 1) if weight is None else np.asarray(weight, np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(per.sum() / np.where(valid, w[t], 0.0).sum())


def diagnose_shards(got, z, target, bounds, kwargs, weight, close) -> list[str]:
    """Ids of the conventions whose reference ``close(got, reference)`` accepts."""
    out = []
    for c in SHARD_CONVENTIONS.values():
        per = c.loss(np.asarray(z, np.float64), np.asarray(target), list(bounds), kwargs, weight)
        if per is not None and close(got, reduce(per, kwargs.get("reduction", "mean"), target, weight, kwargs)):
            out.append(c.id)
    return out
