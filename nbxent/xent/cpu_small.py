"""Short host path of the CPU cross_entropy for small class-index ``(N, C)`` inputs.

For a (32, 10) input the general path's Python work (metadata checks, a frozen plan, four
normalising copies, three Numba calls) costs ~10x the arithmetic. Here:

* the :class:`~nbxent.xent.validate.CEPlan` is cached per call signature (shapes, dtypes,
  options with their types), so repeated calls skip the metadata checks; a signature that
  raises is never cached, so every bad call still raises the same exception;
* arrays that already are what the kernel needs (C-contiguous float32/float64 input,
  int64 targets, compute-dtype weights) go in without copies, and "no weight" is one
  cached read-only ones array per (C, dtype);
* one serial Numba call (:func:`nbxent.xent.cpu_index.index_rows_serial`) checks the targets,
  runs the rows and reduces, with the very functions of the general path, so both give
  the same bits.

Anything else (spatial, probability targets, float16, non-contiguous or big inputs,
``'elementwise_mean'``, an ``out=`` that overlaps the input other than exactly, device
arrays) returns None and takes the general path.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nbxent._core.arrays import check_out
from nbxent._core.jit import GRAD_IN_PLACE, GRAD_INTO, GRAD_NONE
from nbxent._core.reduction import MEAN, NONE
from nbxent.xent.cpu_index import PARALLEL_MIN, index_rows_serial, scan_targets
from nbxent.xent.validate import CEPlan, kernel_options, plan_cross_entropy

__all__ = ["cross_entropy_small"]

_PLANS: dict = {}
_PLAN_CAP = 512          # NaN smoothing values never hit; the cap bounds the dict anyway
_ONES: dict = {}
_ONE = np.ones(1)
_ONE.flags.writeable = False
_REDUCTIONS = ("mean", "sum", "none")
_INT64 = np.dtype(np.int64)
_F32 = np.dtype(np.float32)     # NumPy's dtype singletons: ``is`` is the cheap test
_F64 = np.dtype(np.float64)


class _Entry(NamedTuple):
    """What a call signature decides, computed once: the plan and the kernel's inputs."""

    plan: CEPlan
    usable: bool           #: False: this signature takes the general path
    fields: tuple          #: the kernel's option fields (plain tuples) by grad_mode
    N: int
    C: int
    per_sample: bool       #: the result is the per-sample vector ('none', batched)
    result_dtype: np.dtype
    input_shape: tuple
    no_grad: np.ndarray    #: the forward's empty gradient buffer (compute dtype, writeable)


def _plan(fname, x, target, weight, ignore_index, reduction, label_smoothing):
    """The :class:`_Entry` of this call signature, cached."""
    key = (fname, x.shape, x.dtype, target.shape, target.dtype,
           None if weight is None else (weight.shape, weight.dtype),
           type(ignore_index), ignore_index, reduction, type(label_smoothing), label_smoothing)
    try:
        return _PLANS[key]
    except (KeyError, TypeError):
        pass
    plan = plan_cross_entropy(x, target, weight, ignore_index, reduction, label_smoothing,
                              fname=fname)
    # The kernels' option records, built once per plan (index = grad_mode).
    fields = tuple(tuple(kernel_options(plan, mode, 0, mean=plan.reduction == MEAN))
                   for mode in (GRAD_NONE, GRAD_INTO, GRAD_IN_PLACE))
    usable = not (plan.prob or plan.S == 0 or plan.C == 0 or plan.deferred_error)
    entry = _Entry(plan, usable, fields, plan.N, plan.C,
                   plan.reduction == NONE and not plan.unbatched, plan.result_dtype,
                   plan.input_shape, np.empty((0, 0), dtype=x.dtype))
    if len(_PLANS) >= _PLAN_CAP:
        _PLANS.clear()
    try:
        _PLANS[key] = entry
    except TypeError:     # an unhashable option value: plan_cross_entropy accepted it
        pass
    return entry


def _ones(C, dtype):
    key = (C, dtype)
    w = _ONES.get(key)
    if w is None:
        w = np.ones(C, dtype=dtype)
        w.flags.writeable = False
        if len(_ONES) >= _PLAN_CAP:
            _ONES.clear()
        _ONES[key] = w
    return w


def cross_entropy_small(fname, x, target, weight, ignore_index, reduction, label_smoothing,
                        want_grad, out):
    """``(loss, grad)`` for a small 2-D class-index call, or None for the general path.

    ``want_grad``: False for the forward, True for the fused loss-and-gradient call
    (gradient of the returned value; into ``out`` when given, validated here).
    """
    if (type(x) is not np.ndarray or type(target) is not np.ndarray
            or not target.dtype.isnative
            or (weight is not None and (type(weight) is not np.ndarray
                                        or not weight.dtype.isnative))
            or reduction not in _REDUCTIONS or x.ndim > 2 or x.size > PARALLEL_MIN):
        return None
    xdt = x.dtype
    if (xdt is not _F32 and xdt is not _F64) or not x.flags.c_contiguous:
        return None
    e = _plan(fname, x, target, weight, ignore_index, reduction, label_smoothing)
    if not e.usable:
        return None
    N = e.N
    t = target
    if t.dtype is not _INT64 or not t.flags.c_contiguous:
        if t.dtype == np.uint64:
            return None      # values above int64 need the general path's check
        t = np.ascontiguousarray(t, dtype=_INT64)
    if t.ndim != 1:
        t = t.reshape(N)
    if weight is None:
        w = _ones(e.C, xdt)  # private and read-only: no caller buffer can overlap it
    else:
        w = np.ascontiguousarray(weight, dtype=xdt)
    x2 = x.reshape(N, e.C) if x.ndim != 2 else x
    if want_grad:
        if out is None:
            grad = np.empty_like(x)
            grad_mode = GRAD_INTO
        else:
            check_out(fname, out, e.input_shape, xdt)
            if out is x:
                grad_mode = GRAD_IN_PLACE
            elif (np.may_share_memory(out, x) or np.may_share_memory(out, t)
                  or (weight is not None and np.may_share_memory(out, w))):
                return None
            else:
                grad_mode = GRAD_INTO
            grad = out
        g2 = grad.reshape(N, e.C) if grad.ndim != 2 else grad
    else:
        grad = None
        grad_mode = GRAD_NONE
        g2 = e.no_grad
    loss = np.empty(N)
    bad, total, _ = index_rows_serial(x2, t, w, _ONE, e.fields[grad_mode], loss, g2)
    if bad >= 0:
        scan_targets(e.plan, t, w, target.shape)     # raises torch's IndexError
    if e.per_sample:
        result = loss.astype(e.result_dtype)
    else:
        result = np.asarray(total, dtype=e.result_dtype)
    return result, grad
