"""Speed, vectorization and (optionally exhaustive) accuracy of nbxent._cpu.fastmath.

    .venv/bin/python benchmarks/bench_fastmath.py              # speed + assembly check
    .venv/bin/python benchmarks/bench_fastmath.py --exhaustive # + every float32 in [-104, 89]

Speed: ``out[i] = exp(x[i] - m)`` over one row of logits (the inner loop of a
fused cross-entropy kernel), single thread, compiled with the kernels' fastmath
flags, against the same loop with ``math.exp`` (a scalar libm call) and against
``np.exp``. Medians of interleaved repeats.

Vectorization: counts AVX2 (ymm) / AVX-512 (zmm) fma, round and shift
instructions in the loop's assembly; a scalar build has none.

Exhaustive: walks every float32 bit pattern whose value lies in [-104, 89]
(about 2.2e9 values, 2 threads, ~1-2 min) and reports the max error in ulps
of the exact value (float64 ``exp`` is 2**-29 float32-ulp accurate, far below
what is measured) and the number of results that are not within 1 ulp of the
correctly rounded float32.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numpy as np
from numba import njit, prange

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nbxent._cpu.fastmath import exp_f32, exp_f64  # noqa: E402

FM = {"contract", "arcp", "reassoc"}


@njit(fastmath=FM)
def _loop_fast32(x, m, out):
    for i in range(x.size):
        out[i] = exp_f32(x[i] - m)


@njit(fastmath=FM)
def _loop_fast64(x, m, out):
    for i in range(x.size):
        out[i] = exp_f64(x[i] - m)


@njit(fastmath=FM)
def _loop_libm(x, m, out):
    for i in range(x.size):
        out[i] = math.exp(x[i] - m)


def _numpy(x, m, out):
    np.subtract(x, m, out=out)
    np.exp(out, out=out)


def _median_interleaved(fns, reps):
    times = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def _asm_counts(dispatcher):
    asm = dispatcher.inspect_asm(dispatcher.signatures[0])
    out = {}
    for reg in ("ymm", "zmm"):
        out[reg] = {
            "fma": len(re.findall(rf"vfmadd\w*\s.*%{reg}", asm)),
            "round": len(re.findall(rf"vround\w*\s.*%{reg}", asm)),
            "int shift": len(re.findall(rf"vps[lr]\w*\s.*%{reg}", asm)),
        }
    return out


def speed(n=32000, reps=300):
    rng = np.random.default_rng(0)
    rows = []
    for dt, fast in ((np.float32, _loop_fast32), (np.float64, _loop_fast64)):
        x = (rng.standard_normal(n) * 4).astype(dt)
        m = dt(x.max())
        o1, o2, o3 = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        fast(x, m, o1)
        _loop_libm(x, m, o2)
        t_fast, t_libm, t_np = _median_interleaved(
            [lambda: fast(x, m, o1), lambda: _loop_libm(x, m, o2), lambda: _numpy(x, m, o3)], reps)
        rows.append((np.dtype(dt).name, n / t_fast / 1e9, n / t_libm / 1e9, n / t_np / 1e9,
                     t_libm / t_fast, t_np / t_fast, _asm_counts(fast)))
    print(f"exp over a row of {n} (x - max), 1 thread, median of {reps} interleaved repeats")
    print(f"{'dtype':8} {'fast Gelem/s':>12} {'math.exp':>9} {'np.exp':>8} {'vs math':>8} {'vs np':>6}  asm")
    for name, f, l, p, rl, rn, asm in rows:
        print(f"{name:8} {f:12.2f} {l:9.2f} {p:8.2f} {rl:7.1f}x {rn:5.1f}x  {asm}")


@njit(parallel=True, fastmath=FM)
def _scan_f32(lo_bits, hi_bits, nchunks):
    """Max ulp error and count of >1-ulp-from-correctly-rounded results per chunk."""
    span = hi_bits - lo_bits
    worst = np.zeros(nchunks)
    worst_x = np.zeros(nchunks, dtype=np.float32)
    bad = np.zeros(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a = lo_bits + span * c // nchunks
        b = lo_bits + span * (c + 1) // nchunks
        bits = np.empty(1, dtype=np.uint32)
        for k in range(a, b):
            bits[0] = np.uint32(k)
            x = bits.view(np.float32)[0]
            y = exp_f32(x)
            r = math.exp(np.float64(x))
            mant, e = math.frexp(r)
            ulp = math.ldexp(1.0, max(e - 1, -126) - 23)
            cr = np.float32(r)
            # inf == inf where both the result and the correctly rounded value overflow
            err = 0.0 if y == cr else abs(np.float64(y) - r) / ulp
            if err > worst[c]:
                worst[c] = err
                worst_x[c] = x
            if abs(np.float64(y) - np.float64(cr)) > 1.0001 * ulp:
                bad[c] += 1
    return worst, worst_x, bad


def exhaustive():
    f32bits = lambda v: int(np.array(v, np.float32).view(np.uint32))  # noqa: E731
    total = 0
    t0 = time.perf_counter()
    results = []
    # positive [0, 89] and negative [-104, -0] bit ranges (negatives count up in |x|)
    for lo, hi in ((0, f32bits(89.0) + 1), (f32bits(-0.0), f32bits(-104.0) + 1)):
        worst, worst_x, bad = _scan_f32(lo, hi, 64)
        k = int(np.argmax(worst))
        results.append((float(worst[k]), float(worst_x[k]), int(bad.sum())))
        total += hi - lo
    dt = time.perf_counter() - t0
    print(f"exp_f32 exhaustive over {total} float32 in [-104, 89] ({dt:.0f} s):")
    for side, (w, wx, b) in zip(("x >= 0", "x <= 0"), results):
        print(f"  {side}: max {w:.4f} ulp at x={wx!r}; results > 1 ulp from correctly rounded: {b}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exhaustive", action="store_true")
    ap.add_argument("--n", type=int, default=32000)
    args = ap.parse_args(argv)
    speed(args.n)
    if args.exhaustive:
        exhaustive()


if __name__ == "__main__":
    main()
