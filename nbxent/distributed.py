"""Vocab-parallel cross-entropy over ``torch.distributed``: a tensor-parallel LM head's loss.

Each rank of a tensor-parallel group holds the logits of its slice ``[vocab_start,
vocab_start + V_local)`` of the vocabulary. :func:`vocab_parallel_cross_entropy` returns
the loss of the unsharded logits (every option of ``cross_entropy``: class weights,
ignore_index, label_smoothing, reductions) and, through autograd, each rank's own columns
of the gradient, with two collectives on O(N) numbers (the logits never move)::

    stats  = nbxent.vocab_shard_stats(local_logits, ...)        per rank, float64
    M      = all_reduce(row_max, MAX)                             exact
    sums   = all_reduce(rebase(stats, M), SUM)                    5 columns per row + W_s
    loss, factors = finish(M, sums, ...)                          identical on every rank
    grad   = nbxent.vocab_shard_grad(local_logits, ..., factors)  per rank, local columns

Every rank gets bitwise the same loss (the reduced values are the same on all ranks).
Compared with the unsharded loss it is exact in ``M``, the target logit/weight and the
'mean' denominator, and within a few float64 ulps elsewhere (docs/linear.md derives the
bound); the SUM all-reduce's internal order is the backend's (gloo, NCCL), fixed for a
given world size. CPU tensors are computed by nbxent's CPU kernels (zero-copy NumPy views),
CUDA tensors by its CUDA kernels; bfloat16 logits are computed in float32.

torch is imported only when a function here is called; importing ``nbxent`` never
imports it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_cross_entropy_with_grad"]

_FUNCTION = None


def _as_array(t):
    """A NumPy view (CPU tensor) or a numba device array (CUDA tensor) of a torch tensor."""
    t = t.detach()
    if t.is_cuda:
        from numba import cuda
        return cuda.as_cuda_array(t.contiguous())
    return t.contiguous().numpy()


def _to_torch(a, like):
    import torch
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.array(a, order="C")).to(like.device)   # keeps 0-d
    return torch.as_tensor(a, device=like.device)


def vocab_parallel_cross_entropy_with_grad(local_logits, target, vocab_start, *, group=None,
                                           weight=None, reduction="mean", ignore_index=-100,
                                           label_smoothing=0.0):
    """Loss of the unsharded logits and this rank's gradient columns (no autograd graph).

    Args:
        local_logits: ``(N, V_local)`` float tensor (CPU or CUDA; float16/32/64, bfloat16):
            this rank's vocabulary columns, starting at global class ``vocab_start``.
        target: ``(N,)`` integer tensor of global class indices, the same on every rank.
        vocab_start: this rank's first global class.
        group: the ``torch.distributed`` process group (None: the default group).
        weight: optional ``(V_local,)`` tensor, this rank's slice of the class weights.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        ignore_index: int; rows with that target contribute nothing.
        label_smoothing: float in ``[0, 1]``.

    Returns:
        ``(loss, grad_local)``: the loss tensor (``(N,)`` for 'none', else 0-d) in the logits'
        dtype, the same on every rank, and the gradient of the loss (of ``loss.sum()`` for
        'none') w.r.t. ``local_logits``.

    Raises:
        The exceptions of :func:`nbxent.vocab_shard_stats`; ValueError when the ranks'
        ranges do not partition the vocabulary (raised on every rank alike).
    """
    import torch
    import torch.distributed as dist

    from nbxent._vocab import vocab_shard_grad, vocab_shard_stats
    from nbxent._vocab._combine import finish, rebase

    fname = "vocab_parallel_cross_entropy"
    if not isinstance(local_logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{fname}: arguments 'local_logits' and 'target' must be torch tensors, "
                        f"got {type(local_logits).__name__} and {type(target).__name__}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{fname}: {reduction} is not a valid value for reduction (argument "
                         f"'reduction'={reduction!r}; expected 'none', 'mean' or 'sum')")
    out_dtype = local_logits.dtype
    x_t = local_logits.float() if out_dtype == torch.bfloat16 else local_logits
    if local_logits.dim() != 2:
        raise ValueError(f"{fname}: argument 'local_logits' must be 2-D (N, V_local), got shape "
                         f"{tuple(local_logits.shape)}")
    vs = int(local_logits.shape[1])
    # the full vocabulary size: the sum of the ranks' widths
    width = torch.tensor([vs], dtype=torch.int64, device=local_logits.device)
    dist.all_reduce(width, op=dist.ReduceOp.SUM, group=group)
    num_classes = int(width.item())
    x = _as_array(x_t)
    t = _as_array(target)
    w = None if weight is None else _as_array(weight.float() if weight.dtype == torch.bfloat16
                                              else weight)
    st = vocab_shard_stats(x, t, vocab_start, num_classes, weight=w, ignore_index=ignore_index,
                           label_smoothing=label_smoothing)
    big_m = torch.from_numpy(st.row_max.copy()).to(local_logits.device)
    dist.all_reduce(big_m, op=dist.ReduceOp.MAX, group=group)
    m = big_m.cpu().numpy()
    n = st.valid.shape[0]
    flat = np.concatenate([rebase(st, m).reshape(-1), [st.weight_sum]])
    sums = torch.from_numpy(flat).to(local_logits.device)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)
    s = sums.cpu().numpy()
    combined = finish(m, s[:-1].reshape(5, n), float(s[-1]), st.valid, num_classes,
                      st.label_smoothing, reduction, st.dtype, fname)
    g = vocab_shard_grad(x, t, vocab_start, combined, weight=w, ignore_index=ignore_index)
    loss = _to_torch(combined.loss, local_logits).to(out_dtype)
    grad = _to_torch(g, local_logits).to(out_dtype)
    return loss, grad


def _function():
    """The autograd Function, defined on first use (torch imported lazily)."""
    global _FUNCTION
    if _FUNCTION is not None:
        return _FUNCTION
    import torch

    class VocabParallelCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, local_logits, target, vocab_start, group, weight, reduction,
                    ignore_index, label_smoothing):
            loss, grad = vocab_parallel_cross_entropy_with_grad(
                local_logits, target, vocab_start, group=group, weight=weight,
                reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)
            ctx.save_for_backward(grad)
            ctx.reduction = reduction
            return loss

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            # every factor of the gradient is linear in the upstream gradient
            scale = grad_output.reshape(-1, 1) if ctx.reduction == "none" else grad_output
            return (grad * scale.to(grad.dtype),) + (None,) * 7

    _FUNCTION = VocabParallelCrossEntropy
    return _FUNCTION


def vocab_parallel_cross_entropy(local_logits, target, vocab_start, *, group=None, weight=None,
                                 reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """``cross_entropy`` of vocabulary-sharded logits, differentiable w.r.t. ``local_logits``.

    Drop-in for ``F.cross_entropy(full_logits, target, ...)`` in a tensor-parallel job: call
    it on every rank of ``group`` with that rank's logit columns. The loss and this rank's
    gradient are computed in the forward pass (two all-reduces over O(N) numbers); the
    backward only scales the saved gradient by the upstream gradient. Arguments, return
    value and errors as :func:`vocab_parallel_cross_entropy_with_grad`, without the gradient.

    Example (each of ``world`` ranks, after ``dist.init_process_group``)::

        V_local = V // world; v0 = rank * V_local
        local = hidden @ W[v0:v0 + V_local].T          # (N, V_local), requires grad
        loss = vocab_parallel_cross_entropy(local, target, v0)
        loss.backward()
    """
    return _function().apply(local_logits, target, vocab_start, group, weight, reduction,
                             ignore_index, label_smoothing)
