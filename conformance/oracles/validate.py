"""Which exception torch 2.13 raises for an invalid case (spec sections 1-8 and 11).

:func:`expected_error` returns the exception type name torch raises for the
case's arguments, or None when the case is valid. It is the oracle side of the
``error_semantics`` check: only the exception *type* is compared (messages of
third-party candidates are their own business). The checks run in torch's
order so a case with several problems maps to the first one torch reports.
"""
from __future__ import annotations

import numpy as np

_REDUCTIONS = ("none", "mean", "sum", "elementwise_mean")


def _is_float(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating)


def _ce_nll(loss: str, arrays: dict, kwargs: dict) -> str | None:
    x, t = arrays["input"], arrays["target"]
    w = arrays.get("weight")
    ii = kwargs.get("ignore_index", -100)
    eps = kwargs.get("label_smoothing", 0.0)
    if loss == "cross_entropy" and isinstance(ii, float):
        return "TypeError"                                     # spec 4: must be an int
    if not _is_float(x):
        return "NotImplementedError"                           # spec 2.1
    if x.ndim == 0:
        return "IndexError" if loss == "cross_entropy" else "ValueError"
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    if loss == "cross_entropy" and t.shape == x.shape:          # probability path (spec 6)
        if not _is_float(t):
            return "RuntimeError"
        if ii >= 0:
            return "RuntimeError"
        if w is not None and w.shape != (C,):
            return "RuntimeError"
        if eps > 1.0:
            return "RuntimeError"
        return None
    if x.ndim == 1:
        if t.ndim == 1 and t.size != 1:
            return "ValueError"                                # 'For 1D input, 1D target must have size 1'
        if t.ndim > 1:
            return "RuntimeError"
    elif x.ndim == 2:
        if t.ndim != 1:
            return "RuntimeError"                              # '0D or 1D target tensor expected'

    if x.ndim >= 2 and t.ndim >= 1 and t.shape[0] != x.shape[0]:
        return "ValueError"                                    # 'Expected input batch_size (2) to match ...'
    if x.ndim >= 3 and (t.ndim != x.ndim - 1 or t.shape[1:] != x.shape[2:]):
        return "RuntimeError"
    if t.dtype not in (np.int64, np.uint8) or (t.dtype == np.uint8 and x.ndim >= 3):
        return "RuntimeError"                                  # spec 2.2
    if w is not None and (w.ndim != 1 or w.shape[0] != C or w.dtype != x.dtype):
        return "RuntimeError"                                  # spec 2.3 / 11
    if loss == "cross_entropy" and eps > 1.0:
        return "RuntimeError"
    tt = t.astype(np.int64).reshape(-1)
    bad = (tt != ii) & ((tt < 0) | (tt >= C))
    if bad.any():
        return "IndexError"                                    # 'Target {t} is out of bounds.'
    if loss == "cross_entropy" and x.ndim == 1 and t.ndim == 1 and eps > 0:
        return "RuntimeError"                                  # spec 13: unbatched + 1-D target + smoothing
    return None


def _broadcasts_into(a: np.ndarray | None, shape: tuple[int, ...]) -> bool:
    if a is None:
        return True
    try:
        return np.broadcast_shapes(a.shape, shape) == tuple(shape)
    except ValueError:
        return False


def _bce(arrays: dict) -> str | None:
    x, y, w = arrays["input"], arrays["target"], arrays.get("weight")
    if y.shape != x.shape:
        return "ValueError"
    if not _is_float(x):
        return "NotImplementedError"
    if y.dtype != x.dtype:
        return "RuntimeError"                                  # 'Found dtype Double but expected Float'
    if not _broadcasts_into(w, x.shape):
        return "RuntimeError"
    with np.errstate(invalid="ignore"):
        if not ((x >= 0) & (x <= 1)).all() or not ((y >= 0) & (y <= 1)).all():
            return "RuntimeError"                              # NaN fails the range check too
    return None


def _bcewl(arrays: dict) -> str | None:
    x, y = arrays["input"], arrays["target"]
    if y.shape != x.shape:
        return "ValueError"
    if not _is_float(y):
        return "RuntimeError"
    if not _is_float(x):
        return "NotImplementedError"
    if not _broadcasts_into(arrays.get("pos_weight"), y.shape):
        return "RuntimeError"
    if not _broadcasts_into(arrays.get("weight"), x.shape):
        return "RuntimeError"
    return None


def expected_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """Exception type name torch raises for these arguments, or None if they are valid."""
    red = kwargs.get("reduction", "mean")
    if not isinstance(red, str) or red not in _REDUCTIONS:
        return "ValueError"                                    # '<x> is not a valid value for reduction'
    if loss in ("cross_entropy", "nll_loss"):
        return _ce_nll(loss, arrays, kwargs)
    if loss == "binary_cross_entropy":
        return _bce(arrays)
    return _bcewl(arrays)
