"""The results model: what a campaign produced, and nothing about how.

Every report writer reads only these types. They are plain dataclasses so a
run can be serialised to JSON (``RunResults.to_dict``) and read back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.losses import LOSSES  # noqa: E402  (re-exported: the registry is the one list)

#: What a single check can conclude.
#: pass           within tolerance of the exact value (or raised as it should)
#: fail           outside tolerance, wrong shape/dtype/NaN pattern, or missing/wrong exception
#: error          the candidate raised where it should have returned a value
#: crash          the candidate's worker process died (segfault, abort, os._exit)
#: timeout        the candidate did not answer within the per-case limit
#: torch_differs  the candidate differs from torch but agrees with the exact (mpmath)
#:                value where torch does not (docs/semantics.md §14); not a failure
#: error_type_differs  an invalid input raised, but another exception type than torch's
#:                (a failure only with --strict-errors or a strict candidate)
#: not_run        not called: the function had timed out too often (conformance/worker.py)
STATUSES = ("pass", "fail", "error", "crash", "timeout", "torch_differs", "error_type_differs", "not_run")
FAILING = frozenset({"fail", "error", "crash", "timeout"})

#: The checks made per case. The metamorphic checks (conformance/relations.py: chunk_invariance,
#: batch_invariance, materialised, shard_split) are checks too, each reported in one loss's row.
CHECKS = ("value", "shape_dtype", "nan_pattern", "grad_input", "error_semantics")


@dataclass
class Case:
    """One set of arguments for one loss, as handed to every candidate."""

    loss: str
    arrays: dict[str, np.ndarray]          # 'input', 'target', optional 'weight', 'pos_weight', 'grad_output'
    kwargs: dict[str, Any]                 # reduction, ignore_index, label_smoothing (only those set)
    origin: str = "fuzz"                   # 'fuzz' or the catalogue entry's name
    reason: str = ""                       # why a catalogue case exists
    expect_error: str | None = None        # exception type name for invalid-input cases

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: shapes, dtypes, strides flag and keywords (no data)."""
        return {
            "loss": self.loss,
            "origin": self.origin,
            "arrays": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype),
                    "c_contiguous": bool(v.flags.c_contiguous)}
                for k, v in self.arrays.items()
            },
            "kwargs": {k: _jsonable(v) for k, v in self.kwargs.items()},
            "expect_error": self.expect_error,
        }


@dataclass
class ErrorMeasure:
    """How far a candidate's output is from the reference."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulp: float = 0.0                   # in ulps of the candidate's output dtype, vs the exact value
    n_bad: int = 0
    n_total: int = 0
    worst_index: list[int] | None = None
    worst_got: float | None = None
    worst_want: float | None = None
    tolerance: str = ""                    # the policy entry that applied, with its numbers


@dataclass
class CheckResult:
    candidate: str
    loss: str
    check: str                             # one of CHECKS, or a metamorphic check
    status: str                            # one of STATUSES
    case_id: str                           # stable id, e.g. 'cross_entropy/fuzz/000123'
    case: dict[str, Any]                   # Case.describe()
    message: str = ""
    error: ErrorMeasure | None = None
    reproducer: str | None = None          # directory holding case.npz and repro.py
    oracle: str = ""                       # which oracle produced the reference
    output: str = ""                       # the tail of what the candidate printed during the case
    class_id: str = ""                     # the FailureClass a failing result belongs to


@dataclass
class Finding:
    """Something the report should show that is not a candidate failure:
    oracles disagreeing, torch differing from the exact value, etc."""

    kind: str                              # 'oracle_disagreement' | 'torch_inexact' | 'torch_nan_limit' | ...
    loss: str
    message: str
    case: dict[str, Any] = field(default_factory=dict)
    reproducer: str | None = None


@dataclass
class FailureClass:
    """Failing cases that look like one bug: the same check, status and features that matter.

    ``signature`` names those features (option set and region, e.g. ``weight``,
    ``reduction=mean``, ``ignored_rows``, ``huge_logits``); ``dtypes`` lists the
    dtypes it was seen in (float32/float64 pairs are one class). The representative is
    the smallest case found, shrunk where it came from fuzzing.
    """

    class_id: str                          # stable within a run, e.g. 'nbxent/cross_entropy/3'
    candidate: str
    loss: str
    check: str
    status: str                            # 'fail' | 'error' | 'crash' | 'timeout'
    kind: str                              # 'numeric' | 'exception' | 'robustness'
    signature: list[str]
    dtypes: list[str]
    count: int                             # failing cases in the class
    case_id: str                           # the representative's case id
    case: dict[str, Any]                   # its Case.describe()
    message: str = ""
    error: ErrorMeasure | None = None
    reproducer: str | None = None
    shrunk: bool = False
    shrink_calls: int = 0
    hint: str = ""                         # e.g. the CONFORMANCE exclude that would declare a missing feature


@dataclass
class CandidateInfo:
    name: str                              # 'nbxent', 'nbxent.cuda', 'torch', or the user's spec
    spec: str
    supported: dict[str, list[str]]        # loss -> supported features ('forward', 'backward', 'weight', ...)
    not_supported: dict[str, list[str]]    # loss -> features it lacks (reported, never failed)
    note: str = ""
    #: loss -> {metamorphic check: why it does not apply} (conformance/relations.py)
    not_applicable: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class RunResults:
    seed: int
    started: str                           # ISO-8601 UTC
    finished: str
    duration_s: float
    config: dict[str, Any]
    environment: dict[str, str]            # versions of python, numpy, numba, torch, scipy, mpmath
    candidates: list[CandidateInfo]
    results: list[CheckResult]
    findings: list[Finding] = field(default_factory=list)
    cases_run: dict[str, int] = field(default_factory=dict)   # loss -> number of cases
    classes: list[FailureClass] = field(default_factory=list)
    #: per candidate x loss: {"candidate", "loss", "diagnoses": [{"id", "summary", "explains", "of"}]}
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    partial: str = ""                      # why the run stopped early ('' for a complete run)
    #: per value / gradient check that returned a value: [candidate, loss, dtype, check, max |input|, C, ulp]
    #: (conformance.campaign.accuracy_points; the plots of report.html)
    accuracy: list[list[Any]] = field(default_factory=list)
    #: conformance.profile.profile() of the candidates, when the run made one (run --profile)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(r.status in FAILING for r in self.results)

    @property
    def verdict(self) -> str:
        """'fail', 'partial' (stopped early, nothing failed so far), 'empty' (nothing checked) or 'pass'."""
        if self.failed:
            return "fail"
        if self.partial:
            return "partial"
        return "pass" if self.results else "empty"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return repr(v)                     # JSON has no NaN/inf: 'nan', 'inf', '-inf'
    return v
