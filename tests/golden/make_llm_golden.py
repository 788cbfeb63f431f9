"""Regenerate tests/golden/llm_golden.json: exact values of cross_entropy's LLM options.

Each case is one row of logits ``x`` (stored as float.hex, exactly representable in the
case's dtype), a class-index target ``t`` and an option set (z-loss coefficient ``z``,
softcap ``c``); mpmath (50 significant digits) gives, with ``y = c tanh(x / c)`` (``y = x``
without a cap):

    lse  = log(sum_c exp(y_c))
    loss = lse - y_t + z lse^2                          (the 'none' value)
    grad_j = (softmax(y)_j (1 + 2 z lse) - [j == t]) * (1 - tanh(x_j / c)^2)

(no weight, no smoothing; the gradient of 'sum'). Rows: random rows at three scales and
two widths, their target moved to the max (confident rows), huge and infinite logits under
the cap. Run: ``python tests/golden/make_llm_golden.py`` (mpmath 1.3; numpy seed 20261123).
"""
import json
import pathlib

import mpmath
import numpy as np

mpmath.mp.dps = 50

OPTIONS = {"z_loss": (1e-2, None), "softcap30": (0.0, 30.0), "softcap3": (0.0, 3.0),
           "z_loss+softcap30": (1e-2, 30.0)}


def exact(x, t, z, cap):
    xs = [mpmath.mpf(v) for v in x]
    if cap is None:
        ys = xs
        slope = [mpmath.mpf(1)] * len(xs)
    else:
        c = mpmath.mpf(cap)
        ys = [c * mpmath.tanh(v / c) for v in xs]
        slope = [mpmath.mpf(0) if mpmath.isinf(v) else mpmath.sech(v / c) ** 2 for v in xs]
    # relative to the target's capped logit, so nothing cancels: r = sum_{c != t} exp(y_c - y_t)
    r = mpmath.fsum(mpmath.exp(v - ys[t]) for j, v in enumerate(ys) if j != t)
    lse = ys[t] + mpmath.log1p(r)
    zz = mpmath.mpf(z)
    loss = mpmath.log1p(r) + zz * lse * lse
    grad = []
    for j, v in enumerate(ys):
        p = mpmath.exp(v - ys[t]) / (1 + r)
        d = (-r / (1 + r) if j == t else p) + 2 * zz * lse * p
        grad.append(d * slope[j])
    nstr = lambda v: mpmath.nstr(v, 30)   # noqa: E731
    return nstr(loss), [nstr(g) for g in grad], nstr(lse)


def main():
    rng = np.random.default_rng(20261123)
    rows = []
    for dtype in ("float32", "float64"):
        cast = np.float32 if dtype == "float32" else np.float64
        base = [("huge_logits", [1e4, 1e4 - 1, -3e4, 5.0], 1),
                ("infinite_logits", [np.inf, -np.inf, 2.0, 40.0], 3),
                ("saturated_pair", [100.0, 90.0, 0.0], 0)]
        for scale in (1.0, 5.0, 20.0):
            for C in (7, 100):
                x = rng.standard_normal(C) * scale
                t = int(rng.integers(0, C))
                base.append((f"random_s{scale:g}_C{C}", list(x), t))
                base.append((f"random_s{scale:g}_C{C}_argmax", list(x), int(np.argmax(x))))
        for name, x, t in base:
            xv = [float(cast(v)) for v in x]
            for opt, (z, cap) in OPTIONS.items():
                if cap is None and not np.isfinite(xv).all():
                    continue     # uncapped infinite logits are NaN rows (docs/semantics.md §9)
                if cap is None and max(abs(v) for v in xv) > 1e3:
                    continue     # z lse^2 ~ 1e6: the z-loss case is about moderate rows
                loss, grad, lse = exact(xv, t, z, cap)
                rows.append({"name": f"{name}_{opt}_{dtype}", "dtype": dtype, "option": opt,
                             "z": z, "softcap": cap, "x": [v.hex() for v in xv], "t": t,
                             "loss": loss, "grad": grad, "lse": lse})
    out = pathlib.Path(__file__).with_name("llm_golden.json")
    out.write_text(json.dumps({"generator": "tests/golden/make_llm_golden.py",
                               "mpmath": mpmath.__version__, "rows": rows}, indent=1) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
