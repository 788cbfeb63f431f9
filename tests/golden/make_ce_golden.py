"""Regenerate tests/golden/ce_golden.json: exact cross-entropy values for chosen rows.

Each case is one row of logits ``x`` (stored as float.hex, exactly representable in the
case's dtype) and a class-index target ``t``; mpmath (50 significant digits) gives

    loss = log(sum_c exp(x_c)) - x_t          and     grad_j = softmax(x)_j - [j == t]

(the 'none' value and the gradient of 'sum' with no weight, no smoothing). The rows cover
confident rows (tiny losses down to 1e-40), huge logits, spreads wider than float32's exp
range, and random rows at three scales. Run: ``python tests/golden/make_ce_golden.py``
(mpmath 1.3; numpy seed 20261122 fixed below).
"""
import json
import pathlib

import mpmath
import numpy as np

mpmath.mp.dps = 50


def exact(x, t):
    # Everything relative to the target's logit, so no digits are spent on cancellation:
    # r = sum_{c != t} exp(x_c - x_t), loss = log1p(r), p_j = exp(x_j - x_t) / (1 + r),
    # p_t - 1 = -r / (1 + r). (mpmath's exponent range is unbounded, nothing overflows.)
    xs = [mpmath.mpf(v) for v in x]
    r = mpmath.fsum(mpmath.exp(v - xs[t]) for j, v in enumerate(xs) if j != t)
    loss = mpmath.log1p(r)
    grad = [-r / (1 + r) if j == t else mpmath.exp(v - xs[t]) / (1 + r)
            for j, v in enumerate(xs)]
    return mpmath.nstr(loss, 30), [mpmath.nstr(g, 30) for g in grad]


def main():
    rng = np.random.default_rng(20261122)
    rows = []
    for dtype in ("float32", "float64"):
        cast = np.float32 if dtype == "float32" else np.float64
        hand = [
            ("confident_1e-9", [20.0, 0.0, -3.0], 0),
            ("confident_1e-17", [40.0, 0.0, 0.0, -1.0], 0),
            ("confident_1e-40", [92.0, 0.0], 0),
            ("confident_wide_row", [30.0] + [0.0] * 200, 0),
            ("tie_at_max", [5.0, 5.0, -1.0], 1),
            ("target_is_min", [3.0, 1.0, -30.0], 2),
            ("huge_equal_logits", [1e4, 1e4 - 1, 1e4 - 30], 1),
            ("huge_confident", [3e4, 3e4 - 45, 1.0], 0),
            ("wide_spread", [60.0, 0.0, -60.0, 120.0], 0),
            ("underflowing_terms", [0.0, -200.0, -120.0, 0.5], 3),
        ]
        for name, x, t in hand:
            xv = [float(cast(v)) for v in x]
            rows.append((f"{name}_{dtype}", dtype, xv, t))
        for scale in (1.0, 10.0, 100.0):
            for C in (5, 300):
                x = (rng.standard_normal(C) * scale).astype(cast)
                t = int(rng.integers(0, C))
                rows.append((f"random_s{scale:g}_C{C}_{dtype}", dtype, [float(v) for v in x], t))
                # the same row with its target moved to the max: a confident, small loss
                rows.append((f"random_s{scale:g}_C{C}_argmax_{dtype}", dtype,
                             [float(v) for v in x], int(np.argmax(x))))
    cases = []
    for name, dtype, x, t in rows:
        loss, grad = exact(x, t)
        cases.append({"name": name, "dtype": dtype, "x": [v.hex() for v in x], "target": t,
                      "loss": loss, "grad": grad})
    out = pathlib.Path(__file__).with_name("ce_golden.json")
    out.write_text(json.dumps({"generator": "tests/golden/make_ce_golden.py",
                               "mpmath": mpmath.__version__, "dps": mpmath.mp.dps,
                               "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
