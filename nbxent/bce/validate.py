"""Argument checks and normalisation for binary_cross_entropy(_with_logits).

Two parts, both plain Python and both run before any kernel:

* **Metadata** (:func:`plan_forward`, :func:`plan_backward`): reads only ``.shape`` and
  ``.dtype`` (a dtype NumPy understands) of its arguments, so host arrays and device
  arrays go through the same checks, in torch's order, with torch's exception types.
  It returns a frozen :class:`BcePlan`.
* **Values** (:func:`check_probabilities`): BCE's ``0 <= x <= 1`` / ``0 <= y <= 1``
  check on host arrays (NaN fails), a small parallel ``njit`` scan.

``BcePlan`` fields (the CUDA backend builds on these):

* ``fname``: public function name, used in every message.
* ``logits``: True for binary_cross_entropy_with_logits.
* ``shape``: input shape (= target shape = gradient shape); ``numel``: its size.
* ``reduction``: 0 none, 1 mean, 2 sum (``nbxent._core.reduction`` codes).
* ``out_shape``: forward result shape: ``shape`` for 'none', ``()`` otherwise; also the
  shape ``grad_output`` must have.
* ``input_dtype``, ``target_dtype``: the arguments' dtypes (float16/32/64).
* ``result_dtype``: dtype of the loss and of ``grad_output`` as it is read: the input's
  for BCE, the **target's** for BCE-with-logits (torch 2.13).
* ``io_dtype``: the dtype the CPU kernels read and write (float32 or float64): the
  input dtype when input and target share float32/float64, else float64 (float16 and
  mixed dtypes are widened exactly, so the result is rounded once).
* ``compute_dtype``: arithmetic dtype inside the kernels (float64 on the CPU; the float32
  kernels evaluate only exp/log/log1p in float32).
* ``grid``: ``(A, B, K)``, a 3-level view of the flattened (C-order) input in which
  ``weight`` and ``pos_weight`` are each either constant or contiguous along every
  level. Element ``i`` sits at ``(i // (B*K), (i // K) % B, i % K)``.
* ``weight`` / ``pos_weight``: ``None`` or a :class:`Broadcast`:
  ``shape`` (the argument's shape), ``dtype``, ``strides`` (element strides of the
  argument, made C-contiguous, along the three grid levels; 0 where it broadcasts) and
  ``materialise`` (True when the pattern does not fit a 3-level grid: the argument must
  be expanded to the input's shape and read with strides ``(0, 0, 1)``; ``grid`` is
  then ``(1, 1, numel)``). With no materialising, a weight costs no full-size copy:
  ``w_flat[a*sa + b*sb + k*sk]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from nbxent._core.dtypes import FLOATS as _FLOATS
from nbxent._core.dtypes import torch_dtype_name as _torch_name
from nbxent._core.jit import CACHE
from nbxent._core.reduction import NONE, parse_reduction

__all__ = ["BcePlan", "Broadcast", "plan_forward", "plan_backward", "check_probabilities"]


@dataclass(frozen=True)
class Broadcast:
    """How a weight or pos_weight argument maps onto the input's grid (see module doc)."""

    shape: tuple
    dtype: np.dtype
    strides: tuple
    materialise: bool


@dataclass(frozen=True)
class BcePlan:
    """Normalised, validated metadata of one BCE call (fields: see module docstring)."""

    fname: str
    logits: bool
    shape: tuple
    numel: int
    reduction: int
    out_shape: tuple
    input_dtype: np.dtype
    target_dtype: np.dtype
    result_dtype: np.dtype
    io_dtype: np.dtype
    compute_dtype: np.dtype
    grid: tuple
    weight: Broadcast | None
    pos_weight: Broadcast | None


def _meta(fname: str, arg: str, obj):
    """(shape, dtype) of an array-like, read from attributes only."""
    try:
        return tuple(int(s) for s in obj.shape), np.dtype(obj.dtype)
    except (AttributeError, TypeError) as exc:
        raise TypeError(f"{fname}: argument '{arg}' must be an array with .shape and .dtype, "
                        f"got {type(obj).__name__}") from exc


def _check_numeric(fname: str, arg: str, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf" or (dtype.kind == "f" and dtype not in _FLOATS):
        raise TypeError(f"{fname}: argument '{arg}' has unsupported dtype {dtype} "
                        f"(expected bool, integer, float16, float32 or float64)")


def _broadcast_error(fname: str, arg: str, a_shape: tuple, b_shape: tuple, arg_shape: tuple,
                     shape: tuple) -> RuntimeError:
    """torch's message for shapes that do not broadcast (``a`` is torch's left operand)."""
    nd = max(len(a_shape), len(b_shape))
    pa = (1,) * (nd - len(a_shape)) + tuple(a_shape)
    pb = (1,) * (nd - len(b_shape)) + tuple(b_shape)
    d = max(k for k in range(nd) if pa[k] != pb[k] and pa[k] != 1 and pb[k] != 1)
    return RuntimeError(
        f"{fname}: The size of tensor a ({pa[d]}) must match the size of tensor b ({pb[d]}) at "
        f"non-singleton dimension {d} (argument '{arg}' has shape {tuple(arg_shape)}, input has "
        f"shape {tuple(shape)})")


def _check_broadcast(fname: str, arg: str, wshape: tuple, shape: tuple) -> None:
    """``wshape`` must broadcast into ``shape`` (the loss is multiplied in place)."""
    try:
        full = np.broadcast_shapes(shape, wshape)
    except ValueError:
        # torch forms (pos_weight - 1).mul(target) and loss.mul_(weight)
        a, b = (wshape, shape) if arg == "pos_weight" else (shape, wshape)
        raise _broadcast_error(fname, arg, a, b, wshape, shape) from None
    if tuple(full) != tuple(shape):
        raise RuntimeError(f"{fname}: output with shape {list(shape)} doesn't match the broadcast "
                           f"shape {list(full)} (argument '{arg}' has shape {tuple(wshape)})")


def _grid(shape: tuple, patterns: list) -> tuple[tuple, list, bool]:
    """Merge the input's dims into at most 3 levels on which every pattern is uniform.

    ``patterns`` holds the argument shapes (already checked to broadcast into ``shape``).
    Returns ``(grid, strides_per_pattern, materialise)``.
    """
    nd = len(shape)
    padded = [(1,) * (nd - len(p)) + tuple(p) for p in patterns]
    levels = []  # [size, key] with key = per-pattern "full along this level"
    for d in range(nd):
        if shape[d] == 1:
            continue  # a size-1 dim carries no index
        key = tuple(p[d] == shape[d] for p in padded)
        if levels and levels[-1][1] == key:
            levels[-1][0] *= shape[d]
        else:
            levels.append([shape[d], key])
    if len(levels) > 3:
        numel = int(np.prod(shape, dtype=np.int64))
        return (1, 1, numel), [(0, 0, 1)] * len(patterns), True
    while len(levels) < 3:
        levels.insert(0, [1, tuple(False for _ in patterns)])
    grid = tuple(int(lv[0]) for lv in levels)
    strides = []
    for j in range(len(patterns)):
        st = [0, 0, 0]
        run = 1  # C-contiguous element stride of the argument, innermost level first
        for lvl in (2, 1, 0):
            if levels[lvl][1][j]:
                st[lvl] = run
                run *= grid[lvl]
        strides.append(tuple(st))
    return grid, strides, False


#: Plans of NumPy calls by signature (the plan depends on metadata only); a signature that
#: raises is never stored, so every bad call still raises in torch's order.
_PLANS: dict = {}
_PLAN_CAP = 512


def _sig(a):
    return None if a is None else (a.shape, a.dtype)


def plan_forward(fname: str, logits: bool, input, target, weight=None, pos_weight=None,
                 reduction="mean") -> BcePlan:
    """Validate the forward arguments (metadata only) in torch's order and build the plan.

    Raises:
        ValueError: bad ``reduction``; target shape differs from input shape.
        RuntimeError: BCE target dtype differs from input dtype; BCE-with-logits integer
            or bool target; ``weight``/``pos_weight`` that do not broadcast into the input's
            shape (or would make it larger).
        NotImplementedError: non-float input (torch has no integer kernel).
        TypeError: an argument without ``.shape``/``.dtype`` or of an unsupported dtype.
    """
    key = None
    if (type(input) is np.ndarray and type(target) is np.ndarray
            and (weight is None or type(weight) is np.ndarray)
            and (pos_weight is None or type(pos_weight) is np.ndarray)):
        key = (fname, logits, input.shape, input.dtype, target.shape, target.dtype,
               _sig(weight), _sig(pos_weight), type(reduction), reduction)
        try:
            return _PLANS[key]
        except (KeyError, TypeError):
            pass
    plan = _plan_forward(fname, logits, input, target, weight, pos_weight, reduction)
    if key is not None:
        if len(_PLANS) >= _PLAN_CAP:
            _PLANS.clear()
        try:
            _PLANS[key] = plan
        except TypeError:   # an unhashable reduction that parse_reduction accepted
            pass
    return plan


def _plan_forward(fname, logits, input, target, weight, pos_weight, reduction) -> BcePlan:
    red = parse_reduction(fname, reduction)
    shape, xdt = _meta(fname, "input", input)
    tshape, ydt = _meta(fname, "target", target)
    if tshape != shape:
        if logits:
            msg = f"Target size ({tshape}) must be the same as input size ({shape})"
        else:
            msg = (f"Using a target size ({tshape}) that is different to the input size ({shape}) "
                   f"is deprecated. Please ensure they have the same size.")
        raise ValueError(f"{fname}: {msg} (argument 'target' has shape {tshape})")
    kernel = "log_sigmoid_cpu" if logits else "binary_cross_entropy"
    if not logits and ydt != xdt:
        raise RuntimeError(f"{fname}: Found dtype {_torch_name(ydt)} but expected {_torch_name(xdt)} "
                           f"(argument 'target' has dtype {ydt}, input has dtype {xdt}; "
                           f"binary_cross_entropy needs equal dtypes)")
    if xdt not in _FLOATS:
        raise NotImplementedError(f"{fname}: \"{kernel}\" not implemented for '{_torch_name(xdt)}' "
                                  f"(argument 'input' has dtype {xdt})")
    patterns, args = [], []
    if logits and pos_weight is not None:
        pshape, pdt = _meta(fname, "pos_weight", pos_weight)
        _check_numeric(fname, "pos_weight", pdt)
        _check_broadcast(fname, "pos_weight", pshape, shape)
        patterns.append(pshape)
        args.append(("pos_weight", pshape, pdt))
    if logits and ydt not in _FLOATS:
        if ydt.kind == "b":
            msg = ("Subtraction, the `-` operator, with two bool tensors is not supported. "
                   "Use the `^` or `logical_xor()` operator instead.")
        elif ydt.kind in "iu":
            msg = f"result type Float can't be cast to the desired output type {_torch_name(ydt)}"
        else:
            msg = f"target dtype {ydt} is not supported"
        raise RuntimeError(f"{fname}: {msg} (argument 'target' has dtype {ydt})")
    if weight is not None:
        wshape, wdt = _meta(fname, "weight", weight)
        _check_numeric(fname, "weight", wdt)
        _check_broadcast(fname, "weight", wshape, shape)
        patterns.append(wshape)
        args.append(("weight", wshape, wdt))
    grid, strides, materialise = _grid(shape, patterns)
    info = {name: Broadcast(s, dt, st, materialise) for (name, s, dt), st in zip(args, strides)}
    numel = int(np.prod(shape, dtype=np.int64))
    result = ydt if logits else xdt
    io = xdt if (xdt == ydt and xdt != np.float16) else np.dtype(np.float64)
    return BcePlan(fname=fname, logits=logits, shape=shape, numel=numel, reduction=red,
                   out_shape=shape if red == NONE else (), input_dtype=xdt, target_dtype=ydt,
                   result_dtype=result, io_dtype=np.dtype(io), compute_dtype=np.dtype(np.float64),
                   grid=grid, weight=info.get("weight"), pos_weight=info.get("pos_weight"))


def plan_backward(plan: BcePlan, grad_output, wrt) -> None:
    """Check ``wrt`` and ``grad_output`` (metadata only) against a forward plan.

    Raises:
        ValueError: ``wrt`` is not 'input' or 'target'; ``grad_output`` does not have the
            forward result's shape (``plan.out_shape``).
        RuntimeError: ``grad_output`` is not a float array.
    """
    if not (isinstance(wrt, str) and wrt in ("input", "target")):
        raise ValueError(f"{plan.fname}: argument 'wrt'={wrt!r} is not valid; expected 'input' or 'target'")
    gshape, gdt = _meta(plan.fname, "grad_output", grad_output)
    if gshape != plan.out_shape:
        raise ValueError(f"{plan.fname}: argument 'grad_output' has shape {gshape}; the forward result "
                         f"has shape {plan.out_shape}")
    if gdt not in _FLOATS:
        raise RuntimeError(f"{plan.fname}: Found dtype {_torch_name(gdt)} but expected "
                           f"{_torch_name(plan.result_dtype)} (argument 'grad_output' has dtype {gdt})")


_SCAN_BLOCK = 1 << 15


@numba.njit(cache=CACHE)
def _block_first_bad(x, y, start, end):
    """First index in [start, end) where x or y is outside [0, 1] (NaN too), else -1."""
    xs = x[start:end]  # indices from 0 are provably >= 0: no wraparound select in the loop
    ys = y[start:end]
    bad = 0
    for i in range(xs.size):  # counts without an early exit, so the loop vectorizes
        xi = xs[i]
        yi = ys[i]
        ok = (xi >= 0.0) & (xi <= 1.0) & (yi >= 0.0) & (yi <= 1.0)
        bad += 0 if ok else 1
    if bad == 0:
        return -1
    for i in range(xs.size):
        xi = xs[i]
        yi = ys[i]
        if not ((xi >= 0.0) & (xi <= 1.0) & (yi >= 0.0) & (yi <= 1.0)):
            return start + i
    return -1


@numba.njit(parallel=True, cache=CACHE)
def _first_bad(x, y):
    """Smallest flat index where x or y is outside [0, 1] (NaN too), else -1.

    Per-block first indices then a serial min, so the answer does not depend on threads.
    """
    n = x.size
    nb = (n + _SCAN_BLOCK - 1) // _SCAN_BLOCK
    first = np.full(nb, -1, dtype=np.int64)
    for b in prange(nb):  # the body is one call: fast to compile
        first[b] = _block_first_bad(x, y, b * _SCAN_BLOCK, min(n, (b + 1) * _SCAN_BLOCK))
    for b in range(nb):
        if first[b] >= 0:
            return first[b]
    return -1


def check_probabilities(fname: str, x_flat: np.ndarray, y_flat: np.ndarray) -> None:
    """BCE's range check on host arrays (1-D, C-contiguous, same dtype: float32 or float64).

    Like torch's element loop, the first offending element decides the message, and its
    input is checked before its target.

    Raises:
        RuntimeError: ``all elements of input should be between 0 and 1`` (or ``target``).
    """
    if x_flat.size == 0:
        return
    if x_flat.size <= _SCAN_BLOCK:  # one block, on the calling thread: no thread pool
        i = int(_block_first_bad(x_flat, y_flat, 0, x_flat.size))
    else:
        i = int(_first_bad(x_flat, y_flat))
    if i < 0:
        return
    xi = float(x_flat[i])
    if not (0.0 <= xi <= 1.0):
        raise RuntimeError(f"{fname}: all elements of input should be between 0 and 1 "
                           f"(argument 'input' has {xi!r} at flat index {i})")
    raise RuntimeError(f"{fname}: all elements of target should be between 0 and 1 "
                       f"(argument 'target' has {float(y_flat[i])!r} at flat index {i})")
