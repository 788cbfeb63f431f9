"""CI at scale: --shard K/N + merge give exactly the unsharded run's reports; --case, --rerun-failed,
--time-budget, --version, exit codes in run --help, $GITHUB_STEP_SUMMARY.

A buggy candidate (failures, classes, shrunk reproducers, diagnoses) and a correct one, with the
default oracles (torch's cross-checks make findings), on three losses split into two shards.
"""
import filecmp
import json
import os
import re

import pytest

from conformance import cli, reports
from conformance.losses import LOSSES
from conformance.shard import shard_losses

HERE = os.path.dirname(os.path.abspath(__file__))
BUG = os.path.join(HERE, "bugs", "bug_bcewl_naive_log_sigmoid.py")
CORRECT = os.path.join(HERE, "correct", "numpy_f64.py")
BASE = ["run", "-c", BUG, "-c", CORRECT, "--loss", "nll_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy",
        "--max-examples", "6", "--seed", "3", "--no-progress", "--dtype", "float32", "float64"]

#: What may differ between two runs of the same campaign: when it ran and for how long.
TIMING = re.compile(r'(time|timestamp)="[^"]*"|"(started|finished|duration_s)": [^,\n]*|· [0-9.]+ s ·')


def _normalised(path):
    with open(path, encoding="utf-8") as f:
        return TIMING.sub("<timing>", f.read())


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The unsharded run (moved to full/ after running in out/), two shards and their merge in out/."""
    base = tmp_path_factory.mktemp("shards")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        rc_full = cli.main(BASE + ["--report-dir", "out"])
        os.rename("out", "full")
        rc_shards = [cli.main(BASE + ["--report-dir", f"s{k}", "--shard", f"{k}/2"]) for k in (1, 2)]
        rc_merge = cli.main(["merge", "s1", "s2", "--report-dir", "out"])
    finally:
        os.chdir(cwd)
    return base, rc_full, rc_shards, rc_merge


def test_shards_split_the_losses_round_robin():
    losses = ["a", "b", "c", "d", "e"]
    assert shard_losses(losses, [1, 2]) == ["a", "c", "e"] and shard_losses(losses, [2, 2]) == ["b", "d"]
    assert shard_losses(losses, None) == losses
    assert sorted(sum((shard_losses(losses, [k, 3]) for k in (1, 2, 3)), [])) == losses


def test_merged_shards_are_the_unsharded_reports(runs):
    base, rc_full, rc_shards, rc_merge = runs
    assert rc_full == 1 and rc_merge == 1 and sorted(rc_shards) == [0, 1]     # the bug is in binary_cross_entropy_with_logits only
    full, out = base / "full", base / "out"
    assert _tree(full) == _tree(out)
    assert any(p.startswith("reproducers") for p in _tree(out))
    for name in _tree(full):
        if name.endswith((".json", ".xml", ".md", ".html")):
            assert _normalised(full / name) == _normalised(out / name), name
        else:
            assert filecmp.cmp(full / name, out / name, shallow=False), name
    doc = json.loads((out / "report.json").read_text())
    assert doc["classes"] and doc["findings"] and doc["diagnoses"] and doc["config"]["shard"] is None
    assert {r["loss"] for r in json.loads((base / "s1" / "report.json").read_text())["results"]} \
        == {"nll_loss", "binary_cross_entropy"}


def test_merge_refuses_incomplete_or_mixed_shards(runs, tmp_path, capsys):
    base = runs[0]
    assert cli.main(["merge", str(base / "s1"), "--report-dir", str(tmp_path / "m")]) == 2
    assert "shard 2/2 missing" in capsys.readouterr().err
    assert cli.main(["merge", str(base / "s1"), str(base / "s1"), "--report-dir", str(tmp_path / "m")]) == 2
    assert "given twice" in capsys.readouterr().err
    assert cli.main(["merge", str(base / "full"), "--report-dir", str(tmp_path / "m")]) == 2
    assert "not a shard" in capsys.readouterr().err


def test_rerun_failed_and_case_reproduce_the_reported_cases(runs, tmp_path):
    full = runs[0] / "full"
    old = reports.read_json(str(full / "report.json"))
    failed = [r for r in old.results if r.status == "fail" and "/fuzz/" in r.case_id]
    assert failed, "the seeded bug is found by fuzzing"
    out = tmp_path / "rerun"
    assert cli.main(["run", "--rerun-failed", str(full / "report.json"), "--report-dir", str(out),
                     "--no-progress"]) == 1
    new = reports.read_json(str(out / "report.json"))
    assert {r.candidate for r in new.results} == {BUG}
    got = {(r.case_id, r.check): r for r in new.results if r.status == "fail" and "/shrink/" not in r.case_id}
    for r in (x for x in old.results if x.status == "fail" and "/shrink/" not in x.case_id):
        assert got[(r.case_id, r.check)].case == r.case           # the same case, drawn again from the seed
    one = failed[0]
    out1 = tmp_path / "one"
    assert cli.main(["run", "-c", BUG, "--case", one.case_id, "--dtype", "float32", "float64",
                     "--max-examples", "6", "--report-dir", str(out1), "--no-progress"]) == 1
    res = reports.read_json(str(out1 / "report.json"))
    assert [r.case for r in res.results if r.case_id == one.case_id and r.check == one.check] == [one.case]
    assert res.cases_run == {one.loss: 1}


def test_case_ids_are_checked(capsys):
    assert cli.main(["run", "--case", "nll_loss/shrink/0-1-001"]) == 2
    assert "reproducer" in capsys.readouterr().err
    assert cli.main(["run", "--case", "nope"]) == 2
    assert cli.main(["run", "--shard", "3/2"]) == 2
    n = len(LOSSES) + 1                                       # N above the number of losses
    assert cli.main(["run", "--shard", f"{n}/{n}"]) == 2
    assert "at most the number of losses" in capsys.readouterr().err


def test_time_budget_cuts_fuzzing_and_says_so(tmp_path, monkeypatch):
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    rc = cli.main(["run", "-c", CORRECT, "--loss", "binary_cross_entropy", "--max-examples", "100000",
                   "--no-catalogue", "--time-budget", "2", "--report-dir", str(tmp_path), "--no-progress"])
    assert rc == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    notes = [f["message"] for f in doc["findings"] if f["kind"] == "time_budget"]
    assert len(notes) == 1 and "of 100000 fuzzed examples judged" in notes[0]
    assert 0 < doc["cases_run"]["binary_cross_entropy"] < 100000
    assert "# " in summary.read_text() and "time_budget" in summary.read_text()


def test_version_and_exit_codes_in_help(capsys):
    assert cli.main(["--version"]) == 0
    assert re.match(r"nbxent-conformance \S+ \(report.json schema \d+\)", capsys.readouterr().out)
    assert cli.main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for code in ("0  every check passed", "1  at least one conformance failure", "2  usage or setup error"):
        assert code in text
