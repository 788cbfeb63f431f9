"""A float64 reference with knobs: torch's semantics when every knob is at its default.

:class:`Semantics` names each way a real implementation departs from torch 2.13
(docs/semantics.md) as one field; :func:`evaluate` computes a case's value and
input gradient under a setting of those fields. A convention of the library
(``_library.py``) is one field flipped (or a few alternative settings of one
field), so two conventions combine by merging their settings.

With the defaults this is the same contract as the scipy oracle
(conformance/oracles/scipy_ref.py, docs/semantics.md §0) written once more with
the knobs in place: tests/conformance/test_conventions.py checks that the
default setting reproduces the oracle on every catalogue case, so the two cannot
drift. It reuses the oracle's row layout, its log-softmax mechanics, its BCE
gradient floor and its table of torch's exceptions.

Precision knobs (``lse``, ``log_sigmoid``, ``accumulate``) evaluate the changed
step in a given floating type (the candidate's, or float64) so the overflow to
inf/NaN or the lost digits of that implementation appear in the reference.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from conformance import extensions
from conformance.model import Case
from conformance.oracles._layout import bce_broadcast, sample_shape
from conformance.oracles.scipy_ref import BCE_GRAD_FLOOR, log_softmax_rows, softcap_rows
from conformance.oracles.validate import expected_error

__all__ = ["Outcome", "Semantics", "TORCH", "UNDETERMINED", "evaluate"]

#: Marker for an outcome whose value the convention does not determine (e.g. an unchecked
#: out-of-range read): only "returns a value" or "raises" is predicted.
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class Semantics:
    """One setting of every knob; the defaults are torch 2.13's (docs/semantics.md §N in each comment)."""

    mean_denominator: str = "weight_sum"     # §3.1: 'weight_sum' | 'count' | 'all_rows' | 'all_rows_w0'
    empty_mean: str = "nan"                  # §3.2, §1.2: 'nan' | 'zero'
    smoothing: str = "eps_over_c"            # §5.1: 'eps_over_c' | 'eps_over_c_minus_1' | 'weighted_by_target'
    smoothing_on_ignored: bool = False       # §5.3
    prob_smoothing: bool = True              # §6: probability targets are smoothed too
    prob_mean: str = "count"                 # §6: 'count' | 'weight_sum'
    clip: float | None = None                # §7.1: BCE input clipped to [clip, 1 - clip]
    bce_log_clamp: float | None = -100.0     # §7.1
    bce_grad_floor: float = BCE_GRAD_FLOOR   # §10.3
    bce_mean: str = "numel"                  # §3.4: 'numel' | 'weight_sum'
    pos_weight_term: str = "positive"        # §8.1: 'positive' | 'negative'
    pos_weight_axis: str = "last"            # §8.3: 'last' | 'class'
    class_axis: str = "dim1"                 # §1.1: 'dim1' | 'last'
    negative_targets: str = "raise"          # §4: 'raise' | 'wrap'
    out_of_range: str = "raise"              # §4: 'raise' | 'unchecked'
    range_check: str = "after_ignore"        # §4: 'after_ignore' | 'before_ignore'
    none_shape: str = "samples"              # §1.1: 'samples' | 'flat'
    result_dtype: str = "torch"              # §2.4, §2.6: 'torch' | 'input' | 'float64' | 'float32'
    target_broadcasts: bool = False          # §1.1, §1.4
    dtypes_accepted: tuple = ()              # §2.2, §2.3: extensions.py names ('any_int_target', 'any_float_weight')
    lse: str = "shifted"                     # §2.7: 'shifted' | 'unshifted'
    log_sigmoid: str = "stable"              # §8.1: 'stable' | 'naive'
    accumulate: str = "exact"                # §2.7: 'exact' | 'lse' | 'batch' | 'both' (serial, in compute_dtype)
    compute_dtype: str = "input"             # for the precision knobs: 'input' or 'float64'
    ignored_grad: bool = False               # §10.2
    nan_leak: bool = False                   # §9
    z_loss: str = "liger"                    # §13.1: 'liger' (unweighted, valid rows, mean over their count)
    #                                          | 'weighted' (w_t z lse^2, mean over W) | 'all_rows' (ignored rows too)
    softcap_smoothing: str = "capped"        # §13.1: 'capped' | 'raw' (the smoothing term from the uncapped logits)

    def merged(self, other: "Semantics") -> "Semantics | None":
        """Both settings' changes from torch at once; None when they change one knob differently."""
        base, mine, theirs = Semantics(), dataclasses.asdict(self), dataclasses.asdict(other)
        out = dict(mine)
        for k, v in theirs.items():
            if v != getattr(base, k):
                if mine[k] != getattr(base, k) and mine[k] != v:
                    return None
                out[k] = v
        return Semantics(**out)


TORCH = Semantics()


@dataclass
class Outcome:
    """What a case produces under one setting.

    ``error`` is the exception type name the setting implies (None: returns a value).
    ``value``/``grad`` are float64 (``UNDETERMINED`` values leave them None with
    ``determined=False``). ``case`` is the case the numbers belong to: the original,
    or its legalised form where the setting accepts what torch rejects (its tolerance
    is computed from that form).
    """

    error: str | None = None
    value: np.ndarray | None = None
    grad: np.ndarray | None = None
    dtype: str | None = None
    determined: bool = True
    case: Case | None = None


# ----------------------------------------------------------------------------- precision helpers
def _ftype(sem: Semantics, case: Case):
    dt = np.dtype(case.arrays["input"].dtype)
    return np.float64 if sem.compute_dtype == "float64" or dt.kind != "f" else dt.type


def _serial_sum(a: np.ndarray, axis, ft) -> np.ndarray:
    """Terms added one by one in ``ft`` (a prefix sum is a plain loop: no pairwise or lane splitting)."""
    a = np.asarray(a, dtype=ft)
    if axis is None:
        a, axis = a.reshape(-1), 0
    if a.shape[axis] == 0:
        return np.sum(a, axis=axis).astype(np.float64)
    return np.take(np.cumsum(a, axis=axis, dtype=ft), -1, axis=axis).astype(np.float64)


def _log_softmax(xr: np.ndarray, sem: Semantics, ft) -> np.ndarray:
    if sem.lse == "shifted" and sem.accumulate not in ("lse", "both"):
        return log_softmax_rows(xr)
    if xr.shape[1] == 0:
        return xr.copy()
    x = xr.astype(ft)
    m = np.max(x, axis=1, keepdims=True) if sem.lse == "shifted" else np.zeros_like(x[:, :1])
    e = np.exp(x - m)
    s = _serial_sum(e, 1, ft)[:, None] if sem.accumulate in ("lse", "both") else e.astype(np.float64).sum(1, keepdims=True)
    return ((x - m).astype(np.float64) - np.log(s.astype(ft)).astype(np.float64))


def _batch_sum(a: np.ndarray, sem: Semantics, ft) -> float:
    if sem.accumulate in ("batch", "both"):
        return float(_serial_sum(a, None, ft))
    return float(np.sum(a))


# ----------------------------------------------------------------------------- layout
def _rows(x: np.ndarray, sem: Semantics) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[None, :]
    if sem.class_axis == "last":
        return x.reshape(-1, x.shape[-1])
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(r: np.ndarray, shape, sem: Semantics) -> np.ndarray:
    if len(shape) == 1:
        return r.reshape(shape)
    if sem.class_axis == "last":
        return r.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(r.reshape(moved), -1, 1)


def _samples(x_shape, sem: Semantics):
    if len(x_shape) == 1:
        return ()
    return tuple(x_shape[:-1]) if sem.class_axis == "last" else sample_shape(x_shape)


def _none_shape(shape, sem: Semantics):
    return (int(np.prod(shape)),) if sem.none_shape == "flat" and len(shape) >= 2 else tuple(shape)


def _gs(g, red: str, n: int, denom: float, sem: Semantics) -> np.ndarray:
    """Upstream gradient per sample (docs/semantics.md §0, Gradients)."""
    g = np.asarray(g, dtype=np.float64)
    if red == "none":
        return np.broadcast_to(g, (n,)).copy() if g.ndim == 0 else g.reshape(-1)
    if red == "sum":
        return np.full(n, float(g))
    if denom == 0 and sem.empty_mean == "zero":
        return np.zeros(n)
    return np.full(n, np.float64(g) / np.float64(denom))


def _mean(total: float, denom: float, sem: Semantics) -> float:
    if denom == 0 and sem.empty_mean == "zero":
        return 0.0
    return np.float64(total) / np.float64(denom)


# ----------------------------------------------------------------------------- the LLM options (§13.1)
def _z_terms(case, sem, xr, lp, valid, wt, W, want_grad):
    """The z-loss's value and its gradient w.r.t. the (capped) logits, or None without it."""
    kw, x = case.kwargs, case.arrays["input"]
    z = float(kw.get("lse_square_scale", 0.0))
    if case.loss != "cross_entropy" or z == 0.0:
        return None
    S, C = xr.shape
    with np.errstate(all="ignore"):
        lse = logsumexp(xr, axis=1) if C else np.full(S, -np.inf)
        if sem.z_loss == "weighted":
            coef, den = np.where(valid, wt, 0.0), np.float64(W)
        elif sem.z_loss == "all_rows":
            coef, den = np.ones(S), np.float64(S)
        else:
            coef, den = valid.astype(np.float64), np.float64(valid.sum())
        per = np.where(coef != 0, coef * z * lse * lse, 0.0)
        red = kw.get("reduction", "mean")
        if red == "none" and x.ndim > 1:
            value = per.reshape(_none_shape(_samples(x.shape, sem), sem))
        elif red in ("none", "sum"):
            value = np.asarray(per.sum())
        else:
            value = np.asarray(per.sum() / den)
        dz = None
        if want_grad:
            red_g = "sum" if (red == "none" and x.ndim == 1) else red
            gz = _gs(case.arrays["grad_output"], red_g, S, den, sem)
            dz = np.where(coef != 0, 2 * z * coef * gz * lse, 0.0)[:, None] * np.exp(lp)
    return value, dz


def _capped(case, sem, xr):
    """``(logits, smoothing logits, slope)`` under the softcap (docs/semantics.md §13.1)."""
    if case.loss != "cross_entropy":
        return xr, xr, None
    y, slope = softcap_rows(xr, case.kwargs)
    return y, (xr if sem.softcap_smoothing == "raw" else y), slope


# ----------------------------------------------------------------------------- class-index CE / NLL
def _class_index(case: Case, sem: Semantics, want_grad: bool):
    loss, arrays, kw = case.loss, case.arrays, case.kwargs
    x = arrays["input"]
    ft = _ftype(sem, case)
    xr, xs, slope = _capped(case, sem, _rows(x, sem))
    S, C = xr.shape
    tr = np.asarray(arrays["target"]).astype(np.int64).reshape(-1)
    ii = kw.get("ignore_index", -100)
    red = kw.get("reduction", "mean")
    eps = float(kw.get("label_smoothing", 0.0)) if loss == "cross_entropy" else 0.0
    eps = eps if eps > 0 else 0.0                            # §5.2: eps < 0 or NaN act as 0
    w = arrays.get("weight")
    wc = np.ones(C) if w is None else np.asarray(w, dtype=np.float64)
    lp = xr if loss == "nll_loss" else _log_softmax(xr, sem, ft)
    valid = tr != ii
    if sem.negative_targets == "wrap" and C:
        tr = np.where(valid & (tr < 0), tr % C, tr)
    tc = np.where(valid, tr, 0)
    rows = np.arange(S)
    wt = np.where(valid, wc[tc], 0.0) if C else np.zeros(S)
    nll = np.where(valid, -(lp[rows, tc] * wt), 0.0) if C else np.zeros(S)
    if sem.nan_leak and C:
        # ignored rows masked by multiplying the gathered term with 0 (the ignored index, clamped
        # to class 0 when it is no class): NaN/inf there, or a NaN/+inf row of CE's log_softmax, gives NaN
        read = np.where(valid, tr, ii if 0 <= ii < C else 0)
        nll = np.where(valid, nll, 0.0 * lp[rows, read])
    smooth_rows = np.ones(S, bool) if sem.smoothing_on_ignored else valid
    c_nll, c_sm = 1 - eps, (eps / C if C else 0.0)
    if eps > 0 and sem.smoothing == "eps_over_c_minus_1" and C > 1:      # undefined for C = 1
        # target weight 1 - eps, every other class eps/(C-1): (1 - eps*C/(C-1))*nll + eps/(C-1)*sum_c(-lp_c)
        c_nll, c_sm = 1 - eps * C / (C - 1), eps / (C - 1)
    lps = lp if xs is xr else _log_softmax(xs, sem, ft)       # the smoothing term's logits
    if eps > 0 and sem.smoothing == "weighted_by_target":
        smooth = np.where(smooth_rows, -(lps.sum(axis=1)) * np.where(valid, wt, 1.0), 0.0)
    else:
        smooth = np.where(smooth_rows, -(lps * wc).sum(axis=1), 0.0) if eps > 0 else np.zeros(S)
    per = c_nll * nll + c_sm * smooth if eps > 0 else nll
    W = float(wt.sum())
    if sem.mean_denominator == "count":
        W = float(valid.sum())
    elif sem.mean_denominator == "all_rows":
        W = W + float((~valid).sum())
    elif sem.mean_denominator == "all_rows_w0" and w is not None and C:
        W = W + float((~valid).sum()) * float(wc[0])       # without a weight this is 'all_rows'
    if red == "none" and x.ndim > 1:
        value = per.reshape(_none_shape(_samples(x.shape, sem), sem))
    elif red in ("none", "sum"):
        value = np.asarray(_batch_sum(per, sem, ft))
    elif sem.smoothing == "eps_over_c" and sem.empty_mean == "nan" and sem.accumulate == "exact":
        # two divisions, as torch (§0): with W == 0 the nll term is 0/0 = nan even at eps = 1
        value = np.asarray((1 - eps) * (nll.sum() / np.float64(W)) + (eps / C) * (smooth.sum() / np.float64(W))
                           if eps > 0 else nll.sum() / np.float64(W))
    else:
        value = np.asarray(_mean(_batch_sum(per, sem, ft), W, sem))
    zt = _z_terms(case, sem, xr, lp, valid, wt, W, want_grad)
    if zt is not None:
        value = value + zt[0]
    grad = None
    if want_grad:
        red_g = "sum" if (red == "none" and x.ndim == 1) else red
        gs = _gs(arrays["grad_output"], red_g, S, W, sem)
        glp = np.zeros((S, C))
        vr = rows[valid]
        glp[vr, tc[valid]] = -c_nll * wt[valid] * gs[valid]
        if eps > 0:
            if sem.smoothing == "weighted_by_target":
                coef = np.where(valid, wt, 1.0)[smooth_rows, None]
                glp[smooth_rows] += -c_sm * coef * gs[smooth_rows, None]
            else:
                glp[smooth_rows] += -c_sm * wc[None, :] * gs[smooth_rows, None]
        ign = ~valid
        if sem.ignored_grad and ign.any() and 0 <= ii < C:
            glp[rows[ign], ii] += -c_nll * wc[ii] * gs[ign]           # the ignored class is not masked out
        if loss == "cross_entropy":
            sm = np.exp(lp)
            if xs is xr:
                glp = glp - sm * glp.sum(axis=1, keepdims=True)        # log_softmax backward
            else:                                                      # the smoothing part through raw logits
                gsm = np.zeros((S, C))
                if eps > 0:
                    gsm[smooth_rows] = -c_sm * wc[None, :] * gs[smooth_rows, None]
                gnl = glp - gsm
                glp = (gnl - sm * gnl.sum(axis=1, keepdims=True)) + 0.0
                graw = gsm - np.exp(lps) * gsm.sum(axis=1, keepdims=True)
            if sem.ignored_grad and ign.any() and not 0 <= ii < C:
                glp[ign] += gs[ign, None] * sm[ign]                    # softmax - onehot with an empty onehot
            if zt is not None:
                glp = glp + zt[1]
            if slope is not None:
                glp = glp * slope
            if xs is not xr:
                glp = glp + graw
        grad = _unrows(glp, x.shape, sem)
    return value, grad, str(x.dtype)


# ----------------------------------------------------------------------------- probability-target CE
def _class_prob(case: Case, sem: Semantics, want_grad: bool):
    arrays, kw = case.arrays, case.kwargs
    x, p, w = arrays["input"], arrays["target"], arrays.get("weight")
    ft = _ftype(sem, case)
    xr, _, slope = _capped(case, sem, _rows(x, sem))
    pr = _rows(p, sem)
    S, C = xr.shape
    red = kw.get("reduction", "mean")
    eps = float(kw.get("label_smoothing", 0.0))
    smoothed = eps > 0 and sem.prob_smoothing
    q = (1 - eps) * pr + eps / C if smoothed else pr
    wc = np.ones(C) if w is None else np.asarray(w, dtype=np.float64)
    lp = _log_softmax(xr, sem, ft)
    per = -((lp * q) * wc).sum(axis=1)
    denom = float((pr * wc).sum()) if sem.prob_mean == "weight_sum" else float(S)
    if red == "none":
        value = per.reshape(_none_shape(_samples(x.shape, sem), sem))
    elif red == "sum":
        value = np.asarray(_batch_sum(per, sem, ft))
    elif C == 0 and sem.empty_mean == "nan":
        value = np.asarray(np.nan)
    else:
        value = np.asarray(_mean(_batch_sum(per, sem, ft), denom, sem))
    zt = _z_terms(case, sem, xr, lp, np.ones(S, bool), np.ones(S), float(S), want_grad)
    if zt is not None:
        value = value + zt[0]
    grad = None
    if want_grad:
        gs = _gs(arrays["grad_output"], red, S, denom, sem)
        glp = -gs[:, None] * q * wc
        dx = glp - np.exp(lp) * glp.sum(axis=1, keepdims=True)
        if zt is not None:
            dx = dx + zt[1]
        if slope is not None:
            dx = dx * slope
        grad = _unrows(dx, x.shape, sem)
    dts = [x.dtype, p.dtype] + ([w.dtype] if w is not None else [])
    return value, grad, str(np.result_type(*dts))


# ----------------------------------------------------------------------------- BCE and BCE-with-logits
def _reduce_elementwise(l: np.ndarray, red: str, w: np.ndarray, sem: Semantics, ft) -> np.ndarray:
    if red == "none":
        return l.reshape(_none_shape(l.shape, sem))
    if red == "sum":
        return np.asarray(_batch_sum(l, sem, ft))
    denom = float(w.sum()) if sem.bce_mean == "weight_sum" else float(l.size)
    return np.asarray(_mean(_batch_sum(l, sem, ft), denom, sem))


def _elementwise_gs(arrays, red: str, shape, w: np.ndarray, sem: Semantics) -> np.ndarray:
    g = np.asarray(arrays["grad_output"], dtype=np.float64)
    if red in ("none", "sum"):
        return np.broadcast_to(g, shape)
    denom = float(w.sum()) if sem.bce_mean == "weight_sum" else float(np.prod(shape))
    if denom == 0 and sem.empty_mean == "zero":
        return np.zeros(shape)
    return np.broadcast_to(g / np.float64(denom), shape)


def _elementwise_args(case: Case, sem: Semantics):
    """(arrays, reduction, x, y, w broadcast, compute type) of a BCE / BCE-with-logits case."""
    arrays = case.arrays
    x = np.asarray(arrays["input"], dtype=np.float64)
    y = np.asarray(arrays["target"], dtype=np.float64)
    return arrays, case.kwargs.get("reduction", "mean"), x, y, bce_broadcast(arrays.get("weight"), x.shape), \
        _ftype(sem, case)


def _bce(case: Case, sem: Semantics, want_grad: bool):
    arrays, red, x, y, w, ft = _elementwise_args(case, sem)
    inside = np.ones(x.shape, bool)
    lc = -np.inf if sem.bce_log_clamp is None else sem.bce_log_clamp
    if sem.clip is not None:
        c = sem.clip if sem.clip > 0 else float(np.finfo(ft).eps)     # clip < 0: the dtype's eps
        lo, hi = float(ft(c)), float(ft(1 - c))
        if 0 < lo and hi < 1:
            inside = (x >= lo) & (x <= hi)
            x = np.clip(x, lo, hi)
        else:           # 1 - c rounds to 1 in this dtype: no clip, so not this convention (torch's clamp)
            lc = TORCH.bce_log_clamp
    l = ((y - 1) * np.maximum(np.log1p(-x), lc) - y * np.maximum(np.log(x), lc)) * w   # §7.1
    grad = None
    if want_grad:
        gs = _elementwise_gs(arrays, red, x.shape, w, sem)
        # §10.3: float16's float32(1e-12) floor rounds to 0 in half precision
        floor = 0.0 if arrays["input"].dtype == np.float16 else sem.bce_grad_floor
        grad = gs * (x - y) / np.maximum((1 - x) * x, floor) * w * inside
    return _reduce_elementwise(l, red, w, sem, ft), grad, str(arrays["input"].dtype)


def _pos_weight(pw, shape, sem: Semantics) -> np.ndarray:
    if pw is not None and sem.pos_weight_axis == "class" and np.ndim(pw) == 1 and len(shape) >= 3 \
            and np.shape(pw)[0] == shape[1]:
        pw = np.asarray(pw).reshape((-1,) + (1,) * (len(shape) - 2))
    return bce_broadcast(pw, shape)


def _bcewl(case: Case, sem: Semantics, want_grad: bool):
    arrays, red, x, y, w, ft = _elementwise_args(case, sem)
    has_pw = arrays.get("pos_weight") is not None
    pw = _pos_weight(arrays.get("pos_weight"), y.shape, sem)
    if sem.log_sigmoid == "naive":
        xf = x.astype(ft)
        logsig = np.log(ft(1) / (ft(1) + np.exp(-xf))).astype(np.float64)
    else:
        logsig = log_expit(x)                                   # min(x,0) - log1p(exp(-|x|)), §8.1
    if sem.pos_weight_term == "negative" and has_pw:
        # pos_weight scales the (1 - y) term: -(y*log s + pw*(1 - y)*log(1 - s)), log(1 - s) = logsig - x
        l = (-y * logsig - pw * (1 - y) * (logsig - x)) * w
    else:
        lw = (pw - 1) * y + 1 if has_pw else 1.0
        l = ((1 - y) * x - lw * logsig) * w
    grad = None
    if want_grad:
        gs = _elementwise_gs(arrays, red, x.shape, w, sem)
        s = expit(x)
        if sem.pos_weight_term == "negative" and has_pw:
            grad = gs * w * ((y + pw * (1 - y)) * s - y)
        else:
            grad = gs * w * ((pw * y + 1 - y) * s - pw * y)
    return _reduce_elementwise(l, red, w, sem, ft), grad, str(arrays["target"].dtype)


# ----------------------------------------------------------------------------- errors and legalised forms
def _target_fix(case: Case, sem: Semantics) -> tuple[Case | None, str | None]:
    """For a case torch rejects: the case a setting computes instead (None: it raises too)."""
    loss, arrays, kw = case.loss, case.arrays, case.kwargs
    if loss not in ("cross_entropy", "nll_loss"):
        return None, None
    t = np.asarray(arrays["target"])
    x = arrays["input"]
    if t.dtype.kind not in "iu" or x.ndim == 0 or t.shape == x.shape:
        return None, None
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    ii = kw.get("ignore_index", -100)
    tt = t.astype(np.int64)
    bad = (tt != ii) & ((tt < 0) | (tt >= C))
    if not bad.any():
        return None, None
    neg = bad & (tt < 0)
    big = bad & (tt >= 0)
    if sem.negative_targets == "wrap" and neg.any() and not big.any() and C:
        fixed = np.where(neg, tt % C, tt).astype(t.dtype)
        return Case(loss, {**arrays, "target": fixed}, kw, case.origin, case.reason), "wrap"
    if sem.out_of_range == "unchecked":
        probe = np.where(bad, 0, tt).astype(t.dtype)
        return Case(loss, {**arrays, "target": probe}, kw, case.origin, case.reason), UNDETERMINED
    return None, None


def _broadcast_fix(case: Case) -> Case | None:
    """The case with its target (or size-1 batch) broadcast, where that makes it valid (§1.1, §1.4)."""
    arrays = dict(case.arrays)
    x, t = arrays["input"], arrays["target"]
    try:
        if case.loss in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
            shape = np.broadcast_shapes(x.shape, t.shape)
            if shape != x.shape:
                return None                         # only a target broadcast into the input is predicted
            arrays["target"] = np.ascontiguousarray(np.broadcast_to(t, shape))
        else:
            if x.ndim < 2 or t.ndim < 1 or x.shape[0] == t.shape[0] or 1 not in (x.shape[0], t.shape[0]):
                return None
            if t.shape[0] == 1:
                arrays["target"] = np.ascontiguousarray(np.broadcast_to(t, (x.shape[0],) + t.shape[1:]))
            else:
                return None                         # a size-1 input batch: the gradient shape would change
    except ValueError:
        return None
    arrays.pop("grad_output", None)
    return Case(case.loss, arrays, case.kwargs, case.origin, case.reason)


def _pos_weight_is_1d_nd(case: Case) -> bool:
    pw = case.arrays.get("pos_weight")
    return case.loss == "binary_cross_entropy_with_logits" and pw is not None and pw.ndim == 1 \
        and case.arrays["input"].ndim >= 3


def _channel_pos_weight(case: Case) -> Case | None:
    """The case with a (C,) pos_weight reshaped to (C, 1, ...), where that is valid (§8.3)."""
    if not _pos_weight_is_1d_nd(case) or case.arrays["pos_weight"].shape[0] != case.arrays["input"].shape[1]:
        return None
    x, pw = case.arrays["input"], case.arrays["pos_weight"]
    arrays = {**case.arrays, "pos_weight": pw.reshape((-1,) + (1,) * (x.ndim - 2))}
    fixed = Case(case.loss, arrays, case.kwargs, case.origin, case.reason)
    return fixed if expected_error(fixed.loss, fixed.arrays, fixed.kwargs) is None else None


def _ignore_checked_error(case: Case) -> str | None:
    """``range_check='before_ignore'``: targets equal to an out-of-range ignore_index raise (§4)."""
    if case.loss not in ("cross_entropy", "nll_loss"):
        return None
    x, t = case.arrays["input"], np.asarray(case.arrays["target"])
    if t.dtype.kind not in "iu" or t.shape == x.shape or x.ndim == 0:
        return None
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    ii = case.kwargs.get("ignore_index", -100)
    hit = t.astype(np.int64) == ii
    return "IndexError" if hit.any() and not 0 <= ii < C else None


def _compute(case: Case, sem: Semantics, want_grad: bool):
    want_grad = want_grad and "grad_output" in case.arrays
    if case.loss == "linear_cross_entropy":
        # cross_entropy's conventions on the logits formed in float64 (conformance/linear_ce.py), the
        # float64 oracle's own construction; precision knobs then act on float64 logits (no difference)
        # (the gradients: the logit gradient of loss.sum() through the three products, packed)
        from conformance.linear_ce import linear_grads, logits64, pack
        ce = Case("cross_entropy", {k: v for k, v in case.arrays.items() if k in ("target", "weight")},
                  case.kwargs, case.origin, case.reason)
        ce.arrays["input"] = logits64(case.arrays)
        grad = None
        if want_grad:
            red = case.kwargs.get("reduction", "mean")
            ce.arrays["grad_output"] = np.ones(case.arrays["input"].shape[:-1] if red == "none" else ())
            value, G, _ = _compute(ce, sem, True)
            with np.errstate(all="ignore"):
                grad = pack(*linear_grads(case.arrays, np.asarray(G, np.float64)))
        else:
            value, _, _ = _compute(ce, sem, False)
        return value, grad, str(case.arrays["input"].dtype)
    with np.errstate(all="ignore"):
        if case.loss in ("cross_entropy", "nll_loss"):
            if case.loss == "cross_entropy" and case.arrays["target"].shape == case.arrays["input"].shape:
                return _class_prob(case, sem, want_grad)
            return _class_index(case, sem, want_grad)
        if case.loss == "binary_cross_entropy":
            return _bce(case, sem, want_grad)
        return _bcewl(case, sem, want_grad)


def _result_dtype(torch_dtype: str, case: Case, sem: Semantics) -> str:
    if sem.result_dtype == "torch":
        return torch_dtype
    if sem.result_dtype == "input":
        return str(case.arrays["input"].dtype)
    return sem.result_dtype


def _class_axis_ok(case: Case) -> bool:
    x, t = case.arrays["input"], case.arrays["target"]
    if x.ndim < 3:
        return False
    return t.shape == x.shape or tuple(t.shape) == tuple(x.shape[:-1])


def evaluate(case: Case, sem: Semantics = TORCH, want_grad: bool = True) -> Outcome:
    """The float64 outcome of ``case`` under ``sem`` (torch's when ``sem`` is the default)."""
    err = expected_error(case.loss, case.arrays, case.kwargs)
    if err is not None:
        fixed, how = _target_fix(case, sem)
        if fixed is None and sem.dtypes_accepted:
            arrays, used = extensions.canonical(case.loss, case.arrays, sem.dtypes_accepted)
            fixed, how = (Case(case.loss, arrays, case.kwargs, case.origin, case.reason), "dtype") if used else (None, None)
        if fixed is None and sem.pos_weight_axis == "class":
            fixed, how = _channel_pos_weight(case), "channel"
        if fixed is None and sem.target_broadcasts:
            fixed, how = _broadcast_fix(case), "broadcast"
        if fixed is None or expected_error(fixed.loss, fixed.arrays, fixed.kwargs) is not None:
            return Outcome(error=err, case=case)
        if how == UNDETERMINED:
            return Outcome(error=None, determined=False, case=fixed)
        value, grad, dtype = _compute(fixed, sem, want_grad and how != "broadcast")
        return Outcome(None, np.asarray(value, np.float64), None if grad is None else np.asarray(grad, np.float64),
                       _result_dtype(dtype, fixed, sem), True, fixed)
    if sem.range_check == "before_ignore":
        e2 = _ignore_checked_error(case)
        if e2 is not None:
            return Outcome(error=e2, case=case)
    if sem.pos_weight_axis == "class" and _channel_pos_weight(case) is None and _pos_weight_is_1d_nd(case) \
            and np.shape(case.arrays["pos_weight"])[0] not in (1, case.arrays["input"].shape[1]):
        return Outcome(error="RuntimeError", case=case)        # a (L,) pos_weight does not fit dim 1 of size C
    if sem.class_axis == "last" and not _class_axis_ok(case):
        sem = dataclasses.replace(sem, class_axis="dim1")
    try:
        value, grad, dtype = _compute(case, sem, want_grad)
    except (ValueError, IndexError, ZeroDivisionError):
        if sem == TORCH:
            raise
        value, grad, dtype = _compute(case, TORCH, want_grad)     # a setting that cannot apply to this case
    return Outcome(None, np.asarray(value, np.float64), None if grad is None else np.asarray(grad, np.float64),
                   _result_dtype(dtype, case, sem), True, case)
