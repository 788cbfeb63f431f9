"""Fuzzing: hypothesis draws cases for one candidate and loss; every one of them is judged.

:func:`explore` draws ``budget`` cases from conformance/strategies.py (seeded with
the campaign's seed) and runs each on the candidate. A failure does not stop the
exploration: every failing case is handed back, so each distinct bug can become its
own failure class (conformance/triage.py groups and shrinks them). Passing examples
are summarised per check by their worst error.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import errors as hyp_errors

from conformance import strategies
from conformance.model import FAILING, Case, CheckResult, ErrorMeasure


@dataclass
class Exploration:
    """What fuzzing one candidate x loss found."""

    examples: int = 0                                      # cases judged
    failing: list[tuple[Case, object]] = field(default_factory=list)   # (case as sent, Judgement)
    worst: dict[str, ErrorMeasure | None] = field(default_factory=dict)   # check -> worst passing error
    differs: list[tuple[Case, CheckResult]] = field(default_factory=list)   # first torch_differs per check
    other: list[CheckResult] = field(default_factory=list)   # error_type_differs / not_run results, first few
    not_run: int = 0                                       # cases skipped (the function timed out too often)
    skipped: int = 0                                       # cases drawn but not selected (``select``)
    stopped: bool = False                                  # ended early by ``stop`` or a finished selection


class StopExploring(BaseException):
    """Raised by ``stop`` (a time budget, or every selected case seen) to end the exploration early.

    A BaseException, so hypothesis passes it through instead of treating it as a failing example."""


#: Non-failing differences kept per (candidate, loss) and check (the rest are counted in the pass summary).
MAX_KEPT_DIFFERENCES = 3


def explore(evaluate, spec: str, worker, loss: str, feats: strategies.Features, budget: int, seed_: int,
            on_case=None, stop=None, select=None, applies=None) -> Exploration:
    """Fuzz ``budget`` cases of ``loss`` on the candidate; returns what was found.

    ``evaluate(case, case_id)`` runs one case (conformance/execute.py) and returns
    ``(Judgement, case as sent)`` or None; ``on_case(judgement, case as sent)`` is called after each.
    ``stop()`` is asked before each case after the first: True ends the exploration (a time budget).
    ``select`` (a set of case ids) evaluates only those cases: the others are drawn and numbered as
    in a full exploration (``applies(case)`` says whether a case would get an id) but not run.
    """
    ex = Exploration()
    fname = loss
    left = set(select) if select is not None else None

    def prop(case):
        # a time budget never leaves a candidate x loss without a fuzzed example
        if (stop is not None and ex.examples > 0 and stop()) or (left is not None and not left):
            raise StopExploring
        if worker.timeouts[fname] >= worker.max_timeouts:
            ex.not_run += 1
            return
        ex.examples += 1
        case_id = f"{loss}/fuzz/{seed_}-{ex.examples:06d}"
        if left is not None and case_id not in left:
            if applies(case):
                ex.skipped += 1
            else:
                ex.examples -= 1
            return
        out = evaluate(case, case_id)
        if left is not None:
            left.discard(case_id)
        if out is None:
            ex.examples -= 1
            return
        j, sent = out
        if on_case is not None:
            on_case(j, sent)
        if any(r.status in FAILING for r in j.results):
            ex.failing.append((sent, j))
        for r in j.results:
            if r.status == "pass":
                old = ex.worst.get(r.check)
                if r.error is not None and (old is None or r.error.max_ulp > old.max_ulp):
                    ex.worst[r.check] = r.error
                ex.worst.setdefault(r.check, None)
            elif r.status == "torch_differs":
                ex.worst.setdefault(r.check, None)
                if sum(d[1].check == r.check for d in ex.differs) < MAX_KEPT_DIFFERENCES:
                    ex.differs.append((sent, r))
            elif r.status == "error_type_differs":
                ex.worst.setdefault(r.check, None)
                if sum(o.check == r.check for o in ex.other) < MAX_KEPT_DIFFERENCES:
                    ex.other.append(r)

    test = seed(seed_)(settings(
        max_examples=budget, database=None, deadline=None, derandomize=False,
        phases=[Phase.generate], verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck))(given(strategies.cases(loss, feats))(prop)))
    with warnings.catch_warnings():   # hypothesis warns about the size of a failing case's repr
        warnings.simplefilter("ignore", hyp_errors.HypothesisWarning)
        try:
            test()
        except StopExploring:
            ex.stopped = True
    ex.examples -= ex.skipped
    return ex
