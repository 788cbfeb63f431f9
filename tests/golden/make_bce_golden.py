"""Regenerate tests/golden/bce_golden.json: exact BCE / BCE-with-logits values from mpmath.

Run: ``.venv/bin/python tests/golden/make_bce_golden.py`` (deterministic; no randomness).

Every case is evaluated at 60 significant digits from the exact binary values of the
inputs (already rounded to the case's dtype), with torch's formulas of docs/semantics.md §0:

* BCE: ``(y - 1)*max(log(1 - x), -100) - y*max(log(x), -100)``; d/dx
  ``(x - y)/max((1 - x)*x, float32(1e-12))``; d/dy ``log((1 - x)/x)`` (unclamped).
* BCE-with-logits: ``(1 - y)*x - lw*logsig(x)``, ``lw = (pw - 1)*y + 1`` (1 without pw);
  d/dx ``(1 - y)*sigmoid(x) - pw*y*sigmoid(-x)``; d/dy ``logsig(-x) - pw*logsig(x)`` (``-x``
  without pw).

BCE-with-logits is evaluated with enough extra digits to absorb the cancellation of the
literal formula (about |x|/2.3 digits), so the exact values are those of torch's expression.

``scale_*`` is the sum of the absolute values of the terms the formula adds: an
implementation working in float64 can be off by a few float64 ulps of that (the
tests' tolerance), on top of the final rounding to the case's dtype.
"""
from __future__ import annotations

import json
import os

import mpmath
import numpy as np

mpmath.mp.dps = 60
mpf = mpmath.mpf
FLOOR = mpf(float(np.float32(1e-12)))

BCE_X = [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.3, 0.7, 0.999, 1e-5, 1e-13, 2.0 ** -24,
         1.0 - 2.0 ** -24, 1.0 - 2.0 ** -53, 0.5 + 2.0 ** -20, 0.5 - 2.0 ** -20, 1e-30,
         1e-43, 3.7e-44, 3.720076e-44, 1e-50, 5e-324]
BCE_Y = [0.0, 1.0, 0.5, 0.7, 0.3, 1e-3]
BCEWL_X = [-1e4, -745.0, -710.0, -103.0, -100.0, -88.7, -40.0, -20.0, -5.0, -1.0, -0.5, -1e-10,
           0.0, 1e-10, 0.5, 1.0, 5.0, 17.3, 20.0, 30.0, 40.0, 88.7, 100.0, 710.0, 745.0, 1e4]
BCEWL_Y = [0.0, 1.0, 0.5, 0.1, 2.0]
BCEWL_PW = [None, 0.5, 3.0]


def s(v) -> str:
    return mpmath.nstr(v, 25, min_fixed=1, max_fixed=0) if mpmath.isfinite(v) else str(float(v))


def logsig(x):
    return -mpmath.log1p(mpmath.exp(-x))


def bce_case(x, y):
    X, Y = mpf(x), mpf(y)
    lo = max(mpmath.log1p(-X), mpf(-100)) if X < 1 else mpf(-100)
    lx = max(mpmath.log(X), mpf(-100)) if X > 0 else mpf(-100)
    loss = (Y - 1) * lo - Y * lx
    gx = (X - Y) / max((1 - X) * X, FLOOR)
    if X == 0:
        gy = mpmath.inf
    elif X == 1:
        gy = -mpmath.inf
    else:
        gy = mpmath.log((1 - X) / X)
    return dict(loss=s(loss), grad_input=s(gx), grad_target=s(gy),
                scale_loss=s(abs((Y - 1) * lo) + abs(Y * lx)), scale_grad_input=s(abs(gx)),
                scale_grad_target=s(abs(gy)))


def bcewl_case(x, y, pw):
    # torch's literal formula cancels: (1 - y)*x and lw*logsig(x) agree to about |x|/2.3
    # digits (x = -1e4: 4343), so evaluate with that many digits more than the target.
    with mpmath.workdps(60 + int(abs(x) / 2.3) + 10):
        values = _bcewl_case(x, y, pw)
    return {k: s(+v) for k, v in values.items()}  # unary + rounds to the 60-digit context


def _bcewl_case(x, y, pw):
    X, Y = mpf(x), mpf(y)
    P = mpf(1) if pw is None else mpf(pw)
    lw = (P - 1) * Y + 1
    L = mpmath.log1p(mpmath.exp(-abs(X)))
    loss = (1 - Y) * X - lw * logsig(X)
    sp, sn = 1 / (1 + mpmath.exp(-X)), 1 / (1 + mpmath.exp(X))
    gx = (1 - Y) * sp - P * Y * sn
    gy = -X if pw is None else logsig(-X) - P * logsig(X)
    scale_loss = abs((1 - Y) * max(X, 0)) + abs(P * Y * max(-X, 0)) + abs(lw * L)
    scale_gy = abs(X) if pw is None else abs(X) * max(abs(P), 1) + abs((P - 1) * L)
    return dict(loss=loss, grad_input=gx, grad_target=gy, scale_loss=scale_loss,
                scale_grad_input=abs((1 - Y) * sp) + abs(P * Y * sn), scale_grad_target=scale_gy)


def main() -> None:
    cases = []
    for dtype in (np.float32, np.float64):
        rd = lambda v, dtype=dtype: float(dtype(v))  # noqa: E731  (inputs are exact values of the dtype)
        for x in dict.fromkeys(map(rd, BCE_X)):
            for y in dict.fromkeys(map(rd, BCE_Y)):
                cases.append(dict(fn="bce", dtype=dtype.__name__, x=x.hex(), y=y.hex(), pw=None,
                                  **bce_case(x, y)))
        for x in dict.fromkeys(map(rd, BCEWL_X)):
            for y in dict.fromkeys(map(rd, BCEWL_Y)):
                for pw in BCEWL_PW:
                    p = None if pw is None else rd(pw)
                    cases.append(dict(fn="bcewl", dtype=dtype.__name__, x=x.hex(), y=y.hex(),
                                      pw=None if p is None else p.hex(), **bcewl_case(x, y, p)))
    doc = {"generator": "tests/golden/make_bce_golden.py", "mpmath": mpmath.__version__,
           "numpy": np.__version__, "dps": mpmath.mp.dps, "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bce_golden.json")
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"})[:-1]
    with open(path, "w") as fh:  # one case per line: reviewable diffs
        fh.write(head + ', "cases": [\n')
        fh.write(",\n".join(json.dumps(c) for c in cases))
        fh.write("\n]}\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
