"""summary.md and the console summary: table rows, findings, failures with reproducers."""
import io

from _reports_data import make_run
from conformance.config import ProgressEvent
from conformance.reports import ProgressBar, format_summary, render_markdown, write_markdown


def _table_rows(md):
    rows = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| candidate"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[(cells[0], cells[1])] = cells
    return rows


def test_table_has_one_row_per_candidate_and_loss(tmp_path):
    md = open(write_markdown(make_run(), str(tmp_path)), encoding="utf-8").read()
    assert md.startswith("# nbxent conformance: ❌ FAIL")
    rows = _table_rows(md)
    assert set(rows) == {(c, lo) for c in ("good", "bad") for lo in ("cross_entropy", "nll_loss")}
    #                      verdict  diagnosis cases checks  worst ulp        torch  not supported
    assert rows[("bad", "cross_entropy")][2:] == ["❌ fail", "", "3", "3/5", "nan (value)", "", ""]
    assert rows[("good", "cross_entropy")][2:] == ["✅ pass", "", "3", "5/5", "inf (value)", "1", ""]
    assert rows[("good", "nll_loss")][2:] == ["✅ pass", "", "3", "4/4", "2.5 (value)", "", "backward"]


def test_findings_and_failures_sections():
    md = render_markdown(make_run())
    findings = md.split("## Findings")[1]
    assert "**torch_nan_limit** (cross_entropy): torch gives nan, exact limit is inf" in findings
    failures = md.split("## Failures")[1].split("\n## ")[0].splitlines()
    items = [x for x in failures if x.startswith("- `")]
    assert len(items) == 2 + 3 + 1            # 2 fail, 3 crash, 1 timeout
    assert any("got 0.2500001, want 0.25 (12 ulp, oracle mpmath)" in x
               and "`rep/cross_entropy_fuzz_000001/repro.py`" in x for x in items)
    assert "\x00" not in md                     # control characters from messages are dropped


def test_passing_run_says_pass_and_lists_no_failures():
    md = render_markdown(make_run(with_failures=False))
    assert md.startswith("# nbxent conformance: ✅ PASS")
    assert md.split("## Failures")[1].split("\n## ")[0].strip() == "None."


def test_console_summary_lines():
    text = format_summary(make_run(), {"json": "out/report.json"})
    lines = text.splitlines()
    assert lines[1].split()[:5] == ["good", "cross_entropy", "pass", "3", "inf"]
    assert lines[3].split()[:5] == ["bad", "cross_entropy", "fail", "3", "nan"]
    assert "FAIL: 16 checks passed, 3 failed, 1 skipped; 0 failure classes; 1 findings; seed 7, 9.2 s" in text
    assert text.rstrip().endswith("out/report.json")


def test_progress_plain_line_when_the_stage_changes():
    out = io.StringIO()
    bar = ProgressBar(out, clock=lambda: 0.0)
    for done, label in [(1, "a / catalogue"), (2, "a / catalogue"), (3, "a / catalogue"), (3, "a / fuzz")]:
        bar(ProgressEvent(done=done, total=100, label=label))
    assert [line.split()[-1] for line in out.getvalue().splitlines()] == ["catalogue", "fuzz"]


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_plain_lines_when_not_a_tty():
    out = io.StringIO()
    t = iter(range(1000))
    bar = ProgressBar(out, clock=lambda: float(next(t)))
    for done in range(0, 101):
        bar(ProgressEvent(done=done, total=100, label="nbxent / cross_entropy / fuzz", failures=int(done >= 55)))
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # one line per tenth (0..10) plus one when the failure count first grows (at 55)
    assert len(lines) == 12
    assert lines[0].startswith("conformance: 0/100 (0%)")
    assert lines[-1].startswith("conformance: 100/100 (100%)") and "1 failing" in lines[-1]


def test_progress_redraws_in_place_on_a_tty():
    out = _Tty()
    clock = iter([0.0] + [0.05 * i for i in range(1, 200)])
    bar = ProgressBar(out, clock=lambda: next(clock))
    for done in range(0, 21):
        bar(ProgressEvent(done=done, total=20, label="torch / nll_loss"))
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") < 21                     # throttled, not one redraw per event
    assert "[########################] 20/20 100%" in text


def test_aggregated_fuzz_results_count_all_their_examples():
    from conformance.model import CheckResult
    from conformance.reports._aggregate import aggregate, count_cases

    ids = {"l/fuzz/0-all": {"loss": "l", "origin": "fuzz", "examples": 40},
           "l/fuzz/0-000007": {"loss": "l", "origin": "fuzz"},          # the shrunk failure: one of the 40
           "l/catalogue/a": {"loss": "l", "origin": "a"}}
    assert count_cases(ids) == 41
    assert count_cases({"l/fuzz/0-000007": {"origin": "fuzz"}}) == 1
    run = make_run(with_failures=False)
    for r in run.results:                      # the synthetic cases become 3 catalogue cases
        r.case = dict(r.case, origin="catalogue_entry")
    run.results.append(CheckResult("good", "nll_loss", "value", "pass", "nll_loss/fuzz/7-all",
                                   {"loss": "nll_loss", "origin": "fuzz", "examples": 25}))
    row = next(r for r in aggregate(run.to_dict()) if (r.candidate, r.loss) == ("good", "nll_loss"))
    assert row.n_cases == 3 + 25
