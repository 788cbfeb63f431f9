"""What a campaign keeps while it runs: results, classes, diagnoses, progress, reproducers.

:class:`Recorder` is the one place results accumulate. It counts progress (and
reports it to the CLI's callback), writes a reproducer for each failure-class
representative, keeps the candidate's outputs on failing cases (bounded) for the
diagnosis, and hands out a :class:`conformance.model.RunResults` snapshot at any
time, which is how reports are written while the campaign runs.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import time
from collections import Counter

from conformance.config import CampaignConfig, ProgressCallback, ProgressEvent
from conformance.model import FAILING, CandidateInfo, CheckResult, RunResults
from conformance.references import Findings

#: Failing cases per candidate x loss whose outputs are kept for the diagnosis.
MAX_DIAGNOSED = 200


def versions() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for pkg in ("numpy", "numba", "numba-cuda", "scipy", "torch", "mpmath", "hypothesis", "nbxent", "jax"):
        try:
            env[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    return env


def _diagnose_fn():
    """conventions.diagnose when the convention library is installed, else None."""
    try:
        from conformance.conventions import FailedCase, diagnose
    except ImportError:
        return None, None
    return diagnose, FailedCase


class Recorder:
    """Results of a campaign so far."""

    def __init__(self, config: CampaignConfig, progress: ProgressCallback | None, findings: Findings):
        self.config, self.progress, self.findings = config, progress, findings
        self.t0 = time.time()
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.results: list[CheckResult] = []
        self.classes = []
        self.diagnoses: list[dict] = []
        self.accuracy: list[list] = []
        self.candidates: list[CandidateInfo] = []
        self.cases_run: Counter = Counter()
        self.environment: dict[str, str] = {}
        self.done = self.total = 0
        self.failures = 0
        self._failed_cases: dict[tuple[str, str], list] = {}

    # ----------------------------------------------------------------- results
    def record(self, results: list[CheckResult], loss: str | None = None) -> None:
        if loss is not None:
            self.cases_run[loss] += 1
        self.failures += sum(r.status in FAILING for r in results)
        self.results.extend(results)

    def keep_failed(self, spec: str, loss: str, case, judgement) -> None:
        """Keep a failing case and what the candidate returned, for the diagnosis."""
        kept = self._failed_cases.setdefault((spec, loss), [])
        if len(kept) < MAX_DIAGNOSED:
            kept.append((case, judgement))

    def diagnose(self, spec: str, loss: str) -> None:
        """Ask the convention library which known conventions explain this candidate x loss's failures."""
        kept = self._failed_cases.pop((spec, loss), [])
        if not kept:
            return
        diagnose, FailedCase = _diagnose_fn()
        if diagnose is None:
            return
        failures = []
        for case, j in kept:
            for r in j.results:
                if r.status in FAILING:
                    failures.append(FailedCase(case=case, check=r.check, got_value=j.got_value, got_grad=j.got_grad,
                                               got_error=j.got_error))
        try:
            found = diagnose(loss, failures)
        except Exception as exc:       # the diagnosis must never cost the verdict
            found = [{"id": "diagnosis_failed", "summary": f"{type(exc).__name__}: {exc}", "explains": 0,
                      "of": len(failures)}]
        self.diagnoses.append({"candidate": spec, "loss": loss, "diagnoses": list(found)})

    def add_diagnoses(self, spec: str, loss: str, found: list[dict]) -> None:
        """Diagnoses made outside the convention library's pass (the metamorphic shard check's),
        merged into the candidate x loss's entry."""
        for d in self.diagnoses:
            if d["candidate"] == spec and d["loss"] == loss:
                d["diagnoses"] = list(d["diagnoses"]) + list(found)
                return
        self.diagnoses.append({"candidate": spec, "loss": loss, "diagnoses": list(found)})

    def reproduce(self, case, r: CheckResult) -> None:
        """Write the reproducer of a failing result (a problem writing it is noted, never raised)."""
        try:
            from conformance.reproducer import write_reproducer
            r.reproducer = write_reproducer(case, candidate_spec=r.candidate, check=r.check, case_id=r.case_id,
                                            report_dir=self.config.report_dir, oracle=r.oracle,
                                            extensions=tuple(r.case.get("extensions", ())), result=r)
        except Exception as exc:
            r.message += f" (no reproducer: {type(exc).__name__}: {exc})"

    # ----------------------------------------------------------------- progress
    def plan(self, n: int) -> None:
        self.total += n

    def tick(self, label: str, n: int = 1) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(ProgressEvent(self.done, self.total, label, self.failures))

    # ----------------------------------------------------------------- snapshot
    def snapshot(self, partial: str = "") -> RunResults:
        return RunResults(
            seed=self.config.seed, started=self.started,
            finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            duration_s=round(time.time() - self.t0, 3),
            config={k: getattr(self.config, k) for k in self.config.__dataclass_fields__},
            environment=dict(self.environment), candidates=list(self.candidates), results=list(self.results),
            findings=self.findings.to_list(), cases_run=dict(self.cases_run), classes=list(self.classes),
            diagnoses=list(self.diagnoses), partial=partial, accuracy=list(self.accuracy))
