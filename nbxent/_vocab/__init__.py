"""Vocab-parallel cross-entropy: per-shard statistics, an order-fixed combine, per-shard gradients.

Rooms: ``_formulas`` (per-row formulas compiled by both backends), ``_cpu`` / ``_cuda``
(kernels), ``_combine`` (the float64 combine, also used by ``nbxent.distributed``), ``_api``
(validation and the public functions). See docs/linear.md.
"""
from nbxent._vocab._api import ShardStats, VocabCombined, vocab_combine, vocab_shard_grad, vocab_shard_stats

__all__ = ["vocab_shard_stats", "vocab_combine", "vocab_shard_grad", "ShardStats",
           "VocabCombined"]
