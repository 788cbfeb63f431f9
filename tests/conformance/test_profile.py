"""``nbxent-conformance profile``: torch shows torch's conventions on every axis, nbxent only its
documented deliberate differences (README "Deliberate differences from torch"), and a seeded bug
its convention. Candidates run in worker processes, as in a campaign."""
from __future__ import annotations

import json
import os

import pytest

from conformance import cli
from conformance.profile import axes, profile, render

BUGS = os.path.join(os.path.dirname(__file__), "bugs")
MEAN_BY_COUNT = os.path.join(BUGS, "bug_ce_mean_by_count.py")
NEG_WRAPS = os.path.join(BUGS, "bug_nll_negative_target_wraps.py")
AXES = [a.name for a in axes()]


#: A textbook NumPy implementation that follows several conventions at once.
TEXTBOOK = r'''
import numpy as np

def _lsm(x):
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))        # no max shift

def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x = np.asarray(input, np.float64); t = np.asarray(target)
    if x.ndim != 2:
        raise ValueError("2-D only")
    C = x.shape[1]
    if t.shape == x.shape:
        q = t * (1 - label_smoothing) + label_smoothing / C
        per = -(q * _lsm(x)).sum(1)
        return np.asarray(per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per).astype(input.dtype)
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    lp = _lsm(x)
    q = np.full(x.shape, label_smoothing / (C - 1)); q[np.arange(len(t)), tc] = 1 - label_smoothing
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    per = -(q * lp).sum(1) * w[tc] * valid
    if reduction == "none":
        return per.astype(input.dtype)
    if reduction == "sum":
        return np.asarray(per.sum()).astype(input.dtype)
    n = valid.sum()
    return np.asarray(per.sum() / n if n else 0.0).astype(input.dtype)

def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    x = np.clip(np.asarray(input, np.float64), 1e-7, 1 - 1e-7); y = np.asarray(target, np.float64)
    l = -(y * np.log(x) + (1 - y) * np.log(1 - x)) * (1.0 if weight is None else weight)
    return np.asarray(l if reduction == "none" else l.sum() if reduction == "sum" else l.mean()).astype(input.dtype)

def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    x = np.asarray(input, np.float64); y = np.asarray(target, np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight).reshape((-1,) + (1,) * (x.ndim - 2)) if x.ndim >= 3 else pos_weight
    s = 1 / (1 + np.exp(-x))
    l = -(pw * y * np.log(s) + (1 - y) * np.log(1 - s))
    return np.asarray(l if reduction == "none" else l.sum() if reduction == "sum" else l.mean()).astype(input.dtype)
'''


@pytest.fixture(scope="module")
def textbook(tmp_path_factory):
    path = tmp_path_factory.mktemp("candidates") / "textbook.py"
    path.write_text(TEXTBOOK)
    return str(path)


@pytest.fixture(scope="module")
def result(textbook):
    return profile(["torch", "nbxent", MEAN_BY_COUNT, NEG_WRAPS, textbook])


def cells(result, spec):
    return {r["axis"]: r["cells"][spec] for r in result["axes"]}


def test_every_axis_is_probed(result):
    assert [r["axis"] for r in result["axes"]] == AXES
    assert {"mean denominator", "empty / all-ignored mean", "label smoothing", "out-of-range / negative targets",
            "probability clipping", "log clamp", "pos_weight axis", "result dtype", "accuracy class"} <= set(AXES)


def test_torch_follows_torch_everywhere(result):
    for axis, cell in cells(result, "torch").items():
        assert cell["verdict"] == "torch" and cell["probes"] > 0, (axis, cell)


def test_nbxent_differs_only_where_documented(result):
    nb, tc = cells(result, "nbxent"), cells(result, "torch")
    for axis, cell in nb.items():
        if axis == "integer target dtype":      # README: any integer target dtype, read as int64
            assert cell["verdict"] == "extension" and "any_int_target" in cell["text"], cell
        else:
            assert cell["verdict"] == "torch", (axis, cell)
    # README: float64 accumulation rounded once: at least as accurate as torch on the accuracy probes
    assert nb["accuracy class"]["max_ulp"] <= tc["accuracy class"]["max_ulp"]


def test_seeded_bugs_show_their_convention(result):
    mc, nw = cells(result, MEAN_BY_COUNT), cells(result, NEG_WRAPS)
    assert mc["mean denominator"]["conventions"] == ["weighted_mean_by_count"]
    assert mc["empty / all-ignored mean"]["verdict"] == "torch"
    assert nw["out-of-range / negative targets"]["conventions"] == ["negative_target_wraps"]
    assert nw["pos_weight axis"]["verdict"] == "torch"
    table = render(result)
    assert "weighted_mean_by_count" in table and "negative_target_wraps:" in table


def test_missing_losses_are_na_and_json_output(tmp_path, capsys):
    """A Keras-style BCE and nothing else: the other losses' axes are n/a, clipping is recognised."""
    path = tmp_path / "only_bce.py"
    path.write_text("import numpy as np\n\n"
                    "def binary_cross_entropy(input, target, reduction='mean'):\n"
                    "    x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)\n"
                    "    if x.shape != y.shape or ((x < 0) | (x > 1)).any() or ((y < 0) | (y > 1)).any():\n"
                    "        raise RuntimeError('bad input')\n"
                    "    x = np.clip(x, 1e-7, 1 - 1e-7)\n"
                    "    l = -(y * np.log(x) + (1 - y) * np.log1p(-x))\n"
                    "    out = l if reduction == 'none' else l.sum() if reduction == 'sum' else l.mean()\n"
                    "    return np.asarray(out).astype(np.asarray(input).dtype)\n")
    assert cli.main(["profile", "--candidate", str(path), "--json"]) == cli.EXIT_PASS
    got = cells(json.loads(capsys.readouterr().out), str(path))
    for axis in ("mean denominator", "label smoothing", "pos_weight axis", "integer target dtype"):
        assert got[axis]["verdict"] == "n/a", (axis, got[axis])
    assert got["probability clipping"]["conventions"] == ["probability_clipped"]
    assert "probability_clipped" in got["log clamp"]["conventions"]
    assert got["empty / all-ignored mean"]["verdict"] == "torch"     # the BCE probe: the mean of nothing is NaN


def test_profile_of_an_unknown_candidate_is_a_usage_error(capsys):
    assert cli.main(["profile", "--candidate", "no_such_module_xyz"]) == cli.EXIT_USAGE
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_several_conventions_each_on_its_axis(result, textbook):
    got = {axis: cell["conventions"] for axis, cell in cells(result, textbook).items()}
    assert got["mean denominator"] == ["weighted_mean_by_count"]
    assert got["empty / all-ignored mean"] == ["empty_mean_zero"]
    assert got["label smoothing"] == ["smoothing_eps_over_c_minus_1"]
    assert got["out-of-range / negative targets"] == ["negative_target_wraps"]
    assert got["probability clipping"] == got["log clamp"] == ["probability_clipped"]
    assert got["pos_weight axis"] == ["pos_weight_on_class_dim"]
    assert got["result dtype"] == ["result_dtype_differs"]
    assert got["integer target dtype"] == ["any_int_target_accepted"]      # accepted, not declared
    assert cells(result, textbook)["spatial layout"]["text"].startswith("other (raises ValueError")


def test_a_crashing_or_hanging_loss_is_reported_once(tmp_path, monkeypatch):
    from conformance import profile as prof
    monkeypatch.setattr(prof, "CALL_TIMEOUT_S", 2.0)
    path = tmp_path / "misbehaves.py"
    path.write_text("import os, time\n\n"
                    "def cross_entropy(input, target, weight=None, ignore_index=-100, reduction='mean',\n"
                    "                  label_smoothing=0.0):\n"
                    "    os.abort()\n\n"
                    "def binary_cross_entropy_with_logits(input, target, weight=None, reduction='mean',\n"
                    "                                     pos_weight=None):\n"
                    "    time.sleep(60)\n")
    got = cells(profile([str(path)]), str(path))
    assert got["mean denominator"]["verdict"] == "crash"            # its first probe is cross_entropy's
    assert got["label smoothing"]["verdict"] == "crash"
    assert got["pos_weight axis"]["verdict"] == "timeout"
    assert got["log clamp"]["verdict"] == "n/a"                     # no binary_cross_entropy
