"""The campaign engine: candidates x losses x (catalogue, then fuzzing) -> RunResults.

For every candidate a worker process is started (worker.py); for every loss it
supports, the catalogue's named cases run first, then hypothesis draws
``config.max_examples`` cases (seeded with ``config.seed``) and shrinks the
first failure to a minimal case. Each case is judged in the parent: the scipy
oracle gives torch's semantics in float64, the mpmath oracle the exact value
for small cases, and the torch oracle is cross-checked against both (its
disagreements become Findings, never silent picks). A candidate that differs
from torch's semantics but matches the exact value gets ``torch_differs``.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
import time
import warnings
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import errors as hyp_errors

from conformance import candidates, catalogue, strategies
from conformance.compare import compare
from conformance.config import CampaignConfig, ProgressCallback, ProgressEvent
from conformance.model import CHECKS, FAILING, CandidateInfo, Case, CheckResult, Finding, RunResults
from conformance.oracles import OracleUnavailable, make_oracle
from conformance.tolerances import tolerance
from conformance.worker import Worker

#: Failing calls per (candidate, loss) that hypothesis may spend shrinking; later failures are not shrunk.
MAX_SHRINK_CALLS = 40
#: Shrinking may evaluate at most max(MIN_SHRINK_EVALS, budget) cases beyond the budget (passing ones
#: included): on the CUDA simulator a call takes ~0.5 s and an unbounded shrink took 150 calls.
MIN_SHRINK_EVALS = 20
#: Of those, calls that crashed the worker (each costs a process restart). Timeouts are never shrunk.
MAX_CRASH_SHRINKS = 6
#: On the CUDA simulator (~0.3 s per call) the catalogue is cut down: inputs of at most this many
#: elements, and one reduction of each entry that exists for all three (per dtype).
SIM_MAX_ELEMENTS = 64


class _Failed(Exception):
    """Raised inside the hypothesis property so that it shrinks the case."""


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


def _versions() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for pkg in ("numpy", "numba", "numba-cuda", "scipy", "torch", "mpmath", "hypothesis", "nbxent"):
        try:
            env[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    return env


class _Campaign:
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
            if c is None or not (c.value_ok and c.pattern_ok):
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
        if s.error is not None and not feats.has("errors"):
            return []                  # an invalid case for a candidate that declares no error checks
        self.cases_run[case.loss] += 1
        desc = case.describe()
        oracle = "mpmath" if e is not None else "scipy"
        out: list[CheckResult] = []

        def res(check, status, message="", error=None):
            out.append(CheckResult(spec, case.loss, check, status, case_id, desc, message, error, None, oracle))

        fwd = worker.call(case.loss, case.arrays, case.kwargs, False, self.config.case_timeout_s)
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
            bwd = worker.call(case.loss + "_backward", case.arrays, case.kwargs, True, self.config.case_timeout_s)
            if bwd.status != "ok":
                res("grad_input", "error" if bwd.status == "raised" else bwd.status,
                    f"raised {bwd.exc_type}: {bwd.message}" if bwd.status == "raised" else bwd.message)
            else:
                self._grad_check(case, bwd, s, e, res)
        return out

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
        try:
            r.reproducer = write_reproducer(case, candidate_spec=r.candidate, check=r.check, case_id=r.case_id,
                                            report_dir=self.config.report_dir, oracle=r.oracle)
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

    # ----------------------------------------------------------------- catalogue and fuzzing
    @staticmethod
    def catalogue_cases(loss, feats, simulated) -> list[Case]:
        """The catalogue entries this candidate gets (cut down on the CUDA simulator)."""
        dtypes = tuple(d for d in feats.dtypes if d in ("float32", "float64"))
        families, out = set(), []
        for case in catalogue.entries(loss, dtypes):
            if not strategies.fits(case, feats):
                continue
            if simulated:
                family = re.sub(r"_(none|mean|sum)\[", "[", case.origin)
                if case.arrays["input"].size > SIM_MAX_ELEMENTS or family in families:
                    continue
                families.add(family)
            out.append(case)
        return out

    def run_catalogue(self, spec, worker, loss, feats, cases):
        for case in cases:
            self.record(case, self.evaluate(case, f"{loss}/catalogue/{case.origin}", worker, feats, spec))
            self.tick(f"{spec} / {loss} / catalogue")

    def run_fuzz(self, spec, worker, loss, feats, budget):
        state = {"n": 0, "fails": 0, "crashes": 0, "last": None, "worst": {}, "differs": None}

        def prop(case):
            if state["n"] >= budget + max(MIN_SHRINK_EVALS, budget):
                return                 # shrinking budget spent: the smallest failure so far is reported
            state["n"] += 1
            case_id = f"{loss}/fuzz/{self.config.seed}-{state['n']:06d}"
            results = self.evaluate(case, case_id, worker, feats, spec)
            self.tick(f"{spec} / {loss} / fuzz")
            failing = [r for r in results if r.status in FAILING]
            for r in results:
                if r.status == "pass" and r.error is not None:
                    old = state["worst"].get(r.check)
                    if old is None or r.error.max_ulp > old.max_ulp:
                        state["worst"][r.check] = r.error
                state["worst"].setdefault(r.check, None)
                if r.status == "torch_differs" and state["differs"] is None:
                    state["differs"] = (case, r)
            if failing:
                crashed = any(r.status == "crash" for r in failing)
                if state["fails"] < MAX_SHRINK_CALLS and all(r.status != "timeout" for r in failing) \
                        and not (crashed and state["crashes"] >= MAX_CRASH_SHRINKS):
                    state["fails"] += 1
                    state["crashes"] += crashed
                    state["last"] = (case, failing)
                    raise _Failed(case_id)
                if state["last"] is None:
                    state["last"] = (case, failing)

        test = seed(self.config.seed)(settings(
            max_examples=budget, database=None, deadline=None, derandomize=False, report_multiple_bugs=False,
            phases=[Phase.explicit, Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
            suppress_health_check=list(HealthCheck))(given(strategies.cases(loss, feats))(prop)))
        try:
            with warnings.catch_warnings():   # hypothesis warns about the size of a failing case's repr
                warnings.simplefilter("ignore", hyp_errors.HypothesisWarning)
                test()
        except (_Failed, hyp_errors.Flaky):
            pass
        n = state["n"]
        failed_checks = set()
        if state["last"] is not None:
            case, failing = state["last"]
            for r in failing:
                r.message = (f"minimal case after shrinking ({n} examples run): " + r.message).rstrip(": ")
                failed_checks.add(r.check)
            self.record(case, failing)
        for check in CHECKS:
            if check in state["worst"] and check not in failed_checks:
                worst = state["worst"][check]
                msg = f"{n} fuzzed examples (seed {self.config.seed}) passed"
                if worst is not None:
                    msg += f"; worst {worst.max_ulp:.3g} ulp vs the reference"
                self.results.append(CheckResult(spec, loss, check, "pass", f"{loss}/fuzz/{self.config.seed}-all",
                                                {"loss": loss, "origin": "fuzz", "examples": n}, msg, worst))
        if state["differs"] is not None:
            self.record(*state["differs"][:1], [state["differs"][1]])


#: Warm-up calls per dtype: catalogue cases with distinct feature sets reach distinct kernels.
WARM_UPS_PER_DTYPE = 6


def _warm_up_requests(loss, feats, cat) -> list:
    """Forward and backward calls on small valid catalogue cases with distinct features, per dtype."""
    out, seen, per_dtype = [], set(), Counter()
    for case in cat:
        dt = str(case.arrays["input"].dtype)
        key = (dt, case.arrays["input"].ndim, frozenset(strategies.case_features(case)))
        if case.expect_error or key in seen or case.arrays["input"].size == 0 \
                or case.arrays["input"].size > 4096 or per_dtype[dt] >= WARM_UPS_PER_DTYPE:
            continue
        seen.add(key)
        per_dtype[dt] += 1
        out.append((loss, case.arrays, case.kwargs, False))
        if feats.has("backward") and "grad_output" in case.arrays:
            out.append((loss + "_backward", case.arrays, case.kwargs, True))
    return out


def run_campaign(config: CampaignConfig, progress: ProgressCallback | None = None) -> RunResults:
    """Run every selected candidate on every selected loss; returns the results model.

    Raises:
        conformance.candidates.CandidateLoadError: a candidate cannot be imported or
            declares an invalid CONFORMANCE dict (a setup error, not a failure).
    """
    t0 = time.time()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    camp = _Campaign(config, progress)
    workers = {}
    infos = []
    try:
        for spec in config.candidates:      # start all workers first: their imports overlap
            workers[spec] = Worker(spec, candidates.worker_env(spec), tuple(config.dtypes),
                                   start_timeout_s=max(config.case_timeout_s, 60.0))
        plans = []
        for spec, worker in workers.items():
            probe = worker.wait_ready()
            simulated = candidates.is_simulated(spec)
            sup = {l: probe[l]["features"] for l in config.losses}
            miss = {l: probe[l]["missing"] for l in config.losses}
            note = "runs on the CUDA simulator (no GPU): small budget" if simulated else ""
            infos.append(CandidateInfo(spec, spec, sup, miss, note))
            for loss in config.losses:
                if not probe[loss]["features"] or not probe[loss]["dtypes"]:
                    continue
                feats = strategies.features_from_probe(probe[loss])
                if simulated:
                    feats = strategies.Features(feats.names - {"large_classes"}, feats.dtypes, feats.max_ndim,
                                                min(feats.max_classes, 64), feats.reductions)
                budget = config.simulator_max_examples if simulated else config.max_examples
                cat = camp.catalogue_cases(loss, feats, simulated) if config.run_catalogue else []
                plans.append((spec, worker, loss, feats, budget, cat))
        camp.total = sum(p[4] + len(p[5]) for p in plans)
        # Loss by loss, candidate by candidate; when the parent is done with a candidate for one
        # loss, that candidate's worker compiles its next loss (a warm-up) while the parent judges
        # the other candidates. Warm-ups go through the same pipe, so only idle workers get them.
        plans.sort(key=lambda p: config.losses.index(p[2]))
        upcoming = {}
        for i, p in enumerate(plans):
            upcoming.setdefault(p[0], []).append(i)
        for idx in upcoming.values():
            _, worker, loss, feats, _, cat = plans[idx[0]]
            worker.warm_up(_warm_up_requests(loss, feats, cat))
        for i, (spec, worker, loss, feats, budget, cat) in enumerate(plans):
            camp.run_catalogue(spec, worker, loss, feats, cat)
            if budget > 0:
                camp.run_fuzz(spec, worker, loss, feats, budget)
            later = [j for j in upcoming[spec] if j > i]
            if later:
                _, _, nloss, nfeats, _, ncat = plans[later[0]]
                worker.warm_up(_warm_up_requests(nloss, nfeats, ncat))
    finally:
        for w in workers.values():
            w.close()
    env = _versions()
    env.update({f"oracle_{k}": f"unavailable: {v}" for k, v in camp.unavailable.items()})
    env["oracles"] = ", ".join(camp.oracles)
    findings = []
    for f, count in camp.findings.values():
        if count > 1:
            f.message += f" (seen in {count} cases)"
        findings.append(f)
    return RunResults(
        seed=config.seed, started=started,
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.time() - t0, 3),
        config={k: getattr(config, k) for k in config.__dataclass_fields__},
        environment=env, candidates=infos, results=camp.results, findings=findings,
        cases_run=dict(camp.cases_run))
