"""Fuzzing: hypothesis draws cases for one candidate and loss, and shrinks the first failure.

:func:`run_fuzz` draws ``budget`` cases from conformance/strategies.py (seeded
with the campaign's seed), judges each with :class:`conformance.judge.Judge`,
and lets hypothesis shrink the first failure to a minimal case within a
bounded number of extra calls. The summary of the passing examples (worst
error per check) is one result per check.
"""
from __future__ import annotations

import warnings

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import errors as hyp_errors

from conformance import strategies
from conformance.judge import Judge
from conformance.model import CHECKS, FAILING, CheckResult
from conformance.strategies import Features
from conformance.worker import Worker

#: Failing calls per (candidate, loss) that hypothesis may spend shrinking; later failures are not shrunk.
MAX_SHRINK_CALLS = 40
#: Shrinking may evaluate at most max(MIN_SHRINK_EVALS, budget) cases beyond the budget (passing ones
#: included): on the CUDA simulator a call takes ~0.5 s and an unbounded shrink took 150 calls.
MIN_SHRINK_EVALS = 20
#: Of those, calls that crashed the worker (each costs a process restart). Timeouts are never shrunk.
MAX_CRASH_SHRINKS = 6


class _Failed(Exception):
    """Raised inside the hypothesis property so that it shrinks the case."""


def run_fuzz(judge: Judge, spec: str, worker: Worker, loss: str, feats: Features, budget: int) -> None:
    """Fuzz one candidate on one loss with ``budget`` examples; results go to ``judge``.

    The first failing example is shrunk (within the limits above) and recorded as the
    minimal case; passing examples are summarised as one ``pass`` result per check
    with the worst error seen; the first ``torch_differs`` example is recorded as is.
    """
    cap = budget + max(MIN_SHRINK_EVALS, budget)
    state = {"n": 0, "fails": 0, "crashes": 0, "last": None, "worst": {}, "differs": None, "planned": budget}

    def prop(case):
        if state["n"] >= cap:
            return                 # shrinking budget spent: the smallest failure so far is reported
        state["n"] += 1
        case_id = f"{loss}/fuzz/{judge.config.seed}-{state['n']:06d}"
        results = judge.evaluate(case, case_id, worker, feats, spec)
        failing = [r for r in results if r.status in FAILING]
        if failing and state["planned"] < cap:
            # shrinking follows: plan for its limit so the progress never reads 100% while it runs
            judge.total += cap - state["planned"]
            state["planned"] = cap
        judge.tick(f"{spec} / {loss} / fuzz")
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

    test = seed(judge.config.seed)(settings(
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
    judge.total -= state["planned"] - n      # the work actually done: the plan was an upper bound
    judge.tick(f"{spec} / {loss} / fuzz", 0)
    failed_checks = set()
    if state["last"] is not None:
        case, failing = state["last"]
        for r in failing:
            r.message = (f"minimal case after shrinking ({n} examples run): " + r.message).rstrip(": ")
            failed_checks.add(r.check)
        judge.record(case, failing)
    for check in CHECKS:
        if check in state["worst"] and check not in failed_checks:
            worst = state["worst"][check]
            msg = f"{n} fuzzed examples (seed {judge.config.seed}) passed"
            if worst is not None:
                msg += f"; worst {worst.max_ulp:.3g} ulp vs the reference"
            judge.results.append(CheckResult(spec, loss, check, "pass", f"{loss}/fuzz/{judge.config.seed}-all",
                                            {"loss": loss, "origin": "fuzz", "examples": n}, msg, worst))
    if state["differs"] is not None:
        judge.record(*state["differs"][:1], [state["differs"][1]])
