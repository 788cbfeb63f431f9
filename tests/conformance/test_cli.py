"""nbxent-conformance: exit status 0/1/2, the configuration handed to the engine, the reports written.

The engine is replaced by a fake returning a synthetic run, except in the one
end-to-end test at the bottom.
"""
import json
import os
import subprocess
import sys

import pytest

from _reports_data import make_run
from conformance import cli
from conformance.config import BUILTIN_CANDIDATES, CampaignConfig, ProgressEvent
from conformance.model import LOSSES


class FakeEngine:
    def __init__(self, run=None, raises=None):
        self.run, self.raises, self.configs = run, raises, []

    def __call__(self, config, progress, checkpoint=None):
        self.configs.append(config)
        if progress is not None:
            for done in range(3):
                progress(ProgressEvent(done=done + 1, total=3, label=f"fake / step {done}"))
        if self.raises is not None:
            raise self.raises
        return self.run


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine(make_run(with_failures=False))
    monkeypatch.setattr(cli, "_run_campaign", fake)
    return fake


def test_all_pass_exits_0_and_writes_four_reports(tmp_path, engine, capsys):
    rc = cli.main(["run", "--report-dir", str(tmp_path / "out"), "--candidate", "nbxent", "--seed", "11"])
    assert rc == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["junit.xml", "report.html", "report.json", "summary.md"]
    out, err = capsys.readouterr()
    assert "PASS: 19 checks passed, 0 failed, 1 skipped" in out
    assert "conformance: 3/3 (100%)" in err                  # plain progress lines: stderr is not a TTY here
    (config,) = engine.configs
    assert (config.candidates, config.seed, config.report_dir) == (["nbxent"], 11, str(tmp_path / "out"))


def test_defaults_are_all_builtins_all_losses_and_conformance_report(tmp_path, engine, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--no-progress"]) == 0
    (config,) = engine.configs
    default = CampaignConfig()
    assert config.candidates == list(BUILTIN_CANDIDATES) and config.losses == list(LOSSES)
    assert (config.oracles, config.dtypes, config.max_examples) == (default.oracles, default.dtypes, default.max_examples)
    assert os.path.isfile(tmp_path / "conformance-report" / "report.json")


def test_repeated_and_multi_valued_options(tmp_path, engine):
    rc = cli.main(["run", "--no-progress", "--report-dir", str(tmp_path), "-c", "nbxent", "torch", "-c", "nbxent",
                   "--loss", "nll_loss", "--loss", "cross_entropy", "--oracle", "mpmath", "--dtype", "float32",
                   "--max-examples", "7", "--no-catalogue"])
    assert rc == 0
    (c,) = engine.configs
    assert c.candidates == ["nbxent", "torch"] and c.losses == ["nll_loss", "cross_entropy"]
    assert (c.oracles, c.dtypes, c.max_examples, c.run_catalogue) == (["mpmath"], ["float32"], 7, False)


def test_conformance_failure_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(make_run()))
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path)]) == 1
    assert "FAIL: 16 checks passed, 3 failed" in capsys.readouterr().out
    assert json.load(open(tmp_path / "report.json"))["verdict"] == "fail"


@pytest.mark.parametrize("argv", [
    [],                                                  # no command
    ["frobnicate"],                                      # unknown command
    ["run", "--loss", "softmax"],                        # unknown loss
    ["run", "--oracle", "wolfram"],
    ["run", "--dtype", "float8"],                       # not a dtype the harness generates
    ["run", "--max-examples", "0"],
    ["run", "--max-examples", "many"],
    ["run", "--seed", "-1"],
    ["run", "--bogus-option"],
])
def test_usage_errors_exit_2(argv, engine, capsys):
    assert cli.main(argv) == 2
    assert "error" in capsys.readouterr().err
    assert engine.configs == []                          # the engine never started


def test_candidate_that_cannot_be_found_exits_2(tmp_path, engine, capsys):
    assert cli.main(["run", "--report-dir", str(tmp_path), "-c", "no_such_module_xyz"]) == 2
    assert "candidate 'no_such_module_xyz': no module named 'no_such_module_xyz'" in capsys.readouterr().err
    assert cli.main(["run", "--report-dir", str(tmp_path), "-c", str(tmp_path / "missing.py:impl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert engine.configs == []


def test_report_dir_not_writable_exits_2(tmp_path, engine, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")                              # a directory cannot be made under a file (even as root)
    assert cli.main(["run", "--report-dir", str(blocker / "reports")]) == 2
    assert "report directory not writable" in capsys.readouterr().err
    assert engine.configs == []


def test_engine_setup_error_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(raises=ImportError("candidate 'x' failed to import: boom")))
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path)]) == 2
    assert "boom" in capsys.readouterr().err


def test_internal_error_exits_2_with_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(raises=ZeroDivisionError("harness bug")))
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: harness bug" in err and "internal error" in err


def test_nothing_checked_exits_2(tmp_path, monkeypatch, capsys):
    empty = make_run()
    empty.results = []
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(empty))
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path)]) == 2
    assert "nothing was checked" in capsys.readouterr().err


def test_help_and_list_candidates_explain_candidates(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "path/to/file.py" in text and "not supported" in text and "Exit status" in text
    assert cli.main(["list-candidates"]) == 0
    text = capsys.readouterr().out
    assert all(f"  {name}" in text for name in BUILTIN_CANDIDATES)


def test_report_command_rerenders_from_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_run_campaign", FakeEngine(make_run()))
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path)]) == 1
    os.remove(tmp_path / "junit.xml")
    assert cli.main(["report", str(tmp_path / "report.json")]) == 1
    assert os.path.isfile(tmp_path / "junit.xml")
    (tmp_path / "bad.json").write_text("{}")
    assert cli.main(["report", str(tmp_path / "bad.json")]) == 2


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "conformance", "run", "--loss", "nope"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr


TINY_CANDIDATE = '''
"""binary_cross_entropy_with_logits only, without weight/pos_weight, and no dtype check on target."""
import numpy as np

def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: shape mismatch {input.shape} vs {target.shape}")
    x = input.astype(np.float64)
    with np.errstate(all="ignore"):
        l = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
    out = {"none": l, "sum": l.sum(), "mean": l.mean() if l.size else np.nan}[reduction]
    return np.asarray(out, dtype=np.result_type(input.dtype, target.dtype))
'''


def test_end_to_end_on_a_tiny_candidate(tmp_path, capsys):
    """The real engine on a small budget: the candidate's missing target-dtype check is a conformance failure."""
    pytest.importorskip("conformance.engine")
    cand = tmp_path / "tiny.py"
    cand.write_text(TINY_CANDIDATE)
    out_dir = tmp_path / "report"
    rc = cli.main(["run", "--no-progress", "-c", str(cand), "--loss", "binary_cross_entropy_with_logits",
                   "--max-examples", "3", "--seed", "1", "--oracle", "scipy", "mpmath", "--dtype", "float64",
                   "--report-dir", str(out_dir)])
    assert rc == 1, capsys.readouterr()
    doc = json.load(open(out_dir / "report.json"))
    assert doc["verdict"] == "fail" and doc["config"]["max_examples"] == 3
    statuses = {(r["check"], r["status"]) for r in doc["results"]}
    assert ("error_semantics", "fail") in statuses and ("value", "pass") in statuses
    (info,) = doc["candidates"]
    assert {"weight", "pos_weight", "backward"} <= set(info["not_supported"]["binary_cross_entropy_with_logits"])
    failing = [r for r in doc["results"] if r["status"] == "fail"]
    # every failing case belongs to a class; every class has a reproducer (its representative)
    assert doc["classes"] and all(r["class_id"] for r in failing)
    assert {r["class_id"] for r in failing} == {c["class_id"] for c in doc["classes"]}
    assert all(c["reproducer"] and os.path.isfile(os.path.join(c["reproducer"], "repro.py")) for c in doc["classes"])
    # a reproducer runs on its own and shows the missing exception
    err_case = next(r for r in failing if r["check"] == "error_semantics" and r["reproducer"])
    run = subprocess.run([sys.executable, os.path.join(err_case["reproducer"], "repro.py")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "reference: torch raises" in run.stdout and "got  (" in run.stdout


def test_strict_errors_and_requested_dtypes_reach_the_engine(tmp_path, engine):
    assert cli.main(["run", "--no-progress", "--report-dir", str(tmp_path), "--strict-errors", "--dtype", "float16"]) == 0
    (config,) = engine.configs
    assert config.strict_errors and config.dtypes_requested and config.dtypes == ["float16"]
    assert not CampaignConfig().strict_errors and not CampaignConfig().dtypes_requested


def test_an_unknown_loss_is_a_usage_error(capsys):
    assert cli.main(["run", "--loss", "hinge"]) == 2
    assert "hinge" in capsys.readouterr().err
