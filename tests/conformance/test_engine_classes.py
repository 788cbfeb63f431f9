"""Every distinct bug in one run: exploration past failures, classes, shrinking toward the simple case."""
import os

import numpy as np
import pytest
from hypothesis import Phase, given, seed, settings

from conformance import losses, strategies
from conformance.classes import signature
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING, Case
from conformance.oracles.validate import expected_error
from conformance.shrink import shrink

BUGS = os.path.join("tests", "conformance", "bugs")


def test_three_bugs_are_three_classes_in_one_run(tmp_path):
    cfg = CampaignConfig(candidates=[os.path.join(BUGS, "bug_ce_three_bugs.py")], losses=["cross_entropy"],
                         oracles=["scipy", "mpmath"], seed=0, max_examples=60, report_dir=str(tmp_path))
    res = run_campaign(cfg)
    by_check = {}
    for c in res.classes:
        by_check.setdefault(c.check, []).append(c)
    # the NaN for an out-of-range label does not hide the other two bugs
    (oob,) = by_check["error_semantics"]
    assert "target_out_of_range" in oob.signature and "(missing error)" in oob.signature
    assert any(set(c.signature) >= {"weight", "reduction=mean"} and "label_smoothing" not in c.signature
               for c in by_check["value"])
    (smooth,) = by_check["grad_input"]
    assert "label_smoothing" in smooth.signature and smooth.shrunk
    assert len(res.classes) <= 5
    for c in res.classes:              # a reproducer per class; its count covers every failing case of it
        assert os.path.isfile(os.path.join(c.reproducer, "repro.py"))
        assert c.count == sum(1 for r in res.results if r.class_id == c.class_id and r.case_id != c.case_id
                              or (r.class_id == c.class_id and "/shrink/" not in r.case_id))
    assert all(r.class_id for r in res.results if r.status in FAILING)


def test_shrinking_turns_off_what_the_failure_does_not_need():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1000))
    case = Case("cross_entropy", {"input": np.asfortranarray(x), "target": rng.integers(0, 1000, 5),
                                  "weight": rng.uniform(0, 2, 1000), "grad_output": np.asarray(1.0)},
                {"label_smoothing": 0.3, "reduction": "sum"})
    # fails whenever there is a weight: everything else goes
    small, calls = shrink(case, lambda c: "weight" in c.arrays, 200)
    assert signature(small) == {"weight", "reduction=mean"} and small.arrays["input"].shape == (1, 2)
    assert small.arrays["grad_output"].shape == () and calls < 200
    # fails only with label smoothing and more than 1000 classes: those stay
    keep, _ = shrink(case, lambda c: "label_smoothing" in c.kwargs and c.arrays["input"].shape[1] == 1000, 200)
    assert keep.kwargs == {"label_smoothing": 0.3} and "weight" not in keep.arrays
    assert keep.arrays["input"].shape == (1, 1000) and keep.arrays["input"].flags.c_contiguous


@pytest.mark.parametrize("loss", losses.LOSSES)
def test_hypothesis_simplest_case_has_every_rare_option_off(loss):
    """What hypothesis shrinks any failure toward: a case without any rare option."""
    seen = []

    @settings(database=None, max_examples=30, phases=[Phase.generate, Phase.shrink], deadline=None)
    @given(strategies.cases(loss, strategies.full_features(loss)))
    def always_fails(case):
        seen.append(case)
        raise AssertionError

    with pytest.raises(AssertionError):
        always_fails()
    c = seen[-1]                               # hypothesis replays the shrunk example last
    sig = signature(c)
    assert not sig & {"C>1000", "C>1e4", "prob_target", "nan_input", "inf_input", "empty", "weight", "pos_weight",
                      "ignored_rows", "all_ignored", "label_smoothing", "noncontiguous", "target_out_of_range"}
    assert expected_error(c.loss, c.arrays, c.kwargs) is None


KINDS = {
    "cross_entropy": {
        "size-1 batch, longer target": lambda c: c.arrays["input"].ndim == 2 and c.arrays["input"].shape[0] == 1
        and c.arrays["target"].ndim == 1 and c.arrays["target"].shape[0] > 1,
        "label_smoothing NaN": lambda c: c.kwargs.get("label_smoothing", 0) != c.kwargs.get("label_smoothing", 0),
        "a weight of another dtype": lambda c: "weight" in c.arrays
        and c.arrays["weight"].dtype != c.arrays["input"].dtype,
    },
    "nll_loss": {
        "a reduction torch rejects": lambda c: c.kwargs.get("reduction") not in ("mean", "sum", "none",
                                                                               "elementwise_mean"),
        "an integer target other than int64": lambda c: c.arrays["target"].dtype != np.int64,
    },
    "binary_cross_entropy": {
        "a target that only broadcasts": lambda c: c.arrays["target"].shape != c.arrays["input"].shape,
        "a target of another dtype": lambda c: c.arrays["target"].dtype != c.arrays["input"].dtype,
    },
    "binary_cross_entropy_with_logits": {
        "the deprecated alias": lambda c: c.kwargs.get("reduction") == "elementwise_mean",
    },
}


@pytest.mark.parametrize("loss", sorted(KINDS))
def test_generated_kinds(loss):
    seen = set()

    @seed(1)
    @settings(database=None, max_examples=700, phases=[Phase.generate], deadline=None)
    @given(strategies.cases(loss, strategies.full_features(loss)))
    def collect(case):
        seen.update(k for k, pred in KINDS[loss].items() if pred(case))

    collect()
    assert seen == set(KINDS[loss])


def test_unknown_loss_raises_everywhere(tmp_path):
    with pytest.raises(losses.UnknownLoss, match="unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(losses.UnknownLoss):
        expected_error("hinge", {"input": np.zeros(2), "target": np.zeros(2)}, {})
    with pytest.raises(losses.UnknownLoss):
        run_campaign(CampaignConfig(candidates=["torch"], losses=["hinge"], report_dir=str(tmp_path)))


def test_the_registry_is_the_one_list_of_losses_and_features():
    from conformance import candidates, model
    assert model.LOSSES == candidates.LOSSES == losses.LOSSES
    for spec in losses.all_specs():
        assert candidates.LOSS_FEATURES[spec.name] == spec.features
        for what in ("strategy", "catalogue", "expected_error", "units", "scipy", "mpmath"):
            assert callable(spec.entry(what))
