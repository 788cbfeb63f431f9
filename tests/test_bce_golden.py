"""nbxent's BCE losses and gradients against exact mpmath values (tests/golden/bce_golden.json).

Covers BCE at x in {0, 1}, the -100 clamp region (log x near -100), the float32(1e-12)
gradient floor, the unclamped target gradient, and BCE-with-logits at tiny losses
(e.g. x = -40, y = 0: 4.2e-18, where torch's float32 gives 0), large and huge logits
and pos_weight. The maximum ulp errors are printed (``pytest -s``).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import nbxent

from bce_support import EPS32, SUB32, assert_scaled_close

_PATH = os.path.join(os.path.dirname(__file__), "golden", "bce_golden.json")
with open(_PATH) as _fh:
    _CASES = json.load(_fh)["cases"]

# k (float64 roundings per term, see tests/bce_support.py), derived per output:
#  BCE loss: libm log/log1p (< 1 ulp), the clamp (exact), the product with y - 1 or y
#    (0.5 ulp, y - 1 exact in float64 for y in [0, 1] of these dtypes), the subtraction
#    (0.5 ulp): < 2 ulp of each term; k = 2.
#  BCE d/dx: x - y, (1 - x)*x, the division and *1: 4 roundings of 0.5 ulp; k = 2.
#  BCE d/dy: log1p(-x) - log(x) (< 1 ulp each + 0.5) or -log1p(z), z from one division
#    and 1 - x (<= 1.5 ulp relative, amplified by <= 1 through log1p); k = 3.
#  BCE-with-logits loss: exp (< 1 ulp) feeding log1p (< 1 ulp, condition number <= 1),
#    lw (2 roundings), three products and two additions: k = 4.
#  d/dx: exp, 1 + e, two divisions, 1 - y, pw*y, two products and one subtraction; k = 4.
#  d/dy: exp, log1p, pw - 1, two products and one addition; k = 4.
K = {("bce", "loss"): 2, ("bce", "grad_input"): 2, ("bce", "grad_target"): 3,
     ("bcewl", "loss"): 4, ("bcewl", "grad_input"): 4, ("bcewl", "grad_target"): 4}
MAX_ULPS = {}


def _float32_transcendentals(fn, out, x, y, pw, num):
    """Extra allowance of the float32 kernels, whose exp/log/log1p are float32 functions.

    ``nbxent._cpu.fastmath`` guarantees <= 1 ulp for each, and 1 ulp <= eps32 * |value|
    (tests/test_fastmath.py); the rest of the formula is float64 as above. Per output:

    * BCE loss: each clamped log enters one term of ``scale_loss`` multiplied by a
      coefficient in [0, 1] (or the term is clamped, which cannot add error):
      ``1 * eps32 * scale_loss``.
    * BCE-with-logits loss: ``e = exp(-|x|)`` (1 ulp) feeds ``log1p`` (condition number
      ``e/((1 + e) log1p(e)) <= 1``, plus its own 1 ulp), so ``L`` is off by
      ``2 * eps32 * L``, multiplied by ``|lw|``; where ``e`` is subnormal its error is
      one subnormal spacing instead: ``+ |lw| * 2**-149``.
    * BCE-with-logits d/dx: ``s(x) = 1/(1 + e)`` and ``s(-x) = e/(1 + e)`` move by
      ``s(x)s(-x) * de/e <= eps32 * s``: ``1 * eps32 * scale_grad_input``, plus
      ``|pw*y| * 2**-149`` for a subnormal ``e``.
    * Both d/dy and BCE d/dx: float64 libm, nothing extra.
    """
    if fn == "bce":
        return EPS32 * num("scale_loss") if out == "loss" else 0.0
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    p = 1.0 if pw is None else pw
    with np.errstate(over="ignore", invalid="ignore"):
        L = np.log1p(np.exp(-np.abs(x64)))
        lw = np.abs((p - 1.0) * y64 + 1.0)
    if out == "loss":
        return 2 * EPS32 * lw * L + lw * SUB32
    if out == "grad_input":
        return EPS32 * num("scale_grad_input") + np.abs(p * y64) * SUB32
    return 0.0


def _group(fn, dtype, with_pw):
    cs = [c for c in _CASES if c["fn"] == fn and c["dtype"] == dtype and (c["pw"] is not None) == with_pw]
    assert cs, (fn, dtype, with_pw)
    col = lambda key: np.array([float.fromhex(c[key]) for c in cs])  # noqa: E731
    num = lambda key: np.array([float(c[key]) for c in cs])  # noqa: E731
    x, y = col("x").astype(dtype), col("y").astype(dtype)
    pw = col("pw") if with_pw else None
    return cs, x, y, pw, num


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn,with_pw", [("bce", False), ("bcewl", False), ("bcewl", True)])
def test_golden_elementwise(fn, with_pw, dtype):
    cs, x, y, pw, num = _group(fn, dtype, with_pw)
    kw = {} if pw is None else {"pos_weight": pw}
    ones = np.ones(x.shape, dtype=dtype)
    if fn == "bce":
        got = {"loss": nbxent.binary_cross_entropy(x, y, reduction="none"),
               "grad_input": nbxent.binary_cross_entropy_backward(ones, x, y, reduction="none"),
               "grad_target": nbxent.binary_cross_entropy_backward(ones, x, y, reduction="none",
                                                                   wrt="target")}
    else:
        f, b = nbxent.binary_cross_entropy_with_logits, nbxent.binary_cross_entropy_with_logits_backward
        got = {"loss": f(x, y, reduction="none", **kw),
               "grad_input": b(ones, x, y, reduction="none", **kw),
               "grad_target": b(ones, x, y, reduction="none", wrt="target", **kw)}
    inputs = {"x": x, "y": y} if pw is None else {"x": x, "y": y, "pw": pw}
    for out, value in got.items():
        assert value.dtype == np.dtype(dtype)
        extra = _float32_transcendentals(fn, out, x, y, pw, num) if dtype == "float32" else 0.0
        worst = assert_scaled_close(value, num(out), num("scale_" + out), dtype, K[(fn, out)],
                                    f"{fn}{' pw' if with_pw else ''} {out}", inputs, extra)
        MAX_ULPS[(fn, with_pw, out, dtype)] = worst
        print(f"{fn}{' pw' if with_pw else ''} {out} {dtype}: max {worst:.2f} ulp vs mpmath")


def test_golden_covers_the_hard_regions():
    # The file must keep the cases this module's docstring promises.
    f32 = {(c["fn"], float.fromhex(c["x"]), float.fromhex(c["y"])): float(c["loss"])
           for c in _CASES if c["dtype"] == "float32" and c["pw"] is None}
    assert f32[("bcewl", -40.0, 0.0)] == pytest.approx(4.248354255291589e-18, rel=1e-15)
    assert f32[("bce", 0.0, 1.0)] == 100.0
    assert any(k[0] == "bce" and 0 < k[1] < 1e-43 for k in f32)  # log(x) < -100: clamped


def test_tiny_float32_logit_losses_are_accurate_where_torch_gives_zero():
    torch = pytest.importorskip("torch")
    x = np.array([-40.0, -20.0, 30.0, 40.0], dtype=np.float32)
    y = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    cs = {(float.fromhex(c["x"]), float.fromhex(c["y"])): float(c["loss"])
          for c in _CASES if c["fn"] == "bcewl" and c["dtype"] == "float32" and c["pw"] is None}
    exact = np.array([cs[(float(a), float(b))] for a, b in zip(x, y)])
    ours = nbxent.binary_cross_entropy_with_logits(x, y, reduction="none")
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(x), torch.from_numpy(y), reduction="none").numpy()
    # one rounding to float32: at most 1 ulp from the exact value (float32 normal range)
    assert np.all(np.abs(ours - exact) <= np.spacing(exact.astype(np.float32))), (ours, exact)
    assert theirs[0] == 0.0  # the torch limitation this guards against (docs/semantics.md §14)
