"""The campaign: candidates x losses x (catalogue, then fuzzing) -> RunResults.

For every candidate a worker process is started (worker.py). The campaign is a list
of :class:`Plan` records, one per candidate x loss it supports: the catalogue's named
cases run first, then conformance/fuzz.py explores ``budget`` fuzzed cases (seeded
with ``config.seed``) without stopping at a failure, then the metamorphic checks the
candidate offers for that loss (conformance/relations.py, conformance/metamorphic.py);
conformance/triage.py groups the failures into classes and shrinks one representative per class. Every case is
evaluated by conformance/execute.py (references, calls, the judge) and kept by
conformance/recorder.py. While the parent works on one candidate, the others'
workers compile their next loss.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from conformance import candidates, catalogue, losses, metamorphic, strategies
from conformance.config import CampaignConfig, CheckpointCallback, ProgressCallback
from conformance.execute import Evaluator
from conformance.fuzz import explore
from conformance.shard import shard_losses
from conformance.judge import Judge
from conformance.model import CHECKS, FAILING, CandidateInfo, Case, CheckResult, ErrorMeasure, RunResults
from conformance.recorder import Recorder, versions
from conformance.references import References
from conformance.triage import triage
from conformance.worker import Worker

#: On the CUDA simulator (~0.3 s per call) the catalogue is cut down: inputs of at most this many
#: elements, and one reduction of each entry that exists for all three (per dtype).
SIM_MAX_ELEMENTS = 64
#: Warm-up calls per dtype: catalogue cases with distinct feature sets reach distinct kernels.
WARM_UPS_PER_DTYPE = 6
#: Cases per metamorphic check (conformance/metamorphic.py), and on the CUDA simulator: tiny
#: shapes, the reductions in turn; each case is one worker call making the relation's candidate calls.
RELATION_CASES = 6
SIM_RELATION_CASES = 1


@dataclass
class Plan:
    """One candidate x loss of a campaign."""

    spec: str
    worker: Worker
    loss: str
    feats: strategies.Features
    budget: int                       # fuzzed examples
    catalogue: list[Case] = field(default_factory=list)
    simulated: bool = False
    relations: list[Case] = field(default_factory=list)    # metamorphic cases (origin names the check)

    @property
    def size(self) -> int:
        return self.budget + len(self.catalogue) + len(self.relations)


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


def relation_cases(loss, entry, feats, seed, simulated) -> list[Case]:
    """The metamorphic cases a candidate gets for ``loss`` (``entry``: its probe of the loss)."""
    dtypes = tuple(d for d in entry.get("relation_dtypes", ()) if d in ("float32", "float64"))
    out = []
    for check in entry.get("relations", ()):
        n = SIM_RELATION_CASES if simulated else RELATION_CASES
        for case in metamorphic.cases(check, seed, n, dtypes) if dtypes else ():
            # a defined loss's cases go only where its features reach (a check's own entry points need nothing more)
            if not entry["features"] or case.loss != loss or strategies.fits(case, feats):
                out.append(case)
    return out


def _warm_up_requests(plan: Plan) -> list:
    """Forward and backward calls on small valid catalogue cases with distinct features, per dtype."""
    out, seen, per_dtype = [], set(), Counter()
    for case in plan.catalogue:
        dt = str(case.arrays["input"].dtype)
        key = (dt, case.arrays["input"].ndim, frozenset(strategies.case_features(case)))
        if case.expect_error or key in seen or case.arrays["input"].size == 0 \
                or case.arrays["input"].size > 4096 or per_dtype[dt] >= WARM_UPS_PER_DTYPE:
            continue
        seen.add(key)
        per_dtype[dt] += 1
        out.append((plan.loss, case.arrays, case.kwargs, False))
        if plan.feats.has("backward") and "grad_output" in case.arrays:
            grad = losses.get(plan.loss).grad_name or plan.loss + "_backward"
            out.append((grad, case.arrays, case.kwargs, not grad.endswith("_with_grad")))
    return out


def _candidate_info(spec, probe, config, simulated) -> CandidateInfo:
    sup = {l: probe[l]["features"] + [f"extension:{e}" for e in probe[l].get("extensions", ())]
           + list(probe[l].get("relations", ())) for l in config.losses}
    miss = {l: probe[l]["missing"] + list(probe[l].get("relations_missing", {})) for l in config.losses}
    na = {l: dict(probe[l].get("relations_missing", {})) for l in config.losses if probe[l].get("relations_missing")}
    notes = ["runs on the CUDA simulator (no GPU): small budget"] if simulated else []
    declared = sorted({e for l in config.losses for e in probe[l].get("extensions", ())})
    if declared:
        notes.append("declares extensions " + ", ".join(declared))
    if config.dtypes_requested:
        lacking = sorted({d for l in config.losses if probe[l]["features"] for d in config.dtypes
                          if d not in probe[l]["dtypes"]})
        if lacking:
            notes.append(f"{', '.join(lacking)} requested, but the candidate does not declare "
                         f"{'it' if len(lacking) == 1 else 'them'} (CONFORMANCE['dtypes'], docs/candidates.md): "
                         "not tested")
    if any(probe[l].get("strict_errors") for l in config.losses):
        notes.append("exception types checked strictly (declared)")
    return CandidateInfo(spec, spec, sup, miss, "; ".join(notes), na)


class _Campaign:
    def __init__(self, config: CampaignConfig, progress, checkpoint):
        self.config, self.checkpoint = config, checkpoint
        self.refs = References(config.oracles)
        self.rec = Recorder(config, progress, self.refs.findings)
        self.evaluator = Evaluator(self.refs, Judge(config.strict_errors), config.case_timeout_s)

        self.deadline = None if config.time_budget_s is None else time.monotonic() + config.time_budget_s
        self.plans_left = 0

    def run_case(self, plan: Plan, case: Case, case_id: str):
        if metamorphic.check_of(case) is not None:       # a metamorphic case (kept by the shrinker too)
            return self.evaluator.evaluate_relation(case, case_id, plan.worker, plan.spec)
        return self.evaluator.evaluate(case, case_id, plan.worker, plan.feats, plan.spec)

    def run_relations(self, plan: Plan, failing: list) -> None:
        """The metamorphic cases: failures join the triage; passes are one result per check."""
        rec, label = self.rec, f"{plan.spec} / {plan.loss} / metamorphic"
        passed: dict[str, list] = {}
        diagnoses: Counter = Counter()
        for case in plan.relations:
            check = metamorphic.check_of(case)
            j, sent = self.run_case(plan, case, f"{plan.loss}/{case.origin}")
            rec.tick(label)
            rec.cases_run[plan.loss] += 1
            for r in j.results:
                if r.status in FAILING:
                    rec.failures += 1
                    rec.results.append(r)
                    failing.append((sent, j))
                else:
                    passed.setdefault(check, []).append(r)
            diagnoses.update(j.diagnoses)
        for check, rs in passed.items():
            worst = max((r.error for r in rs if r.error is not None), key=lambda e: e.max_ulp, default=None)
            msg = f"{len(rs)} metamorphic cases (seed {self.config.seed}) passed"
            if worst is not None:
                msg += f"; worst difference {worst.max_ulp:.3g} ulp"
            rec.results.append(CheckResult(plan.spec, plan.loss, check, "pass",
                                           f"{plan.loss}/{metamorphic.ORIGIN}{check}/{self.config.seed}-all",
                                           {"loss": plan.loss, "origin": metamorphic.ORIGIN + check,
                                            "examples": len(rs)}, msg, worst or ErrorMeasure(), None, rs[0].oracle))
        if diagnoses:
            n = sum(1 for _, j in failing for r in j.results if r.status in FAILING and r.check == "shard_split")
            rec.add_diagnoses(plan.spec, plan.loss, metamorphic.describe_diagnoses(diagnoses, n))

    def _fuzz_stop(self):
        """The time-budget test of one candidate x loss: its share of what is left of the budget."""
        if self.deadline is None:
            return None
        share = max(0.0, self.deadline - time.monotonic()) / max(1, self.plans_left)
        end = time.monotonic() + share
        return lambda: time.monotonic() > end

    def run_plan(self, plan: Plan) -> None:
        rec, label = self.rec, f"{plan.spec} / {plan.loss}"
        failing = []
        for case in plan.catalogue:
            out = self.run_case(plan, case, f"{plan.loss}/catalogue/{case.origin}")
            rec.tick(label + " / catalogue")
            if out is None:
                continue
            j, sent = out
            rec.record(j.results, plan.loss)
            rec.accuracy.extend(accuracy_points(plan.spec, sent, j))
            if any(r.status in FAILING for r in j.results):
                failing.append((sent, j))
                rec.keep_failed(plan.spec, plan.loss, sent, j)
            self._note_differences(sent, j.results)
        ex = None
        if plan.budget > 0:
            def on_case(j, sent):
                rec.cases_run[plan.loss] += 1
                rec.failures += sum(r.status in FAILING for r in j.results)
                rec.accuracy.extend(accuracy_points(plan.spec, sent, j))
                rec.tick(label + " / fuzz")
            select = {i for i in self.config.case_ids if i.startswith(plan.loss + "/fuzz/")} \
                if self.config.case_ids else None
            ex = explore(lambda c, cid: self.run_case(plan, c, cid), plan.spec, plan.worker, plan.loss, plan.feats,
                         plan.budget, self.config.seed, on_case, stop=self._fuzz_stop(), select=select,
                         applies=lambda c: self.evaluator.applies(c, plan.feats))
            rec.tick(label + " / fuzz", 0)
            if ex.stopped and select is None:
                self.refs.findings.add("time_budget", Case(plan.loss, {}, {}, "fuzz"),
                                       f"{plan.spec}: --time-budget reached: {ex.examples} of {plan.budget} "
                                       "fuzzed examples judged")
            for sent, j in ex.failing:
                rec.results.extend(r for r in j.results if r.status in FAILING)
                rec.keep_failed(plan.spec, plan.loss, sent, j)
            failing += ex.failing
            for sent, r in ex.differs:
                rec.results.append(r)
                self._note_differences(sent, [r])
            rec.results.extend(ex.other)
        if plan.relations:
            self.run_relations(plan, failing)
        if failing:
            classes, reps = triage(failing, plan.spec, plan.loss, lambda c, cid: self.run_case(plan, c, cid),
                                   self.config.seed)
            for (case, r), cls in zip(reps, classes):
                if not any(x is r for x in rec.results):
                    rec.results.append(r)
                rec.reproduce(case, r)
                cls.reproducer = r.reproducer
            rec.classes.extend(classes)
        if ex is not None:
            self._fuzz_summary(plan, ex)
        rec.diagnose(plan.spec, plan.loss)

    def _note_differences(self, case, results):
        for r in results:
            if r.status == "torch_differs":
                self.refs.findings.add("torch_nan_limit" if r.check == "nan_pattern" else "torch_differs", case,
                                       f"{r.candidate}: {r.check} differs from torch but matches the exact value "
                                       "(docs/semantics.md §14)")

    def _fuzz_summary(self, plan: Plan, ex) -> None:
        n, seed = ex.examples, self.config.seed
        failed = {r.check for _, j in ex.failing for r in j.results if r.status in FAILING}
        for check in CHECKS:
            if check in ex.worst and check not in failed:
                worst = ex.worst[check]
                msg = f"{n} fuzzed examples (seed {seed}) passed"
                if worst is not None:
                    msg += f"; worst {worst.max_ulp:.3g} ulp vs the reference"
                self.rec.results.append(CheckResult(plan.spec, plan.loss, check, "pass", f"{plan.loss}/fuzz/{seed}-all",
                                                    {"loss": plan.loss, "origin": "fuzz", "examples": n}, msg, worst))
        if ex.not_run:
            self.rec.results.append(CheckResult(
                plan.spec, plan.loss, "value", "not_run", f"{plan.loss}/fuzz/{seed}-not-run",
                {"loss": plan.loss, "origin": "fuzz", "examples": ex.not_run},
                f"{ex.not_run} fuzzed cases not run: {plan.loss} timed out {plan.worker.timeouts[plan.loss]} times"))

    def plans(self, workers) -> list[Plan]:
        config, out = self.config, []
        mine = shard_losses(config.losses, config.shard)
        for spec, worker in workers.items():
            probe = worker.wait_ready()
            simulated = candidates.is_simulated(spec)
            self.rec.candidates.append(_candidate_info(spec, probe, config, simulated))
            for loss in mine:
                entry = probe[loss]
                defined = bool(entry["features"] and entry["dtypes"])
                if not defined and not entry.get("relations"):
                    continue
                feats = strategies.features_from_probe(entry)
                if simulated:
                    feats = dataclasses.replace(feats, names=feats.names - {"large_classes"},
                                                max_classes=min(feats.max_classes, 64))
                budget = config.simulator_max_examples if simulated else config.max_examples
                budget = min(budget, losses.get(loss).max_examples or budget) if defined else 0
                cat = catalogue_cases(loss, feats, simulated) if config.run_catalogue and defined else []
                rel = relation_cases(loss, entry, feats, config.seed, simulated)
                if config.case_ids:       # a re-run of chosen cases: only those, fuzz ids replayed from the seed
                    cat = [c for c in cat if f"{loss}/catalogue/{c.origin}" in config.case_ids]
                    rel = [c for c in rel if f"{loss}/{c.origin}" in config.case_ids]
                    if not any(i.startswith(loss + "/fuzz/") for i in config.case_ids):
                        budget = 0
                    if not cat and not budget and not rel:
                        continue
                if not defined and not rel:
                    continue
                out.append(Plan(spec, worker, loss, feats, budget, cat, simulated, rel))
        # loss by loss, candidate by candidate (see _run)
        out.sort(key=lambda p: config.losses.index(p.loss))
        return out

    def finish(self, partial: str = "") -> RunResults:
        env = versions()
        env.update({f"oracle_{k}": f"unavailable: {v}" for k, v in self.refs.unavailable.items()})
        env["oracles"] = ", ".join(self.refs.oracles)
        self.rec.environment = env
        return self.rec.snapshot(partial)


def accuracy_points(spec: str, case: Case, j) -> list[list]:
    """``[candidate, loss, dtype, check, max |finite input|, C, ulp]`` per value / gradient check of a case
    that returned a value (the plots of report.html); C is None for the elementwise losses."""
    x = np.asarray(case.arrays.get("input", np.zeros(0)))
    out = []
    for r in j.results:
        if r.check not in ("value", "grad_input") or r.error is None or not math.isfinite(r.error.max_ulp):
            continue
        if not out:
            finite = np.abs(x[np.isfinite(x)]) if x.size else x
            amax = float(finite.max()) if finite.size else 0.0
            classes = losses.get(case.loss).family == "class"
            c = (int(x.shape[1]) if x.ndim >= 2 else int(x.shape[0]) if x.ndim == 1 else 1) if classes else None
        out.append([spec, case.loss, str(x.dtype), r.check, float(f"{amax:.4g}"), c, float(f"{r.error.max_ulp:.4g}")])
    return out


def run_campaign(config: CampaignConfig, progress: ProgressCallback | None = None,
                 checkpoint: CheckpointCallback | None = None) -> RunResults:
    """Run every selected candidate on every selected loss; returns the results model.

    ``checkpoint`` gets a partial RunResults after each candidate x loss. An interruption
    (KeyboardInterrupt, or the CLI's SIGTERM handler) stops the workers and propagates
    with the partial results attached as ``exc.results``.

    Raises:
        conformance.candidates.CandidateLoadError: a candidate cannot be imported or
            declares an invalid CONFORMANCE dict (a setup error, not a failure).
        conformance.losses.UnknownLoss: a loss the registry does not know.
    """
    for loss in config.losses:
        losses.get(loss)
    camp = _Campaign(config, progress, checkpoint)
    workers = {}
    try:
        for spec in config.candidates:      # start all workers first: their imports overlap
            workers[spec] = Worker(spec, candidates.worker_env(spec), tuple(config.dtypes),
                                   start_timeout_s=max(config.case_timeout_s, 60.0))
        plans = camp.plans(workers)
        camp.rec.plan(sum(p.size for p in plans))
        # When the parent is done with a candidate for one loss, that candidate's worker compiles its
        # next loss (a warm-up) while the parent judges the other candidates. Warm-ups go through the
        # same pipe, so only idle workers get them.
        upcoming: dict[str, list[int]] = {}
        for i, p in enumerate(plans):
            upcoming.setdefault(p.spec, []).append(i)
        for idx in upcoming.values():
            plans[idx[0]].worker.warm_up(_warm_up_requests(plans[idx[0]]))
        for i, plan in enumerate(plans):
            camp.plans_left = len(plans) - i
            camp.run_plan(plan)
            later = [j for j in upcoming[plan.spec] if j > i]
            if later:
                plan.worker.warm_up(_warm_up_requests(plans[later[0]]))
            if checkpoint is not None and i + 1 < len(plans):
                checkpoint(camp.finish(partial=f"running: {i + 1} of {len(plans)} candidate x loss done"))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "Interrupted":
            exc.results = camp.finish(partial=f"interrupted ({type(exc).__name__}) after "
                                              f"{camp.rec.done} of {camp.rec.total} units of work")
        raise
    finally:
        for w in workers.values():
            w.close()
    return camp.finish()
