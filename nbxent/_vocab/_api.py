"""Vocab-parallel cross-entropy on NumPy and CUDA arrays: shard statistics, combine, gradient.

A tensor-parallel LM head leaves each rank with the logits of a slice ``[v0, v1)`` of the
vocabulary. :func:`vocab_shard_stats` reduces a slice to O(N) numbers, :func:`vocab_combine`
turns the statistics of all slices into the loss (exactly the unsharded
``cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)``), and
:func:`vocab_shard_grad` gives each slice its own columns of the gradient.
``nbxent.distributed`` runs the same combine over ``torch.distributed`` collectives.
"""
from __future__ import annotations

import numbers

import numpy as np

from nbxent._core.device import is_device_array
from nbxent._linear._plan import check_float_weight, parse_label_smoothing
from nbxent._vocab._combine import ShardStats, VocabCombined, combine

__all__ = ["vocab_shard_stats", "vocab_combine", "vocab_shard_grad", "ShardStats",
           "VocabCombined"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _host(obj):
    if not is_device_array(obj):
        return obj
    from numba import cuda
    d = obj if getattr(obj, "__cuda_ndarray__", False) else cuda.as_cuda_array(obj)
    return d.copy_to_host()


def _int(fname, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fname}: argument '{name}' must be int, not {type(value).__name__}")
    return int(value)


def _check(fname, local_logits, target, vocab_start, num_classes, weight, ignore_index,
           label_smoothing):
    """Validate; returns ``(N, Vs, v0, C, ignore_index, eps, host int64 target)``."""
    for name, arr in (("local_logits", local_logits), ("target", target)):
        if not (hasattr(arr, "shape") and hasattr(arr, "dtype")):
            raise TypeError(f"{fname}: argument '{name}' must be an array, not "
                            f"{type(arr).__name__}")
    dt = np.dtype(local_logits.dtype)
    if dt not in _FLOATS:
        raise TypeError(f"{fname}: argument 'local_logits' must be float16, float32 or float64, "
                        f"got {dt.name}")
    shape = tuple(int(s) for s in local_logits.shape)
    if len(shape) != 2:
        raise ValueError(f"{fname}: argument 'local_logits' must be 2-D (N, local vocab), got "
                         f"shape {shape}")
    n, vs = shape
    v0 = _int(fname, "vocab_start", vocab_start)
    C = _int(fname, "num_classes", num_classes)
    ii = _int(fname, "ignore_index", ignore_index)
    if v0 < 0 or v0 + vs > C:
        raise ValueError(f"{fname}: columns [{v0}, {v0 + vs}) of argument 'local_logits' "
                         f"(vocab_start={v0}) are not inside the vocabulary [0, {C})")
    tshape = tuple(int(s) for s in target.shape)
    if tshape != (n,):
        raise ValueError(f"{fname}: argument 'target' must have shape ({n},), got {tshape}")
    tdt = np.dtype(target.dtype)
    if tdt == np.bool_ or not np.issubdtype(tdt, np.integer):
        raise RuntimeError(f"{fname}: argument 'target' must hold integer class indices, got "
                           f"dtype {tdt.name}")
    t = np.ascontiguousarray(_host(target)).astype(np.int64)
    bad = (t != ii) & ((t < 0) | (t >= C))
    if bad.any():
        raise IndexError(f"{fname}: Target {int(t[np.argmax(bad)])} is out of bounds. (argument "
                         f"'target'; expected values in [0, {C}) or ignore_index={ii})")
    if weight is not None:
        if tuple(int(s) for s in weight.shape) != (vs,):
            raise RuntimeError(f"{fname}: argument 'weight' must be the shard's slice of the "
                               f"class weights, shape ({vs},), got {tuple(weight.shape)}")
        check_float_weight(fname, weight)
    eps = parse_label_smoothing(fname, label_smoothing)
    return n, vs, v0, C, ii, eps, t


def vocab_shard_stats(local_logits, target, vocab_start, num_classes, *, weight=None,
                      ignore_index=-100, label_smoothing=0.0) -> ShardStats:
    """Per-row statistics of the logits of vocabulary columns ``[vocab_start, vocab_start + Vs)``.

    Per row (float64): the shard's max ``m``, ``z = sum exp(x - m)`` without the target's
    own term, the target logit and weight where the shard holds the target (0 elsewhere),
    ``sum_j w_j (x_j - m)`` for label smoothing, and the shard's weight sum.

    Args:
        local_logits: float16/32/64 ``(N, Vs)``, NumPy or CUDA device array.
        target: integer ``(N,)`` global class indices in ``[0, num_classes)`` or ignore_index.
        vocab_start: first global class of the shard.
        num_classes: the full vocabulary size ``C``.
        weight: optional float ``(Vs,)``: the shard's slice of the class weights.
        ignore_index: rows whose target equals it contribute nothing to the loss (only their
            max and exp-sum are kept, so that their gradient is torch's ``0 * softmax``).
        label_smoothing: float in ``[0, 1]`` (negative or NaN acts as 0).

    Returns:
        :class:`ShardStats` of NumPy float64 arrays ``(N,)``.

    Raises:
        ValueError: non-2-D logits, columns outside ``[0, C)``, target shape mismatch.
        IndexError: a target outside ``[0, C)`` that is not ignore_index.
        RuntimeError: non-integer target, bad weight, label_smoothing > 1.
        TypeError: non-array arguments, non-integer vocab_start/num_classes/ignore_index.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 1.0, 2.0, 3.0]])
        >>> parts = [vocab_shard_stats(x[:, :2], np.array([3]), 0, 4),
        ...          vocab_shard_stats(x[:, 2:], np.array([3]), 2, 4)]
        >>> print(f"{float(vocab_combine(parts).loss):.6f}")
        0.440190
    """
    fname = "vocab_shard_stats"
    n, vs, v0, C, ii, eps, t = _check(fname, local_logits, target, vocab_start, num_classes,
                                      weight, ignore_index, label_smoothing)
    dt = np.dtype(local_logits.dtype)
    has_w = weight is not None
    out = np.zeros((6, n), dtype=np.float64)
    if is_device_array(local_logits):
        from numba import cuda

        from nbxent._vocab import _cuda
        stats_kernel, _ = _cuda.kernels()
        x = local_logits if getattr(local_logits, "__cuda_ndarray__", False) else \
            cuda.as_cuda_array(local_logits)
        w = cuda.to_device(np.ascontiguousarray(_host(weight), dtype=np.float64)) if has_w \
            else cuda.to_device(np.ones(1))
        d_out = cuda.to_device(out)
        if n:
            _cuda.launch(stats_kernel, n, x, cuda.to_device(t), w, has_w, v0, ii, eps > 0.0, d_out)
        out = d_out.copy_to_host()
        wsum = float(np.sum(_host(weight), dtype=np.float64)) if has_w else float(vs)
    else:
        from nbxent._vocab._cpu import stats_kernel
        x = np.ascontiguousarray(local_logits)
        if x.dtype == np.float16:
            x = x.astype(np.float32)
        w = np.ascontiguousarray(weight, dtype=np.float64) if has_w else np.ones(1)
        if n:
            stats_kernel(x, t, w, has_w, v0, ii, eps > 0.0, out)
        wsum = float(np.sum(w, dtype=np.float64)) if has_w else float(vs)
    return ShardStats(vocab_start=v0, vocab_end=v0 + vs, num_classes=C, dtype=dt,
                      label_smoothing=eps, valid=t != ii, row_max=out[0], sum_exp=out[1],
                      target_logit=out[2], target_weight=out[3], smooth=out[4], owned=out[5],
                      weight_sum=wsum)


def vocab_combine(stats, reduction="mean") -> VocabCombined:
    """Combine the :class:`ShardStats` of shards that partition ``[0, C)`` into the loss.

    The loss equals ``cross_entropy`` of the unsharded logits with the same options. Shards
    are combined in ascending ``vocab_start`` order whatever order they are given in.

    Args:
        stats: sequence of :class:`ShardStats`, one per shard (same targets and options).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        :class:`VocabCombined`: ``loss`` in the logits' dtype (``(N,)`` for 'none', else 0-d)
        and the float64 per-row ``lse`` and gradient factors that :func:`vocab_shard_grad` uses.

    Raises:
        ValueError: shards that overlap or leave a gap, disagree on targets or options,
            or a bad reduction.
        TypeError: ``stats`` is not a sequence of ShardStats.

    Examples:
        >>> import numpy as np
        >>> st = vocab_shard_stats(np.zeros((1, 2)), np.array([0]), 0, 2)
        >>> print(f"{float(vocab_combine([st]).loss):.6f}")
        0.693147
    """
    return combine(stats, reduction, "vocab_combine")


def vocab_shard_grad(local_logits, target, vocab_start, combined, *, weight=None,
                     ignore_index=-100, out=None):
    """The shard's columns of the gradient of the combined loss w.r.t. the logits.

    ``grad[i, j] = a_i * softmax_i(c) - b_i * [c == t_i] - d_i * w_c`` for global class
    ``c = vocab_start + j``, with the factors of ``combined`` (``'none'``: the gradient of
    the summed loss; ``'mean'``: divided by ``W``); ignored rows are +0.0 (NaN where their
    softmax is NaN, as torch's and nbxent's cross_entropy gradients).

    Args:
        local_logits, target, vocab_start, weight, ignore_index: as for
            :func:`vocab_shard_stats` (the same arrays).
        combined: the :class:`VocabCombined` of all shards.
        out: optional array of ``local_logits``' shape and dtype for the result (may be
            ``local_logits`` itself: each row is read before it is written).

    Returns:
        Array of ``local_logits``' shape and dtype (a device array for device input).

    Raises:
        As :func:`vocab_shard_stats`; ValueError for a ``combined`` of another batch size or
        an unusable ``out``.

    Examples:
        >>> import numpy as np
        >>> x = np.zeros((1, 2)); st = vocab_shard_stats(x, np.array([0]), 0, 2)
        >>> vocab_shard_grad(x, np.array([0]), 0, vocab_combine([st]))
        array([[-0.5,  0.5]])
    """
    fname = "vocab_shard_grad"
    if not isinstance(combined, VocabCombined):
        raise TypeError(f"{fname}: argument 'combined' must be a VocabCombined (from "
                        f"vocab_combine), not {type(combined).__name__}")
    n, vs, v0, C, ii, _, t = _check(fname, local_logits, target, vocab_start,
                                    combined.num_classes, weight, ignore_index, 0.0)
    if combined.lse.shape != (n,):
        raise ValueError(f"{fname}: argument 'combined' is for {combined.lse.shape[0]} rows, "
                         f"local_logits has {n}")
    dt = np.dtype(local_logits.dtype)
    has_w = weight is not None
    if out is not None and (tuple(int(s) for s in out.shape) != (n, vs)
                            or np.dtype(out.dtype) != dt):
        raise ValueError(f"{fname}: argument 'out' must have shape {(n, vs)} and dtype "
                         f"{dt.name}, got {tuple(out.shape)} {np.dtype(out.dtype).name}")
    if is_device_array(local_logits):
        from numba import cuda

        from nbxent._vocab import _cuda
        _, grad_kernel = _cuda.kernels()
        x = local_logits if getattr(local_logits, "__cuda_ndarray__", False) else \
            cuda.as_cuda_array(local_logits)
        g = (out if getattr(out, "__cuda_ndarray__", False) else cuda.as_cuda_array(out)) \
            if out is not None else cuda.device_array((n, vs), dtype=dt)
        w = cuda.to_device(np.ascontiguousarray(_host(weight), dtype=np.float64)) if has_w \
            else cuda.to_device(np.ones(1))
        if n and vs:
            _cuda.launch(grad_kernel, n, x, cuda.to_device(t), w, has_w, v0, ii,
                         *(cuda.to_device(np.ascontiguousarray(v)) for v in
                           (combined.lse, combined.a, combined.b, combined.d)), g)
        return g
    from nbxent._vocab._cpu import grad_kernel
    x = np.ascontiguousarray(local_logits)
    if out is not None and (not isinstance(out, np.ndarray) or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise ValueError(f"{fname}: argument 'out' must be a writeable C-contiguous ndarray")
    if dt == np.float16:
        x = x.astype(np.float32)
        g = np.empty((n, vs), dtype=np.float32)
    else:
        g = out if out is not None else np.empty((n, vs), dtype=dt)
    w = np.ascontiguousarray(weight, dtype=np.float64) if has_w else np.ones(1)
    if n and vs:
        grad_kernel(x, t, w, has_w, v0, ii, combined.lse, combined.a, combined.b, combined.d, g)
    if dt == np.float16:
        g = g.astype(np.float16)
        if out is not None:
            np.copyto(out, g)
            g = out
    return g
