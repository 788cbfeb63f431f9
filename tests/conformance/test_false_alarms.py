"""No false alarms: correct candidates written in other styles pass every check over ten seeds.

The slow tier (``pytest -m slow tests/conformance``): each test is one default-budget
campaign over the four losses. The candidates are tests/conformance/correct/ (a plain
NumPy float64 implementation raising NumPy's exceptions, a plain torch-autograd wrapper)
and the built-ins ``torch`` and ``nbxent``. The fast tier keeps one seed of each
correct candidate at a small budget.
"""
import os

import pytest

from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING, LOSSES

CORRECT = os.path.join("tests", "conformance", "correct")
CANDIDATES = [os.path.join(CORRECT, "numpy_f64.py"), os.path.join(CORRECT, "torch_autograd.py"), "torch", "nbxent"]

def _failures(spec, seed, max_examples, tmp_path):
    cfg = CampaignConfig(candidates=[spec], losses=list(LOSSES), seed=seed, max_examples=max_examples,
                         report_dir=str(tmp_path), case_timeout_s=120)
    res = run_campaign(cfg)
    assert set(res.cases_run) == set(LOSSES)
    return res, [(r.case_id, r.check, r.status, r.message) for r in res.results if r.status in FAILING]


@pytest.mark.parametrize("name", ["numpy_f64.py", "torch_autograd.py"])
def test_correct_candidate_passes(name, tmp_path):
    res, bad = _failures(os.path.join(CORRECT, name), 0, 25, tmp_path)
    assert not bad
    assert not res.classes


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("spec", CANDIDATES)
def test_no_false_alarm_over_ten_seeds(spec, seed, tmp_path):
    _, bad = _failures(spec, seed, 100, tmp_path)
    assert not bad


def test_a_jax_candidate_gets_jax_arrays_and_computes_float64(tmp_path):
    pytest.importorskip("jax")
    spec = os.path.join(CORRECT, "jax_logits.py")
    cfg = CampaignConfig(candidates=[spec], losses=["binary_cross_entropy_with_logits"], oracles=["scipy", "mpmath"],
                         dtypes=["float64"], max_examples=8, report_dir=str(tmp_path), case_timeout_s=120)
    res = run_campaign(cfg)
    assert not [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    assert res.cases_run["binary_cross_entropy_with_logits"] >= 8


TORCH_TENSORS = '''
import torch
import torch.nn.functional as F

CONFORMANCE = {"array_type": "torch"}


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    assert isinstance(input, torch.Tensor) and isinstance(target, torch.Tensor)
    return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                              pos_weight=pos_weight)          # a tensor comes back
'''


def test_a_candidate_declaring_torch_tensors_gets_them(tmp_path):
    spec = tmp_path / "tensors.py"
    spec.write_text(TORCH_TENSORS)
    cfg = CampaignConfig(candidates=[str(spec)], losses=["binary_cross_entropy_with_logits"], oracles=["scipy"],
                         max_examples=10, report_dir=str(tmp_path / "rep"))
    res = run_campaign(cfg)
    assert not [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    assert res.cases_run["binary_cross_entropy_with_logits"] >= 10
