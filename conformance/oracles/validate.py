"""Which exception torch 2.13 raises for an invalid case (docs/semantics.md §1-§8 and §11).

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
    # ml_dtypes' bfloat16 is a NumPy extension dtype (kind 'V'), a float to torch (docs/semantics.md §2.8)
    return np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16"


def class_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """cross_entropy / nll_loss: the exception type torch raises, or None."""
    x, t = arrays["input"], arrays["target"]
    w = arrays.get("weight")
    ii = kwargs.get("ignore_index", -100)
    eps = kwargs.get("label_smoothing", 0.0)
    if loss == "cross_entropy" and isinstance(ii, float):
        return "TypeError"                                     # docs/semantics.md §4: must be an int
    if loss == "cross_entropy":                                 # docs/semantics.md §13.1 (nbxent, Liger)
        cap, z = kwargs.get("softcap"), kwargs.get("lse_square_scale", 0.0)
        if cap is not None and not (np.isfinite(cap) and cap > 0):
            return "ValueError"
        if not np.isfinite(z):
            return "ValueError"
    if not _is_float(x):
        return "NotImplementedError"                           # docs/semantics.md §2.1
    if x.ndim == 0:
        return "IndexError" if loss == "cross_entropy" else "ValueError"
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    if loss == "cross_entropy" and t.shape == x.shape:          # probability path (docs/semantics.md §6)
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
        return "RuntimeError"                                  # docs/semantics.md §2.2
    if w is not None and (w.ndim != 1 or w.shape[0] != C or w.dtype != x.dtype):
        return "RuntimeError"                                  # docs/semantics.md §2.3 / 11
    if loss == "cross_entropy" and eps > 1.0:
        return "RuntimeError"
    tt = t.astype(np.int64).reshape(-1)
    bad = (tt != ii) & ((tt < 0) | (tt >= C))
    if bad.any():
        return "IndexError"                                    # 'Target {t} is out of bounds.'
    if loss == "cross_entropy" and x.ndim == 1 and t.ndim == 1 and eps > 0:
        return "RuntimeError"                                  # docs/semantics.md §13: unbatched + 1-D target + smoothing
    return None


def _broadcasts_into(a: np.ndarray | None, shape: tuple[int, ...]) -> bool:
    if a is None:
        return True
    try:
        return np.broadcast_shapes(a.shape, shape) == tuple(shape)
    except ValueError:
        return False


def bce_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """binary_cross_entropy: the exception type torch raises, or None."""
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


def bcewl_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """binary_cross_entropy_with_logits: the exception type torch raises, or None."""
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
    from conformance import losses        # the registry names each loss's checks; unknown losses raise
    spec = losses.get(loss)
    if not isinstance(red, str) or red not in _REDUCTIONS:
        return "ValueError"                                    # '<x> is not a valid value for reduction'
    return spec.entry("expected_error")(loss, arrays, kwargs)


def backward_error(loss: str, arrays: dict, kwargs: dict) -> str | None:
    """The exception torch's *backward* raises on a case its forward accepts, or None.

    docs/semantics.md §13: an unbatched ``(C,)`` input with a 1-element 1-D class-index
    target (C != 1) is accepted by the forward, but torch's backward raises ``size mismatch``.
    So does ``nll_loss``'s backward on a 4-D input that is not C-contiguous (``grad_input
    must be contiguous``). Those are torch's limitations, not the contract: a candidate may
    raise there or return the right gradient (for the unbatched case, that of the 0-d target).
    """
    x, t = arrays["input"], arrays["target"]
    if loss == "nll_loss" and x.ndim == 4 and not x.flags.c_contiguous:
        return "RuntimeError"
    if loss in ("cross_entropy", "nll_loss") and x.ndim == 1 and t.shape == (1,) and x.shape[0] != 1 \
            and not np.issubdtype(t.dtype, np.floating):
        return "RuntimeError"
    return None
