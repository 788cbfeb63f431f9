"""Accuracy against exact (mpmath) values: tests/golden/ce_golden.json.

The golden file comes from tests/golden/make_ce_golden.py (mpmath, 50 digits): confident
rows with losses down to 1e-40, huge logits, spreads past float32's exp range, random rows.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import nbxent

from ce_support import ulp_error

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "ce_golden.json").read_text())
CASES = GOLDEN["cases"]

# Error budgets in ulps of the exact value in the case's dtype:
# * loss: computed in float64 from float32 inputs (then one rounding, 0.5 ulp) or, for
#   float64, from a log1p/log of a sum whose terms are each within ~1 ulp (exact shift +
#   0.52-ulp exp); 2 ulp covers the final rounding plus the sum's and log's few roundings.
# * gradient: p_j = exp(x_j - m) (exact shift, 0.52 ulp) times 1/s and the scale, each
#   rounded once in the dtype, plus the expm1 form at the target: 3 roundings of ~0.5 ulp
#   plus the exp's 0.52 -> 3 ulp for float32; float64's reference is itself rounded to
#   float64 (ulps are counted against a float64 value, +0.5) -> 4 ulp.
LOSS_ULP = {"float32": 2.0, "float64": 2.0}
GRAD_ULP = {"float32": 3.0, "float64": 4.0}


def _case(c):
    dt = np.dtype(c["dtype"])
    x = np.array([float.fromhex(v) for v in c["x"]], dtype=dt)
    return (dt, x, c["target"], float(c["loss"]),
            np.array([float(g) for g in c["grad"]], dtype=np.float64))


@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_rows_within_a_few_ulp_of_mpmath(c):
    dt, x, t, loss_exact, grad_exact = _case(c)
    loss, grad = nbxent.cross_entropy_with_grad(x[None, :], np.array([t]), reduction="sum")
    el = float(ulp_error(loss, loss_exact, dt))
    eg = ulp_error(grad[0], grad_exact, dt)
    assert el <= LOSS_ULP[c["dtype"]], f"{c['name']}: loss {loss!r} vs {loss_exact!r}: {el} ulp"
    worst = int(np.argmax(eg))
    assert eg.max() <= GRAD_ULP[c["dtype"]], (
        f"{c['name']}: grad[{worst}] {grad[0, worst]!r} vs {grad_exact[worst]!r}: "
        f"{eg[worst]} ulp ({int((eg > GRAD_ULP[c['dtype']]).sum())} of {eg.size} bad)")


@pytest.mark.parametrize("c", CASES[::3], ids=[c["name"] for c in CASES[::3]])
def test_spatial_kernel_same_accuracy(c):
    # The same row as two spatial positions of a (1, C, 2) input (class stride 2).
    dt, x, t, loss_exact, grad_exact = _case(c)
    xs = np.repeat(x[None, :, None], 2, axis=2)
    loss, grad = nbxent.cross_entropy_with_grad(xs, np.array([[t, t]]), reduction="none")
    # The spatial kernel sums the C shifted exps of a position one class after another in
    # float64 (no vector blocks): recursive summation of positive terms has relative error
    # <= (C - 1) * u64, i.e. an absolute error of log(s) of (C - 1) * u64 on top of LOSS_ULP.
    extra = (x.size - 1) * np.finfo(np.float64).eps / 2 / np.spacing(np.abs(dt.type(loss_exact)))
    assert ulp_error(loss, loss_exact, dt).max() <= LOSS_ULP[c["dtype"]] + float(extra)
    assert ulp_error(grad[0].T, grad_exact[None, :], dt).max() <= GRAD_ULP[c["dtype"]]


TINY = [c for c in CASES if np.finfo(c["dtype"]).tiny < float(c["loss"]) < 1e-8]


@pytest.mark.parametrize("c", TINY, ids=[c["name"] for c in TINY])
def test_torch_loses_tiny_losses_we_keep(c):
    # torch computes lse - x_t, which cancels on confident rows: its relative error is
    # O(1) (often the loss is exactly 0) while ours stays within LOSS_ULP (test above).
    torch = pytest.importorskip("torch")
    dt, x, t, loss_exact, _ = _case(c)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(x[None, :].copy()),
                                               torch.tensor([t]), reduction="sum").item()
    ours = float(nbxent.cross_entropy(x[None, :], np.array([t]), reduction="sum"))
    assert float(ulp_error(theirs, loss_exact, dt)) > 1e4
    assert float(ulp_error(ours, loss_exact, dt)) <= LOSS_ULP[c["dtype"]]
