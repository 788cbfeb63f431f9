"""A synthetic RunResults with known counts, shared by the report-writer and CLI tests.

Two candidates over two losses:
* 'good' passes everything (one case differs from torch where the exact value agrees);
  it declares no backward for nll_loss, so that check is 'not supported'.
* 'bad' fails cross_entropy/value on 2 of 3 cases (one worst error is NaN), crashes on
  cross_entropy/grad_input, times out on nll_loss/error_semantics, and passes the rest.
"""
from __future__ import annotations

import math

import numpy as np

from conformance.model import CandidateInfo, Case, CheckResult, ErrorMeasure, Finding, RunResults

LOSSES2 = ["cross_entropy", "nll_loss"]
CHECKS_RUN = ["value", "shape_dtype", "nan_pattern", "grad_input", "error_semantics"]

CASE = Case(
    loss="cross_entropy",
    arrays={"input": np.zeros((4, 3), np.float32), "target": np.zeros(4, np.int64)},
    kwargs={"reduction": "mean", "label_smoothing": float("nan")},
)
FAIL_MESSAGE = "value: 2 of 4 elements outside tolerance <3 ulp> & 'quotes'"


def _err(ulp, got=1.0, want=1.0, bad=0):
    return ErrorMeasure(max_abs=abs(got - want) if math.isfinite(got - want) else float("inf"),
                        max_rel=1e-7, max_ulp=ulp, n_bad=bad, n_total=4, worst_index=[1],
                        worst_got=got, worst_want=want, tolerance="value/float32: 4 eps * scale")


def make_run(with_failures: bool = True) -> RunResults:
    desc = CASE.describe()
    results = []
    for cand in ("good", "bad"):
        for loss in LOSSES2:
            for check in CHECKS_RUN:
                if cand == "good" and loss == "nll_loss" and check == "grad_input":
                    continue                                    # declared not supported
                for i in range(3):
                    cid = f"{loss}/fuzz/{i:06d}"
                    r = CheckResult(candidate=cand, loss=loss, check=check, status="pass", case_id=cid,
                                    case=desc, oracle="mpmath",
                                    error=_err(0.5 + i) if check == "value" else None)
                    if with_failures and cand == "bad":
                        if loss == "cross_entropy" and check == "value" and i < 2:
                            r.status = "fail"
                            r.message = FAIL_MESSAGE
                            r.error = (_err(float("nan"), got=float("nan"), want=0.25, bad=1) if i == 0
                                       else _err(12.0, got=0.2500001, want=0.25, bad=2))
                            r.reproducer = f"rep/{loss}_fuzz_{i:06d}"
                        elif loss == "cross_entropy" and check == "grad_input":
                            r.status = "crash"
                            r.message = "worker died: signal 11\x00"
                        elif loss == "nll_loss" and check == "error_semantics" and i == 2:
                            r.status = "timeout"
                            r.message = "no answer in 120 s"
                    if cand == "good" and loss == "cross_entropy" and check == "value" and i == 1:
                        r.status = "torch_differs"
                        r.error = _err(float("inf"), got=float("inf"), want=float("inf"))
                    results.append(r)
    return RunResults(
        seed=7, started="2026-01-01T00:00:00Z", finished="2026-01-01T00:00:09Z", duration_s=9.25,
        config={"losses": LOSSES2, "oracles": ["mpmath"], "dtypes": ["float32"], "max_examples": 3},
        environment={"python": "3.11", "numpy": "2.4.6"},
        candidates=[
            CandidateInfo("good", "good", supported={lo: ["forward", "backward"] for lo in LOSSES2},
                          not_supported={"nll_loss": ["backward"]}),
            CandidateInfo("bad", "pkg/bad.py:impl", supported={lo: ["forward", "backward"] for lo in LOSSES2},
                          not_supported={}),
        ],
        results=results,
        findings=[Finding("torch_nan_limit", "cross_entropy", "torch gives nan, exact limit is inf", desc, "rep/x")],
        cases_run={"cross_entropy": 3, "nll_loss": 3},
    )
