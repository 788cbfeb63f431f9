"""Shrinking a failing case toward the simplest case that fails the same way.

:func:`shrink` tries simplifications of a :class:`conformance.model.Case` in a fixed
order (drop an optional array, drop a keyword, the default reduction, contiguous
memory, fewer samples, fewer classes, smaller spatial or elementwise dimensions,
simpler values) and keeps one whenever the candidate still fails the same check with
the same status, in the same dtype, and the case's signature (conformance/classes.py)
gained nothing: a shrunk case carries only the options its failure needs. It works on
the case itself, so catalogue and fuzzed cases shrink alike, within a call budget.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from conformance.catalogue import grad_output_for
from conformance.model import Case
from conformance.oracles.scipy_ref import ScipyOracle

_SCIPY = ScipyOracle()


def _with_grad_output(case: Case) -> Case:
    """``case`` with a grad_output of its output's shape and dtype (none for an invalid case)."""
    arrays = {k: v for k, v in case.arrays.items() if k != "grad_output"}
    c = Case(case.loss, arrays, dict(case.kwargs), case.origin, case.reason)
    if "grad_output" in case.arrays:
        ref = _SCIPY.evaluate(c, want_grad=False)
        if ref.error is None:
            old = np.asarray(case.arrays["grad_output"])
            g = old if old.shape == ref.value.shape else grad_output_for(ref.value.shape, ref.dtype or old.dtype)
            c.arrays["grad_output"] = np.asarray(g, dtype=old.dtype)
    return c


def _replace(case: Case, arrays=None, kwargs=None) -> Case:
    a = dict(case.arrays)
    a.update(arrays or {})
    a = {k: v for k, v in a.items() if v is not None}
    return _with_grad_output(Case(case.loss, a, dict(case.kwargs if kwargs is None else kwargs), case.origin,
                                  case.reason))


def _class_axis(case):
    return 0 if case.arrays["input"].ndim == 1 else 1


def _steps(case: Case) -> Iterator[Case]:
    """Simpler variants of ``case``, simplest-first within each kind."""
    a, kw = case.arrays, case.kwargs
    x, t = np.asarray(a["input"]), np.asarray(a["target"])
    for k in ("weight", "pos_weight", "linear_bias"):
        if k in a:
            yield _replace(case, {k: None})
    for k in ("label_smoothing", "ignore_index"):
        if k in kw:
            kw2 = {q: v for q, v in kw.items() if q != k}
            if k == "ignore_index" and np.issubdtype(t.dtype, np.integer):
                t2 = np.where(t == kw[k], 0, t).astype(t.dtype)
                yield _replace(case, {"target": t2}, kw2)
            yield _replace(case, kwargs=kw2)
    if kw.get("reduction", "mean") != "mean":
        yield _replace(case, kwargs={q: v for q, v in kw.items() if q != "reduction"})
        if kw.get("reduction") not in ("sum", None) and isinstance(kw.get("reduction"), str):
            yield _replace(case, kwargs={**kw, "reduction": "sum"})
    if x.ndim and not x.flags.c_contiguous:
        yield _replace(case, {"input": np.ascontiguousarray(x)})
    if case.loss in ("cross_entropy", "nll_loss") and x.ndim == 1 and t.shape != x.shape:
        yield _replace(case, {"input": x[None, :], "target": t.reshape(1)})     # unbatched -> a batch of one
    class_index = case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 2 and t.shape != x.shape
    prob = case.loss == "cross_entropy" and t.shape == x.shape and x.ndim >= 1
    if case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 2:
        n = x.shape[0]
        if t.ndim >= 1 and t.shape[0] == n and n > 1:
            for keep in (slice(0, 1), slice(0, n // 2), slice(n // 2, n)):
                yield _replace(case, {"input": x[keep], "target": t[keep]})
            for i in range(1, min(n, 6)):
                yield _replace(case, {"input": x[i:i + 1], "target": t[i:i + 1]})
        for ax in range(2, x.ndim):
            if x.shape[ax] > 1:
                sl = [slice(None)] * x.ndim
                sl[ax] = slice(0, 1)
                tsl = [slice(None)] * t.ndim
                if class_index and t.ndim == x.ndim - 1:
                    tsl[ax - 1] = slice(0, 1)
                yield _replace(case, {"input": x[tuple(sl)], "target": t[tuple(tsl)] if not prob else
                                      t[tuple(sl)]})
        if x.ndim > 2 and all(d == 1 for d in x.shape[2:]) and class_index:
            yield _replace(case, {"input": x.reshape(x.shape[:2]), "target": t.reshape(t.shape[:1])})
    C = x.shape[_class_axis(case)] if case.loss in ("cross_entropy", "nll_loss") and x.ndim >= 1 else 0
    if C > 2 and (class_index or x.ndim == 1) and np.issubdtype(t.dtype, np.integer) and t.shape != x.shape:
        ii = kw.get("ignore_index", -100)
        for k in sorted({2, C // 2, min(C - 1, 8)}):
            if 2 <= k < C and not (0 <= ii < C and ii >= k):
                w = a.get("weight")
                inside = (t != ii) & (t >= 0) & (t < C)          # out-of-range targets stay out of range
                t2 = np.where(inside, t % k, np.where((t != ii) & (t >= C), t - C + k, t)).astype(t.dtype)
                yield _replace(case, {"input": np.take(x, range(k), axis=_class_axis(case)), "target": t2,
                                      "weight": None if w is None else np.asarray(w)[:k]})
    if case.loss not in ("cross_entropy", "nll_loss") and x.ndim and t.shape == x.shape:
        for ax in range(x.ndim):
            if x.shape[ax] > 1:
                sl = [slice(None)] * x.ndim
                sl[ax] = slice(0, 1)
                new = {"input": x[tuple(sl)], "target": t[tuple(sl)]}
                for k in ("weight", "pos_weight"):
                    if k in a and np.ndim(a[k]) == x.ndim and np.shape(a[k])[ax] == x.shape[ax]:
                        new[k] = np.asarray(a[k])[tuple(sl)]
                    elif k in a and np.ndim(a[k]) and ax == x.ndim - 1 and np.shape(a[k])[-1] == x.shape[ax]:
                        new[k] = np.asarray(a[k])[..., :1]
                yield _replace(case, new)
    if x.dtype.kind == "f" and x.size:
        with np.errstate(all="ignore"):
            simple = np.where(np.isfinite(x), np.round(x.astype(np.float64), 1), x).astype(x.dtype)
        if not np.array_equal(simple, x, equal_nan=True):
            yield _replace(case, {"input": simple})


def shrink(case: Case, still_fails: Callable[[Case], bool], max_calls: int) -> tuple[Case, int]:
    """The simplest variant of ``case`` for which ``still_fails`` holds, and the calls spent.

    ``still_fails`` is called at most ``max_calls`` times; it must say whether the
    candidate fails the variant the same way (the caller's class predicate).
    """
    calls = 0
    improved = True
    while improved and calls < max_calls:
        improved = False
        for cand in _steps(case):
            if calls >= max_calls:
                break
            calls += 1
            try:
                ok = still_fails(cand)
            except Exception:          # a variant the oracles cannot handle is simply not simpler
                ok = False
            if ok:
                case, improved = cand, True
                break
    return case, calls
