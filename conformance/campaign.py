"""The campaign: candidates x losses x (catalogue, then fuzzing) -> RunResults.

For every candidate a worker process is started (worker.py); for every loss it
supports, the catalogue's named cases run first, then conformance/fuzz.py draws
``config.max_examples`` cases (seeded with ``config.seed``) and shrinks the
first failure. Every case is judged by one :class:`conformance.judge.Judge`,
which also keeps the results, the findings and the progress counts. While the
parent judges one candidate, the others' workers compile their next loss.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import time
from collections import Counter

from conformance import candidates, catalogue, strategies
from conformance.config import CampaignConfig, ProgressCallback
from conformance.fuzz import run_fuzz
from conformance.judge import Judge
from conformance.model import CandidateInfo, Case, RunResults
from conformance.worker import Worker

#: On the CUDA simulator (~0.3 s per call) the catalogue is cut down: inputs of at most this many
#: elements, and one reduction of each entry that exists for all three (per dtype).
SIM_MAX_ELEMENTS = 64


def _versions() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for pkg in ("numpy", "numba", "numba-cuda", "scipy", "torch", "mpmath", "hypothesis", "nbxent"):
        try:
            env[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    return env



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

def run_catalogue(judge: Judge, spec: str, worker: Worker, loss: str, feats, cases: list[Case]) -> None:
    """Judge each catalogue case on the candidate, in order."""
    for case in cases:
        judge.record(case, judge.evaluate(case, f"{loss}/catalogue/{case.origin}", worker, feats, spec))
        judge.tick(f"{spec} / {loss} / catalogue")


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
    judge = Judge(config, progress)
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
            # declared extensions are listed with the supported features, so every report shows them
            sup = {l: probe[l]["features"] + [f"extension:{e}" for e in probe[l].get("extensions", ())]
                   for l in config.losses}
            miss = {l: probe[l]["missing"] for l in config.losses}
            note = "runs on the CUDA simulator (no GPU): small budget" if simulated else ""
            declared = sorted({e for l in config.losses for e in probe[l].get("extensions", ())})
            if declared:
                note = "; ".join(n for n in (note, "declares extensions " + ", ".join(declared)) if n)
            infos.append(CandidateInfo(spec, spec, sup, miss, note))
            for loss in config.losses:
                if not probe[loss]["features"] or not probe[loss]["dtypes"]:
                    continue
                feats = strategies.features_from_probe(probe[loss])
                if simulated:
                    feats = dataclasses.replace(feats, names=feats.names - {"large_classes"},
                                                max_classes=min(feats.max_classes, 64))
                budget = config.simulator_max_examples if simulated else config.max_examples
                cat = catalogue_cases(loss, feats, simulated) if config.run_catalogue else []
                plans.append((spec, worker, loss, feats, budget, cat))
        judge.total = sum(p[4] + len(p[5]) for p in plans)
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
            run_catalogue(judge, spec, worker, loss, feats, cat)
            if budget > 0:
                run_fuzz(judge, spec, worker, loss, feats, budget)
            later = [j for j in upcoming[spec] if j > i]
            if later:
                _, _, nloss, nfeats, _, ncat = plans[later[0]]
                worker.warm_up(_warm_up_requests(nloss, nfeats, ncat))
    finally:
        for w in workers.values():
            w.close()
    env = _versions()
    env.update({f"oracle_{k}": f"unavailable: {v}" for k, v in judge.unavailable.items()})
    env["oracles"] = ", ".join(judge.oracles)
    findings = []
    for f, count in judge.findings.values():
        if count > 1:
            f.message += f" (seen in {count} cases)"
        findings.append(f)
    return RunResults(
        seed=config.seed, started=started,
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.time() - t0, 3),
        config={k: getattr(config, k) for k in config.__dataclass_fields__},
        environment=env, candidates=infos, results=judge.results, findings=findings,
        cases_run=dict(judge.cases_run))
