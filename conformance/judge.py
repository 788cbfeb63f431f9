"""Judging: one case on one candidate -> CheckResults, against the oracles' references.

:class:`Judge` holds what a campaign accumulates while judging: the oracles, a
cache of references per case, the results, the findings and the progress
counters. Per case, the scipy oracle gives torch's semantics in float64, the
mpmath oracle the exact value for small cases, and the torch oracle is
cross-checked against both (its disagreements become Findings, never silent
picks). A candidate that differs from torch's semantics but matches the exact
value gets ``torch_differs``. An invalid case that one of the candidate's
declared extensions legalises (conformance/extensions.py) is judged as a value
case against the references of its canonical form.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from conformance import extensions
from conformance.catalogue import grad_output_for
from conformance.compare import compare
from conformance.config import CampaignConfig, ProgressCallback, ProgressEvent
from conformance.model import FAILING, Case, CheckResult, Finding
from conformance.oracles import OracleUnavailable, make_oracle
from conformance.tolerances import tolerance
from conformance.worker import Worker


def _case_key(case: Case) -> str:
    h = hashlib.sha1(case.loss.encode())
    for k in sorted(case.arrays):
        a = np.asarray(case.arrays[k])
        h.update(f"{k}{a.dtype}{a.shape}{a.flags.c_contiguous}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(sorted(case.kwargs.items())).encode())
    return h.hexdigest()


def _merge(s, e):
    """Torch-semantics reference with exact values wherever both are finite."""
    if e is None:
        return s
    return np.where(np.isfinite(s) & np.isfinite(e), e, s)


def _rounded_overflow(want, dtype):
    """``want`` with the values that round to +-inf in ``dtype`` replaced by that infinity.

    A correctly rounded result beyond the dtype's range is infinite (float16's 65504 is
    reached by a few hundred losses of 100); the float64 references do not overflow there.
    """
    if want is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.asarray(want).astype(dtype)
    return np.where(np.isinf(r) & np.isfinite(want), r.astype(np.float64), want)



class Judge:
    """Judges cases for a campaign and keeps its results, findings and progress."""

    def __init__(self, config: CampaignConfig, progress: ProgressCallback | None):
        self.config, self.progress = config, progress
        self.oracles, self.unavailable = {}, {}
        for name in dict.fromkeys(["scipy", *config.oracles]):
            try:
                self.oracles[name] = make_oracle(name)
            except OracleUnavailable as exc:
                self.unavailable[name] = str(exc)
        self.results: list[CheckResult] = []
        self.findings: dict[tuple, list] = {}
        self.cases_run: Counter = Counter()
        self._refs: dict[str, tuple] = {}
        self._calls: dict[str, Case] = {}   # case id -> the case as sent, where it differs (extensions)
        self.done = self.total = 0
        self.failures = 0

    # ----------------------------------------------------------------- references and findings
    def _finding(self, kind, case, message):
        key = (kind, case.loss, case.origin.split("[")[0])
        if key in self.findings:
            self.findings[key][1] += 1
        else:
            self.findings[key] = [Finding(kind, case.loss, message, case.describe()), 1]

    def references(self, case: Case):
        """(scipy reference, exact reference or None), cached per case, with the oracle cross-checks."""
        key = _case_key(case)
        if key not in self._refs:
            s = self.oracles["scipy"].evaluate(case)
            mp = self.oracles.get("mpmath")
            e = mp.evaluate(case) if (mp is not None and s.error is None and mp.applies(case)) else None
            self._cross_check(case, s, e)
            self._refs[key] = (s, e)
        return self._refs[key]

    def _cross_check(self, case, s, e):
        tor = self.oracles.get("torch")
        if tor is None:
            return
        if s.error is not None or case.expect_error:
            te = tor.native_error(case)
            if te != s.error or (case.expect_error and case.expect_error != s.error):
                self._finding("oracle_disagreement", case, f"expected exception: spec {case.expect_error}, "
                              f"scipy oracle {s.error}, torch {te}")
            return
        t = tor.evaluate(case)
        if t.error is not None:
            self._finding("oracle_disagreement", case, f"torch (float64) raises {t.error} on a case the spec "
                          "calls valid")
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
                self._finding("oracle_disagreement", case, f"{case.origin}: {kind}: torch float64 and the scipy oracle disagree: {what}")
            if ev is not None and tv.shape == ev.shape:
                c = compare(tv, ev, tol, "float64", desc)
                nan_limit = np.isnan(tv) & ~np.isnan(ev)
                if nan_limit.any():
                    i = tuple(int(k) for k in np.argwhere(np.atleast_1d(nan_limit))[0])
                    self._finding("torch_nan_limit", case, f"{case.origin}: {kind}: torch gives nan at {list(i)} "
                                  f"where the exact limit is {float(np.atleast_1d(ev)[i])!r} (spec 14)")
                elif not c.value_ok:
                    self._finding("torch_inexact", case, f"{case.origin}: {kind}: torch float64 is {c.measure.max_ulp:.3g} ulp from "
                                  f"the exact value at {c.measure.worst_index} (got {c.measure.worst_got!r}, exact "
                                  f"{c.measure.worst_want!r})")

    # ----------------------------------------------------------------- judging one case
    def _judge(self, case, kind, got, s_val, e_val, dtype):
        tol, desc = tolerance(case, kind, dtype, ref_exact=e_val is not None)
        s_val, e_val = _rounded_overflow(s_val, dtype), _rounded_overflow(e_val, dtype)
        c = compare(got, _merge(s_val, e_val), tol, dtype, desc)
        val = "pass" if c.value_ok else "fail"
        pat = "pass" if c.pattern_ok else "fail"
        if "fail" in (val, pat) and e_val is not None:
            c2 = compare(got, e_val, tol, dtype, desc)
            if c2.value_ok and c2.pattern_ok:   # right by the exact value, different from torch's semantics
                val = "torch_differs" if val == "fail" else val
                pat = "torch_differs" if pat == "fail" else pat
        return val, pat, c

    def evaluate(self, case: Case, case_id: str, worker: Worker, feats, spec: str) -> list[CheckResult]:
        """Run one case on one candidate; returns one CheckResult per check made."""
        s, e = self.references(case)
        call, note, used = case, "", []
        if s.error is not None and feats.extensions:
            case, call, used = self.legalise(case, feats)
            if used:
                torch_error = s.error
                s, e = self.references(case)
                note = (f"extension {', '.join(used)} declared: torch raises {torch_error} here; judged against "
                        "the reference of the canonical form (int64 target, weight in the input's dtype)")
        if s.error is not None and not feats.has("errors"):
            return []                  # an invalid case for a candidate that declares no error checks
        if used:
            self._calls[case_id] = call
        self.cases_run[case.loss] += 1
        desc = call.describe()
        if used:
            desc["extensions"] = used
        oracle = "mpmath" if e is not None else "scipy"
        out: list[CheckResult] = []

        def res(check, status, message="", error=None):
            message = "; ".join(m for m in (message, note) if m)
            out.append(CheckResult(spec, case.loss, check, status, case_id, desc, message, error, None, oracle))

        fwd = worker.call(call.loss, call.arrays, call.kwargs, False, self.config.case_timeout_s)
        if s.error is not None:
            if fwd.status == "raised":
                ok = fwd.exc_type == s.error
                res("error_semantics", "pass" if ok else "fail",
                    f"raised {fwd.exc_type} as torch does" if ok else
                    f"wrong exception: raised {fwd.exc_type} ({fwd.message}); torch raises {s.error}")
            elif fwd.status == "ok":
                res("error_semantics", "fail", f"missing error: returned a value where torch raises {s.error}")
            else:
                res("error_semantics", fwd.status, fwd.message)
            return out
        if fwd.status != "ok":
            res("value", "error" if fwd.status == "raised" else fwd.status,
                f"raised {fwd.exc_type}: {fwd.message}" if fwd.status == "raised" else fwd.message)
        else:
            self._forward_checks(case, fwd, s, e, res)
        if feats.has("backward") and "grad_output" in case.arrays and s.grad is not None:
            bwd = worker.call(call.loss + "_backward", call.arrays, call.kwargs, True, self.config.case_timeout_s)
            if bwd.status != "ok":
                res("grad_input", "error" if bwd.status == "raised" else bwd.status,
                    f"raised {bwd.exc_type}: {bwd.message}" if bwd.status == "raised" else bwd.message)
            else:
                self._grad_check(case, bwd, s, e, res)
        return out

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

    def _forward_checks(self, case, fwd, s, e, res):
        got, want_dtype = fwd.value, s.dtype
        if got.dtype.kind != "f" or got.shape != s.value.shape:
            res("shape_dtype", "fail", f"got {got.dtype} {got.shape}, want {want_dtype} {s.value.shape}")
            return
        res("shape_dtype", "pass" if str(got.dtype) == want_dtype else "fail",
            "" if str(got.dtype) == want_dtype else f"dtype {got.dtype}, torch returns {want_dtype}")
        val, pat, c = self._judge(case, "value", got, s.value, e and e.value, want_dtype)
        msg = f"{c.measure.n_bad} of {c.measure.n_total} elements outside the tolerance" if val == "fail" else ""
        if fwd.modified:
            val, msg = "fail", f"modified its input(s) {fwd.modified} in place"
        res("nan_pattern", pat, "; ".join(c.pattern_examples) if pat != "pass" else "", None)
        res("value", val, msg, c.measure)

    def _grad_check(self, case, bwd, s, e, res):
        got, x = bwd.value, case.arrays["input"]
        if got.dtype.kind != "f" or got.shape != x.shape:
            res("grad_input", "fail", f"gradient is {got.dtype} {got.shape}, want {x.dtype} {x.shape}")
            return
        val, pat, c = self._judge(case, "grad", got, s.grad, e and e.grad, str(x.dtype))
        status = "fail" if "fail" in (val, pat) else "torch_differs" if "torch_differs" in (val, pat) else "pass"
        msgs = []
        if val == "fail":
            msgs.append(f"{c.measure.n_bad} of {c.measure.n_total} elements outside the tolerance")
        if pat == "fail":
            msgs.append("NaN/inf pattern: " + "; ".join(c.pattern_examples))
        if str(got.dtype) != str(x.dtype):
            status, msgs = "fail", msgs + [f"gradient dtype {got.dtype}, input is {x.dtype}"]
        if bwd.modified:
            status, msgs = "fail", msgs + [f"modified its input(s) {bwd.modified} in place"]
        res("grad_input", status, "; ".join(msgs), c.measure)

    # ----------------------------------------------------------------- reproducers and progress
    def _reproduce(self, case, r: CheckResult) -> None:
        try:
            from conformance.reproducer import write_reproducer
        except ImportError:            # the reports package is optional for the engine
            return
        case = self._calls.get(r.case_id, case)        # the arrays the candidate was given
        try:
            r.reproducer = write_reproducer(case, candidate_spec=r.candidate, check=r.check, case_id=r.case_id,
                                            report_dir=self.config.report_dir, oracle=r.oracle,
                                            extensions=tuple(r.case.get("extensions", ())))
        except Exception as exc:       # a report problem must not lose the result itself
            r.message += f" (no reproducer: {type(exc).__name__}: {exc})"

    def record(self, case, results):
        for r in results:
            if r.status in FAILING:
                self.failures += 1
                self._reproduce(case, r)
            if r.status == "torch_differs":
                self._finding("torch_nan_limit" if r.check == "nan_pattern" else "torch_differs", case,
                              f"{r.candidate}: {r.check} differs from torch but matches the exact value (spec 14)")
        self.results.extend(results)

    def tick(self, label, n=1):
        self.done += n
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(ProgressEvent(self.done, self.total, label, self.failures))
