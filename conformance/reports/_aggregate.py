"""Aggregation shared by the report writers: one verdict per candidate x loss x check.

Every writer reads the JSON form of a run (``RunResults.to_dict()`` or a
``report.json`` loaded back), so a report can be re-rendered from a stored run
without the engine. Non-finite numbers arrive as the strings ``'nan'``,
``'inf'`` and ``'-inf'`` (JSON has no NaN); ``num`` turns them back into floats.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conformance.model import CHECKS, FAILING, LOSSES, RunResults
from conformance.relations import RELATIONS, of_loss

#: The candidate feature a check needs; a candidate that declares the feature
#: missing gets the check reported as "not supported" (skipped), never failed.
CHECK_FEATURE = {"grad_input": "backward"}
_DEFAULT_FEATURE = "forward"

#: Verdicts of an aggregated cell or row.
PASS, FAIL, NOT_SUPPORTED, NOT_RUN = "pass", "fail", "not supported", "not run"


def as_dict(results: RunResults | dict[str, Any]) -> dict[str, Any]:
    """The JSON form of a run, whichever form was given."""
    if isinstance(results, RunResults):
        return results.to_dict()
    if isinstance(results, dict):
        return results
    raise TypeError(f"reports: results must be a RunResults or its to_dict() form, got {type(results).__name__}")


def num(v: Any) -> float | None:
    """A float from a JSON value: None stays None; 'nan'/'inf'/'-inf' become floats."""
    if v is None:
        return None
    if isinstance(v, str):
        return float(v)                    # float('nan'), float('inf'), float('-inf')
    return float(v)


def ulp_key(v: Any) -> float:
    """Ordering key for 'worst error': a NaN error (a NaN where a number was due) ranks worst."""
    x = num(v)
    if x is None:
        return -math.inf
    return math.inf if math.isnan(x) else x


def fmt_float(v: Any) -> str:
    """Full precision (shortest round-trip repr), '' for None."""
    x = num(v)
    return "" if x is None else repr(x)


def fmt_ulp(v: Any) -> str:
    """Three significant digits: an ulp count is an order of magnitude, not a value to re-use."""
    x = num(v)
    if x is None:
        return ""
    if math.isnan(x) or math.isinf(x):
        return repr(x)
    return f"{x:.3g}"


@dataclass
class Cell:
    """All results of one candidate x loss x check."""

    candidate: str
    loss: str
    check: str
    verdict: str
    counts: Counter = field(default_factory=Counter)      # status -> number of results
    n_cases: int = 0
    worst: dict[str, Any] | None = None                    # the result with the largest max_ulp
    failures: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""                                       # why not supported / not run
    case_ids: dict[str, dict[str, Any]] = field(default_factory=dict)    # case id -> its case summary

    @property
    def worst_ulp(self) -> Any:
        err = (self.worst or {}).get("error") or {}
        return err.get("max_ulp")


@dataclass
class Row:
    """One candidate x loss: the cells of its checks rolled up."""

    candidate: str
    loss: str
    verdict: str
    cells: list[Cell]
    n_cases: int
    worst: dict[str, Any] | None
    torch_differs: int
    lacking: list[str]                                     # declared missing features
    extensions: dict[str, int] = field(default_factory=dict)   # declared extension -> cases it legalised

    @property
    def worst_ulp(self) -> Any:
        err = (self.worst or {}).get("error") or {}
        return err.get("max_ulp")


def _ordered(seen: list[str], preferred: tuple[str, ...] | list[str]) -> list[str]:
    out = list(dict.fromkeys(preferred))
    return out + [x for x in dict.fromkeys(seen) if x not in out]


def _worst_of(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    with_err = [r for r in results if r.get("error")]
    if not with_err:
        return None
    return max(with_err, key=lambda r: ulp_key(r["error"].get("max_ulp")))


def _unsupported_reason(info: dict[str, Any] | None, loss: str, feature: str) -> str:
    if info is None:
        return ""
    if feature in RELATIONS:              # a metamorphic check: its own entry points, not the loss's
        why = (info.get("not_applicable") or {}).get(loss, {}).get(feature)
        if why or feature in info.get("not_supported", {}).get(loss, []):
            return f"{info.get('name')}: {why or 'not applicable'}"
        return ""
    lacking = info.get("not_supported", {}).get(loss, [])
    if "forward" in lacking or loss not in info.get("supported", {}):
        return f"{info.get('name')} does not implement {loss}"
    if feature in lacking:
        return f"{info.get('name')} declares no {feature} for {loss}"
    return ""


def aggregate(run: dict[str, Any]) -> list[Row]:
    """Rows (candidate x loss), each with its cells (check), in a stable order.

    Candidates come in the run's order, losses and checks in the model's order
    (anything else the run contains follows). A cell is 'fail' if any result
    in it has a failing status, 'pass' if it has results and none fail,
    'not supported' if the candidate declares the needed feature missing, and
    'not run' if it has no results for another reason.
    """
    infos = {c["name"]: c for c in run.get("candidates", [])}
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in run.get("results", []):
        by_key.setdefault((r["candidate"], r["loss"], r["check"]), []).append(r)

    candidates = _ordered([c for c, _, _ in by_key] + list(infos), list(infos))
    config_losses = run.get("config", {}).get("losses") or list(LOSSES)
    losses = _ordered([lo for _, lo, _ in by_key], list(config_losses))
    # every loss has the per-case checks; a metamorphic check only its own loss's row (conformance/relations.py),
    # where it ran or the candidate was found to offer it or not (a run that never looked has no such cell)
    checks = {loss: _ordered([ch for _, lo, ch in by_key if lo == loss], CHECKS) for loss in losses}
    rows = []
    for cand in candidates:
        info = infos.get(cand) or {}
        for loss in losses:
            known = set(info.get("supported", {}).get(loss, [])) | set(info.get("not_supported", {}).get(loss, []))
            mine = checks[loss] + [r for r in of_loss(loss) if r in known and r not in checks[loss]]
            cells = [_cell(cand, loss, check, by_key.get((cand, loss, check), []), infos.get(cand))
                     for check in mine]
            rows.append(_row(cand, loss, cells, info))
    return rows


def _cell(cand: str, loss: str, check: str, results: list[dict[str, Any]], info: dict[str, Any] | None) -> Cell:
    counts = Counter(r["status"] for r in results)
    failures = [r for r in results if r["status"] in FAILING]
    if results:
        verdict, reason = (FAIL if failures else PASS), ""
    else:
        reason = _unsupported_reason(info, loss, check if check in RELATIONS else
                                     CHECK_FEATURE.get(check, _DEFAULT_FEATURE))
        verdict = NOT_SUPPORTED if reason else NOT_RUN
        reason = reason or "no cases were run for this check"
    case_ids = {r["case_id"]: r.get("case") or {} for r in results}
    return Cell(cand, loss, check, verdict, counts, count_cases(case_ids), _worst_of(results), failures, reason,
                case_ids)


def _row(cand: str, loss: str, cells: list[Cell], info: dict[str, Any] | None) -> Row:
    verdicts = {c.verdict for c in cells}
    if FAIL in verdicts:
        verdict = FAIL
    elif PASS in verdicts:
        verdict = PASS
    elif NOT_SUPPORTED in verdicts:
        verdict = NOT_SUPPORTED
    else:
        verdict = NOT_RUN
    case_ids: dict[str, dict[str, Any]] = {}
    for c in cells:
        case_ids.update(c.case_ids)
    # the worst error against the exact value: a metamorphic cell measures results against each other
    worst = _worst_of([c.worst for c in cells if c.worst is not None and c.check not in RELATIONS])
    lacking = list((info or {}).get("not_supported", {}).get(loss, []))
    return Row(cand, loss, verdict, cells, count_cases(case_ids), worst,
               sum(c.counts.get("torch_differs", 0) for c in cells), lacking, _extensions(info, loss, case_ids))


#: How a declared extension is listed among a candidate's supported features (campaign.py).
EXTENSION_PREFIX = "extension:"


def _extensions(info: dict[str, Any] | None, loss: str, case_ids: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Declared extensions of a candidate for a loss, each with the number of cases it made legal."""
    declared = [f[len(EXTENSION_PREFIX):] for f in (info or {}).get("supported", {}).get(loss, [])
                if f.startswith(EXTENSION_PREFIX)]
    out = dict.fromkeys(declared, 0)
    for case in case_ids.values():
        for e in case.get("extensions") or ():
            out[e] = out.get(e, 0) + 1
    return out


def extension_note(row: Row) -> str:
    """'any_int_target (4 cases)' per declared extension, '' when none is declared."""
    return ", ".join(f"{e} ({n} case{'s' if n != 1 else ''})" for e, n in row.extensions.items())


def count_cases(case_ids: dict[str, dict[str, Any]]) -> int:
    """Number of cases behind a set of results.

    A result may stand for many cases: the engine records the passing fuzzed
    examples of a check as one result whose case carries ``examples: n``. The
    minimal failing case of a fuzz run is one of those n examples, so it is
    not counted again where such an aggregate exists.
    """
    aggregated = sum(int(c.get("examples") or 0) for c in case_ids.values() if "examples" in c)
    singles = sum(1 for c in case_ids.values() if "examples" not in c
                  and not (aggregated and c.get("origin") == "fuzz"))
    return aggregated + singles


def totals(rows: list[Row]) -> Counter:
    """Cell verdict counts over all rows (what JUnit calls tests/failures/skipped)."""
    return Counter(c.verdict for row in rows for c in row.cells)


def describe_case(case: dict[str, Any]) -> str:
    """One line: shapes/dtypes of the arrays and the keywords, e.g. 'input f32[4,3], target i64[4]; reduction='sum''."""
    parts = []
    for name, a in (case.get("arrays") or {}).items():
        dt = str(a.get("dtype", ""))
        short = dt.replace("float", "f").replace("uint", "u").replace("int", "i")
        nc = "" if a.get("c_contiguous", True) else " (strided)"
        parts.append(f"{name} {short}[{','.join(str(s) for s in a.get('shape', []))}]{nc}")
    kw = ", ".join(f"{k}={v!r}" for k, v in (case.get("kwargs") or {}).items())
    return "; ".join(p for p in (", ".join(parts), kw) if p)


#: What the "worst ulp" column measures, shown under every table that has it.
ULP_NOTE = (
    "worst ulp: the largest error of any checked element, in units in the last place of the candidate's "
    "dtype at the exact value, over the elements whose magnitude exceeds their tolerance. The verdict does "
    "not use it: each element is allowed an error bounded by the size of the terms it is computed from "
    "(conformance/tolerances.py), so a tiny result of cancelling large terms can be far off in ulps and still "
    "pass. torch's own 7.6e12 ulp is such a case: a confident row's loss lse - x_t of about 1e-13, formed from "
    "logits of size 30, whose float64 rounding error (about 1e-15 absolute) is many ulps of the tiny result."
)

_KIND_ORDER = ("numeric", "exception", "robustness")


def run_verdict(run: dict[str, Any]) -> str:
    """'fail' (some result failed), 'partial' (stopped early), 'empty' (nothing checked) or 'pass'."""
    if any(r.get("status") in FAILING for r in run.get("results") or []):
        return "fail"
    if run.get("partial"):
        return "partial"
    return "pass" if run.get("results") else "empty"


def failure_classes(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's failure classes, numeric ones first, then exceptions, then crashes/timeouts; by count."""
    cls = list(run.get("classes") or [])
    return sorted(cls, key=lambda c: (_KIND_ORDER.index(c.get("kind", "numeric")) if c.get("kind") in _KIND_ORDER
                                      else 3, -int(c.get("count") or 0), c.get("class_id", "")))


def diagnoses_of(run: dict[str, Any], candidate: str, loss: str) -> list[dict[str, Any]]:
    for d in run.get("diagnoses") or []:
        if d.get("candidate") == candidate and d.get("loss") == loss:
            return list(d.get("diagnoses") or [])
    return []


def diagnosis_note(diags: list[dict[str, Any]]) -> str:
    """'smoothing_eps_over_c_minus_1 (3 of 4); unexplained (1 of 4)'."""
    return "; ".join(f"{d.get('id')} ({d.get('explains')} of {d.get('of')})" for d in diags)


def class_line(c: dict[str, Any]) -> str:
    """One line per failure class: check, status, signature, dtypes, count."""
    sig = ", ".join(c.get("signature") or []) or "plain case"
    return (f"{c.get('candidate')} / {c.get('loss')} / {c.get('check')} {c.get('status')}: [{sig}] "
            f"in {'/'.join(c.get('dtypes') or [])}, {c.get('count')} case{'s' if c.get('count') != 1 else ''}")


def metamorphic_cells(rows: list[Row]) -> list[Cell]:
    """The metamorphic checks' cells (conformance/relations.py), candidate by candidate: those that
    ran and those found not applicable (with why); none for a loss the run did not select."""
    out = []
    for row in rows:
        for c in row.cells:
            if c.check in RELATIONS and (c.verdict in (PASS, FAIL) or c.reason.count("not applicable")):
                out.append(c)
    return out


def worst_case_note(cell: Cell) -> str:
    """'12 cases, worst 3 ulp' for a metamorphic cell; its reason when it did not run."""
    if cell.verdict not in (PASS, FAIL):
        return cell.reason
    n = cell.n_cases
    w = fmt_ulp(cell.worst_ulp)
    return f"{n} case{'s' if n != 1 else ''}" + (f", worst difference {w} ulp" if w else "")


#: What the metamorphic section of each report is about, under its heading.
METAMORPHIC_NOTE = ("Metamorphic checks relate a candidate's own results to each other (chunk sizes, the batch "
                    "permuted and split, the materialised logits, the vocabulary split into shards; "
                    "conformance/metamorphic.py): each comparison allows the sum of both results' tolerance "
                    "bounds. A check whose entry points a candidate lacks is not applicable, never failed.")
