"""report.json: the whole run, machine-readable, versioned (schema in docs/conformance.md).

The file is strict JSON (no NaN/Infinity tokens, which many parsers reject):
non-finite numbers are the strings ``"nan"``, ``"inf"`` and ``"-inf"``, as in
``RunResults.to_dict``. ``read_json`` turns a report back into a ``RunResults``.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from conformance.model import CandidateInfo, CheckResult, ErrorMeasure, FailureClass, Finding, RunResults
from conformance.reports._aggregate import (aggregate, as_dict, diagnoses_of, metamorphic_cells, num, run_verdict,
                                            totals)

#: Bumped when a field changes meaning or disappears; adding a field keeps it.
SCHEMA_VERSION = 1
FILENAME = "report.json"

_ERROR_FLOATS = ("max_abs", "max_rel", "max_ulp", "worst_got", "worst_want")


def strict(v: Any) -> Any:
    """``v`` with every non-finite float (at any depth) as 'nan'/'inf'/'-inf' and numpy scalars as Python ones."""
    if isinstance(v, dict):
        return {str(k): strict(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict(x) for x in v]
    if hasattr(v, "item") and hasattr(v, "dtype"):    # numpy scalar or array left in a dict
        return strict(v.tolist() if getattr(v, "ndim", 0) else v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def to_report_dict(results: RunResults | dict[str, Any]) -> dict[str, Any]:
    """The report.json document: a header (schema_version, verdict, summary) then the run's fields."""
    run = strict(as_dict(results))
    run = {k: v for k, v in run.items() if k not in ("schema_version", "generator", "verdict", "summary")}
    rows = aggregate(run)
    counts = totals(rows)
    statuses: dict[str, int] = {}
    for r in run.get("results", []):
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    summary = {
        "cells": dict(sorted(counts.items())),
        "statuses": dict(sorted(statuses.items())),
        "rows": [
            {"candidate": row.candidate, "loss": row.loss, "verdict": row.verdict, "cases": row.n_cases,
             "worst_ulp": strict(num(row.worst_ulp)) if row.worst_ulp is not None else None,
             "torch_differs": row.torch_differs, "not_supported": row.lacking, "extensions": row.extensions,
             "classes": sum(1 for c in run.get("classes") or [] if c["candidate"] == row.candidate
                            and c["loss"] == row.loss),
             "diagnoses": diagnoses_of(run, row.candidate, row.loss)}
            for row in rows
        ],
        # one entry per candidate x metamorphic check (conformance/relations.py)
        "metamorphic": [
            {"candidate": c.candidate, "loss": c.loss, "check": c.check, "verdict": c.verdict, "cases": c.n_cases,
             "worst_ulp": strict(num(c.worst_ulp)) if c.worst_ulp is not None else None,
             "reason": c.reason if c.verdict not in ("pass", "fail") else "",
             "failures": [r["case_id"] for r in c.failures]}
            for c in metamorphic_cells(rows)
        ],
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "nbxent-conformance",
        "verdict": run_verdict(run),
        "summary": summary,
        **run,
    }


def write_json(results: RunResults | dict[str, Any], report_dir: str) -> str:
    """Write ``<report_dir>/report.json``; returns its path."""
    path = os.path.join(report_dir, FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_report_dict(results), f, indent=1, allow_nan=False, ensure_ascii=False)
        f.write("\n")
    return path


def read_json(path: str) -> RunResults:
    """Read a report.json (any schema_version up to ours) back into a RunResults.

    Raises:
        ValueError: the file is not a report.json, or comes from a newer schema.
    """
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(f"read_json: {path!r} has schema_version={version!r}; this reader knows 1..{SCHEMA_VERSION}")
    return from_dict(doc)


def from_dict(doc: dict[str, Any]) -> RunResults:
    """A RunResults from its JSON form (header keys are ignored)."""
    results = [CheckResult(**_with_error(r)) for r in doc.get("results", [])]
    return RunResults(
        seed=doc["seed"],
        started=doc["started"],
        finished=doc["finished"],
        duration_s=num(doc["duration_s"]),
        config=doc.get("config", {}),
        environment=doc.get("environment", {}),
        candidates=[CandidateInfo(**c) for c in doc.get("candidates", [])],
        results=results,
        findings=[Finding(**f) for f in doc.get("findings", [])],
        cases_run=doc.get("cases_run", {}),
        classes=[FailureClass(**_with_error(c)) for c in doc.get("classes", [])],
        diagnoses=doc.get("diagnoses", []),
        partial=doc.get("partial", ""),
        accuracy=doc.get("accuracy", []),
        profile=doc.get("profile", {}),
    )


def _with_error(d: dict[str, Any]) -> dict[str, Any]:
    """A result's or class's fields with its ``error`` as an ErrorMeasure (non-finite strings as floats)."""
    d = dict(d)
    if d.get("error") is not None:
        err = dict(d["error"])
        for k in _ERROR_FLOATS:
            if k in err:
                err[k] = num(err[k])
        d["error"] = ErrorMeasure(**err)
    return d
