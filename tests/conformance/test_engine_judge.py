"""The judge's rules: lenient exception types, torch's one-direction limits, per-element exact
references, and the one rule for NaN in ignored rows. The judge is pure, so these feed it outcomes."""
import numpy as np
import pytest

from conformance import catalogue
from conformance.judge import Context, Judge
from conformance.model import FAILING, Case
from conformance.oracles.mpmath_ref import MpmathOracle
from conformance.oracles.validate import backward_error
from conformance.references import References
from conformance.worker import Outcome

CTX = Context("cand", "cross_entropy", "id", {}, "scipy")


def _raised(t, exc=True):
    return Outcome("raised", exc_type=t, message=f"{t}: boom", is_exception=exc)


@pytest.mark.parametrize("strict,status", [(False, "error_type_differs"), (True, "fail")])
def test_another_exception_type_is_a_difference_unless_strict(strict, status):
    j = Judge(strict).invalid(CTX, _raised("ValueError"), "RuntimeError", "RuntimeError: weight tensor should be")
    (r,) = j.results
    assert r.status == status and (r.status in FAILING) == strict
    assert "torch raises RuntimeError: weight tensor should be" in r.message and "ValueError" in r.message
    assert Judge(False).invalid(CTX, _raised("RuntimeError"), "RuntimeError").results[0].status == "pass"


def test_a_per_candidate_strict_declaration_wins_over_lenient_default():
    assert Judge(False).invalid(CTX, _raised("ValueError"), "RuntimeError", strict=True).results[0].status == "fail"


def test_missing_error_and_system_exit_fail_even_when_lenient():
    ok = Outcome("ok", value=np.asarray(1.0))
    assert Judge(False).invalid(CTX, ok, "IndexError").results[0].message.startswith("missing error")
    r = Judge(False).invalid(CTX, _raised("SystemExit", exc=False), "IndexError").results[0]
    assert r.status == "fail" and "not an Exception" in r.message


def _case(name, dt="float64"):
    return next(c for c in catalogue.entries("cross_entropy", (dt,)) if c.origin == f"{name}[{dt}]")


def test_torch_backward_limit_accepts_a_raise_or_the_right_gradient():
    case = _case("ce_unbatched_1d_target")
    assert backward_error(case.loss, case.arrays, case.kwargs) == "RuntimeError"
    refs = References(["scipy"])
    s, e = refs.get(case)
    fwd = Outcome("ok", value=np.asarray(s.value, dtype=np.float64))
    j = Judge().valid(CTX, case, s, e, fwd, _raised("RuntimeError"), backward_quirk="RuntimeError")
    assert {r.check: r.status for r in j.results}["grad_input"] == "pass"
    right = Judge().valid(CTX, case, s, e, fwd, Outcome("ok", value=s.grad.copy()), backward_quirk="RuntimeError")
    assert {r.check: r.status for r in right.results}["grad_input"] == "pass"
    # without the limit (a 0-d target) a raising backward is an error
    plain = Judge().valid(CTX, case, s, e, fwd, _raised("RuntimeError"), backward_quirk=None)
    assert {r.check: r.status for r in plain.results}["grad_input"] == "error"


def test_elements_are_judged_one_by_one_against_torch_or_the_exact_value():
    case = Case("binary_cross_entropy_with_logits", {"input": np.array([-np.inf, 0.5]),
                                                      "target": np.array([1.0, 1.0])}, {"reduction": "none"})
    s = np.array([np.nan, 0.47407698418010663])
    e = np.array([np.inf, 0.47407698418010663])
    judge = Judge.judge_array
    assert judge(case, "value", s, s, e, "float64")[:2] == ("pass", "pass")                # torch's NaN
    assert judge(case, "value", e, s, e, "float64")[:2] == ("pass", "torch_differs")       # the exact limit
    assert judge(case, "value", np.array([np.inf, 0.6]), s, e, "float64")[0] == "fail"    # one element wrong
    assert judge(case, "value", np.array([1.0, 0.474]), s, e, "float64")[1] == "fail"


def test_exact_oracle_reaches_large_cases_with_nonfinite_values():
    case = _case("ce_pos_inf_logit_1000_classes")
    assert case.arrays["input"].size == 2000 and MpmathOracle().applies(case)
    s, e = References(["scipy", "mpmath"]).get(case)
    assert e is not None and np.isinf(e.value[0]) and np.isnan(s.value[0])
    val, pat, _ = Judge.judge_array(case, "value", e.value, s.value, e.value, "float64")
    assert (val, pat) == ("pass", "torch_differs")
    finite = _case("ce_smoothing_one_1000_classes")
    assert not MpmathOracle().applies(finite)              # finite and large: the float64 oracle suffices


@pytest.mark.parametrize("name,exact", [("ce_nan_in_ignored_row", True), ("ce_nan_in_ignored_row_large", False)])
def test_nan_in_ignored_rows_one_rule_at_every_size(name, exact, monkeypatch):
    """The ignored row's gradient may be torch's NaN or exactly 0, with or without the exact oracle."""
    case = _case(name)
    refs = References(["scipy"] + (["mpmath"] if exact else []))
    s, e = refs.get(case)
    assert (e is not None) == exact
    ignored = case.arrays["target"] == -100
    assert np.isnan(s.grad[ignored]).all()                  # torch leaks the NaN into the gradient
    zero = np.where(np.isnan(s.grad), 0.0, s.grad)
    fwd = Outcome("ok", value=np.asarray(s.value))
    for got, status in ((s.grad.copy(), "pass"), (zero, "torch_differs")):
        j = Judge().valid(CTX, case, s, e, fwd, Outcome("ok", value=got))
        assert {r.check: r.status for r in j.results}["grad_input"] == status
    bad = zero.copy()
    bad[ignored] = 1.0                                       # anything else in an ignored row fails
    j = Judge().valid(CTX, case, s, e, fwd, Outcome("ok", value=bad))
    assert {r.check: r.status for r in j.results}["grad_input"] == "fail"
