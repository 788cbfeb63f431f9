"""Report writers: each reads a RunResults (or its JSON form) and nothing else.

* ``report.json``  everything, versioned (``json_report``; schema in docs/conformance.md)
* ``junit.xml``    one test case per candidate x loss x check (``junit``)
* ``summary.md``   a table and the failures for a CI step summary or PR comment (``markdown``)
* ``report.html``  one self-contained page with tables and SVG plots (``html``)
* the console summary and the progress display (``console``)
"""
from __future__ import annotations

import os
from typing import Any

from conformance.model import RunResults
from conformance.reports.html import render_html, write_html
from conformance.reports.console import ProgressBar, format_summary, print_summary
from conformance.reports.json_report import SCHEMA_VERSION, read_json, to_report_dict, write_json
from conformance.reports.junit import render_junit, write_junit
from conformance.reports.markdown import render_markdown, write_markdown

__all__ = [
    "SCHEMA_VERSION",
    "ProgressBar",
    "format_summary",
    "print_summary",
    "read_json",
    "render_html",
    "render_junit",
    "render_markdown",
    "to_report_dict",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
    "write_reports",
]


def write_reports(results: RunResults | dict[str, Any], report_dir: str) -> dict[str, str]:
    """Write report.json, junit.xml, summary.md and report.html into ``report_dir`` (created if missing).

    Returns:
        ``{'json': path, 'junit': path, 'markdown': path, 'html': path}``.
    """
    os.makedirs(report_dir, exist_ok=True)
    return {
        "json": write_json(results, report_dir),
        "junit": write_junit(results, report_dir),
        "markdown": write_markdown(results, report_dir),
        "html": write_html(results, report_dir),
    }
