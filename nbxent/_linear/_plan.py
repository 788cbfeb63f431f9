"""Validation and planning of ``linear_cross_entropy``: everything decided before any GEMM.

Plain Python/NumPy, backend-neutral (it reads only shapes, dtypes and the small
target/weight arrays), so both backends raise the same exceptions with the same
messages, each naming the function, the argument and the value. Exception types
follow torch 2.13's ``F.linear_cross_entropy`` (docs/linear.md, "Semantics").
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from nbxent._core.reduction import parse_reduction
from nbxent.xent.validate import _parse_label_smoothing as _xent_parse_label_smoothing

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_REDUCTIONS = ("none", "mean", "sum")       # indexed by nbxent._core.reduction codes


@dataclass(frozen=True)
class LinearPlan:
    fname: str
    dtype: np.dtype            # input / linear_weight dtype (and of the gradients)
    compute: np.dtype          # dtype of the GEMMs and of the chunk buffer (float16 -> float32)
    loss_dtype: np.dtype       # dtype of the returned loss
    unbatched: bool            # input was (H,): computed as a batch of one
    n: int                     # rows of hidden
    h: int                     # in_features
    c: int                     # classes (linear_weight.shape[0])
    out_features: tuple        # linear_weight.shape[1:-1] (K-dimensional loss)
    prob: bool                 # class-probability targets
    reduction: str
    ignore_index: int
    label_smoothing: float
    chunk: int                 # rows per chunk
    denom: float               # 'mean' denominator (float64), 1.0 otherwise
    has_bias: bool

    @property
    def d(self) -> int:        # positions per row for a K-dimensional loss
        return math.prod(self.out_features)

    @property
    def width(self) -> int:    # logits per row
        return self.c * self.d

    @property
    def loss_shape(self) -> tuple:
        if self.reduction != "none" or self.unbatched:
            return ()
        return (self.n,) + self.out_features


def _shape(obj):
    return tuple(int(s) for s in obj.shape)


def _require_array(fname, name, obj):
    if not (hasattr(obj, "shape") and hasattr(obj, "dtype")):
        raise TypeError(f"{fname}: argument '{name}' must be an array (numpy.ndarray or CUDA "
                        f"device array), not {type(obj).__name__}")


def parse_label_smoothing(fname, label_smoothing) -> float:
    """torch's label_smoothing rule (the cross-entropy one: > 1 raises RuntimeError; negative or
    NaN acts as 0)."""
    return _xent_parse_label_smoothing(fname, label_smoothing)


def check_float_weight(fname, weight):
    """Class weights must be a float array (RuntimeError, as torch)."""
    if not np.issubdtype(np.dtype(weight.dtype), np.floating):
        raise RuntimeError(f"{fname}: expected a floating point weight but found "
                           f"{np.dtype(weight.dtype).name} (argument 'weight')")


#: A chunk holds at least about this many logits (64 MiB of float32) when N allows: smaller
#: GEMMs lose BLAS efficiency on CPU (measured for (N, H, V) = (4096, 2048, 32000): 512-row
#: chunks ran 1.4-1.8x faster than torch's 128, docs/linear.md).
MIN_CHUNK_LOGITS = 1 << 24


def aspect_ratio_chunk(n: int, h: int, width: int) -> int:
    """torch 2.13's ``'aspect_ratio:2'`` rule: ``next_pow2(ceil(N / ceil(V / H))) // 2``.

    The chunk's ``(rows, V)`` logits are about half the size of the ``(N, H)`` input.
    Liger-Kernel's fused linear cross-entropy uses the same rule without the halving.
    """
    if n <= 0:
        return 1
    inc = -(-width // max(h, 1))
    target = -(-n // max(inc, 1))
    pow2 = 1 << (target - 1).bit_length()
    return max(1, min(pow2 // 2, n))


def default_chunk_size(n: int, h: int, width: int) -> int:
    """Rows per chunk when ``chunk_size`` is None.

    torch's rule (:func:`aspect_ratio_chunk`), raised to the largest power of two of rows
    whose logits stay within :data:`MIN_CHUNK_LOGITS`, and at most N: (4096, 2048, 32000)
    gets 512 rows (62.5 MiB of float32 logits; torch: 128), (8192, 4096, 128256) gets 128
    (as torch).
    """
    floor = 1 << max(0, (MIN_CHUNK_LOGITS // max(width, 1)).bit_length() - 1)
    return max(1, min(max(aspect_ratio_chunk(n, h, width), floor), max(n, 1)))


def plan_linear(fname, input, linear_weight, target, linear_bias, weight, reduction,
                ignore_index, label_smoothing, chunk_size, host_target, host_weight):
    """Check every argument and return ``(plan, target_rows)``.

    ``host_target`` / ``host_weight`` are callables returning NumPy copies or views of
    ``target`` / ``weight`` (device ones are copied to the host; they are small, and a
    probability target, which is as large as the logits, is never copied: only its shape and
    dtype are read). ``target_rows`` is the class-index target as the chunk loop slices it,
    ``(N, *d)`` int64, or None for probability targets.
    """
    for name, arr in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        _require_array(fname, name, arr)
    dt = np.dtype(input.dtype)
    if dt not in _FLOATS:
        if np.issubdtype(dt, np.number) or dt == np.bool_:
            raise NotImplementedError(f"{fname}: not implemented for dtype {dt.name} (argument "
                                      f"'input'; expected float16, float32 or float64)")
        raise TypeError(f"{fname}: unsupported dtype {dt.name} for argument 'input'")
    if input.ndim < 1 or input.ndim > 2:
        raise RuntimeError(f"{fname}: expected input with dimensionality 1 or 2, got {input.ndim} "
                           f"(argument 'input' has shape {_shape(input)}; flatten the batch "
                           f"dimensions first: input.reshape(-1, in_features))")
    if linear_weight.ndim < 2:
        raise RuntimeError(f"{fname}: expected linear_weight with dimensionality at least 2, got "
                           f"{linear_weight.ndim} (argument 'linear_weight' has shape "
                           f"{_shape(linear_weight)})")
    if np.dtype(linear_weight.dtype) != dt:
        raise RuntimeError(f"{fname}: expected input and linear_weight to have the same dtype, "
                           f"but got: {dt.name} != {np.dtype(linear_weight.dtype).name}")
    xs, ws = _shape(input), _shape(linear_weight)
    in_features = xs[-1]
    if in_features != ws[-1]:
        raise RuntimeError(f"{fname}: expected equal input and linear_weight last dimensions "
                           f"(in_features), got {in_features} and {ws[-1]}, "
                           f"respectively")
    C = ws[0]
    out_features = ws[1:-1]
    if linear_bias is not None:
        _require_array(fname, "linear_bias", linear_bias)
        if _shape(linear_bias) != (C, *out_features):
            raise RuntimeError(f"{fname}: expected linear_bias shape {(C, *out_features)}, got "
                               f"{_shape(linear_bias)} (argument 'linear_bias')")
        if np.dtype(linear_bias.dtype) != dt:
            raise RuntimeError(f"{fname}: expected linear_bias dtype {dt.name}, got "
                               f"{np.dtype(linear_bias.dtype).name} (argument 'linear_bias')")
    unbatched = input.ndim == 1
    if out_features and unbatched:
        raise RuntimeError(f"{fname}: K-dimensional loss defined by linear_weight shape "
                           f"{_shape(linear_weight)} requires batched input, (N, {in_features}), "
                           f"got unbatched input with shape {_shape(input)}")
    n = 1 if unbatched else xs[0]
    logits_shape = ((C,) if unbatched else (n, C)) + out_features
    prob = _shape(target) == logits_shape
    if prob and ignore_index is not None:
        raise RuntimeError(f"{fname}: ignore_index cannot be specified when target contains "
                           f"probabilities (argument 'ignore_index'={ignore_index!r})")
    if ignore_index is None:
        ignore_index = -100
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{fname}: argument 'ignore_index' must be int, not "
                        f"{type(ignore_index).__name__}")
    ignore_index = int(ignore_index)
    # the one reduction rule (torch's deprecated 'elementwise_mean' is 'mean', with its warning)
    reduction = _REDUCTIONS[parse_reduction(fname, reduction)]
    eps = parse_label_smoothing(fname, label_smoothing)
    if weight is not None:
        _require_array(fname, "weight", weight)
        if _shape(weight) != (C,):
            raise RuntimeError(f"{fname}: weight tensor should be defined either for all {C} "
                               f"classes or no classes but got weight tensor of shape: "
                               f"{list(_shape(weight))} (argument 'weight')")
        check_float_weight(fname, weight)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"{fname}: argument 'chunk_size' must be int or None, not "
                            f"{type(chunk_size).__name__}")
        if chunk_size < 1:
            raise ValueError(f"{fname}: argument 'chunk_size' must be positive, got {chunk_size}")
    D = math.prod(out_features)
    tdt = np.dtype(target.dtype)
    if prob:
        if not np.issubdtype(tdt, np.floating):
            raise RuntimeError(f"{fname}: expected floating point type for target with class "
                               f"probabilities, got {tdt.name} (argument 'target')")
        rows = None
        denom = float(n * D)
    else:
        rows = _index_rows(fname, np.asarray(host_target()), n, C, out_features, unbatched,
                           ignore_index)
        valid = rows != ignore_index
        if weight is None:
            denom = float(np.count_nonzero(valid))
        else:
            w = np.asarray(host_weight(), dtype=np.float64)
            denom = float(np.sum(w[np.where(valid, rows, 0)] * valid, dtype=np.float64))
    compute = np.dtype(np.float32) if dt == np.float16 else dt
    if prob:
        loss_dtype = np.result_type(dt, tdt, *(() if weight is None else (weight.dtype,)))
    else:
        loss_dtype = dt
    chunk = int(chunk_size) if chunk_size is not None else default_chunk_size(n, in_features, C * D)
    plan = LinearPlan(fname=fname, dtype=dt, compute=compute, loss_dtype=np.dtype(loss_dtype),
                      unbatched=unbatched, n=n, h=in_features, c=C, out_features=out_features,
                      prob=prob, reduction=reduction, ignore_index=ignore_index,
                      label_smoothing=eps, chunk=max(1, min(chunk, max(n, 1))),
                      denom=denom if reduction == "mean" else 1.0,
                      has_bias=linear_bias is not None)
    return plan, rows


def _index_rows(fname, tgt, n, C, out_features, unbatched, ignore_index):
    """Class-index targets as int64 ``(N, *d)``, range-checked (before any logit is formed)."""
    if tgt.dtype == np.bool_ or not np.issubdtype(tgt.dtype, np.integer):
        raise RuntimeError(f"{fname}: expected target dtype to be an integer type (class "
                           f"indices) or the logits' shape (probabilities), got dtype "
                           f"{tgt.dtype.name} and shape {tgt.shape} (argument 'target')")
    want = (n,) + out_features
    if unbatched:
        if tgt.shape not in ((), (1,)):
            raise ValueError(f"{fname}: for 1-D input, the target must be 0-d or of size 1, got "
                             f"shape {tgt.shape} (argument 'target')")
    elif tgt.ndim == 0 or int(tgt.shape[0]) != n:
        got = int(tgt.shape[0]) if tgt.ndim else 0
        raise ValueError(f"{fname}: Expected input batch_size ({n}) to match target batch_size "
                         f"({got}) (argument 'target' has shape {tgt.shape})")
    elif tgt.shape != want:
        raise RuntimeError(f"{fname}: expected target shape {want} for logits of shape "
                           f"{(n, C) + out_features}, got {tgt.shape} (argument 'target')")
    if tgt.dtype == np.uint64 and tgt.size and int(tgt.max()) > np.iinfo(np.int64).max:
        raise IndexError(f"{fname}: Target {int(tgt.max())} is out of bounds. (argument "
                         f"'target'; expected values in [0, {C}) or ignore_index={ignore_index})")
    rows = tgt.astype(np.int64, copy=False).reshape(want)
    bad = (rows != ignore_index) & ((rows < 0) | (rows >= C))
    if bad.any():
        first = int(rows.reshape(-1)[int(np.argmax(bad.reshape(-1)))])
        raise IndexError(f"{fname}: Target {first} is out of bounds. (argument 'target'; "
                         f"expected values in [0, {C}) or ignore_index={ignore_index})")
    return rows
