"""junit.xml: one test case per candidate x loss x check, for CI test-report viewers.

Layout (the subset every JUnit consumer reads: GitHub/GitLab/Jenkins/Azure):

    <testsuites name="nbxent-conformance" tests failures errors skipped time>
      <testsuite name="<candidate>" tests failures errors skipped time timestamp>
        <properties> seed, versions </properties>
        <testcase classname="conformance.<candidate, dots as _>.<loss>" name="<check>">
          <failure type="fail" message="...">worst error, failing cases, reproducers</failure>
          | <error type="crash" ...>           (no 'fail' result, only error/crash/timeout)
          | <skipped message="not supported: ..."/>
        </testcase>

A test case aggregates every case of its check; it fails if any case failed.
"""
from __future__ import annotations

import datetime
import os
import re
import xml.etree.ElementTree as ET
from typing import Any

from conformance.model import RunResults
from conformance.reports._aggregate import (
    FAIL, NOT_RUN, NOT_SUPPORTED, Cell, aggregate, as_dict, describe_case, fmt_float, fmt_ulp, num,
)

FILENAME = "junit.xml"
#: Failing cases listed in full inside one <failure> body; the rest are counted.
MAX_LISTED = 20

# XML 1.0 forbids most control characters; an exception message may contain them.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: Any) -> str:
    return _BAD_XML.sub("\ufffd", str(text))


def classname(candidate: str, loss: str) -> str:
    """``conformance.<candidate>.<loss>``; viewers split class names at dots, so the
    candidate's own dots (a module path, a file name) become underscores."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", candidate).strip("_") or "candidate"
    return f"conformance.{label}.{loss}"


def _failure_message(cell: Cell) -> str:
    n_bad = sum(cell.counts[s] for s in ("fail", "error", "crash", "timeout"))
    kinds = ", ".join(f"{cell.counts[s]} {s}" for s in ("fail", "error", "crash", "timeout") if cell.counts[s])
    first = cell.failures[0].get("message", "") if cell.failures else ""
    head = f"{n_bad} of {cell.n_cases} cases failed ({kinds})"
    w = cell.worst
    if w and w.get("error") and num(w["error"].get("max_ulp")) is not None:
        head += f"; worst {fmt_ulp(w['error']['max_ulp'])} ulp"
    return f"{head}: {first}" if first else head


def _failure_body(cell: Cell) -> str:
    lines = []
    for r in cell.failures[:MAX_LISTED]:
        lines.append(f"[{r['status']}] {r['case_id']}  ({describe_case(r.get('case') or {})})")
        if r.get("message"):
            lines.append(f"    {r['message']}")
        err = r.get("error")
        if err:
            lines.append(
                f"    max_abs={fmt_float(err.get('max_abs'))} max_rel={fmt_float(err.get('max_rel'))} "
                f"max_ulp={fmt_ulp(err.get('max_ulp'))} bad={err.get('n_bad')}/{err.get('n_total')}"
            )
            if err.get("worst_index") is not None or err.get("worst_got") is not None:
                lines.append(
                    f"    worst at {err.get('worst_index')}: got {fmt_float(err.get('worst_got'))} "
                    f"want {fmt_float(err.get('worst_want'))} (oracle {r.get('oracle') or '?'})"
                )
            if err.get("tolerance"):
                lines.append(f"    tolerance: {err['tolerance']}")
        if r.get("reproducer"):
            lines.append(f"    reproducer: {r['reproducer']}")
    if len(cell.failures) > MAX_LISTED:
        lines.append(f"... and {len(cell.failures) - MAX_LISTED} more failing cases (see report.json)")
    return "\n".join(lines)


def render_junit(results: RunResults | dict[str, Any]) -> ET.Element:
    """The <testsuites> element for a run."""
    run = as_dict(results)
    rows = aggregate(run)
    root = ET.Element("testsuites", name="nbxent-conformance")
    suites: dict[str, ET.Element] = {}
    tallies: dict[str, dict[str, int]] = {}
    for row in rows:
        suite = suites.get(row.candidate)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name=_clean(row.candidate))
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="seed", value=str(run.get("seed")))
            for k, v in sorted((run.get("environment") or {}).items()):
                ET.SubElement(props, "property", name=_clean(k), value=_clean(v))
            declared = sorted({e for r in rows if r.candidate == row.candidate for e in r.extensions})
            if declared:       # inputs torch rejects that this candidate accepts (checked as values)
                ET.SubElement(props, "property", name="extensions", value=_clean(", ".join(declared)))
            suites[row.candidate] = suite
            tallies[row.candidate] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        t = tallies[row.candidate]
        for cell in row.cells:
            case = ET.SubElement(suite, "testcase", classname=_clean(classname(row.candidate, row.loss)),
                                 name=cell.check, time="0")
            t["tests"] += 1
            if cell.verdict == FAIL:
                tag = "failure" if cell.counts["fail"] else "error"
                typ = "fail" if tag == "failure" else next(s for s in ("error", "crash", "timeout") if cell.counts[s])
                el = ET.SubElement(case, tag, type=typ, message=_clean(_failure_message(cell)))
                el.text = _clean(_failure_body(cell))
                t["failures" if tag == "failure" else "errors"] += 1
            elif cell.verdict in (NOT_SUPPORTED, NOT_RUN):
                prefix = "not supported" if cell.verdict == NOT_SUPPORTED else "not run"
                ET.SubElement(case, "skipped", message=_clean(f"{prefix}: {cell.reason}"))
                t["skipped"] += 1
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _clean(_pass_note(cell))
    duration = num(run.get("duration_s")) or 0.0
    grand = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for cand, suite in suites.items():
        for k, v in tallies[cand].items():
            suite.set(k, str(v))
            grand[k] += v
        suite.set("time", "0")
        suite.set("timestamp", _timestamp(run.get("started")))
    for k, v in grand.items():
        root.set(k, str(v))
    root.set("time", f"{duration:.3f}")
    return root


def _timestamp(started: Any) -> str:
    """The start time as the Ant JUnit schema wants it: ISO 8601 in UTC without an offset."""
    try:
        t = datetime.datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return ""
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _pass_note(cell: Cell) -> str:
    note = f"{cell.n_cases} cases passed"
    if cell.counts["torch_differs"]:
        note += f"; {cell.counts['torch_differs']} differ from torch where the exact value agrees with the candidate"
    if cell.worst_ulp is not None:
        note += f"; worst {fmt_ulp(cell.worst_ulp)} ulp"
    return note


def write_junit(results: RunResults | dict[str, Any], report_dir: str) -> str:
    """Write ``<report_dir>/junit.xml``; returns its path."""
    root = render_junit(results)
    ET.indent(root)
    path = os.path.join(report_dir, FILENAME)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
