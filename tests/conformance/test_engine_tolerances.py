"""The tolerance policy and the comparison: fair to correct float32 code, tight on real bugs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conformance import catalogue
from conformance.compare import compare
from conformance.model import LOSSES, Case
from conformance.oracles import make_oracle
from conformance.tolerances import POLICY, n_eff, tolerance

SCIPY = make_oracle("scipy")


def _judge(case, got, kind="value"):
    ref = SCIPY.evaluate(case)
    want = ref.value if kind == "value" else ref.grad
    dt = str(np.asarray(got).dtype)
    tol, desc = tolerance(case, kind, dt)
    return compare(got, want, tol, dt, desc)


def test_every_policy_entry_has_a_reason_and_positive_factors():
    for key, pol in POLICY.items():
        assert pol.k_elem > 0 and pol.k_sum > 0 and len(pol.reason) > 20, key
    for loss in LOSSES:
        for kind in ("value", "grad"):
            assert (loss, kind, "float32") in POLICY and (loss, kind, "float64") in POLICY


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
def test_one_ulp_from_the_exact_value_passes(loss, dtype):
    checked = 0
    for case in catalogue.entries(loss, (dtype,)):
        ref = SCIPY.evaluate(case)
        if ref.error is not None or not np.isfinite(ref.value).all() or ref.value.size == 0:
            continue
        for kind, want in (("value", ref.value), ("grad", ref.grad)):
            if want is None or not np.isfinite(want).all():
                continue
            r = want.astype(dtype)
            got = np.where(r != 0, np.nextafter(r, np.array(np.inf, dtype)), r)   # one ulp up, zeros kept
            c = _judge(case, got, kind)
            assert c.value_ok and c.pattern_ok, (case.origin, kind, c.measure)
            checked += 1
    assert checked >= 5


def test_wrong_weighted_mean_denominator_fails():
    case = next(c for c in catalogue.entries("cross_entropy", ("float32",)) if c.origin.startswith("ce_spec_weighted_mean"))
    right = SCIPY.evaluate(case).value
    s = SCIPY.evaluate(Case(case.loss, case.arrays, {"reduction": "sum"})).value
    assert _judge(case, right.astype(np.float32)).value_ok
    c = _judge(case, np.float32(s / 3))                      # sum / count instead of sum / sum w[t]
    assert not c.value_ok and c.measure.n_bad == 1 and "allowed" in c.measure.tolerance


def test_large_vocabulary_serial_float32_sum_fails_where_torch_passes():
    case = next(c for c in catalogue.entries("cross_entropy", ("float32",))
                if c.origin.startswith("ce_large_vocab_constant_tail"))
    x, t = case.arrays["input"], case.arrays["target"]
    torch_got = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").numpy()
    m = x.max(axis=1, keepdims=True)
    serial = np.cumsum(np.exp(x - m), axis=1, dtype=np.float32)[:, -1]      # one term at a time, in float32
    naive = (np.log(serial) + m[:, 0] - x[[0, 1], t]).astype(np.float32)
    c_torch, c_naive = _judge(case, torch_got), _judge(case, naive)
    assert c_torch.value_ok, c_torch.measure
    assert not c_naive.value_ok, c_naive.measure


def test_ignored_samples_must_be_exactly_zero():
    case = Case("cross_entropy", {"input": np.zeros((2, 3), np.float32), "target": np.array([0, -100])},
                {"reduction": "none", "label_smoothing": 0.1})
    good = SCIPY.evaluate(case).value.astype(np.float32)
    assert _judge(case, good).value_ok
    bad = good.copy()
    bad[1] = np.float32(1e-30)
    c = _judge(case, bad)
    assert not c.value_ok and c.measure.worst_index == [1]


def test_compare_reports_nan_pattern_and_worst_element():
    want = np.array([1.0, np.nan, np.inf, 2.0, 0.0])
    got = np.array([1.0, 0.5, np.inf, 2.5, -0.0])                 # signed zero counts as equal
    c = compare(got, want, np.full(5, 1e-6), "float64", "test")
    assert c.n_pattern_bad == 1 and "at [1]" in c.pattern_examples[0]
    assert c.measure.n_bad == 1 and c.measure.worst_index == [3]
    assert c.measure.worst_got == 2.5 and c.measure.worst_want == 2.0
    assert c.measure.max_rel == pytest.approx(0.25)


def test_n_eff_models_thirty_two_partial_sums():
    assert n_eff(0) == 0 and n_eff(1) == 6 and n_eff(100_000) == 3125 + 5


def test_float16_floor_is_subnormal_rounding_not_flush_to_zero():
    """float16 is computed in float32 and rounded: nothing flushes at half's tiny (6.1e-5), so a
    loss of 1e-5 returned as 0 must fail; one rounding into the subnormal range must pass."""
    from conformance.compare import compare
    from conformance.model import Case
    from conformance.tolerances import tolerance

    case = Case("binary_cross_entropy_with_logits", {"input": np.array([12.0], np.float16),
                                                     "target": np.array([1.0], np.float16)}, {"reduction": "none"})
    want = np.log1p(np.exp(-12.0))                            # 6.1e-6: a float16 subnormal
    tol, _ = tolerance(case, "value", "float16", ref_exact=True)
    assert not compare(np.zeros(1), np.array([want]), tol, "float16").value_ok
    assert compare(np.array([want], np.float16), np.array([want]), tol, "float16").value_ok


def test_reference_beyond_the_dtype_range_rounds_to_inf():
    from conformance.judge import _rounded_overflow

    got = _rounded_overflow(np.array([103833.0, 65519.0, -7e4, np.nan]), "float16")
    assert got[0] == np.inf and got[1] == 65519.0 and got[2] == -np.inf and np.isnan(got[3])
