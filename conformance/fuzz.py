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


#: Non-failing differences kept per (candidate, loss) and check (the rest are counted in the pass summary).
MAX_KEPT_DIFFERENCES = 3


def explore(evaluate, spec: str, worker, loss: str, feats: strategies.Features, budget: int, seed_: int,
            on_case=None) -> Exploration:
    """Fuzz ``budget`` cases of ``loss`` on the candidate; returns what was found.

    ``evaluate(case, case_id)`` runs one case (conformance/execute.py) and returns
    ``(Judgement, case as sent)`` or None; ``on_case(judgement)`` is called after each.
    """
    ex = Exploration()
    fname = loss

    def prop(case):
        if worker.timeouts[fname] >= worker.max_timeouts:
            ex.not_run += 1
            return
        ex.examples += 1
        case_id = f"{loss}/fuzz/{seed_}-{ex.examples:06d}"
        out = evaluate(case, case_id)
        if out is None:
            ex.examples -= 1
            return
        j, sent = out
        if on_case is not None:
            on_case(j)
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
        test()
    return ex
