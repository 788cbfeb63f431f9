"""The convention library: each convention is recognised in a candidate that follows exactly it,
and nothing is recognised in torch's own outputs.

Candidates are called in-process here (function level); the profile tests run them in
worker processes as the campaign does.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from conformance import candidates, catalogue
from conformance.catalogue import grad_output_for
from conformance.conventions import CONVENTIONS, TORCH, FailedCase, diagnose, evaluate, failed_checks
from conformance.model import LOSSES, Case
from conformance.oracles.scipy_ref import ScipyOracle

BUGS = os.path.join(os.path.dirname(__file__), "bugs")
f32, f64 = np.float32, np.float64


def _bug(name):
    return candidates.load(os.path.join(BUGS, name + ".py"))


def case(loss, x, t, dtype=f64, grad=True, **kw):
    """A case with arrays in ``dtype`` (targets int64 unless float), weight/pos_weight from kw."""
    arrays = {"input": np.asarray(x, dtype=dtype)}
    t = np.asarray(t)
    arrays["target"] = t.astype(np.int64) if t.dtype.kind in "iu" else t.astype(kw.pop("tdtype", dtype))
    for k in ("weight", "pos_weight"):
        if k in kw:
            arrays[k] = np.asarray(kw.pop(k), dtype=dtype)
    c = Case(loss, arrays, kw)
    ref = evaluate(c, want_grad=False)
    if grad and ref.error is None:
        arrays["grad_output"] = grad_output_for(ref.value.shape, ref.dtype)
    return c


def run(mod, c: Case) -> list[FailedCase]:
    """The failing checks of ``mod`` on ``c`` (forward, and backward where it has one)."""
    kw = dict(c.kwargs)
    kw.update({k: c.arrays[k] for k in ("weight", "pos_weight") if k in c.arrays})
    args = (c.arrays["input"].copy(), c.arrays["target"].copy())
    val = grad = err = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            val = np.asarray(getattr(mod, c.loss)(*args, **kw))
        except Exception as exc:
            err = type(exc).__name__
        back = getattr(mod, c.loss + "_backward", None)
        if err is None and back is not None and "grad_output" in c.arrays:
            try:
                grad = np.asarray(back(c.arrays["grad_output"], *args, **kw))
            except Exception:
                grad = None
    return failed_checks(c, val, grad, err)


def ids_for(mod, cases, loss):
    fails = [f for c in cases for f in run(mod, c)]
    assert fails, "the candidate must fail somewhere on these cases"
    return fails, diagnose(loss, fails)


X33 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0]]
X43 = X33 + [[2.0, 2.0, 2.0]]
W3 = [0.2, 1.0, 3.0]
P33 = [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]]
XB = [[0.25, 0.5, 0.75], [0.1, 0.2, 0.9]]
YB = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
XS = np.arange(18.0).reshape(2, 3, 3) / 7 - 1


def test_default_semantics_is_the_scipy_oracle():
    """Every knob at its default reproduces the float64 oracle bit for bit on the whole catalogue."""
    oracle = ScipyOracle()
    n = 0
    for loss in LOSSES:
        for c in catalogue.entries(loss):
            r, e = oracle.evaluate(c), evaluate(c)
            assert r.error == e.error, c.origin
            if r.error is None:
                n += 1
                assert r.dtype == e.dtype, c.origin
                np.testing.assert_array_equal(r.value, e.value, err_msg=c.origin)
                if r.grad is not None:
                    np.testing.assert_array_equal(r.grad, e.grad, err_msg=c.origin)
    assert n > 100


# ------------------------------------------------------------------ the seeded-bug candidates
SEEDED = [
    ("bug_ce_mean_by_count", "weighted_mean_by_count",
     [case("cross_entropy", X43, [2, 0, 1, -100], weight=W3), case("cross_entropy", X33, [2, 0, 1], weight=W3)]),
    ("bug_nll_mean_counts_ignored", "mean_includes_ignored", [case("nll_loss", X43, [2, 0, 1, -100])]),
    ("bug_nll_mean_counts_ignored", "ignored_rows_count_weight_of_class0",
     [case("nll_loss", X43, [2, 0, 1, -100], weight=W3)]),
    ("bug_ce_smoothing_on_ignored", "smoothing_on_ignored_rows",
     [case("cross_entropy", X43, [2, 0, 1, -100], label_smoothing=0.2, reduction=r) for r in ("mean", "sum", "none")]),
    ("bug_ce_prob_mean_by_weights", "prob_mean_by_weight_sum", [case("cross_entropy", X33, P33, weight=W3)]),
    ("bug_bce_no_clamp", "bce_no_log_clamp",
     [case("binary_cross_entropy", [0.0, 0.5, 1.0], [1.0, 0.5, 0.0], reduction="none")]),
    ("bug_bce_grad_float64_floor", "bce_grad_no_floor",
     [case("binary_cross_entropy", [0.0, 0.5, 1.0], [1.0, 0.5, 0.0], reduction="none")]),
    ("bug_bcewl_naive_log_sigmoid", "naive_log_sigmoid",
     [case("binary_cross_entropy_with_logits", [-800.0, 0.5, 40.0], [1.0, 0.5, 1.0], reduction="none")]),
    ("bug_bcewl_pos_weight_channel_axis", "pos_weight_on_class_dim",
     [case("binary_cross_entropy_with_logits", XS, (XS > 0).astype(float), pos_weight=[3.0, 0.5, 2.0])]),
    ("bug_ce_no_max_shift", "lse_no_max_shift", [case("cross_entropy", [[800.0, 0.0, -1.0]], [0])]),
    ("bug_nll_negative_target_wraps", "negative_target_wraps", [case("nll_loss", X33, [2, -1, 0])]),
    ("bug_ce_float32_serial_sum", "low_precision_accumulation",
     [c for c in catalogue.entries("cross_entropy") if c.origin.startswith("ce_large_vocab_constant_tail")]),
]


@pytest.mark.parametrize("bug,cid,cases", SEEDED, ids=[f"{b}-{c}" for b, c, _ in SEEDED])
def test_seeded_bug_is_diagnosed(bug, cid, cases):
    fails, diag = ids_for(_bug(bug), cases, cases[0].loss)
    assert diag[0]["id"] == cid and diag[0]["explains"] == len(fails) == diag[0]["of"], diag
    assert CONVENTIONS[cid].reference(cases[0]) is not None


def test_a_bug_outside_the_library_is_unexplained():
    c = case("cross_entropy", X33, [2, 0, 1], label_smoothing=0.2)
    fails, diag = ids_for(_bug("bug_ce_grad_ignores_smoothing"), [c], "cross_entropy")
    assert [d["id"] for d in diag] == ["unexplained"] and diag[0]["explains"] == len(fails)
