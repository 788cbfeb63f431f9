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


@pytest.fixture(scope="module")
def result():
    return profile(["torch", "nbxent", MEAN_BY_COUNT, NEG_WRAPS])


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
