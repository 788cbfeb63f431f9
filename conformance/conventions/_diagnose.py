"""Diagnosis: which known conventions explain a candidate's failing cases.

A failing check is *explained* by a convention when the candidate's output for
it (value, gradient, shape/dtype, or its raising or not raising) matches the
convention's float64 reference within the judge's tolerance policy
(conformance.tolerances.tolerance, conformance.compare.compare), while it does
not match torch's, and the convention's reference itself is distinguishable
from torch's at that tolerance. Cases no single convention explains are tried
against pairs of the conventions that change something for them (bounded).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from conformance import extensions
from conformance.compare import compare
from conformance.conventions._match import Matcher, rounded, same_outcome
from conformance.conventions._library import CONVENTIONS, Convention
from conformance.conventions._semantics import TORCH, Outcome, Semantics, evaluate
from conformance.extensions import EXTENSIONS
from conformance.model import Case
from conformance.oracles.validate import expected_error

#: Pairs are tried only among this many conventions that change a case, and at most
#: PAIR_BUDGET pair evaluations per diagnose() call (each is one float64 reference).
MAX_PAIR_MEMBERS = 8
PAIR_BUDGET = 600

__all__ = ["FailedCase", "diagnose", "failed_checks"]


@dataclass
class FailedCase:
    """One failing check of a candidate, as the judge saw it."""

    case: Case                         # the arrays / kwargs the candidate was given
    check: str                         # one of conformance.model.CHECKS
    got_value: np.ndarray | None       # the candidate's forward output (None: it raised / not run)
    got_grad: np.ndarray | None        # the candidate's input gradient (None: not checked)
    got_error: str | None              # exception type name if it raised


def _explains(fc: FailedCase, o: Outcome, t: Outcome, m: Matcher) -> bool:
    """Whether outcome ``o`` (a convention's) explains the failing check ``fc``; ``t`` is torch's."""
    case, check = fc.case, fc.check
    if t.error is not None:                       # torch raises here
        if fc.got_error is not None or o.error is not None:
            return False                          # both raise: a wrong type is no convention
        if not o.determined:
            return True
        dt = o.dtype or str(case.arrays["input"].dtype)
        return fc.got_value is not None and m.match(fc.got_value, o.value, o.case, "value", dt, True)
    if fc.got_error is not None:                  # raised where torch returns
        return o.error is not None
    if o.error is not None or not o.determined:
        return False
    if check in ("value", "nan_pattern"):
        got_dt = str(np.asarray(fc.got_value).dtype) if fc.got_value is not None else None
        if o.dtype != t.dtype and got_dt == o.dtype:
            # another result dtype: the values are judged at that dtype's precision
            return m.match(fc.got_value, o.value, case, "value", o.dtype, True)
        if m.match(fc.got_value, t.value, case, "value", t.dtype) or m.match(o.value, t.value, case, "value", t.dtype):
            return False
        return m.match(fc.got_value, o.value, case, "value", t.dtype, True)
    if check == "grad_input":
        dt = str(case.arrays["input"].dtype)
        if o.grad is None or t.grad is None:
            return False
        if m.match(fc.got_grad, t.grad, case, "grad", dt) or m.match(o.grad, t.grad, case, "grad", dt):
            return False
        return m.match(fc.got_grad, o.grad, case, "grad", dt, True)
    if check == "shape_dtype":
        got = fc.got_value
        if got is None:
            return False
        got = np.asarray(got)
        if o.value.shape != t.value.shape:
            return got.shape == o.value.shape and m.match(got, o.value, case, "value", t.dtype, True)
        if o.dtype != t.dtype:
            return str(got.dtype) == o.dtype and got.shape == t.value.shape and got.dtype != np.dtype(t.dtype)
    return False


class _Cache:
    def __init__(self):
        self._out: dict = {}

    def get(self, case: Case, sem: Semantics) -> Outcome:
        key = (id(case), sem)
        if key not in self._out:
            self._out[key] = (case, evaluate(case, sem))
        return self._out[key][1]


def _relevant(conv: Convention, fc: FailedCase) -> bool:
    return fc.case.loss in conv.losses and fc.check in conv.checks


def _single(conv: Convention, fc: FailedCase, t: Outcome, cache: _Cache, m: Matcher) -> tuple[bool, bool]:
    """(explains, changes the case at all) for one convention."""
    changes = False
    for sem in conv.settings:
        o = cache.get(fc.case, sem)
        if same_outcome(o, t, m):
            continue
        changes = True
        if _explains(fc, o, t, m):
            return True, True
    return False, changes


def _label(ids: tuple[str, ...]) -> tuple[str, str]:
    convs = [CONVENTIONS[i] for i in ids]
    summary = "; and ".join(c.summary for c in convs)
    who = [f.split(" (")[0] for c in convs for f in c.followed_by]
    if who:
        summary += " (as in " + ", ".join(dict.fromkeys(who)) + ")"
    return "+".join(ids), summary


def diagnose(loss: str, failures: list[FailedCase]) -> list[dict]:
    """Which conventions explain ``failures`` (one candidate x loss).

    Returns ``[{"id", "summary", "explains": k, "of": n}, ...]`` sorted by k (descending),
    n = ``len(failures)``; a pair of conventions that explains a case no single one does
    has the id ``"a+b"``; failures nothing explains are counted under ``"unexplained"``.
    A convention whose failures are all explained by conventions listed before it is left out.
    """
    n = len(failures)
    cache, m = _Cache(), Matcher()
    counts: dict[tuple[str, ...], set[int]] = {}
    unexplained = 0
    budget = [PAIR_BUDGET]        # pair evaluations left, shared by all failures
    broken: list[str] = []
    for i, fc in enumerate(failures):
        if fc.case.loss != loss:
            raise ValueError(f"diagnose: failures: a case of {fc.case.loss!r} among the failures of {loss!r}")
        try:
            keys = _explain_one(_canonical(fc), cache, m, budget)
        except Exception as exc:     # a case the references cannot evaluate must not lose the report
            broken.append(f"{type(exc).__name__}: {exc}")
            keys = []
        for key in keys:
            counts.setdefault(key, set()).add(i)
        if not keys:
            unexplained += 1
    out = []
    for ids in _parsimonious(counts):
        cid, summary = _label(ids)
        out.append({"id": cid, "summary": summary, "explains": len(counts[ids]), "of": n})
    if unexplained:
        summary = "no known convention (alone or in pairs) reproduces these outputs"
        if broken:
            summary += f"; {len(broken)} could not be re-evaluated ({broken[0]})"
        out.append({"id": "unexplained", "summary": summary, "explains": unexplained, "of": n})
    return out


def _parsimonious(explained: dict[tuple[str, ...], set[int]]) -> list[tuple[str, ...]]:
    """The explanations worth naming, most failures first: one whose failures are all explained
    by those ranked above it is left out (a count mean of a zero-weight batch is 0 too, but
    weighted_mean_by_count already says why)."""
    ranked = sorted(explained, key=lambda k: (-len(explained[k]), len(k), "+".join(k)))
    kept, covered = [], set()
    for key in ranked:
        if not explained[key] <= covered:
            kept.append(key)
            covered |= explained[key]
    return kept


def _canonical(fc: FailedCase) -> FailedCase:
    """A value check of a case torch rejects was judged through a declared extension (an int32
    target, a float64 weight): re-judge it against the canonical form, as the judge did."""
    if fc.check == "error_semantics" or expected_error(fc.case.loss, fc.case.arrays, fc.case.kwargs) is None:
        return fc
    arrays, used = extensions.canonical(fc.case.loss, fc.case.arrays, tuple(EXTENSIONS))
    if not used or expected_error(fc.case.loss, arrays, fc.case.kwargs) is not None:
        return fc
    c = fc.case
    return FailedCase(Case(c.loss, arrays, c.kwargs, c.origin, c.reason), fc.check, fc.got_value, fc.got_grad,
                      fc.got_error)


def _explain_one(fc: FailedCase, cache: "_Cache", m: Matcher, budget: list[int]) -> list[tuple[str, ...]]:
    """The conventions (1-tuples) or pairs (2-tuples) that explain one failing check."""
    t = cache.get(fc.case, TORCH)
    hits, undetermined, changers = [], [], []
    for cid, conv in CONVENTIONS.items():
        if not _relevant(conv, fc):
            continue
        ok, changes = _single(conv, fc, t, cache, m)
        if changes:
            changers.append(cid)
        if ok:
            sem_undet = any(not cache.get(fc.case, s).determined for s in conv.settings)
            (undetermined if sem_undet else hits).append((cid,))
    # a convention that predicts the value is more specific than one that only predicts acceptance
    if hits or undetermined:
        return hits or undetermined
    return _pairs(fc, t, changers[:MAX_PAIR_MEMBERS], cache, m, budget)


def _pairs(fc, t, members, cache, m, budget: list[int]) -> list[tuple[str, ...]]:
    order = list(CONVENTIONS)
    found = []
    for a, b in combinations(sorted(members, key=order.index), 2):
        done = False
        for sa in CONVENTIONS[a].settings:
            for sb in CONVENTIONS[b].settings:
                sem = sa.merged(sb)
                if sem is None or budget[0] <= 0:
                    continue
                budget[0] -= 1
                if _explains(fc, cache.get(fc.case, sem), t, m):
                    found.append((a, b))
                    done = True
                    break
            if done:
                break
    return found


def failed_checks(case: Case, got_value, got_grad, got_error: str | None) -> list[FailedCase]:
    """The checks on which one output differs from torch's semantics (float64 reference, judge tolerance).

    For probing a candidate on cases chosen so torch's semantics are also the exact value
    (the profile): no exact oracle and no ``torch_differs`` here; that verdict is the judge's.
    ``got_grad`` None means the gradient was not observed.
    """
    m, t = Matcher(), evaluate(case)

    def fc(check):
        return FailedCase(case, check, got_value, got_grad, got_error)

    if t.error is not None:
        return [] if got_error is not None else [fc("error_semantics")]
    if got_error is not None:
        return [fc("value")]
    out = []
    got = np.asarray(got_value)
    if got.shape != t.value.shape or got.dtype.kind != "f" or str(got.dtype) != t.dtype:
        out.append(fc("shape_dtype"))
    if got.shape == t.value.shape and not m.match(got, t.value, case, "value", t.dtype):
        c = compare(got, rounded(t.value, t.dtype), m.tol(case, "value", t.dtype), t.dtype)
        out.append(fc("value" if c.pattern_ok else "nan_pattern"))
    if got_grad is not None and t.grad is not None:
        dt = str(case.arrays["input"].dtype)
        if not m.match(got_grad, t.grad, case, "grad", dt) or np.shape(got_grad) != t.grad.shape:
            out.append(fc("grad_input"))
    return out
