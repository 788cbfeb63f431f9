"""Declared extensions: a torch error case that a declared extension legalises is judged as a value
case against the canonical form's reference; without the declaration it must still raise."""
import dataclasses
import os
import textwrap

import numpy as np
import pytest

from conformance import candidates, extensions
from conformance.config import CampaignConfig
from conformance.engine import run_campaign
from conformance.model import FAILING
from conformance.reports.markdown import render_markdown

REFERENCE = os.path.abspath("tests/conformance/bugs/reference.py")

# A correct candidate that accepts any integer target and any float weight (what nbxent does), by
# normalising them before calling the reference; DECL and MUTATION are filled in per test.
_LENIENT = """
    import importlib.util
    import numpy as np
    _s = importlib.util.spec_from_file_location("ref_for_ext_{tag}", {ref!r})
    _ref = importlib.util.module_from_spec(_s)
    _s.loader.exec_module(_ref)
    {decl}

    def _norm(input, target, weight):
        input, target = np.asarray(input), np.asarray(target)
        if target.shape != input.shape and np.issubdtype(target.dtype, np.integer) and target.dtype != bool:
            target = target.astype(np.int64)
        if weight is not None and np.issubdtype(np.asarray(weight).dtype, np.floating):
            weight = None if ({drop} and weight.dtype != input.dtype) else np.asarray(weight).astype(input.dtype)
        return input, target, weight

    def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
        input, target, weight = _norm(input, target, weight)
        return _ref.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)

    def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
        input, target, weight = _norm(input, target, weight)
        return _ref.nll_loss_backward(grad_output, input, target, weight=weight, ignore_index=ignore_index,
                                      reduction=reduction)
"""


def _lenient(tmp_path, tag, decl="", drop=False):
    p = tmp_path / f"lenient_{tag}.py"
    p.write_text(textwrap.dedent(_LENIENT).format(tag=tag, ref=REFERENCE, decl=decl, drop=drop))
    return str(p)


def _run(spec, tmp_path):
    # the catalogue holds the extension cases; one fuzzed example keeps the campaign small
    cfg = CampaignConfig(candidates=[spec], losses=["nll_loss"], dtypes=["float32", "float64"], max_examples=1,
                         oracles=["scipy"], report_dir=str(tmp_path / "rep"), case_timeout_s=60)
    return run_campaign(cfg)


def _by_origin(res, word):
    return [r for r in res.results if word in r.case_id]


def test_canonical_form():
    x = np.zeros((2, 3), np.float32)
    arrays = {"input": x, "target": np.array([0, 2], np.int16), "weight": np.ones(3, np.float64)}
    canon, used = extensions.canonical("nll_loss", arrays, ["any_int_target", "any_float_weight"])
    assert used == ["any_int_target", "any_float_weight"]
    assert canon["target"].dtype == np.int64 and canon["weight"].dtype == np.float32
    assert arrays["target"].dtype == np.int16 and canon["input"] is x        # the case is not modified
    for bad in (np.array([0, 1], bool), np.array([0.0, 1.0], np.float32)):     # never legalised
        assert extensions.canonical("nll_loss", {"input": x, "target": bad}, ["any_int_target"])[1] == []
    assert extensions.canonical("nll_loss", {"input": x, "target": np.array([0, 1]),
                                             "weight": np.ones(3, np.int64)}, ["any_float_weight"])[1] == []
    prob = {"input": x, "target": np.zeros((2, 3), np.float64), "weight": np.ones(3, np.float64)}
    assert extensions.canonical("cross_entropy", prob, ["any_float_weight"])[1] == []   # promotion is torch's


def test_undeclared_candidate_still_fails_for_accepting_int32_targets(tmp_path):
    res = _run(_lenient(tmp_path, "undeclared"), tmp_path)
    failed = {r.case_id.split("/")[-1]: r.message for r in res.results
              if r.status in FAILING and "/catalogue/" in r.case_id}
    names = ("nll_err_int32_target", "nll_err_weight_dtype", "nll_err_int16_target_weight_f16")
    assert set(failed) == {f"{n}[{dt}]" for n in names for dt in ("float32", "float64")}
    assert all(failed[f"{n}[float32]"].startswith("missing error") for n in names)
    # torch complains about the int8 dtype before the out-of-range class: another exception type
    # is a difference, not a failure, unless exception types are checked strictly
    (r,) = [r for r in _by_origin(res, "nll_err_int8_target_ge_C[float64]") if r.check == "error_semantics"]
    assert r.status == "error_type_differs" and r.message.startswith("raised IndexError")
    assert "torch raises RuntimeError" in r.message
    assert not any("extensions" in r.case for r in res.results)


def test_declared_extensions_turn_those_error_cases_into_value_cases(tmp_path):
    decl = 'CONFORMANCE = {"dtypes": ["float32", "float64"], "extensions": ["any_int_target", "any_float_weight"]}'
    res = _run(_lenient(tmp_path, "declared", decl), tmp_path)
    assert not [(r.case_id, r.check, r.message) for r in res.results if r.status in FAILING]
    legal = _by_origin(res, "nll_err_int32_target[float32]")
    assert {r.check for r in legal} == {"value", "shape_dtype", "nan_pattern", "grad_input"}
    assert all(r.case["extensions"] == ["any_int_target"] and "torch raises RuntimeError" in r.message
               for r in legal)
    both = _by_origin(res, "nll_err_int16_target_weight_f16[float64]")
    assert both and both[0].case["extensions"] == ["any_int_target", "any_float_weight"]
    # still errors: a bool target, an integer weight, and an int8 target out of range (IndexError
    # after the canonical int64 cast, where torch's first complaint was the dtype)
    for origin, err in (("nll_err_int_weight[float32]", "RuntimeError"),
                        ("nll_err_int8_target_ge_C[float64]", "IndexError")):
        (r,) = _by_origin(res, origin)
        assert r.check == "error_semantics" and r.status == "pass" and f"raised {err}" in r.message
    info = res.candidates[0]
    assert {"extension:any_int_target", "extension:any_float_weight"} <= set(info.supported["nll_loss"])
    md = render_markdown(res)
    assert "## Declared extensions" in md and "any_int_target (" in md and "any_float_weight (" in md


def test_a_declared_extension_is_still_checked_for_the_right_value(tmp_path):
    # silently drops a weight of another dtype: a wrong weighted mean, not an accepted error
    decl = 'CONFORMANCE = {"dtypes": ["float32", "float64"], "extensions": ["any_int_target", "any_float_weight"]}'
    res = _run(_lenient(tmp_path, "dropper", decl, drop=True), tmp_path)
    bad = [r for r in res.results if r.status in FAILING and "/catalogue/" in r.case_id]
    assert {r.case_id.split("/")[-1] for r in bad} == {"nll_err_int16_target_weight_f16[float32]",
                                                      "nll_err_int16_target_weight_f16[float64]"}
    assert {r.check for r in bad} == {"value", "grad_input"} and {r.status for r in bad} == {"fail"}
    # the reproducer passes the arrays the candidate got and computes the reference for the canonical form
    (cls,) = [c for c in res.classes if c.class_id == bad[0].class_id]
    text = open(os.path.join(cls.reproducer, "repro.py")).read()
    assert "canonical('nll_loss', case.arrays, ('any_int_target', 'any_float_weight'))" in text
    assert 'target = data["target"]'.ljust(40) + "# int16 (2,)" in text


@pytest.mark.parametrize("spec", ["nbxent", "nbxent.cuda"])
def test_builtin_nbxent_candidates_declare_float16_and_both_extensions(spec):
    target, _ = candidates.resolve(spec)
    assert target.startswith("conformance.")                  # an adapter, nbxent itself is untouched
    obj = candidates.load(spec)
    info = candidates.probe(obj, spec, ("float16", "float32", "float64"))
    for loss in ("cross_entropy", "nll_loss"):
        assert info[loss]["dtypes"] == ["float16", "float32", "float64"]
        assert info[loss]["extensions"] == ["any_int_target", "any_float_weight"]
    assert info["binary_cross_entropy"]["extensions"] == []
    import nbxent
    import nbxent.cuda
    module = nbxent.cuda if spec == "nbxent.cuda" else nbxent
    assert obj.cross_entropy is module.cross_entropy and obj.nll_loss_backward is module.nll_loss_backward


def test_extension_cases_reach_a_candidate_without_error_checks():
    from conformance import catalogue, strategies

    base = strategies.full_features("nll_loss")
    no_errors = dataclasses.replace(base, names=base.names - {"errors"})
    with_ext = dataclasses.replace(no_errors, extensions=frozenset({"any_int_target"}))
    int32 = next(c for c in catalogue.entries("nll_loss", ("float32",)) if c.origin.startswith("nll_err_int32"))
    assert not strategies.fits(int32, no_errors) and strategies.fits(int32, with_ext)
