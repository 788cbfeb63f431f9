"""Campaign configuration and progress events: the contract between the CLI and the engine."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from conformance.model import LOSSES

#: Built-in candidates (what `nbxent-conformance run` checks with no --candidate).
BUILTIN_CANDIDATES = ("nbxent", "nbxent.cuda", "torch")
ORACLES = ("scipy", "torch", "mpmath")
DTYPES = ("float16", "float32", "float64")
#: Also accepted by --dtype: bfloat16 (NumPy's through ml_dtypes; for candidates that declare it).
EXTRA_DTYPES = ("bfloat16",)


@dataclass
class CampaignConfig:
    candidates: list[str] = field(default_factory=lambda: list(BUILTIN_CANDIDATES))
    losses: list[str] = field(default_factory=lambda: list(LOSSES))
    oracles: list[str] = field(default_factory=lambda: list(ORACLES))
    dtypes: list[str] = field(default_factory=lambda: list(DTYPES))
    max_examples: int = 100          # hypothesis examples per (candidate, loss)
    seed: int = 0
    report_dir: str = "conformance-report"
    case_timeout_s: float = 120.0    # per call in a worker (first calls include JIT compilation)
    simulator_max_examples: int = 6  # budget for candidates running on the CUDA simulator
    run_catalogue: bool = True
    strict_errors: bool = False      # an invalid input must raise torch's exception type (not just raise)
    dtypes_requested: bool = False   # the user named the dtypes (a candidate lacking one is told so)
    shard: list[int] | None = None   # [K, N]: run only the losses of shard K of N (conformance/shard.py)
    time_budget_s: float | None = None   # wall-clock budget: fuzzing of each candidate x loss stops at its share
    case_ids: list[str] = field(default_factory=list)   # run only these case ids (catalogue and fuzz ids)


@dataclass
class ProgressEvent:
    done: int          # units of work finished
    total: int         # units of work planned (may grow)
    label: str         # e.g. 'nbxent / cross_entropy / fuzz'
    failures: int = 0


ProgressCallback = Callable[[ProgressEvent], None]
#: Called with a RunResults snapshot (marked partial) after each candidate x loss, so a killed
#: campaign leaves reports behind.
CheckpointCallback = Callable[[object], None]
