"""Each seeded-bug candidate in bugs/ is caught by a small campaign; the correct ones pass with two seeds."""
import os

import pytest

from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import CHECKS, FAILING, LOSSES

BUGS = os.path.join("tests", "conformance", "bugs")
# bug module -> (loss it breaks, checks that must flag it)
SEEDED = {
    "bug_ce_mean_by_count": ("cross_entropy", {"value"}),
    "bug_ce_smoothing_on_ignored": ("cross_entropy", {"value"}),
    "bug_ce_no_max_shift": ("cross_entropy", {"nan_pattern"}),
    "bug_ce_float32_serial_sum": ("cross_entropy", {"value"}),
    "bug_ce_grad_ignores_smoothing": ("cross_entropy", {"grad_input"}),
    "bug_ce_prob_mean_by_weights": ("cross_entropy", {"value"}),
    "bug_ce_modifies_input": ("cross_entropy", {"value"}),
    "bug_nll_negative_target_wraps": ("nll_loss", {"error_semantics"}),
    "bug_nll_mean_counts_ignored": ("nll_loss", {"value", "nan_pattern"}),
    "bug_bce_no_clamp": ("binary_cross_entropy", {"nan_pattern"}),
    "bug_bce_grad_float64_floor": ("binary_cross_entropy", {"grad_input"}),
    "bug_bcewl_naive_log_sigmoid": ("binary_cross_entropy_with_logits", {"nan_pattern", "value"}),
    "bug_bcewl_pos_weight_channel_axis": ("binary_cross_entropy_with_logits", {"value", "grad_input"}),
    "bug_ce_three_bugs": ("cross_entropy", {"error_semantics", "value", "grad_input"}),
}
#: Seeded modules with several bugs: every one of their checks must be flagged, each by its own class.
ALL_CHECKS = {"bug_ce_three_bugs"}


def _campaign(spec, losses, tmp_path, seed=0, max_examples=15):
    cfg = CampaignConfig(candidates=[spec], losses=list(losses), oracles=["scipy", "mpmath"], seed=seed,
                         max_examples=max_examples, report_dir=str(tmp_path), case_timeout_s=60)
    return run_campaign(cfg)


def test_every_seeded_bug_module_is_listed():
    on_disk = {f[:-3] for f in os.listdir(BUGS) if f.startswith("bug_") and f.endswith(".py")}
    assert on_disk == set(SEEDED) and len(SEEDED) >= 10


@pytest.mark.parametrize("bug", sorted(SEEDED))
def test_seeded_bug_is_caught(bug, tmp_path):
    loss, checks = SEEDED[bug]
    res = _campaign(os.path.join(BUGS, bug + ".py"), [loss], tmp_path)
    bad = [r for r in res.results if r.status in FAILING]
    flagged = {r.check for r in bad}
    assert (flagged >= checks) if bug in ALL_CHECKS else (flagged & checks), [(r.case_id, r.check) for r in bad]
    assert {r.status for r in bad} <= {"fail", "error"}   # a wrong answer or a raise, not a crash or hang
    assert {c.check for c in res.classes} == flagged      # every failing check is reported as a class
    for c in res.classes:                                 # each with a reproducer (conformance.reproducer)
        assert os.path.isfile(os.path.join(c.reproducer, "repro.py"))


@pytest.mark.parametrize("seed", [0, 1])
def test_correct_reference_candidate_passes(seed, tmp_path):
    res = _campaign(os.path.join(BUGS, "reference.py"), LOSSES, tmp_path, seed=seed, max_examples=40)
    bad = [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    assert not bad
    assert set(res.cases_run) == set(LOSSES) and min(res.cases_run.values()) >= 40
    # and the metamorphic checks its linear_cross_entropy offers (no chunk_size, no shard statistics)
    assert {r.check for r in res.results} == set(CHECKS) | {"batch_invariance", "materialised"}


def test_torch_candidate_passes_its_own_semantics(tmp_path):
    cfg = CampaignConfig(candidates=["torch"], max_examples=10, seed=3, report_dir=str(tmp_path), case_timeout_s=60)
    res = run_campaign(cfg)
    assert not [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    # docs/semantics.md §14: the +inf-logit row is nan in torch, +inf exactly: reported as a Finding
    assert any(f.kind == "torch_nan_limit" for f in res.findings)
    assert res.environment["torch"].startswith("2.")


def test_same_seed_same_minimal_case(tmp_path):
    spec = os.path.join(BUGS, "bug_ce_grad_ignores_smoothing.py")

    def minimal(run):
        cfg = CampaignConfig(candidates=[spec], losses=["cross_entropy"], oracles=["scipy"], seed=5,
                             max_examples=25, run_catalogue=False, report_dir=str(tmp_path / run))
        bad = [r for r in run_campaign(cfg).results if r.status in FAILING]
        assert bad
        return [(r.case_id, r.check, r.case, r.error.worst_got if r.error else None) for r in bad]

    assert minimal("a") == minimal("b")
