"""summary.md: a Markdown summary for a CI step summary or a pull-request comment.

Sections: a one-line verdict, the failure classes (numeric before exception-type,
float32/float64 pairs folded, each with its count and minimal reproducer), a table
per candidate x loss (verdict, diagnosis, cases, checks passed, worst error in ulps
against the exact value, with what that column measures), the first failures in
full, the declared extensions and the findings (torch differing from the exact
value, oracle disagreements). Lists are capped so the file stays well under
the 64 KiB a GitHub comment accepts; report.json has everything.
"""
from __future__ import annotations

import os
import re
from typing import Any

from conformance.model import RunResults
from conformance.extensions import EXTENSIONS
from conformance.reports._aggregate import (
    FAIL, NOT_SUPPORTED, PASS, ULP_NOTE, Row, aggregate, as_dict, class_line, describe_case, diagnoses_of,
    METAMORPHIC_NOTE, diagnosis_note, extension_note, failure_classes, fmt_float, fmt_ulp, metamorphic_cells, num,
    run_verdict, worst_case_note,
)

FILENAME = "summary.md"
MAX_FINDINGS = 30
MAX_FAILURES = 40
MAX_CLASSES = 60
#: Failures shown in full (inputs, tolerance, worst element, output); the rest are one line each.
MAX_FULL = 5
_FENCE = "`" * 3

_BADGE = {PASS: "✅ pass", FAIL: "❌ fail", NOT_SUPPORTED: "➖ not supported"}


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _md(text: Any) -> str:
    """Table-cell safe text: pipes escaped, newlines folded, control characters dropped."""
    return _CONTROL.sub("", str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def _code(text: Any) -> str:
    s = str(text).replace("\n", " ")
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def _table(rows: list[Row], run: dict[str, Any]) -> list[str]:
    out = ["| candidate | loss | verdict | diagnosis | cases | checks passed | worst error (ulp vs exact) ² | differs from torch ¹ | not supported |",
           "|---|---|---|---|--:|--:|--:|--:|---|"]
    for row in rows:
        run_cells = [c for c in row.cells if c.verdict in (PASS, FAIL)]
        passed = sum(c.verdict == PASS for c in run_cells)
        checks = f"{passed}/{len(run_cells)}" if run_cells else ""
        worst = fmt_ulp(row.worst_ulp)
        if worst and row.worst:
            worst += f" ({row.worst['check']})"
        out.append("| " + " | ".join(_md(x) for x in (
            row.candidate, row.loss, _BADGE.get(row.verdict, row.verdict),
            diagnosis_note(diagnoses_of(run, row.candidate, row.loss)), row.n_cases or "",
            checks, worst, row.torch_differs or "", ", ".join(row.lacking),
        )) + " |")
    out.append("")
    out.append("¹ cases where the candidate differs from torch but agrees with the exact (mpmath) value "
               "and torch does not; reported, never failed.  ")
    out.append("² " + ULP_NOTE)
    return out


def _metamorphic(rows: list[Row]) -> list[str]:
    cells = metamorphic_cells(rows)
    if not cells:
        return []
    out = ["## Metamorphic checks", "", METAMORPHIC_NOTE, "",
           "| candidate | loss | check | verdict | cases / why not |", "|---|---|---|---|---|"]
    for c in cells:
        out.append("| " + " | ".join(_md(x) for x in (c.candidate, c.loss, c.check, _BADGE.get(c.verdict, c.verdict),
                                                       worst_case_note(c))) + " |")
    return out + [""]


def _classes(run: dict[str, Any]) -> list[str]:
    classes = failure_classes(run)
    if not classes:
        return []
    out = [f"## Failure classes ({len(classes)})", "",
           "Each class is one check failing one way on cases with the same options and region; its count is "
           "the failing cases seen, its reproducer the smallest case found (shrunk where it came from fuzzing). "
           "Numeric failures first, then exceptions, then crashes and timeouts.", ""]
    for c in classes[:MAX_CLASSES]:
        line = f"- **{_md(c.get('kind'))}** {_md(class_line(c))}"
        if c.get("message"):
            line += f": {_md(c['message'][:400])}"
        err = c.get("error") or {}
        if err.get("n_bad"):
            line += (f"; worst element {err.get('worst_index')}: got {fmt_float(err.get('worst_got'))}, "
                     f"want {fmt_float(err.get('worst_want'))}")
        if c.get("hint"):
            line += f"; hint: {_md(c['hint'])}"
        if c.get("reproducer"):
            line += f"; reproducer {_code(os.path.join(c['reproducer'], 'repro.py'))}"
        out.append(line)
    if len(classes) > MAX_CLASSES:
        out.append(f"- … and {len(classes) - MAX_CLASSES} more in report.json")
    return out + [""]


def _error_types(run: dict[str, Any]) -> list[str]:
    """Invalid inputs that raised another exception type than torch's (not failures unless strict)."""
    diff = [r for r in run.get("results") or [] if r.get("status") == "error_type_differs"]
    if not diff:
        return []
    out = ["## Exception types that differ from torch", "",
           f"{len(diff)} invalid inputs raised, but not torch's exception type; without `--strict-errors` "
           "these are differences, not failures. The first few:", ""]
    for r in diff[:MAX_FULL * 2]:
        out.append(f"- `{_md(r['candidate'])}` / `{r['loss']}` {_code(r['case_id'])}: {_md(r.get('message', ''))}")
    return out + [""]


def _extensions(rows: list[Row]) -> list[str]:
    """Declared extensions: inputs torch rejects that a candidate accepts, checked as values."""
    listed = [row for row in rows if row.extensions]
    if not listed:
        return []
    out = ["## Declared extensions", "",
           "Inputs torch 2.13 rejects that the candidate declares it accepts: those cases are checked "
           "as values against torch's result for the canonical form (int64 target, weight in the "
           "input's dtype), not as missing errors.", ""]
    for row in listed:
        out.append(f"- `{_md(row.candidate)}` / `{row.loss}`: {_md(extension_note(row))}")
    names = sorted({e for row in listed for e in row.extensions})
    out += [""] + [f"`{e}`: {_md(EXTENSIONS.get(e, ''))}  " for e in names]
    return out + [""]


def _findings(run: dict[str, Any]) -> list[str]:
    findings = run.get("findings") or []
    out = ["## Findings", ""]
    if not findings:
        return out + ["None: torch and the oracles agreed with the exact value wherever they were compared.", ""]
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    out.append(", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    out.append("")
    for f in findings[:MAX_FINDINGS]:
        line = f"- **{_md(f['kind'])}** ({f['loss']}): {_md(f['message'])}"
        if f.get("case"):
            line += f" [{_md(describe_case(f['case']))}]"
        if f.get("reproducer"):
            line += f"; reproducer {_code(f['reproducer'])}"
        out.append(line)
    if len(findings) > MAX_FINDINGS:
        out.append(f"- … and {len(findings) - MAX_FINDINGS} more in report.json")
    return out + [""]


def _full(r: dict[str, Any]) -> list[str]:
    out = [f"### `{r['candidate']}` / `{r['loss']}` / `{r['check']}` {r['status']}", "",
           f"- case {_code(r['case_id'])}: {_md(describe_case(r.get('case') or {}))}"]
    if r.get("message"):
        out.append(f"- {_md(r['message'])}")
    err = r.get("error") or {}
    if err.get("n_bad"):
        out.append(f"- {err.get('n_bad')} of {err.get('n_total')} elements outside the tolerance; the one most "
                   f"beyond it: index {err.get('worst_index')}, got {fmt_float(err.get('worst_got'))}, want "
                   f"{fmt_float(err.get('worst_want'))} (oracle {r.get('oracle') or '?'})")
        out.append(f"- tolerance: {_md(err.get('tolerance', ''))}")
    if r.get("output"):
        out += ["- candidate output (tail):", "", _FENCE + "text", r["output"][-1500:].replace(_FENCE, "'" * 3),
                _FENCE]
    if r.get("reproducer"):
        out.append(f"- reproducer {_code(os.path.join(r['reproducer'], 'repro.py'))} (torch only: "
                   f"{_code(os.path.join(r['reproducer'], 'torch_repro.py'))})")
    return out + [""]


def _failures(rows: list[Row]) -> list[str]:
    out = ["## Failures", ""]
    failing = [(row, c, r) for row in rows for c in row.cells for r in c.failures]
    if not failing:
        return out + ["None.", ""]
    full = [r for _, _, r in failing if r.get("reproducer")][:MAX_FULL]
    if full:
        out += [f"The first {len(full)} class representatives in full, then every failing case in one line.", ""]
        for r in full:
            out += _full(r)
    for row, cell, r in failing[:MAX_FAILURES]:
        line = f"- `{row.candidate}` / `{row.loss}` / `{cell.check}` **{r['status']}** {_code(r['case_id'])}"
        line += f" [{_md(describe_case(r.get('case') or {}))}]"
        if r.get("message"):
            line += f": {_md(r['message'])}"
        err = r.get("error")
        if err and (err.get("worst_got") is not None or err.get("worst_want") is not None):
            line += (f"; got {fmt_float(err.get('worst_got'))}, want {fmt_float(err.get('worst_want'))}"
                     f" ({fmt_ulp(err.get('max_ulp'))} ulp, oracle {r.get('oracle') or '?'})")
        if r.get("reproducer"):
            line += f"; reproducer {_code(os.path.join(r['reproducer'], 'repro.py'))}"
        out.append(line)
    if len(failing) > MAX_FAILURES:
        out.append(f"- … and {len(failing) - MAX_FAILURES} more in report.json / junit.xml")
    return out + [""]


def render_markdown(results: RunResults | dict[str, Any]) -> str:
    """The summary.md text for a run."""
    run = as_dict(results)
    rows = aggregate(run)
    verdict = {"fail": "❌ FAIL", "pass": "✅ PASS", "partial": "⏸ PARTIAL (the run stopped early; no verdict)",
               "empty": "⚠ NOTHING CHECKED"}[run_verdict(run)]
    cfg = run.get("config") or {}
    env = run.get("environment") or {}
    n_cases = sum((run.get("cases_run") or {}).values())
    head = [
        f"# nbxent conformance: {verdict}",
        "",
        f"seed {run.get('seed')} · {n_cases} cases · {len(run.get('results') or [])} check results · "
        f"{(num(run.get('duration_s')) or 0.0):.1f} s · oracles {', '.join(cfg.get('oracles') or []) or '?'} · "
        f"dtypes {', '.join(cfg.get('dtypes') or []) or '?'}",
        "",
    ]
    if run.get("partial"):
        head += [f"**Partial report**: {_md(run['partial'])}.", ""]
    if env:
        head += [" · ".join(f"{k} {v}" for k, v in sorted(env.items())), ""]
    notes = [f"- `{_md(c['name'])}`: {_md(c['note'])}" for c in run.get("candidates") or [] if c.get("note")]
    if notes:
        notes = ["## Candidate notes", ""] + notes + [""]
    return "\n".join(head + _classes(run) + ["## Results", ""] + _table(rows, run) + [""] + _metamorphic(rows)
                     + notes + _failures(rows) + _error_types(run) + _extensions(rows) + _findings(run))


def write_markdown(results: RunResults | dict[str, Any], report_dir: str) -> str:
    """Write ``<report_dir>/summary.md``; returns its path."""
    path = os.path.join(report_dir, FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_markdown(results))
    return path
