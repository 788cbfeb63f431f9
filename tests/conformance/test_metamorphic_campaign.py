"""The metamorphic checks inside a campaign: discovered, run in the workers, triaged, reported.

One campaign (metamorphic cases only: no catalogue, no fuzzing) over two correct candidates
and four seeded bugs, each bug the one a check exists to catch.
"""
import json
import os
import subprocess
import sys

import pytest

from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING
from conformance.relations import RELATIONS
from conformance.reports import format_summary, write_reports

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linear")
CORRECT = ("lce_numpy", "vocab_numpy")
#: seeded bug -> the metamorphic check that must catch it
BUGS = {"bug_lce_chunk_mean": "chunk_invariance", "bug_lce_smoothing_batch_mean": "batch_invariance",
        "bug_lce_ignores_bias": "materialised", "bug_vocab_local_smoothing": "shard_split"}


def _spec(name):
    return os.path.join(HERE, name + ".py")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("meta"))
    cfg = CampaignConfig(candidates=[_spec(n) for n in CORRECT + tuple(BUGS)],
                         losses=["linear_cross_entropy", "cross_entropy"], max_examples=0, run_catalogue=False,
                         seed=2, report_dir=out)
    res = run_campaign(cfg)
    return res, write_reports(res, out)


def _results(res, name, check):
    return [r for r in res.results if r.candidate == _spec(name) and r.check == check]


def test_correct_candidates_pass_every_check_they_offer(campaign):
    res, _ = campaign
    offered = {"lce_numpy": ("chunk_invariance", "batch_invariance", "materialised"), "vocab_numpy": ("shard_split",)}
    for name, checks in offered.items():
        for check in checks:
            rs = _results(res, name, check)
            assert rs and all(r.status == "pass" for r in rs), (name, check, [r.message for r in rs])
            assert sum(r.case.get("examples", 1) for r in rs) >= 6
        for check in set(RELATIONS) - set(checks):
            assert not _results(res, name, check)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_seeded_bug_is_caught_by_its_check(campaign, bug):
    res, _ = campaign
    check = BUGS[bug]
    bad = [r for r in _results(res, bug, check) if r.status in FAILING]
    assert bad, f"{bug}: {check} did not fail"
    cls = [c for c in res.classes if c.candidate == _spec(bug) and c.check == check]
    assert cls and all(c.reproducer and os.path.isfile(os.path.join(c.reproducer, "repro.py")) for c in cls)


def test_a_check_the_candidate_cannot_take_part_in_is_not_applicable(campaign):
    res, paths = campaign
    doc = json.load(open(paths["json"]))
    meta = {(os.path.basename(m["candidate"]), m["check"]): m for m in doc["summary"]["metamorphic"]}
    # the smoothing bug names no chunk_size: chunk invariance does not apply to it, and it is not failed for it
    m = meta[("bug_lce_smoothing_batch_mean.py", "chunk_invariance")]
    assert m["verdict"] == "not supported" and "not applicable" in m["reason"] and "chunk_size" in m["reason"]
    m = meta[("lce_numpy.py", "shard_split")]
    assert m["verdict"] == "not supported" and "vocab_shard_stats" in m["reason"]
    assert meta[("vocab_numpy.py", "shard_split")]["verdict"] == "pass"
    assert meta[("bug_lce_chunk_mean.py", "chunk_invariance")]["verdict"] == "fail"
    assert meta[("bug_lce_chunk_mean.py", "chunk_invariance")]["failures"]


def test_the_shard_failure_is_diagnosed_as_megatron_local_smoothing(campaign):
    res, _ = campaign
    diags = [d for e in res.diagnoses if e["candidate"] == _spec("bug_vocab_local_smoothing")
             for d in e["diagnoses"]]
    assert [d["id"] for d in diags] == ["vocab_parallel_local_smoothing"]
    assert diags[0]["explains"] == diags[0]["of"] > 0


def test_every_report_shows_the_metamorphic_checks(campaign):
    res, paths = campaign
    md = open(paths["markdown"]).read()
    assert "## Metamorphic checks" in md and "| shard_split |" in md
    assert 'id="metamorphic"' in open(paths["html"]).read()
    text = format_summary(res, paths)
    assert "metamorphic checks" in text and "batch_invariance" in text
    junit = open(paths["junit"]).read()
    assert 'name="chunk_invariance"' in junit and 'name="shard_split"' in junit


def test_the_reproducer_of_a_metamorphic_failure_runs_and_shows_it(campaign):
    res, _ = campaign
    cls = next(c for c in res.classes if c.candidate == _spec("bug_lce_chunk_mean") and c.check == "chunk_invariance")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, os.path.join(cls.reproducer, "repro.py")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "verdict: fail chunk_size=" in out.stdout
