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
from conformance.conventions import CONVENTIONS, FailedCase, diagnose, evaluate, failed_checks
from conformance.model import LOSSES, Case
from conformance.oracles.scipy_ref import ScipyOracle
from conformance.profile import probe_case

BUGS = os.path.join(os.path.dirname(__file__), "bugs")
f32, f64 = np.float32, np.float64


def _bug(name):
    return candidates.load(os.path.join(BUGS, name + ".py"))


case = probe_case


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
     [case("binary_cross_entropy_with_logits", XS, (XS > 0).astype(float), pos_weight=[3.0, 0.5, 2.0]),
      # (C,) = (4,) against dim 1 of size 1: it raises where torch broadcasts against the last dim
      case("binary_cross_entropy_with_logits", XS.reshape(1, 2, 9)[:, :1, :4], np.ones((1, 1, 4)),
           pos_weight=[3.0, 0.5, 2.0, 1.5], reduction="none"),
      # (3,) against the last dim of size 2: torch raises, it applies it per channel
      case("binary_cross_entropy_with_logits", XS[:, :, :2], np.ones((2, 3, 2)), pos_weight=[3.0, 0.5, 2.0])]),
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


# ------------------------------------------------------------------ one tiny candidate per remaining convention
REF = _bug("reference")


class Candidate:
    """The correct reference candidate with some functions replaced."""

    def __init__(self, **fns):
        self.__dict__.update(fns)

    def __getattr__(self, name):
        return getattr(REF, name)


def _rows_lp(x):
    return REF.log_softmax(REF.rows(x))


def _ce_mean_empty_zero(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    out = REF.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    return np.zeros_like(out) if reduction == "mean" and np.isnan(out) else out


def _ce_megatron(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x, t = np.asarray(input), np.asarray(target)
    lp, C = _rows_lp(x), x.shape[1]
    s = label_smoothing * C / (C - 1)                          # Megatron-LM's rescaled smoothing
    per = (1 - s) * -lp[np.arange(len(t)), t] + s * -lp.mean(axis=1)
    return np.asarray(per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per).astype(x.dtype)


def _ce_textbook_weighted_smoothing(input, target, weight=None, ignore_index=-100, reduction="mean",
                                    label_smoothing=0.0):
    x, t, w = np.asarray(input), np.asarray(target), np.asarray(weight, np.float64)
    lp, C, eps = _rows_lp(x), x.shape[1], label_smoothing
    q = np.full(lp.shape, eps / C)
    q[np.arange(len(t)), t] += 1 - eps
    per = -(q * lp).sum(axis=1) * w[t]
    return np.asarray(per.sum() / w[t].sum() if reduction == "mean" else per.sum()).astype(x.dtype)


def _ce_prob_no_smoothing(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    prob = np.asarray(target).shape == np.asarray(input).shape
    return REF.cross_entropy(input, target, weight, ignore_index, reduction, 0.0 if prob else label_smoothing)


def _bce_keras(input, target, weight=None, reduction="mean"):
    x = np.clip(np.asarray(input, np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(target, np.float64)
    return REF._reduce(-(y * np.log(x) + (1 - y) * np.log(1 - x)), reduction, np.asarray(input).dtype)


def _bce_mean_by_weights(input, target, weight=None, reduction="mean"):
    if reduction != "mean" or weight is None:
        return REF.binary_cross_entropy(input, target, weight, reduction)
    s = REF.binary_cross_entropy(input, target, weight, "sum")
    return (s / np.broadcast_to(weight, np.shape(input)).sum()).astype(s.dtype)


def _bcewl_pw_negative(input, target, weight=None, reduction="mean", pos_weight=None):
    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    ls = REF.log_sigmoid(x)
    return REF._reduce(-(y * ls + pw * (1 - y) * (ls - x)), reduction, np.asarray(target).dtype)


def _ce_last_axis(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x, p = np.asarray(input), np.asarray(target)
    lp = REF.log_softmax(x.reshape(-1, x.shape[-1]).astype(np.float64))
    per = -(lp * p.reshape(lp.shape)).sum(axis=1)
    return np.asarray(per.mean() if reduction == "mean" else per.sum()).astype(x.dtype)


def _nll_clamped_index(input, target, weight=None, ignore_index=-100, reduction="mean"):
    x, t = np.asarray(input), np.asarray(target)
    t = np.where(t == ignore_index, t, np.clip(t, 0, x.shape[1] - 1))     # JAX-style clamped gather
    return REF.nll_loss(input, t, weight, ignore_index, reduction)


def _nll_checks_first(input, target, weight=None, ignore_index=-100, reduction="mean"):
    t = np.asarray(target)
    if ((t < 0) | (t >= np.asarray(input).shape[1])).any():
        raise IndexError("nll_loss: target out of bounds")
    return REF.nll_loss(input, target, weight, ignore_index, reduction)


def _bce_flat(input, target, weight=None, reduction="mean"):
    out = REF.binary_cross_entropy(input, target, weight, reduction)
    return out.reshape(-1) if reduction == "none" else out


def _bcewl_input_dtype(input, target, weight=None, reduction="mean", pos_weight=None):
    return REF.binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight).astype(input.dtype)


def _bce_broadcasting(input, target, weight=None, reduction="mean"):
    return REF.binary_cross_entropy(input, np.broadcast_to(target, np.shape(input)), weight, reduction)


def _ce_backward_unmasked(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0):
    x, t = np.asarray(input), np.asarray(target)
    sm, valid = np.exp(_rows_lp(x)), t != ignore_index
    hot = np.zeros_like(sm)
    hot[np.arange(len(t))[valid], t[valid]] = 1.0
    g = float(grad_output) / valid.sum() if reduction == "mean" else float(grad_output)
    return (g * (sm - hot)).astype(x.dtype)                   # softmax - onehot for every row


def _ce_mask_by_multiply(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x, t = np.asarray(input), np.asarray(target)
    valid = t != ignore_index
    with np.errstate(all="ignore"):
        per = -_rows_lp(x)[np.arange(len(t)), np.where(valid, t, 0)] * valid
    return np.asarray(per.sum() / valid.sum() if reduction == "mean" else per.sum()).astype(x.dtype)


def _nll_any_int(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return REF.nll_loss(input, np.asarray(target).astype(np.int64), weight, ignore_index, reduction)


def _ce_cast_weight(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    w = None if weight is None else np.asarray(weight).astype(np.asarray(input).dtype)
    return REF.cross_entropy(input, target, w, ignore_index, reduction, label_smoothing)


def _ce_llm(weighted_z=False, z_on_ignored=False, smoothing_raw=False):
    """cross_entropy with the LLM options (docs/semantics.md §13.1), one convention flipped, from nbxent's parts."""
    import nbxent

    def ce(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
           lse_square_scale=0.0, softcap=None):
        x, t = np.asarray(input, f64), np.asarray(target)
        kw = dict(weight=weight, ignore_index=ignore_index, reduction=reduction)
        if smoothing_raw:                    # (1 - eps) * nll(capped) + eps * uniform term(raw): same W
            main = (1 - label_smoothing) * nbxent.cross_entropy(x, t, softcap=softcap, **kw) \
                + label_smoothing * nbxent.cross_entropy(x, t, label_smoothing=1.0, **kw)
        else:
            main = nbxent.cross_entropy(x, t, label_smoothing=label_smoothing, softcap=softcap, **kw)
        lse = nbxent.cross_entropy(x, t, softcap=softcap, return_lse=True, **kw).lse
        valid = t != ignore_index
        wt = np.where(valid, 1.0 if weight is None else np.asarray(weight, f64)[np.where(valid, t, 0)], 0.0)
        coef = np.ones(t.shape) if z_on_ignored else (wt if weighted_z else valid.astype(f64))
        per = coef * lse_square_scale * lse ** 2
        den = t.size if z_on_ignored else (wt.sum() if weighted_z else valid.sum())
        z = per if reduction == "none" else per.sum() / (den if reduction == "mean" else 1.0)
        return np.asarray(main + z)
    return ce


XP = np.moveaxis(np.arange(24.0).reshape(2, 3, 4) / 5, 1, -1).copy()            # (2, 4, 3)
PP = np.full((2, 4, 3), 1 / 3)
CUSTOM = [
    ("empty_mean_zero", Candidate(cross_entropy=_ce_mean_empty_zero),
     [case("cross_entropy", X33, [-100, -100, -100]), case("cross_entropy", np.zeros((0, 3)), np.zeros(0, int))]),
    ("smoothing_eps_over_c_minus_1", Candidate(cross_entropy=_ce_megatron),
     [case("cross_entropy", X43, [2, 0, 1, 1], label_smoothing=0.3, reduction=r) for r in ("mean", "none")]),
    ("smoothing_weighted_by_target", Candidate(cross_entropy=_ce_textbook_weighted_smoothing),
     [case("cross_entropy", X33, [2, 0, 1], weight=W3, label_smoothing=0.2, reduction=r) for r in ("mean", "sum")]),
    ("prob_target_smoothing_ignored", Candidate(cross_entropy=_ce_prob_no_smoothing),
     [case("cross_entropy", X33, P33, label_smoothing=0.25)]),
    ("probability_clipped", Candidate(binary_cross_entropy=_bce_keras),
     [case("binary_cross_entropy", [0.0, 1e-9, 1.0, 0.5], [1.0, 1.0, 0.0, 0.5], reduction="none")]),
    ("bce_mean_by_weight_sum", Candidate(binary_cross_entropy=_bce_mean_by_weights),
     [case("binary_cross_entropy", XB, YB, weight=[1.0, 2.0, 3.0])]),
    ("pos_weight_on_negative_term", Candidate(binary_cross_entropy_with_logits=_bcewl_pw_negative),
     [case("binary_cross_entropy_with_logits", XB, YB, pos_weight=[3.0, 0.5, 2.0], reduction="sum")]),
    ("class_axis_last", Candidate(cross_entropy=_ce_last_axis), [case("cross_entropy", XP, PP, reduction="sum")]),
    ("out_of_range_target_unchecked", Candidate(nll_loss=_nll_clamped_index), [case("nll_loss", X33, [2, 3, 0])]),
    ("ignore_index_range_checked", Candidate(nll_loss=_nll_checks_first), [case("nll_loss", X33, [2, -100, 0])]),
    ("none_output_flattened", Candidate(binary_cross_entropy=_bce_flat),
     [case("binary_cross_entropy", XB, YB, reduction="none")]),
    ("result_dtype_differs", Candidate(binary_cross_entropy_with_logits=_bcewl_input_dtype),
     [case("binary_cross_entropy_with_logits", XB, YB, dtype=f32, tdtype=f64)]),
    ("target_broadcasts", Candidate(binary_cross_entropy=_bce_broadcasting),
     [case("binary_cross_entropy", XB, [1.0, 0.0, 1.0])]),
    ("any_int_target_accepted", Candidate(nll_loss=_nll_any_int),
     [case("nll_loss", X33, [2, 0, 1], tdtype=np.int32), case("nll_loss", X33, [2, 0, 1], tdtype=np.int16)]),
    ("any_float_weight_accepted", Candidate(cross_entropy=_ce_cast_weight),
     [Case("cross_entropy", {"input": np.asarray(X33, f32), "target": np.array([2, 0, 1]),
                             "weight": np.asarray(W3, f64)}, {})]),
    ("ignored_rows_have_gradient", Candidate(cross_entropy_backward=_ce_backward_unmasked),
     [case("cross_entropy", X43, [2, 0, 1, -100])]),
    ("nan_leaks_from_ignored_rows", Candidate(cross_entropy=_ce_mask_by_multiply),
     [case("cross_entropy", [[np.nan, 0.0, 1.0], [0.5, 0.2, 0.1]], [-100, 1], reduction=r) for r in ("mean", "sum")]),
    ("z_loss_weighted", Candidate(cross_entropy=_ce_llm(weighted_z=True)),
     [case("cross_entropy", X43, [2, 0, 1, -100], weight=W3, lse_square_scale=0.1, reduction=r)
      for r in ("mean", "none")]),
    ("z_loss_on_ignored_rows", Candidate(cross_entropy=_ce_llm(z_on_ignored=True)),
     [case("cross_entropy", X43, [2, 0, 1, -100], lse_square_scale=0.1, reduction=r) for r in ("mean", "sum")]),
    ("softcap_smoothing_on_raw_logits", Candidate(cross_entropy=_ce_llm(smoothing_raw=True)),
     [case("cross_entropy", X43, [2, 0, 1, 1], softcap=1.0, label_smoothing=0.3, reduction=r)
      for r in ("mean", "none")]),
]


@pytest.mark.parametrize("cid,cand,cases", CUSTOM, ids=[c for c, _, _ in CUSTOM])
def test_convention_is_diagnosed(cid, cand, cases):
    fails, diag = ids_for(cand, cases, cases[0].loss)
    assert diag[0]["id"] == cid and diag[0]["explains"] == len(fails), diag


def test_every_convention_is_tested():
    tested = {c for _, c, _ in SEEDED} | {c for c, _, _ in CUSTOM}
    assert tested == set(CONVENTIONS)


# ------------------------------------------------------------------ torch's own outputs are never explained
ALL_CASES = [c for _, _, cs in SEEDED + CUSTOM for c in cs] + [c for loss in LOSSES for c in catalogue.entries(loss)]


def test_torch_outputs_are_never_explained():
    """torch's reference handed back as the candidate's output, under every check: nothing explains it."""
    fails = {}
    for c in ALL_CASES:
        t = evaluate(c)
        for check in ("value", "shape_dtype", "nan_pattern", "grad_input", "error_semantics"):
            val = None if t.value is None else t.value.astype(t.dtype)
            grad = None if t.grad is None else t.grad.astype(c.arrays["input"].dtype)
            fc = FailedCase(c, check, val, grad, t.error)
            fails.setdefault(c.loss, []).append(fc)
    for loss, fs in fails.items():
        assert [d["id"] for d in diagnose(loss, fs)] == ["unexplained"], loss


#: A case none of the conventions changes: no weight, ignore_index, smoothing or pos_weight; 2-D, small, valid.
PLAIN = {
    "cross_entropy": case("cross_entropy", X33, [2, 0, 1]),
    "nll_loss": case("nll_loss", X33, [2, 0, 1]),
    "binary_cross_entropy": case("binary_cross_entropy", XB, YB),
    "binary_cross_entropy_with_logits": case("binary_cross_entropy_with_logits", XB, YB),
}


@pytest.mark.parametrize("cid", sorted(CONVENTIONS))
def test_no_reference_where_the_convention_changes_nothing(cid):
    conv = CONVENTIONS[cid]
    for loss, c in PLAIN.items():
        got = conv.reference(c)
        if cid == "result_dtype_differs" and loss in conv.losses:
            # its 'always float32' alternative changes every float64 case: only the dtype differs
            assert got is not None and got.dtype == "float32"
            np.testing.assert_array_equal(got.value, evaluate(c).value)
        else:
            assert got is None, (cid, loss)


def test_pairs_explain_what_no_single_convention_does():
    """A candidate that both divides by the count and adds smoothing to ignored rows."""
    def ce(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        s = _bug("bug_ce_smoothing_on_ignored").cross_entropy(input, target, weight, ignore_index, "sum",
                                                                label_smoothing)
        return (s / (np.asarray(target) != ignore_index).sum()).astype(s.dtype)
    c = case("cross_entropy", X43, [2, 0, 1, -100], weight=W3, label_smoothing=0.2)
    fails, diag = ids_for(Candidate(cross_entropy=ce), [c], "cross_entropy")
    assert diag[0]["id"] == "weighted_mean_by_count+smoothing_on_ignored_rows", diag


def test_diagnose_rejects_another_loss():
    with pytest.raises(ValueError, match="diagnose"):
        diagnose("nll_loss", [FailedCase(PLAIN["cross_entropy"], "value", None, None, None)])


def test_docs_describe_every_convention():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "conventions.md")) as f:
        doc = f.read()
    for cid, conv in CONVENTIONS.items():
        assert f"| `{cid}` | {conv.summary} |" in doc, cid
        assert conv.section.startswith("docs/semantics.md §") and conv.checks, cid


def test_a_case_judged_through_an_extension_is_diagnosed_in_canonical_form():
    """An int32 target (torch raises; a candidate declaring any_int_target is judged as int64)."""
    c = case("cross_entropy", X43, [2, 0, 1, -100], weight=W3)
    want = CONVENTIONS["weighted_mean_by_count"].reference(c).value
    sent = Case(c.loss, {**c.arrays, "target": c.arrays["target"].astype(np.int32)}, c.kwargs)
    diag = diagnose("cross_entropy", [FailedCase(sent, "value", want.astype(np.float64), None, None)])
    assert diag[0]["id"] == "weighted_mean_by_count", diag
