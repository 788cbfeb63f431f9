"""Failure classes: failing cases grouped by what looks like one bug.

A failing result is classed by its check, its status (and, for exceptions, which
kind), and the *signature* of its case: the options it uses (weight, pos_weight,
ignore_index, label smoothing, reduction, probability targets, layout) and the
region it lies in (non-finite values, huge or tiny logits, ignored rows, C above
1000 or 10^4, zero weights, mixed dtypes, ...). float32 and float64 cases with the
same key are one class (the dtypes are listed). The shrinker (conformance/shrink.py)
may only remove features from a signature, so a representative stays in its class.
"""
from __future__ import annotations

import numpy as np

from conformance.model import CheckResult, Case

#: Order in the reports: numeric failures first, then exceptions, then robustness.
KIND_ORDER = ("numeric", "exception", "robustness")


def _finite_abs_max(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(all="ignore"):
        f = np.abs(a[np.isfinite(a)])
    return float(f.max()) if f.size else 0.0


def signature(case: Case) -> frozenset[str]:
    """The options and regions of a case that a bug may depend on."""
    a, kw = case.arrays, case.kwargs
    x, t = np.asarray(a["input"]), np.asarray(a["target"])
    sig = set()
    for k in ("weight", "pos_weight"):
        if k in a:
            sig.add(k)
            if np.asarray(a[k]).dtype != x.dtype:
                sig.add(f"{k}_dtype")
            if np.issubdtype(np.asarray(a[k]).dtype, np.floating) and (np.asarray(a[k]) == 0).any():
                sig.add(f"zero_{k}")
    red = kw.get("reduction", "mean")
    sig.add(f"reduction={red}" if red in ("none", "sum", "elementwise_mean") else
            "reduction=mean" if red == "mean" else "bad_reduction")
    eps = kw.get("label_smoothing")
    if eps is not None:
        if eps != eps:
            sig.add("label_smoothing=nan")
        elif eps > 0:
            sig.add("label_smoothing")
            if eps == 1.0:
                sig.add("label_smoothing=1")
        else:
            sig.add("label_smoothing<=0")
    if "ignore_index" in kw:
        sig.add("ignore_index")
    if x.size and x.dtype.kind == "f":
        with np.errstate(all="ignore"):
            if not np.isfinite(x).all():
                sig.add("nan_input" if np.isnan(x).any() else "inf_input")
        m = _finite_abs_max(x)
        if m >= 1e3:
            sig.add("huge_logits" if case.loss != "binary_cross_entropy" else "large_values")
        elif 0 < m <= 1e-20:
            sig.add("tiny_values")
    if not x.flags.c_contiguous and x.ndim > 1:
        sig.add("noncontiguous")
    if x.size == 0:
        sig.add("empty")
    if case.loss == "linear_cross_entropy":
        # x is the hidden state: the options and targets are what a bug of the linear form depends on
        if "linear_bias" in a:
            sig.add("linear_bias")
        if x.ndim == 1:
            sig.add("unbatched")
        if np.issubdtype(t.dtype, np.floating):
            sig.add("prob_target")
        elif t.size:
            ii = kw.get("ignore_index", -100)
            ii = -100 if ii is None else ii
            if (t == ii).all():
                sig.add("all_ignored")
            elif (t == ii).any():
                sig.add("ignored_rows")
    elif case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 1:
        C = x.shape[0] if x.ndim == 1 else x.shape[1]
        if C > 10_000:
            sig.add("C>1e4")
        elif C > 1000:
            sig.add("C>1000")
        if x.ndim == 1:
            sig.add("unbatched")
        elif x.ndim >= 3:
            sig.add("spatial")
        if t.shape == x.shape:
            sig.add("prob_target")
        elif np.issubdtype(t.dtype, np.integer):
            if t.dtype != np.int64:
                sig.add(f"target_{t.dtype}")
            ii = kw.get("ignore_index", -100)
            if t.size and (t == ii).all():
                sig.add("all_ignored")
            elif (t == ii).any():
                sig.add("ignored_rows")
            bad = (t != ii) & ((t < 0) | (t >= C))
            if bad.any():
                sig.add("target_out_of_range")
            if x.ndim >= 2 and t.ndim >= 1 and t.shape[0] != x.shape[0]:
                sig.add("batch_mismatch")
        else:
            sig.add(f"target_{t.dtype}")
    else:
        if t.shape != x.shape:
            sig.add("target_shape_differs")
        if t.dtype != x.dtype:
            sig.add("target_dtype")
        if case.loss == "binary_cross_entropy" and x.size:
            if ((x == 0) | (x == 1)).any():
                sig.add("probability_0_or_1")
    return frozenset(sig)


def kind_of(check: str, status: str) -> str:
    if status in ("crash", "timeout"):
        return "robustness"
    if check == "error_semantics" or status == "error":
        return "exception"
    return "numeric"


def tag_of(r: CheckResult) -> str:
    """What kind of failure within a check/status: the exception type, 'missing error', ..."""
    m = r.message or ""
    if r.status == "error":
        return m.split(":", 1)[0].replace("raised ", "") if m.startswith("raised ") else "bad return"
    if r.check == "error_semantics":
        if m.startswith("missing error"):
            return "missing error"
        if "not an Exception" in m:
            return "not an Exception"
        return "wrong exception type"
    return ""


def class_key(case: Case, r: CheckResult) -> tuple:
    """Key of the class a failing result belongs to (without the dtype: dtypes are folded)."""
    return (r.candidate, r.loss, r.check, r.status, tag_of(r), signature(case))


def dtype_of(case: Case) -> str:
    return str(np.asarray(case.arrays["input"]).dtype)


def describe_signature(sig) -> list[str]:
    return sorted(sig, key=lambda s: (not s.startswith("reduction"), s))
