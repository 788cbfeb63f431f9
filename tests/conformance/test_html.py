"""report.html: the page's sections from the results model, its SVG plots, and a render in a real
headless browser (Chromium from the system packages: `make browser-test-deps`; skipped, with the
reason, where it is not installed or cannot run)."""
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from _reports_data import make_run
from conformance.reports import html as report_html

#: [candidate, loss, dtype, check, max |input|, C, ulp], as conformance.campaign.accuracy_points writes them
POINTS = [["good", "cross_entropy", "float32", "value", 3.0, 10, 0.4],
          ["good", "cross_entropy", "float32", "value", 900.0, 5000, 1.5],
          ["bad", "cross_entropy", "float32", "value", 30.0, 100, 2e4],
          ["bad", "cross_entropy", "float64", "value", 0.0, 3, 0.0],
          ["good", "nll_loss", "float64", "grad_input", 2.0, 4, 0.2]]


def _run(**kw):
    return dataclasses.replace(make_run(with_failures=True), accuracy=POINTS, **kw)


def test_sections_tables_and_plots_from_the_model():
    page = report_html.render_html(_run())
    for ident in ('id="verdict"', 'id="verdicts"', 'id="leaderboard"', 'id="profile"', 'id="classes"',
                  'id="plot-logit-float32"', 'id="plot-classes-float32"', 'id="plot-logit-float64"'):
        assert ident in page, ident
    assert "FAIL" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # one circle per value point of the dtype, in each of its two plots; gradient points are not plotted
    f32 = re.search(r'<svg id="plot-logit-float32".*?</svg>', page, re.S).group(0)
    assert f32.count("<circle") == 3 and "20000 ulp" in f32
    # leaderboard: per loss, the candidate with the smaller median error first
    board = page.split('id="leaderboard"')[1].split("</table>")[0]
    assert board.index("<td>good</td>") < board.index("<td>bad</td>")


def test_page_without_points_or_profile_still_has_its_tables():
    page = report_html.render_html(dataclasses.replace(make_run(with_failures=False), accuracy=[]))
    assert "No accuracy points" in page and 'id="verdicts"' in page and "Not made in this run" in page


def test_profile_table_when_the_run_made_one():
    prof = {"candidates": ["good"], "axes": [{"axis": "mean denominator", "torch": "sum of w[t] (§3.1)",
                                              "cells": {"good": {"text": "torch"}}}]}
    page = report_html.render_html(_run(profile=prof))
    table = page.split('id="profile"')[1].split("</table>")[0]
    assert "mean denominator" in table and "<td>torch</td>" in table


def test_many_points_are_thinned_keeping_the_extremes():
    pts = [["c", "cross_entropy", "float32", "value", 1.0, 3, float(i)] for i in range(report_html.MAX_POINTS * 2)]
    svg = report_html._scatter(pts, 4, "x", "t", {"c": "#000"}, "p")
    assert svg.count("<circle") == report_html.MAX_POINTS and f"{len(pts) - 1:g} ulp" in svg


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_page_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make browser-test-deps installs the Debian package 'chromium')")
    page = report_html.write_html(_run(), str(tmp_path))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as profile:
        base = [browser, *flags, f"--user-data-dir={profile}"]
        try:
            dom = subprocess.run(base + ["--dump-dom", f"file://{page}"], capture_output=True, text=True,
                                 timeout=90)
            shot = tmp_path / "report.png"
            subprocess.run(base + ["--window-size=1280,2400", f"--screenshot={shot}", f"file://{page}"],
                           capture_output=True, text=True, timeout=90)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"Chromium cannot run here: {exc}")
    if dom.returncode != 0 or "<html" not in dom.stdout:
        pytest.skip(f"Chromium cannot run here (exit {dom.returncode}): {dom.stderr[-300:]}")
    # the browser parsed the plots as SVG and the tables as tables
    for ident in ("verdicts", "leaderboard", "classes", "plot-logit-float32", "plot-classes-float32"):
        assert f'id="{ident}"' in dom.stdout, ident
    svg = re.search(r'<svg id="plot-logit-float32".*?</svg>', dom.stdout, re.S).group(0)
    assert svg.count("<circle") == 3
    verdicts = dom.stdout.split('id="verdicts"')[1].split("</table>")[0]
    assert verdicts.count("<tr>") == 1 + 4                  # header + 2 candidates x 2 losses
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(shot) > 10_000
