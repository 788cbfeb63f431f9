"""Reports a person can triage in a minute: classes first, diagnoses beside the verdict, the ulp note,
no PASS for a run that did not finish or checked nothing, no stale reproducers, declared-feature hints."""
import json
import os
import sys
import textwrap
import types

import pytest

from _reports_data import make_run
from conformance import cli
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import ErrorMeasure, FailureClass
from conformance.reports import format_summary, read_json, render_markdown, write_json

REFERENCE = os.path.join("tests", "conformance", "bugs", "reference.py")


def _with_classes():
    run = make_run()
    desc = {"loss": "cross_entropy", "origin": "fuzz", "arrays": {}, "kwargs": {}}
    run.classes = [
        FailureClass("bad/cross_entropy/2", "bad", "cross_entropy", "error_semantics", "fail", "exception",
                     ["target_out_of_range", "(missing error)"], ["float32"], 7, "cross_entropy/shrink/0-1-003",
                     desc, "missing error: returned a value where torch raises IndexError", None, "rep/b", True, 4),
        FailureClass("bad/cross_entropy/1", "bad", "cross_entropy", "value", "fail", "numeric",
                     ["reduction=mean", "weight"], ["float32", "float64"], 3, "cross_entropy/shrink/0-0-002",
                     desc, "1 of 1 elements outside the tolerance",
                     ErrorMeasure(1.0, 0.5, 9.0, 1, 1, [], 2.0, 1.0, "t"), "rep/a", True, 6),
    ]
    run.diagnoses = [{"candidate": "bad", "loss": "cross_entropy", "diagnoses": [
        {"id": "weighted_mean_by_count", "summary": "mean divides by the count", "explains": 3, "of": 10},
        {"id": "unexplained", "summary": "no variant explains these", "explains": 7, "of": 10}]}]
    return run


def test_markdown_lists_classes_first_numeric_before_exceptions_with_diagnoses():
    md = render_markdown(_with_classes())
    assert md.index("## Failure classes (2)") < md.index("## Results") < md.index("## Failures")
    classes = md.split("## Failure classes")[1].split("## Results")[0]
    assert classes.index("**numeric**") < classes.index("**exception**")
    assert "in float32/float64, 3 cases" in classes and "[reduction=mean, weight]" in classes
    assert "`rep/a/repro.py`" in classes
    row = next(line for line in md.splitlines() if line.startswith("| bad | cross_entropy"))
    assert "weighted_mean_by_count (3 of 10); unexplained (7 of 10)" in row
    assert "7.6e12 ulp" in md and "worst ulp: the largest error" in md


def test_console_lists_classes_before_the_table_and_diagnoses_beside_the_verdict():
    text = format_summary(_with_classes())
    assert text.index("Failure classes (2; numeric first)") < text.index("candidate  ")
    assert text.index("[numeric]") < text.index("[exception]")
    line = next(x for x in text.splitlines() if x.startswith("bad ") and "cross_entropy" in x)
    assert "diagnosis: weighted_mean_by_count (3 of 10)" in line


def test_classes_and_diagnoses_round_trip_through_report_json(tmp_path):
    path = write_json(_with_classes(), str(tmp_path))
    doc = json.load(open(path))
    row = next(r for r in doc["summary"]["rows"] if r["candidate"] == "bad" and r["loss"] == "cross_entropy")
    assert row["classes"] == 2 and row["diagnoses"][0]["id"] == "weighted_mean_by_count"
    back = read_json(path)
    assert [c.class_id for c in back.classes] == ["bad/cross_entropy/2", "bad/cross_entropy/1"]
    assert back.classes[1].error.max_ulp == 9.0 and back.diagnoses == doc["diagnoses"]


@pytest.mark.parametrize("partial,empty,word", [("interrupted (SIGTERM)", False, "PARTIAL"), ("", True, "NOTHING CHECKED")])
def test_no_pass_for_a_partial_or_empty_run(partial, empty, word):
    run = make_run(with_failures=False)
    run.partial = partial
    if empty:
        run.results = []
    md = render_markdown(run)
    assert word in md.splitlines()[0] and "PASS" not in md.splitlines()[0]
    assert word in format_summary(run).splitlines()[-1]


def test_a_reused_report_dir_loses_its_stale_reproducers(tmp_path, monkeypatch):
    from test_cli import FakeEngine
    out = tmp_path / "out"
    stale = out / "reproducers" / "old_case__x__value"
    stale.mkdir(parents=True)
    (stale / "repro.py").write_text("print('stale')\n")
    (out / "keep.txt").write_text("not ours")
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(make_run(with_failures=False)))
    assert cli.main(["run", "--no-progress", "--report-dir", str(out), "-c", "nbxent"]) == 0
    assert not stale.exists() and (out / "keep.txt").exists()


def test_float16_on_a_candidate_without_it_says_so(tmp_path, capsys):
    rc = cli.main(["run", "--no-progress", "-c", REFERENCE, "--dtype", "float16", "--loss", "nll_loss",
                   "--report-dir", str(tmp_path)])
    assert rc == 2
    out, err = capsys.readouterr()
    assert "nothing was checked" in err
    md = open(tmp_path / "summary.md").read()
    assert "NOTHING CHECKED" in md.splitlines()[0]
    assert "float16 requested, but the candidate does not declare it" in md


NO_SPATIAL = """
    import os, sys
    sys.path.insert(0, {bugs!r})
    import numpy as np
    import reference as ref

    def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        if np.ndim(input) > 2:
            raise ValueError("only (N, C) inputs")
        return ref.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                 label_smoothing=label_smoothing)
"""


def test_a_feature_the_harness_inferred_points_to_the_exclude_that_declares_it(tmp_path):
    cand = tmp_path / "no_spatial.py"
    cand.write_text(textwrap.dedent(NO_SPATIAL.format(bugs=os.path.abspath(os.path.dirname(REFERENCE)))))
    res = run_campaign(CampaignConfig(candidates=[str(cand)], losses=["cross_entropy"], oracles=["scipy"],
                                      max_examples=20, report_dir=str(tmp_path / "rep")))
    errs = [c for c in res.classes if c.status == "error"]
    assert errs and all("spatial" in c.signature for c in errs)
    assert any("CONFORMANCE = {'losses': {'cross_entropy': {'exclude': ['spatial']}}}" in c.hint for c in errs)


def test_the_diagnosis_gets_every_failing_case_with_the_candidates_outputs(tmp_path, monkeypatch):
    """The engine side of conformance/conventions/ (a stand-in here; the real one is tested with it)."""
    calls = []

    class FailedCase:
        def __init__(self, case, check, got_value, got_grad, got_error):
            self.case, self.check, self.got_value, self.got_grad, self.got_error = \
                case, check, got_value, got_grad, got_error

    def diagnose(loss, failures):
        calls.append((loss, failures))
        return [{"id": "stand_in", "summary": "s", "explains": len(failures), "of": len(failures)}]

    fake = types.ModuleType("conformance.conventions")
    fake.FailedCase, fake.diagnose = FailedCase, diagnose
    monkeypatch.setitem(sys.modules, "conformance.conventions", fake)
    bug = os.path.join("tests", "conformance", "bugs", "bug_ce_mean_by_count.py")
    res = run_campaign(CampaignConfig(candidates=[bug], losses=["cross_entropy"], oracles=["scipy"],
                                      max_examples=15, report_dir=str(tmp_path)))
    (loss, failures), = calls
    assert loss == "cross_entropy" and failures
    assert any(f.check == "value" and f.got_value is not None for f in failures)
    n_failing = sum(1 for r in res.results if r.status in ("fail", "error") and "/shrink/" not in r.case_id)
    assert len(failures) == n_failing
    assert res.diagnoses == [{"candidate": bug, "loss": "cross_entropy",
                              "diagnoses": [{"id": "stand_in", "summary": "s", "explains": len(failures),
                                             "of": len(failures)}]}]


def test_the_real_convention_library_diagnoses_a_seeded_bug(tmp_path):
    conventions = pytest.importorskip("conformance.conventions")
    assert hasattr(conventions, "diagnose") and hasattr(conventions, "FailedCase")
    bug = os.path.join("tests", "conformance", "bugs", "bug_ce_mean_by_count.py")
    res = run_campaign(CampaignConfig(candidates=[bug], losses=["cross_entropy"], oracles=["scipy"],
                                      max_examples=15, report_dir=str(tmp_path)))
    (d,) = res.diagnoses
    ids = [x["id"] for x in d["diagnoses"]]
    assert "weighted_mean_by_count" in ids
    assert all(x["of"] == d["diagnoses"][0]["of"] for x in d["diagnoses"])


def test_another_exception_type_is_listed_as_a_difference_not_a_failure():
    run = make_run(with_failures=False)
    r = run.results[0]
    r.status, r.check = "error_type_differs", "error_semantics"
    r.message = "raised ValueError (ValueError: bad); torch raises RuntimeError: weight tensor should be defined"
    md = render_markdown(run)
    assert md.startswith("# nbxent conformance: ✅ PASS")
    section = md.split("## Exception types that differ from torch")[1]
    assert "torch raises RuntimeError: weight tensor should be defined" in section
    assert "1 raise another exception type than torch" in format_summary(run)
