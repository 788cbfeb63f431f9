"""References for a case: the oracles, a cache per case, and the oracles' cross-checks.

:class:`References` gives, per case, the scipy reference (torch's semantics in
float64; it also decides which cases are invalid) and the exact (mpmath)
reference where the exact oracle applies. The torch oracle, when available, is
cross-checked against both; its disagreements go to a :class:`Findings` store
as findings, never silent picks. It also knows torch's own error message for an
invalid case (the reports show it beside a candidate's different exception), and
legalises a case a candidate's declared extension makes valid.
"""
from __future__ import annotations

import hashlib

import numpy as np

from conformance import extensions
from conformance.catalogue import grad_output_for
from conformance.compare import compare
from conformance.model import Case, Finding
from conformance.oracles import OracleUnavailable, make_oracle
from conformance.tolerances import tolerance


def case_key(case: Case) -> str:
    """A digest of the case's arrays (dtype, shape, layout, bytes) and keywords."""
    h = hashlib.sha1(case.loss.encode())
    for k in sorted(case.arrays):
        a = np.asarray(case.arrays[k])
        h.update(f"{k}{a.dtype}{a.shape}{a.flags.c_contiguous}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(sorted(case.kwargs.items())).encode())
    return h.hexdigest()


class Findings:
    """Findings of a campaign, one per (kind, loss, catalogue family), with the number of cases seen."""

    def __init__(self):
        self._items: dict[tuple, list] = {}

    def add(self, kind: str, case: Case, message: str) -> None:
        key = (kind, case.loss, case.origin.split("[")[0])
        if key in self._items:
            self._items[key][1] += 1
        else:
            self._items[key] = [Finding(kind, case.loss, message, case.describe()), 1]

    def to_list(self) -> list[Finding]:
        out = []
        for f, count in self._items.values():
            g = Finding(f.kind, f.loss, f.message + (f" (seen in {count} cases)" if count > 1 else ""), f.case,
                        f.reproducer)
            out.append(g)
        return out


class References:
    """The oracles of a campaign and their references, cached per case."""

    def __init__(self, oracle_names, findings: Findings | None = None):
        self.oracles, self.unavailable = {}, {}
        for name in dict.fromkeys(["scipy", *oracle_names]):
            try:
                self.oracles[name] = make_oracle(name)
            except OracleUnavailable as exc:
                self.unavailable[name] = str(exc)
        self.findings = findings if findings is not None else Findings()
        self._refs: dict[str, tuple] = {}

    def get(self, case: Case):
        """(scipy reference, exact reference or None), cached per case, with the oracle cross-checks."""
        key = case_key(case)
        if key not in self._refs:
            s = self.oracles["scipy"].evaluate(case)
            mp = self.oracles.get("mpmath")
            e = mp.evaluate(case) if (mp is not None and s.error is None and mp.applies(case)) else None
            self._cross_check(case, s, e)
            self._refs[key] = (s, e)
        return self._refs[key]

    def torch_error_message(self, case: Case) -> str:
        """torch's own ``Type: message`` for an invalid case ('' without the torch oracle)."""
        tor = self.oracles.get("torch")
        if tor is None:
            return ""
        return tor.native_error_message(case) or ""

    def legalise(self, case: Case, feats) -> tuple[Case, Case, list[str]]:
        """For an invalid case: (reference case, case sent to the candidate, extensions used).

        The reference case is the canonical form torch accepts (extensions.canonical);
        the candidate gets the original arrays. A legalised case that is valid gets a
        ``grad_output`` (the same array in both) so its gradient is checked too.
        Without an applicable extension both are ``case`` and the list is empty.
        """
        arrays, used = extensions.canonical(case.loss, case.arrays, feats.extensions)
        if not used:
            return case, case, []
        ref = Case(case.loss, arrays, case.kwargs, case.origin, case.reason)
        call = Case(case.loss, dict(case.arrays), case.kwargs, case.origin, case.reason)
        s = self.oracles["scipy"].evaluate(ref, want_grad=False)
        if s.error is None and "grad_output" not in arrays and feats.has("backward"):
            g = grad_output_for(s.value.shape, s.dtype)
            ref.arrays["grad_output"] = call.arrays["grad_output"] = g
        return ref, call, used

    def _cross_check(self, case, s, e):
        tor = self.oracles.get("torch")
        if tor is None:
            return
        if s.error is not None or case.expect_error:
            te = tor.native_error(case)
            if te != s.error or (case.expect_error and case.expect_error != s.error):
                self.findings.add("oracle_disagreement", case, f"expected exception: catalogue {case.expect_error}, "
                                  f"scipy oracle {s.error}, torch {te}")
            return
        t = tor.evaluate(case)
        if t.error is not None:
            self.findings.add("oracle_disagreement", case, f"torch (float64) raises {t.error} on a case the "
                              "contract calls valid")
            return
        for kind, tv, sv, ev in (("value", t.value, s.value, e and e.value), ("grad", t.grad, s.grad, e and e.grad)):
            if tv is None or sv is None:
                continue
            tol, desc = tolerance(case, kind, "float64")
            c = compare(tv, sv, tol, "float64", desc) if tv.shape == sv.shape else None
            # the scipy oracle models torch's half-precision quirks (a BCE gradient floor that rounds
            # to 0), which torch in float64 cannot show: for float16 inputs only the exact value counts
            half = case.arrays["input"].dtype == np.float16
            if not half and (c is None or not (c.value_ok and c.pattern_ok)):
                what = "shape differs" if c is None else (c.pattern_examples or [f"max abs {c.measure.max_abs:.3e}"])[0]
                self.findings.add("oracle_disagreement", case,
                                  f"{case.origin}: {kind}: torch float64 and the scipy oracle disagree: {what}")
            if ev is not None and tv.shape == ev.shape:
                c = compare(tv, ev, tol, "float64", desc)
                nan_limit = np.isnan(tv) & ~np.isnan(ev)
                if nan_limit.any():
                    i = tuple(int(k) for k in np.argwhere(np.atleast_1d(nan_limit))[0])
                    self.findings.add("torch_nan_limit", case, f"{case.origin}: {kind}: torch gives nan at {list(i)} "
                                      f"where the exact limit is {float(np.atleast_1d(ev)[i])!r} "
                                      "(docs/semantics.md §14)")
                elif not c.value_ok:
                    self.findings.add("torch_inexact", case, f"{case.origin}: {kind}: torch float64 is "
                                      f"{c.measure.max_ulp:.3g} ulp from the exact value at {c.measure.worst_index} "
                                      f"(got {c.measure.worst_got!r}, exact {c.measure.worst_want!r})")
