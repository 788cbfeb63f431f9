"""Terminal output: a progress display on stderr while a campaign runs, and a closing summary.

The progress display redraws one line in place on a terminal; when stderr is
not a terminal (a CI log, a pipe) it prints a plain line at each tenth of the
work, whenever the failure count grows and when a new stage (candidate / loss /
catalogue or fuzz) starts, so logs stay short and readable.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from conformance.config import ProgressEvent
from conformance.model import RunResults
from conformance.reports._aggregate import (
    FAIL, NOT_RUN, PASS, ULP_NOTE, aggregate, as_dict, class_line, diagnoses_of, diagnosis_note, extension_note,
    failure_classes, fmt_ulp, metamorphic_cells, num, run_verdict, worst_case_note,
)

#: Failure classes listed on the console (summary.md and report.json have all of them).
MAX_CLASSES_SHOWN = 25
#: Failures printed in full after the classes.
MAX_FULL_FAILURES = 3

_WIDTH = 24          # characters of bar
_MIN_REDRAW_S = 0.1  # a terminal redraw at most ten times a second


class ProgressBar:
    """A ``ProgressCallback`` (``bar(event)``) that reports to ``stream`` (stderr by default).

    Args:
        stream: where to write; its ``isatty()`` picks the in-place or the plain-line form.
        clock: seconds as a float (injectable for tests).
    """

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.start = clock()
        self._last_draw = -float("inf")
        self._last_tenth = -1
        self._last_failures = 0
        self._last_label: str | None = None
        self._drawn = False
        self._last: ProgressEvent | None = None

    def __call__(self, event: ProgressEvent) -> None:
        self._last = event
        if self.tty:
            now = self.clock()
            if now - self._last_draw >= _MIN_REDRAW_S or event.done >= event.total:
                self._last_draw = now
                self.stream.write("\r" + self._line(event) + "\x1b[K")
                self.stream.flush()
                self._drawn = True
            return
        # A line per tenth of the work, per new failure count and per new stage
        # (label): the engine's total may grow, so the label keeps a CI log moving.
        tenth = 10 * event.done // event.total if event.total > 0 else 0
        if tenth > self._last_tenth or event.failures > self._last_failures or event.label != self._last_label:
            self._last_tenth = max(tenth, self._last_tenth)
            self._last_failures = event.failures
            self._last_label = event.label
            self.stream.write(self._line(event) + "\n")
            self.stream.flush()

    def _line(self, e: ProgressEvent) -> str:
        frac = min(1.0, e.done / e.total) if e.total > 0 else 0.0
        elapsed = self.clock() - self.start
        fail = f"  {e.failures} failing" if e.failures else ""
        if self.tty:
            filled = int(round(frac * _WIDTH))
            bar = "#" * filled + "." * (_WIDTH - filled)
            return f"[{bar}] {e.done}/{e.total} {100 * frac:3.0f}% {elapsed:6.1f}s{fail}  {e.label}"
        return f"conformance: {e.done}/{e.total} ({100 * frac:.0f}%) {elapsed:.1f}s{fail}  {e.label}"

    def close(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _class_lines(run) -> list[str]:
    classes = failure_classes(run)
    if not classes:
        return []
    lines = [f"Failure classes ({len(classes)}; numeric first):"]
    for c in classes[:MAX_CLASSES_SHOWN]:
        lines.append(f"  [{c.get('kind')}] {class_line(c)}")
        if c.get("message"):
            lines.append(f"      {c['message'][:300]}")
        if c.get("hint"):
            lines.append(f"      hint: {c['hint']}")
        if c.get("reproducer"):
            lines.append(f"      reproducer: {c['reproducer']}/repro.py")
    if len(classes) > MAX_CLASSES_SHOWN:
        lines.append(f"  ... and {len(classes) - MAX_CLASSES_SHOWN} more classes in summary.md / report.json")
    return lines + [""]


def _full_failures(run) -> list[str]:
    reps = [r for r in run.get("results") or [] if r.get("reproducer")][:MAX_FULL_FAILURES]
    if not reps:
        return []
    lines = [f"First failures in full ({len(reps)}):"]
    for r in reps:
        lines.append(f"  {r['candidate']} / {r['loss']} / {r['check']} {r['status']}  {r['case_id']}")
        if r.get("message"):
            lines.append(f"    {r['message'][:600]}")
        err = r.get("error") or {}
        if err.get("worst_index") is not None and err.get("n_bad"):
            lines.append(f"    worst element {err['worst_index']}: got {err.get('worst_got')!r}, want "
                         f"{err.get('worst_want')!r}; {err.get('tolerance', '')}")
        if r.get("output"):
            lines.append("    candidate output (tail): " + r["output"][-300:].replace("\n", " | "))
    return lines + [""]


def format_summary(results: RunResults | dict[str, Any], paths: dict[str, str] | None = None) -> str:
    """A plain-text summary: the failure classes, one line per candidate x loss, the totals, the reports."""
    run = as_dict(results)
    rows = aggregate(run)
    name_w = max([len(r.candidate) for r in rows] + [9])
    loss_w = max([len(r.loss) for r in rows] + [4])
    lines = _class_lines(run)
    lines.append(f"{'candidate':<{name_w}}  {'loss':<{loss_w}}  {'verdict':<13}  {'cases':>5}  worst ulp")
    for row in rows:
        worst = fmt_ulp(row.worst_ulp)
        extra = []
        diags = diagnoses_of(run, row.candidate, row.loss)
        if diags:
            extra.append("diagnosis: " + diagnosis_note(diags))
        if row.torch_differs:
            extra.append(f"{row.torch_differs} differ from torch (exact agrees)")
        etd = sum(c.counts.get("error_type_differs", 0) for c in row.cells)
        if etd:
            extra.append(f"{etd} raise another exception type than torch")
        if row.lacking:
            extra.append("not supported: " + ", ".join(row.lacking))
        if row.extensions:
            extra.append("extensions: " + extension_note(row))
        lines.append(f"{row.candidate:<{name_w}}  {row.loss:<{loss_w}}  {row.verdict:<13}  "
                     f"{row.n_cases:>5}  {worst:>9}" + ("  " + "; ".join(extra) if extra else ""))
    lines.append("(" + ULP_NOTE.split(". The verdict")[0] + "; see summary.md for why a large number can pass.)")
    meta = metamorphic_cells(rows)
    if meta:
        check_w = max(len(c.check) for c in meta)
        lines.append("metamorphic checks (a candidate's results against each other; conformance/metamorphic.py):")
        for c in meta:
            lines.append(f"{c.candidate:<{name_w}}  {c.loss:<{loss_w}}  {c.check:<{check_w}}  {c.verdict:<13}  "
                         f"{worst_case_note(c)}")
    for info in run.get("candidates") or []:
        if info.get("note"):
            lines.append(f"note: {info['name']}: {info['note']}")
    lines.append("")
    lines += _full_failures(run)
    cells = [c for r in rows for c in r.cells]
    n_fail = sum(c.verdict == FAIL for c in cells)
    n_pass = sum(c.verdict == PASS for c in cells)
    n_skip = len(cells) - n_fail - n_pass
    not_run = sum(c.verdict == NOT_RUN for c in cells)
    verdict = {"fail": "FAIL", "pass": "PASS", "partial": "PARTIAL (stopped early: " + str(run.get("partial")) + ")",
               "empty": "NOTHING CHECKED"}[run_verdict(run)]
    n_classes = len(run.get("classes") or [])
    lines.append(f"{verdict}: {n_pass} checks passed, {n_fail} failed, {n_skip} skipped"
                 f"{f' ({not_run} not run)' if not_run else ''}; {n_classes} failure classes; "
                 f"{len(run.get('findings') or [])} findings; "
                 f"seed {run.get('seed')}, {(num(run.get('duration_s')) or 0.0):.1f} s")
    for kind, path in (paths or {}).items():
        lines.append(f"  {kind:<8} {path}")
    return "\n".join(lines)


def print_summary(results: RunResults | dict[str, Any], paths: dict[str, str] | None = None,
                  stream: TextIO | None = None) -> None:
    """Print ``format_summary`` to ``stream`` (stdout by default)."""
    print(format_summary(results, paths), file=stream if stream is not None else sys.stdout)
