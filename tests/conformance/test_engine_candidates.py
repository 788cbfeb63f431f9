"""Candidates: loading, feature probing, the CONFORMANCE declaration, and docs/semantics.md §14's rule that
cases never use a feature the candidate lacks."""
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import candidates, catalogue, strategies
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING, LOSSES

REFERENCE = "tests/conformance/bugs/reference.py"


def _module(tmp_path, body, name="cand.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return str(p)


def test_probe_reads_keywords_from_signatures(tmp_path):
    spec = _module(tmp_path, """
        def cross_entropy(input, target, reduction="mean"):
            return 0.0
        def binary_cross_entropy_with_logits(input, target, **kwargs):
            return 0.0
        def binary_cross_entropy_with_logits_backward(grad_output, input, target, **kwargs):
            return 0.0
    """)
    info = candidates.probe(candidates.load(spec), spec)
    ce = info["cross_entropy"]
    assert {"weight", "ignore_index", "label_smoothing", "backward"} <= set(ce["missing"])
    assert "reduction" in ce["features"] and "prob_target" in ce["features"]
    assert info["nll_loss"] == {"features": [], "missing": ["forward"], "dtypes": [], "max_ndim": 0,
                                "max_classes": 0, "reductions": [], "extensions": [],
                                "strict_errors": False, "relations": [], "relations_missing": {},
                                "relation_dtypes": ["float32", "float64"]}
    assert {"weight", "pos_weight", "backward"} <= set(info["binary_cross_entropy_with_logits"]["features"])


def test_declaration_narrows_features_dtypes_and_shapes(tmp_path):
    spec = _module(tmp_path, """
        CONFORMANCE = {"dtypes": ["float32"], "exclude": ["nonfinite"], "max_ndim": 2,
                       "losses": {"cross_entropy": {"exclude": ["prob_target"], "reductions": ["sum"]}}}
        def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
            return 0.0
        def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
            return 0.0
    """)
    info = candidates.probe(candidates.load(spec), spec, ("float32", "float64"))
    ce, nll = info["cross_entropy"], info["nll_loss"]
    assert ce["dtypes"] == ["float32"] and ce["max_ndim"] == 2 and ce["reductions"] == ["sum"]
    assert "prob_target" in ce["missing"] and "nonfinite" in ce["missing"] and "nonfinite" in nll["missing"]
    assert "prob_target" not in nll["missing"] and nll["reductions"] == ["mean", "sum", "none", "elementwise_mean"]


@pytest.mark.parametrize("decl,words", [
    ('{"dtype": ["float32"]}', "unknown CONFORMANCE keys"),
    ('{"dtypes": ["int8"]}', "int8"),
    ('{"exclude": ["smoothing"]}', "smoothing"),
    ('{"losses": {"mse": {}}}', "mse"),
    ('{"extensions": ["int32_targets"]}', "extension 'int32_targets' unknown"),
    ('{"losses": {"nll_loss": {"extensions": ["any_int_targets"]}}}', "any_int_targets"),
    ('["float32"]', "must be a dict"),
])
def test_malformed_declaration_is_a_load_error(tmp_path, decl, words):
    spec = _module(tmp_path, f"CONFORMANCE = {decl}\ndef nll_loss(input, target):\n    return 0.0\n")
    with pytest.raises(candidates.CandidateLoadError, match=words):
        candidates.probe(candidates.load(spec), spec)


def test_load_by_file_attribute_and_module(tmp_path):
    spec = _module(tmp_path, """
        class _Impl:
            @staticmethod
            def nll_loss(input, target):
                return 1.0
        impl = _Impl()
    """)
    assert candidates.load(spec + ":impl").nll_loss(None, None) == 1.0
    assert candidates.load("conformance.torch_candidate").CONFORMANCE["dtypes"][0] == "float16"
    with pytest.raises(candidates.CandidateLoadError, match="no attribute"):
        candidates.load(spec + ":missing")
    with pytest.raises(candidates.CandidateLoadError, match="no such file"):
        candidates.load(str(tmp_path / "absent.py"))
    bad = _module(tmp_path, "raise SystemExit(3)\n", "bad.py")
    with pytest.raises(candidates.CandidateLoadError, match="SystemExit"):
        candidates.load(bad)


LIMITED = strategies.Features(frozenset({"backward", "empty", "spatial", "unbatched", "errors"}), ("float32",),
                              max_ndim=3, max_classes=16, reductions=("mean",))


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), loss=st.sampled_from(LOSSES))
def test_fuzzed_cases_use_only_supported_features(data, loss):
    case = data.draw(strategies.cases(loss, LIMITED))
    assert set(case.kwargs) == set()                       # no reduction, ignore_index or smoothing keyword
    assert not {"weight", "pos_weight"} & set(case.arrays)
    x, t = case.arrays["input"], case.arrays["target"]
    assert x.dtype == np.float32 and x.ndim <= 3 and x.flags.c_contiguous and np.isfinite(x).all()
    if loss in ("cross_entropy", "nll_loss"):
        assert t.shape != x.shape and not (t == -100).any()   # docs/semantics.md §14: -100 only with ignore_index
        assert (x.shape[0] if x.ndim == 1 else x.shape[1]) <= 16


def test_catalogue_is_filtered_by_features():
    cases = catalogue.entries("cross_entropy", ("float32",))
    kept = [c for c in cases if strategies.fits(c, LIMITED)]
    assert kept and len(kept) < len(cases)
    assert all("weight" not in c.arrays and not c.kwargs for c in kept)
    assert all(len(c.reason) > 10 for c in cases)


def test_unsupported_features_are_reported_never_failed(tmp_path):
    spec = _module(tmp_path, f"""
        import importlib.util
        _s = importlib.util.spec_from_file_location("ref_for_limited", {REFERENCE!r})
        _ref = importlib.util.module_from_spec(_s)
        _s.loader.exec_module(_ref)
        def cross_entropy(input, target):       # no keywords at all, no backward
            return _ref.cross_entropy(input, target)
    """)
    cfg = CampaignConfig(candidates=[spec], losses=["cross_entropy", "nll_loss"], max_examples=15,
                         oracles=["scipy"], report_dir=str(tmp_path / "rep"), case_timeout_s=30)
    res = run_campaign(cfg)
    info = res.candidates[0]
    assert {"weight", "ignore_index", "label_smoothing", "reduction", "backward"} <= set(
        info.not_supported["cross_entropy"])
    assert info.not_supported["nll_loss"] == ["forward"]
    assert res.results and not [r for r in res.results if r.status in FAILING]
    assert {r.loss for r in res.results} == {"cross_entropy"}
    assert not [r for r in res.results if r.check == "grad_input"]
