"""The oracles against spec worked examples, against each other, and the error table against torch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conformance import catalogue, strategies
from conformance.compare import compare
from conformance.model import LOSSES, Case
from conformance.oracles import make_oracle
from conformance.oracles.validate import expected_error
from conformance.tolerances import tolerance

SCIPY, TORCH, MPMATH = make_oracle("scipy"), make_oracle("torch"), make_oracle("mpmath")
# The spec prints torch float64 results with 17 significant digits; an independent float64
# evaluation differs by a few roundings of the terms (values here are O(1) to O(1e12)).
RTOL = 8 * np.finfo(np.float64).eps
X23 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
X43 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0], [2.0, 2.0, 2.0]]
W3 = [0.2, 1.0, 3.0]


def _case(loss, kwargs=None, grad=None, **arrays):
    a = {k: np.asarray(v, dtype=np.int64 if k == "target" and loss in ("cross_entropy", "nll_loss")
                       and np.asarray(v).dtype.kind == "i" else np.float64) for k, v in arrays.items()}
    if grad is not None:
        a["grad_output"] = np.asarray(grad, dtype=np.float64)
    return Case(loss, a, kwargs or {})


WORKED = [  # (docs/semantics.md section, case, what, expected as torch prints it[, exact value where torch is inexact])
    ("3.1 none", _case("cross_entropy", {"reduction": "none"}, input=X43, target=[2, 0, 1, -100], weight=W3),
     "value", [0.72393388997147112, 0.06613452188144482, 0.16984601955628548, 0.0]),
    ("3.1 sum", _case("cross_entropy", {"reduction": "sum"}, input=X43, target=[2, 0, 1, -100], weight=W3),
     "value", 0.9599144314092014),
    ("3.1 mean", _case("cross_entropy", {}, input=X43, target=[2, 0, 1, -100], weight=W3), "value",
     0.2285510550974289),
    ("5.1 none", _case("cross_entropy", {"reduction": "none", "label_smoothing": 0.2}, input=X43[:3],
                       target=[2, 0, -100], weight=W3), "value", [0.8667142750411809, 0.6788292814725119, 0.0]),
    ("5.1 mean", _case("cross_entropy", {"label_smoothing": 0.2}, input=X43[:3], target=[2, 0, -100], weight=W3),
     "value", 0.482982361410529),
    ("6 mean", _case("cross_entropy", {}, input=X23, target=[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], weight=W3),
     "value", 0.73507365386530699),
    ("6 ls=0.3", _case("cross_entropy", {"label_smoothing": 0.3, "reduction": "none"}, input=X23,
                       target=[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], weight=W3), "value",
     [1.4141596946904242, 0.9851766612680455]),
    ("3.3 NLL mean", _case("nll_loss", {}, input=[0.5, -1.0, 2.0], target=1, weight=[1.0, 3.0, 1.0]), "value", 1.0),
    ("3.3 CE sum", _case("cross_entropy", {"reduction": "sum"}, input=[0.5, -1.0, 2.0], target=1,
                         weight=[1.0, 3.0, 1.0]), "value", 9.723933889971471),
    ("7.1 clamp", _case("binary_cross_entropy", {"reduction": "none"},
                        input=[0.0, 1.0, 0.0, 1.0, 1e-50, 1e-43, 3.7e-44, 0.5, 0.0],
                        target=[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]), "value",
     [100.0, 100.0, 0.0, -0.0, 100.0, 99.01115899874397, 100.0, 0.6931471805599453, 50.0]),
    ("8.1 pos_weight", _case("binary_cross_entropy_with_logits", {"reduction": "none"}, input=X23,
                             target=[[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]], pos_weight=[3.0, 0.5, 2.0]), "value",
     [[1.42223095254032, 0.3132616875182228, 1.1903920165644588],
      [1.7014132779827524, 0.2879697099394218, 2.2737420122297998]]),
    ("8.2 y=0", _case("binary_cross_entropy_with_logits", {"reduction": "none"},
                      input=[-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], target=[0.0] * 7), "value",
     [0.0, 0.0, 2.061153026033935e-09, 0.6931471805599453, 20.000000002061153, 100.0, 10000.0],
     # torch's (1-y)*x - logsig(x) cancels at x = -100, -20; the exact values are softplus(x)
     [0.0, 3.720075976020836e-44, 2.061153620314381e-09, 0.6931471805599453, 20.000000002061153, 100.0, 10000.0]),
    ("10.1 CE grad", _case("cross_entropy", {}, grad=1.0, input=X23, target=[1, -100]), "grad",
     [[0.1752903921400367, -0.9608874267293126, 0.7855970345892759], [0.0, 0.0, 0.0]]),
    ("10.1 NLL grad", _case("nll_loss", {}, grad=1.0, input=X23, target=[1, -100]), "grad",
     [[0.0, -1.0, 0.0], [0.0, 0.0, 0.0]]),
    ("10.3 BCE grad", _case("binary_cross_entropy", {"reduction": "sum"}, grad=1.0,
                            input=[0.0, 1.0, 0.0, 1e-13, 0.3, 0.5], target=[1.0, 0.0, 0.0, 1.0, 0.7, 0.5]), "grad",
     [-1000000003995.8029, 1000000003995.8029, 0.0, -1000000003995.7028, -1.9047619047619047, 0.0]),
    ("10.4 BCEwL grad", _case("binary_cross_entropy_with_logits", {"reduction": "sum"}, grad=1.0,
                              input=[0.5, -2.0, 30.0, -1e4, np.inf, -np.inf],
                              target=[1.0, 0.0, 0.25, 1.0, 0.0, 1.0]), "grad",
     [-0.3775406687981454, 0.11920292202211755, 0.7499999999999065, -1.0, 1.0, -1.0]),
]


@pytest.mark.parametrize("oracle", [SCIPY, TORCH, MPMATH], ids=lambda o: o.name)
@pytest.mark.parametrize("section,case,what,expected,exact", [w + (None,) * (5 - len(w)) for w in WORKED],
                         ids=[w[0] for w in WORKED])
def test_oracles_reproduce_the_spec_worked_examples(oracle, section, case, what, expected, exact):
    if oracle.exact and exact is not None:
        expected = exact
    ref = oracle.evaluate(case)
    assert ref.error is None
    got = ref.value if what == "value" else ref.grad
    np.testing.assert_allclose(got, np.asarray(expected), rtol=RTOL, atol=0)


def test_scipy_keeps_torch_nan_quirks_and_mpmath_takes_the_limits():
    # docs/semantics.md §9: +inf logit -> nan (torch), exact +inf; -inf target logit -> inf; 1e308 row -> inf
    x = [[np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0], [-np.inf] * 3, [1e308, 0.0, -1e308]]
    case = _case("cross_entropy", {"reduction": "none"}, input=x, target=[1, 0, 1, 0, 2])
    s, e = SCIPY.evaluate(case).value, MPMATH.evaluate(case).value
    np.testing.assert_array_equal(s[[0, 1, 3, 4]], [np.nan, np.inf, np.nan, np.inf])
    np.testing.assert_allclose(s[2], 1.3132616875182228, rtol=RTOL)
    assert e[0] == np.inf and e[1] == np.inf and np.isnan(e[3])


def test_weighted_smoothing_mean_with_zero_denominator_is_nan_as_in_torch():
    # W = 0 with eps = 1: torch divides each term by W separately, so 0/0 makes it nan (docs/semantics.md §0)
    case = _case("cross_entropy", {"label_smoothing": 1.0}, input=[[0.3, 0.8, 0.3]], target=[2],
                 weight=[0.6, 0.8, 0.0])
    assert np.isnan(SCIPY.evaluate(case).value) and np.isnan(TORCH.evaluate(case).value)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=strategies.cases("cross_entropy", strategies.full_features("cross_entropy"))
       | strategies.cases("nll_loss", strategies.full_features("nll_loss"))
       | strategies.cases("binary_cross_entropy", strategies.full_features("binary_cross_entropy"))
       | strategies.cases("binary_cross_entropy_with_logits",
                          strategies.full_features("binary_cross_entropy_with_logits")))
def test_scipy_and_torch_oracles_agree_and_mpmath_only_adds_limits(case):
    s, t = SCIPY.evaluate(case), TORCH.evaluate(case)
    # The torch oracle computes in float64, so a dtype rule (e.g. a float64 weight beside a
    # float32 input) only shows in torch's native-dtype call.
    assert s.error == (t.error if t.error is not None else TORCH.native_error(case))
    if s.error is None:
        for kind, sv, tv in (("value", s.value, t.value), ("grad", s.grad, t.grad)):
            tol, desc = tolerance(case, kind, "float64")
            # torch's composed softcap gradient goes through tanh's backward 1 - tanh^2, which
            # cancels for |x| >> c (docs/semantics.md §14): only the exact oracle is the truth
            # there, checked below.
            if not (kind == "grad" and "softcap" in case.kwargs):
                c = compare(tv, sv, tol, "float64", desc)
                assert c.pattern_ok and c.value_ok, (kind, c)
            if MPMATH.applies(case):
                ev = MPMATH.evaluate(case).value if kind == "value" else MPMATH.evaluate(case).grad
                finite = np.isfinite(sv) & np.isfinite(ev)
                c = compare(np.where(finite, sv, 0), np.where(finite, ev, 0), tol, "float64", desc)
                assert c.value_ok, (kind, c)
                assert not (np.isnan(ev) & ~np.isnan(sv)).any(), "the exact oracle has a nan torch does not"


@pytest.mark.parametrize("loss", LOSSES)
def test_error_table_matches_torch_on_every_catalogue_case(loss):
    cases = catalogue.entries(loss)
    assert any(c.expect_error for c in cases)
    for c in cases:
        want = TORCH.native_error(c)
        assert expected_error(c.loss, c.arrays, c.kwargs) == want, c.origin
        assert c.expect_error == want, c.origin
