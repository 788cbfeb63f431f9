"""A correct candidate in plain NumPy: float64 arithmetic, NumPy's natural exceptions.

Written from the formulas of docs/semantics.md §0, independently of the harness's
oracles: it raises ``ValueError`` for shapes, reductions and ranges, ``IndexError``
for an out-of-range class, ``TypeError`` for dtypes, as a NumPy library would, not
torch's ``RuntimeError``. It reads class-index targets of any integer dtype and casts
a class weight to the input's dtype, and says so (``CONFORMANCE['extensions']``).
"""
import numpy as np

CONFORMANCE = {"dtypes": ["float32", "float64"], "extensions": ["any_int_target", "any_float_weight"]}

_REDUCTIONS = ("none", "mean", "sum", "elementwise_mean")


def _reduction(name, reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return "mean" if reduction == "elementwise_mean" else reduction


def _float_input(name, x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: input must be a float array, got {x.dtype}")
    return x


def _rows(x):
    """(S, C) float64 rows with the class axis last."""
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(r, shape):
    if len(shape) == 1:
        return r.reshape(shape)
    return np.moveaxis(r.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


def _log_softmax(r):
    m = r.max(axis=1, keepdims=True) if r.shape[1] else np.zeros((r.shape[0], 1))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = r - m
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _class_args(name, input, target, weight, ignore_index, label_smoothing):
    """Validate; returns (x, t, w, prob, C)."""
    x = _float_input(name, input)
    t = np.asarray(target)
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have at least one dimension")
    if name == "cross_entropy" and not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{name}: ignore_index must be an int, got {ignore_index!r}")
    if label_smoothing > 1.0:
        raise ValueError(f"{name}: label_smoothing must be at most 1, got {label_smoothing}")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    prob = name == "cross_entropy" and t.shape == x.shape
    w = None
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != (C,):
            raise ValueError(f"{name}: weight must have shape ({C},), got {w.shape}")
        if not np.issubdtype(w.dtype, np.floating):
            raise TypeError(f"{name}: weight must be a float array, got {w.dtype}")
        w = w if prob else w.astype(x.dtype)
    if prob:
        if not np.issubdtype(t.dtype, np.floating):
            raise TypeError(f"{name}: probability targets must be floats, got {t.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"{name}: ignore_index cannot be used with probability targets")
        return x, t, w, True, C
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{name}: class-index target must be integers, got {t.dtype}")
    if x.ndim == 1:
        if t.ndim > 1 or t.size != 1:
            raise ValueError(f"{name}: a ({C},) input takes one target, got shape {t.shape}")
        if t.ndim == 1 and label_smoothing > 0:
            # torch rejects this form with smoothing (docs/semantics.md §13); so does this candidate
            raise ValueError(f"{name}: label_smoothing needs a 0-d target for an unbatched input")
    elif t.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"{name}: target shape {t.shape} does not match input shape {x.shape}")
    t = t.astype(np.int64).reshape(-1)
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        raise IndexError(f"{name}: target {int(t[bad][0])} is out of range for {C} classes")
    return x, t, w, False, C


def _class(name, input, target, weight, ignore_index, reduction, label_smoothing, grad_output=None):
    red = _reduction(name, reduction)
    x, t, w, prob, C = _class_args(name, input, target, weight, ignore_index, label_smoothing)
    eps = label_smoothing if label_smoothing > 0 else 0.0        # negative and NaN smoothing do nothing
    r = _rows(x)
    S = r.shape[0]
    wc = np.ones(C) if w is None else np.asarray(w, dtype=np.float64)
    lp = _log_softmax(r) if name == "cross_entropy" else r
    unbatched = x.ndim == 1
    with np.errstate(all="ignore"):
        if prob:
            q = _rows(target)
            if eps:
                q = (1 - eps) * q + eps / C
            coef = q * wc                                    # d loss_s / d lp = -coef
            per = -(lp * coef).sum(axis=1)
            denom, valid = float(S), np.ones(S, bool)
            dtype = np.result_type(x.dtype, np.asarray(target).dtype, *(() if w is None else (w.dtype,)))
        else:
            valid = t != ignore_index
            tc = np.where(valid, t, 0)
            wt = np.where(valid, wc[tc] if C else 0.0, 0.0)
            hot = (1 - eps) * wt                             # the target's coefficient
            nll = np.where(valid, -lp[np.arange(S), tc] * hot, 0.0) if C else np.zeros(S)
            smooth = np.where(valid, -(lp * wc).sum(axis=1), 0.0) if eps else np.zeros(S)
            per = nll + eps / C * smooth
            denom = wt.sum()
            dtype = x.dtype
        if unbatched and red == "none":
            red = "sum"                                      # a (C,) input has one loss: 0-d output
        if grad_output is None:
            if red == "none":
                out = per.reshape((x.shape[0],) + x.shape[2:])
            elif red == "mean" and not prob and eps:
                # torch divides the two terms separately (0/0 = nan even when eps = 1)
                out = nll.sum() / denom + eps / C * (smooth.sum() / denom)
            elif red == "mean":
                out = per.sum() / denom
            else:
                out = per.sum()
            return np.asarray(out).astype(dtype)
        g = np.asarray(grad_output, dtype=np.float64)
        gs = g.reshape(-1) if red == "none" else np.full(S, g / denom if red == "mean" else float(g))
        if prob:
            dlp = -coef * gs[:, None]
        else:
            dlp = np.zeros((S, C))
            rows = np.arange(S)[valid]
            dlp[rows, tc[valid]] = -hot[valid] * gs[valid]
            if eps:
                dlp[valid] -= eps / C * wc * gs[valid, None]
        if name == "cross_entropy":
            dx = dlp - np.exp(lp) * dlp.sum(axis=1, keepdims=True)
            dx = np.where(valid[:, None], dx, 0.0)           # an ignored row has no gradient
        else:
            dx = dlp
        return _unrows(dx, x.shape).astype(x.dtype)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return _class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    return _class("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing, grad_output)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _class("nll_loss", input, target, weight, ignore_index, reduction, 0.0)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _class("nll_loss", input, target, weight, ignore_index, reduction, 0.0, grad_output)


def _binary_args(name, input, target, weight, pos_weight=None):
    x = _float_input(name, input)
    y = np.asarray(target)
    if y.shape != x.shape:
        raise ValueError(f"{name}: target shape {y.shape} differs from input shape {x.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise TypeError(f"{name}: target must be floats, got {y.dtype}")
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, dtype=np.float64), x.shape)
    pw = 1.0 if pos_weight is None else np.broadcast_to(np.asarray(pos_weight, dtype=np.float64), x.shape)
    return x, y, w, pw


def _reduce(name, loss, reduction, dtype):
    red = _reduction(name, reduction)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = loss if red == "none" else loss.sum() if red == "sum" else loss.sum() / loss.size
    return np.asarray(out).astype(dtype)


def _upstream(name, grad_output, reduction, shape):
    red = _reduction(name, reduction)
    g = np.asarray(grad_output, dtype=np.float64)
    n = int(np.prod(shape))
    return np.broadcast_to(g / n if red == "mean" and n else g, shape)


#: torch floors the BCE gradient's denominator at the float32 value of 1e-12 (docs/semantics.md §10.3).
_BCE_FLOOR = float(np.float32(1e-12))


def _bce_args(input, target, weight):
    x, y, w, _ = _binary_args("binary_cross_entropy", input, target, weight)
    if y.dtype != x.dtype:
        raise TypeError(f"binary_cross_entropy: target dtype {y.dtype} differs from input dtype {x.dtype}")
    with np.errstate(invalid="ignore"):
        if not ((x >= 0) & (x <= 1)).all():
            raise ValueError("binary_cross_entropy: input must be in [0, 1]")
        if not ((y >= 0) & (y <= 1)).all():
            raise ValueError("binary_cross_entropy: target must be in [0, 1]")
    return np.asarray(x, np.float64), np.asarray(y, np.float64), w


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    x, y, w = _bce_args(input, target, weight)
    with np.errstate(divide="ignore"):
        loss = -(y * np.maximum(np.log(x), -100.0) + (1 - y) * np.maximum(np.log1p(-x), -100.0)) * w
    return _reduce("binary_cross_entropy", loss, reduction, np.asarray(input).dtype)


def binary_cross_entropy_backward(grad_output, input, target, weight=None, reduction="mean"):
    x, y, w = _bce_args(input, target, weight)
    g = _upstream("binary_cross_entropy", grad_output, reduction, x.shape)
    return np.asarray(g * (x - y) / np.maximum((1 - x) * x, _BCE_FLOOR) * w).astype(np.asarray(input).dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    x, y, w, pw = _binary_args("binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        log_sig = np.minimum(x64, 0) - np.log1p(np.exp(-np.abs(x64)))     # stable log(sigmoid(x))
        loss = ((1 - y64) * x64 - ((pw - 1) * y64 + 1) * log_sig) * w
    return _reduce("binary_cross_entropy_with_logits", loss, reduction, y.dtype)


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None, reduction="mean",
                                              pos_weight=None):
    x, y, w, pw = _binary_args("binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    g = _upstream("binary_cross_entropy_with_logits", grad_output, reduction, x.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        sig = 1.0 / (1.0 + np.exp(-x64))
        dx = g * w * ((pw * y64 + 1 - y64) * sig - pw * y64)
    return np.asarray(dx).astype(x.dtype)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0):
    """cross_entropy of the logits input @ linear_weight.T + linear_bias, formed in float64."""
    z = np.asarray(input, np.float64) @ np.asarray(linear_weight, np.float64).T
    if linear_bias is not None:
        z = z + np.asarray(linear_bias, np.float64)
    w = None if weight is None else np.asarray(weight, np.float64)
    out = cross_entropy(z, target, weight=w, ignore_index=-100 if ignore_index is None else ignore_index,
                        reduction=reduction, label_smoothing=label_smoothing)
    return np.asarray(out).astype(input.dtype)
