"""linear_cross_entropy in the harness: registry, oracles, tolerance, seeded bugs, a correct candidate."""
import os

import numpy as np
import pytest

from conformance import losses
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.linear_ce import exact_loss, float64_loss, gamma_units, units
from conformance.model import FAILING, Case
from conformance.oracles import mpmath_ref
from conformance.tolerances import tolerance

HERE = os.path.join("tests", "conformance", "linear")


def _campaign(spec, tmp_path, seed=0, max_examples=24, oracles=("scipy", "mpmath")):
    cfg = CampaignConfig(candidates=[spec], losses=["linear_cross_entropy"], oracles=list(oracles), seed=seed,
                         max_examples=max_examples, report_dir=str(tmp_path), case_timeout_s=60)
    return run_campaign(cfg)


def _case(seed=0, bias=True, **kw):
    rng = np.random.default_rng(seed)
    a = {"input": rng.standard_normal((5, 4)), "linear_weight": rng.standard_normal((6, 4)),
         "target": rng.integers(0, 6, 5)}
    if bias:
        a["linear_bias"] = rng.standard_normal(6)
    return Case("linear_cross_entropy", a, kw)


def test_registered_with_its_entry_points():
    spec = losses.get("linear_cross_entropy")
    assert spec.positional == ("input", "linear_weight", "target")
    assert {"linear_bias", "chunk_size", "weight", "label_smoothing", "backward", "unbatched",
            "prob_target"} <= set(spec.features)
    assert spec.grad_name == "linear_cross_entropy_with_grad"
    for what in ("strategy", "catalogue", "expected_error", "units", "scipy", "mpmath"):
        assert callable(spec.entry(what))


@pytest.mark.parametrize("kw", [{}, {"reduction": "none"}, {"reduction": "sum", "label_smoothing": 0.2},
                                {"ignore_index": 1, "reduction": "mean"}])
def test_float64_and_exact_oracles_agree_with_torch(kw):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    case = _case(**kw)
    a = case.arrays
    t = F.linear_cross_entropy(torch.from_numpy(a["input"]), torch.from_numpy(a["linear_weight"]),
                               torch.from_numpy(a["target"]), linear_bias=torch.from_numpy(a["linear_bias"]),
                               **kw).numpy()
    s, _, dt = float64_loss(case.loss, a, kw, False)
    import mpmath
    with mpmath.workdps(mpmath_ref.DPS):
        e = mpmath_ref._to_f64(exact_loss(case.loss, a, kw, False)[0])
    tol, _ = tolerance(case, "value", "float64")
    assert dt == "float64"
    assert np.all(np.abs(s - e) <= tol) and np.all(np.abs(t - e) <= tol)


def test_gemm_term_is_gamma_of_h_plus_2_times_the_products():
    # one sample, C = 2, no smoothing: Q's GEMM part is 2 * gamma(H+2)/eps * max_j sum|h W_j| * w_t
    case = Case("linear_cross_entropy", {"input": np.array([[1.0, -2.0, 3.0]]),
                                          "linear_weight": np.array([[1.0, 1.0, 1.0], [0.5, 0.0, -4.0]]),
                                          "target": np.array([0])}, {"reduction": "sum"})
    E, Q = units(case, "value")
    A = max(1 + 2 + 3, 0.5 + 0 + 12)
    assert gamma_units(5) == pytest.approx(5 / 2 / (1 - 5 * 2.0 ** -11))
    from conformance.linear_ce import logits64
    from conformance.tolerances import class_units
    _, Qce = class_units(Case("cross_entropy", {"input": logits64(case.arrays), "target": case.arrays["target"]},
                              case.kwargs), "value")
    assert float(Q - Qce) == pytest.approx(2 * gamma_units(3 + 2) * A)


def test_ignored_samples_get_no_tolerance():
    case = _case(ignore_index=2, reduction="none")
    case.arrays["target"] = np.array([2, 0, 1, 2, 5])
    E, Q = units(case, "value")
    assert E[0] == Q[0] == E[3] == Q[3] == 0 and (Q[[1, 2, 4]] > 0).all()


@pytest.mark.parametrize("bug, meta", [("bug_lce_ignores_bias", {"materialised"}),
                                       ("bug_lce_chunk_mean", {"chunk_invariance", "materialised"})])
def test_seeded_linear_bug_is_caught(bug, meta, tmp_path):
    res = _campaign(os.path.join(HERE, bug + ".py"), tmp_path)
    bad = [r for r in res.results if r.status in FAILING]
    # the value checks and the metamorphic checks the bug breaks (the batch one holds for both)
    assert bad and {r.check for r in bad} == {"value"} | meta | ({"nan_pattern"} & {r.check for r in bad}), \
        [(r.case_id, r.check) for r in bad]
    assert {r.status for r in bad} == {"fail"}
    for c in res.classes:
        assert os.path.isfile(os.path.join(c.reproducer, "repro.py"))


def test_correct_numpy_linear_candidate_passes(tmp_path):
    res = _campaign(os.path.join(HERE, "lce_numpy.py"), tmp_path, seed=1, max_examples=40)
    bad = [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    assert not bad
    assert res.cases_run["linear_cross_entropy"] > 0
    # its linear_cross_entropy_with_grad: the three gradients are judged (catalogue and fuzzing)
    assert sum(r.case.get("examples", 1) for r in res.results if r.check == "grad_input") > 20


def test_a_weight_gradient_missing_the_mean_is_caught(tmp_path):
    res = _campaign(os.path.join(HERE, "bug_lce_grad_weight_mean.py"), tmp_path)
    bad = [r for r in res.results if r.status in FAILING]
    assert bad and {r.check for r in bad} == {"grad_input"}       # the loss and grad_input are right
    cls = [c for c in res.classes if c.check == "grad_input"]
    assert cls and "reduction=mean" in cls[0].signature and "grad_linear_weight" in cls[0].message


@pytest.mark.parametrize("kw", [{}, {"reduction": "none", "label_smoothing": 0.1}, {"reduction": "sum"},
                                {"ignore_index": 1, "reduction": "mean"}])
@pytest.mark.parametrize("prob", [False, True])
def test_float64_gradients_are_torch_autograd_and_within_their_tolerance(kw, prob):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    if prob and "ignore_index" in kw:
        pytest.skip("torch rejects ignore_index with probability targets")
    case = _case(**kw)
    a = case.arrays
    if prob:
        a["target"] = np.random.default_rng(3).dirichlet(np.ones(6), size=5)
    a["grad_output"] = np.ones(5 if kw.get("reduction") == "none" else ())
    ts = [torch.from_numpy(a[k].copy()).requires_grad_(True) for k in ("input", "linear_weight", "linear_bias")]
    out = F.linear_cross_entropy(ts[0], ts[1], torch.from_numpy(a["target"]), linear_bias=ts[2], **kw)
    out.sum().backward()
    want = np.concatenate([t.grad.numpy().ravel() for t in ts])
    _, got, _ = float64_loss(case.loss, a, kw, True)
    tol32, _ = tolerance(case, "grad", "float32")
    assert got.shape == want.shape == tol32.shape
    assert np.max(np.abs(got - want)) <= 1e-14 * max(1.0, np.max(np.abs(want)))
    # the float32 bound is above float32 rounding of the values and far below the values themselves
    assert np.all(tol32 >= np.finfo(np.float32).eps / 2 * np.abs(want))
    assert np.median(tol32 / np.maximum(np.abs(want), 1e-30)) < 1e-3


def test_budget_is_capped_by_the_registry(tmp_path):
    res = _campaign(os.path.join(HERE, "lce_numpy.py"), tmp_path, max_examples=500)
    from conformance import catalogue
    from conformance.campaign import RELATION_CASES
    from conformance.relations import of_loss
    n_cat = len(catalogue.entries("linear_cross_entropy"))
    n_meta = RELATION_CASES * len(of_loss("linear_cross_entropy"))      # lce_numpy offers every linear check
    assert res.cases_run["linear_cross_entropy"] <= losses.get("linear_cross_entropy").max_examples + n_cat + n_meta


def test_nbxent_and_torch_pass(tmp_path):
    pytest.importorskip("torch")
    cfg = CampaignConfig(candidates=["nbxent", "torch"], losses=["linear_cross_entropy"],
                         oracles=["scipy", "torch", "mpmath"], seed=3, max_examples=24, report_dir=str(tmp_path),
                         case_timeout_s=60)
    res = run_campaign(cfg)
    bad = [(r.candidate, r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    assert not bad
    assert not [f for f in res.findings if f.kind == "oracle_disagreement"]
