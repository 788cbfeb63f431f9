"""Short host path of the CPU cross_entropy and nll_loss for small class-index ``(N, C)`` inputs.

For a (32, 10) input the general path's Python work (metadata checks, a frozen plan, four
normalising copies, three Numba calls) costs ~10x the arithmetic. Here:

* the :class:`~nbxent.xent.validate.CEPlan` is cached per call signature (shapes, dtypes,
  options with their types), so repeated calls skip the metadata checks; a signature that
  raises is never cached, so every bad call still raises the same exception;
* arrays that already are what the kernel needs (C-contiguous float32/float64 input,
  int64 targets, compute-dtype weights) go in without copies, and "no weight" is one
  cached read-only ones array per (C, dtype);
* one serial Numba call (:func:`nbxent.xent.cpu_index.index_rows_serial`, or
  :func:`~nbxent.xent.cpu_index.nll_serial`) checks the targets, runs the rows and reduces,
  with the very functions of the general path, so both give the same bits.

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
from nbxent.xent.cpu_index import PARALLEL_MIN, index_rows_serial, nll_serial, scan_targets
from nbxent.xent.validate import CEPlan, kernel_options, plan_cross_entropy, plan_nll_loss

__all__ = ["cross_entropy_small", "nll_loss_small"]

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
    #: cross_entropy: the kernel's option fields (plain tuples) by grad_mode;
    #: nll_loss: ``(has_weight, ignore_index, mean)``
    fields: tuple
    N: int
    C: int
    per_sample: bool       #: the result is the per-sample vector ('none', batched)
    result_dtype: np.dtype
    input_shape: tuple
    no_grad: np.ndarray    #: the forward's empty gradient buffer (compute dtype, writeable)


def _store(key, entry):
    if len(_PLANS) >= _PLAN_CAP:
        _PLANS.clear()
    try:
        _PLANS[key] = entry
    except TypeError:     # an unhashable option value the planner accepted
        pass
    return entry


def _entry(plan, fields, x, ndim):
    usable = not (plan.prob or plan.S == 0 or plan.C == 0 or plan.deferred_error)
    return _Entry(plan, usable, fields, plan.N, plan.C,
                  plan.reduction == NONE and not plan.unbatched, plan.result_dtype,
                  plan.input_shape, np.empty((0,) * ndim, dtype=x.dtype))


def _plan(fname, x, target, weight, ignore_index, reduction, label_smoothing):
    """The :class:`_Entry` of this cross_entropy call signature, cached."""
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
    return _store(key, _entry(plan, fields, x, 2))


def _plan_nll(fname, x, target, weight, ignore_index, reduction):
    """The :class:`_Entry` of this nll_loss call signature, cached."""
    key = (fname, x.shape, x.dtype, target.shape, target.dtype,
           None if weight is None else (weight.shape, weight.dtype),
           type(ignore_index), ignore_index, reduction)
    try:
        return _PLANS[key]
    except (KeyError, TypeError):
        pass
    plan = plan_nll_loss(x, target, weight, ignore_index, reduction, fname=fname)
    fields = (plan.has_weight, plan.ignore_index, plan.reduction == MEAN)
    return _store(key, _entry(plan, fields, x, 3))


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


def _eligible(x, target, weight, reduction) -> bool:
    """The arrays and options the short path serves (anything else: the general path)."""
    return not (type(x) is not np.ndarray or type(target) is not np.ndarray
                or not target.dtype.isnative
                or (weight is not None and (type(weight) is not np.ndarray
                                            or not weight.dtype.isnative))
                or reduction not in _REDUCTIONS or x.ndim > 2 or x.size > PARALLEL_MIN
                or (x.dtype is not _F32 and x.dtype is not _F64) or not x.flags.c_contiguous)


def _run(fname, e, x, target, weight, want_grad, out, nll):
    """Normalise the arrays, run the one serial kernel, shape the result; None: general path."""
    N, C, xdt = e.N, e.C, x.dtype
    t = target
    if t.dtype is not _INT64 or not t.flags.c_contiguous:
        if t.dtype == np.uint64:
            return None      # values above int64 need the general path's check
        t = np.ascontiguousarray(t, dtype=_INT64)
    if t.ndim != 1:
        t = t.reshape(N)
    if weight is None:
        w = _ones(C, xdt)    # private and read-only: no caller buffer can overlap it
    else:
        w = np.ascontiguousarray(weight, dtype=xdt)
    shape = (N, C, 1) if nll else (N, C)
    xk = x.reshape(shape) if x.shape != shape else x
    grad_mode = GRAD_NONE
    grad = None
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
        gk = grad.reshape(shape) if grad.shape != shape else grad
    else:
        gk = e.no_grad
    loss = np.empty(N)
    if nll:
        has_weight, ii, mean = e.fields
        bad, total, _ = nll_serial(xk, t, w, has_weight, ii, mean, np.ones(1), loss, gk)
    else:
        bad, total, _ = index_rows_serial(xk, t, w, _ONE, e.fields[grad_mode], loss, gk)
    if bad >= 0:
        scan_targets(e.plan, t, w, target.shape)     # raises torch's IndexError
    if e.per_sample:
        result = loss.astype(e.result_dtype)
    else:
        result = np.asarray(total, dtype=e.result_dtype)
    return result, grad


def cross_entropy_small(fname, x, target, weight, ignore_index, reduction, label_smoothing,
                        want_grad, out):
    """``(loss, grad)`` for a small 2-D class-index call, or None for the general path.

    ``want_grad``: False for the forward, True for the fused loss-and-gradient call
    (gradient of the returned value; into ``out`` when given, validated here).
    """
    if not _eligible(x, target, weight, reduction):
        return None
    e = _plan(fname, x, target, weight, ignore_index, reduction, label_smoothing)
    if not e.usable:
        return None
    return _run(fname, e, x, target, weight, want_grad, out, False)


def nll_loss_small(fname, x, target, weight, ignore_index, reduction, want_grad, out):
    """:func:`cross_entropy_small` for nll_loss."""
    if not _eligible(x, target, weight, reduction):
        return None
    e = _plan_nll(fname, x, target, weight, ignore_index, reduction)
    if not e.usable:
        return None
    return _run(fname, e, x, target, weight, want_grad, out, True)
