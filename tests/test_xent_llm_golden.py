"""Accuracy of cross_entropy's LLM options against exact (mpmath) values: tests/golden/llm_golden.json.

The golden file comes from tests/golden/make_llm_golden.py (mpmath, 50 digits): per row the
'none' loss (cross-entropy of the capped logits plus ``z lse^2``), its gradient and the
row's lse. Errors are in ulp of the result's dtype (``|got - exact| / spacing(|exact|)``,
spacing floored at the dtype's smallest normal), maximised per option and dtype.

Bounds, from the error analysis of the kernels: ``4 (1 + kappa)`` ulp per element, with
``kappa = Y * T / |exact|``, the conditioning of the element in the quantities the kernel
rounds:

* ``T``: the sum of the magnitudes of the terms that form the element: for the loss
  ``|loss| + 2|z lse| a`` with ``a = |m| + |lse - m| + 1`` (the lse's own error terms),
  for the lse ``a``; ``p_j (1 + 2|z lse|) + [j == t]`` for a gradient element (the target's
  ``p_t (1 + 2 z lse) - 1`` cancels when the z-loss term balances ``1 - p_t``).
* ``Y``: each term's own relative error in ulp of the result's dtype: 1 for float32
  inputs (float64 arithmetic, or one float32 exp per term, then one rounding); for float64
  inputs ``1 + |y_j - m|`` (the shifted exponent's rounding), plus ``2 max|y|`` with a
  softcap (every capped logit carries ~2 ulp of ``|y|``, which the exponent turns into a
  relative error of the term).
"""
import json
import pathlib

import numpy as np
import pytest

import nbxent

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "llm_golden.json").read_text())
ROWS = GOLDEN["rows"]


def _ulp(got, want, dtype):
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    fi = np.finfo(dtype)
    spacing = np.maximum(np.spacing(np.abs(want).astype(dtype)).astype(np.float64),
                         float(fi.tiny) * float(fi.eps))
    err = np.where(got == want, 0.0, np.abs(got - want))
    return err / spacing


def _run(row):
    dt = np.dtype(row["dtype"])
    x = np.array([[float.fromhex(v) for v in row["x"]]], dtype=dt)
    out = nbxent.cross_entropy_with_grad(x, np.array([row["t"]]), reduction="none",
                                         lse_square_scale=row["z"], softcap=row["softcap"],
                                         return_lse=True)
    want_loss = np.array([float(row["loss"])])
    want_grad = np.array([[float(v) for v in row["grad"]]])
    want_lse = np.array([float(row["lse"])])
    return x, out, want_loss, want_grad, want_lse


def _bound(row, x, want, what):
    """The allowed ulp per element (see the module docstring)."""
    x = x.astype(np.float64)[0]
    c, z = row["softcap"], row["z"]
    y = x if c is None else c * np.tanh(x / c)
    m = np.max(y)
    p = np.exp(y - m) / np.sum(np.exp(y - m))
    lse = float(row["lse"])
    want = np.abs(np.asarray(want, dtype=np.float64))
    if row["dtype"] == "float32":
        Y = np.ones_like(y)
    else:
        Y = 1.0 + np.abs(y - m) + (2.0 * np.max(np.abs(y)) if c is not None else 0.0)
    if what == "grad":
        T = p * (1 + 2 * abs(z * lse))
        T[row["t"]] += 1.0
        kappa = Y * T / np.maximum(want.reshape(-1), 1e-300)
        return (4.0 * (1.0 + np.minimum(kappa, 1e15))).reshape(want.shape)
    if what == "loss":      # log1p(r) + z lse^2, lse good to (|m| + |lse - m| + 1) units
        T = want + 2 * abs(z * lse) * (abs(m) + abs(lse - m) + 1.0)
    else:                   # lse = m + log(s)
        T = abs(m) + abs(lse - m) + 1.0
    kappa = np.max(Y) * T / np.maximum(want, 1e-300)
    return 4.0 * (1.0 + kappa)


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_llm_golden(row):
    dt = np.dtype(row["dtype"])
    x, out, want_loss, want_grad, want_lse = _run(row)
    for what, got, want in (("loss", out.loss, want_loss), ("grad", out.grad, want_grad),
                            ("lse", out.lse, want_lse)):
        ulp = _ulp(got, want, dt)
        bound = _bound(row, x, want, what)
        bad = ulp > bound
        assert not bad.any(), (f"{row['name']} {what}: {int(bad.sum())} of {bad.size} beyond "
                               f"the bound; max {ulp.max():.2f} ulp (bound {bound.max():.1f}); "
                               f"got {np.asarray(got).ravel()[np.argmax(ulp)]!r}, want "
                               f"{np.asarray(want).ravel()[np.argmax(ulp)]!r}")


def max_ulp_table():
    """``{(option, dtype, output): max ulp}`` over the golden rows (for the accuracy note)."""
    table = {}
    for row in ROWS:
        dt = np.dtype(row["dtype"])
        _, out, want_loss, want_grad, want_lse = _run(row)
        for what, got, want in (("loss", out.loss, want_loss), ("grad", out.grad, want_grad),
                                ("lse", out.lse, want_lse)):
            key = (row["option"], row["dtype"], what)
            table[key] = max(table.get(key, 0.0), float(_ulp(got, want, dt).max()))
    return table


if __name__ == "__main__":
    for key, v in sorted(max_ulp_table().items()):
        print(*key, f"{v:.2f}")
