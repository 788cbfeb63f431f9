"""Standalone benchmark reference: fused float32 cross-entropy forward + backward.

NOT library code. This file compares row-kernel structures for
``loss = mean_i(logsumexp(x_i) - x_i[t_i])`` and ``grad = (softmax(x) - onehot(t)) / N``
(no weight, no ignore_index, no smoothing, 2-D float32) against torch, to pick
the structure for nbxent's CE kernel. Run:

    .venv/bin/python benchmarks/prototype_ce.py [--shapes 8192x32000,4096x128256] [--reps 5]

Variants (all: ``prange`` over rows, per-row loss into an array, serial float64
combine, so bits do not depend on the thread count; the row max uses 16
explicit float32 lanes, because LLVM vectorizes a plain ``max`` reduction only
under ``nnan``, which the kernels must not use):

* ``store``: max; then e = exp(x - m) written into the gradient row while a
  float32 sum (vectorized by LLVM under ``reassoc``) runs over blocks of 2048
  elements, each block flushed into a float64 row total; then the row is scaled
  in place (one exp per element; the second and third pass hit L2, not DRAM).
* ``lanes16``: ``store`` with the float32 sums in 16 explicit lanes (a small
  per-row array) instead of LLVM's own reduction.
* ``2exp``: max, sum of exp, then grad = exp(x - m) / s recomputed (no store
  pass, two exps per element).
* ``libm``: ``store`` with ``math.exp`` (a scalar libm call) instead of ``exp_f32``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numpy as np
from numba import njit, prange

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nbxent._fastmath import exp_f32  # noqa: E402

FM = {"contract", "arcp", "reassoc"}
LANES = 16
BLOCK = 2048  # float32 partial sums are flushed to float64 every BLOCK elements
F32_NEG_INF = np.float32(-np.inf)
F32_ZERO = np.float32(0.0)


@njit(inline="always", fastmath=FM)
def _row_max(row, lanes):
    c = row.size
    for k in range(LANES):
        lanes[k] = F32_NEG_INF
    body = c - c % LANES
    for j in range(0, body, LANES):
        for k in range(LANES):
            v = row[j + k]
            # NaN propagates: the comparison is false for NaN, so it is kept explicitly
            lanes[k] = v if (v > lanes[k] or v != v) else lanes[k]
    m = F32_NEG_INF
    for k in range(LANES):
        m = lanes[k] if (lanes[k] > m or lanes[k] != lanes[k]) else m
    for j in range(body, c):
        m = row[j] if (row[j] > m or row[j] != row[j]) else m
    return m


@njit(inline="always", fastmath=FM)
def _row_sumexp_store(row, m, out):
    """sum_j exp(row_j - m), storing each term in out; float32 block sums, float64 total."""
    c = row.size
    total = 0.0
    for b0 in range(0, c, BLOCK):
        part = F32_ZERO
        for j in range(b0, min(b0 + BLOCK, c)):
            e = exp_f32(row[j] - m)
            out[j] = e
            part += e
        total += part
    return total


@njit(inline="always", fastmath=FM)
def _row_sumexp_store_lanes(row, m, out, lanes):
    """As _row_sumexp_store, with the float32 partial sums in 16 explicit lanes."""
    c = row.size
    total = 0.0
    for b0 in range(0, c, BLOCK):
        b1 = min(b0 + BLOCK, c)
        for k in range(LANES):
            lanes[k] = F32_ZERO
        body = b1 - (b1 - b0) % LANES
        for j in range(b0, body, LANES):
            for k in range(LANES):
                e = exp_f32(row[j + k] - m)
                out[j + k] = e
                lanes[k] += e
        part = 0.0
        for k in range(LANES):
            part += lanes[k]
        for j in range(body, b1):
            e = exp_f32(row[j] - m)
            out[j] = e
            part += e
        total += part
    return total


@njit(inline="always", fastmath=FM)
def _row_sumexp(row, m):
    c = row.size
    total = 0.0
    for b0 in range(0, c, BLOCK):
        part = F32_ZERO
        for j in range(b0, min(b0 + BLOCK, c)):
            part += exp_f32(row[j] - m)
        total += part
    return total


@njit(inline="always", fastmath=FM)
def _finish_row(row, out, t, m, total, g):
    """Row loss lse - x_t (per-row log stays libm); grad = e * (g / s) - g * onehot."""
    scale = np.float32(g / total)
    for j in range(row.size):
        out[j] = out[j] * scale
    out[t] -= g
    return m + math.log(total) - row[t]


@njit(inline="always")
def _combine(row_loss):
    total = 0.0
    for i in range(row_loss.size):  # serial, fixed order: same bits for any thread count
        total += row_loss[i]
    return total / row_loss.size


@njit(parallel=True, fastmath=FM)
def ce_fused_store(x, t, grad, row_loss):
    n = x.shape[0]
    g = np.float32(1.0 / n)
    for i in prange(n):
        lanes = np.empty(LANES, dtype=np.float32)
        m = _row_max(x[i], lanes)
        s = _row_sumexp_store(x[i], m, grad[i])
        row_loss[i] = _finish_row(x[i], grad[i], t[i], m, s, g)
    return _combine(row_loss)


@njit(parallel=True, fastmath=FM)
def ce_fused_lanes16(x, t, grad, row_loss):
    n = x.shape[0]
    g = np.float32(1.0 / n)
    for i in prange(n):
        lanes = np.empty(LANES, dtype=np.float32)
        m = _row_max(x[i], lanes)
        s = _row_sumexp_store_lanes(x[i], m, grad[i], lanes)
        row_loss[i] = _finish_row(x[i], grad[i], t[i], m, s, g)
    return _combine(row_loss)


@njit(parallel=True, fastmath=FM)
def ce_fused_2exp(x, t, grad, row_loss):
    n, c = x.shape
    g = np.float32(1.0 / n)
    for i in prange(n):
        lanes = np.empty(LANES, dtype=np.float32)
        row, out = x[i], grad[i]
        m = _row_max(row, lanes)
        s = _row_sumexp(row, m)
        scale = np.float32(g / s)
        for j in range(c):
            out[j] = exp_f32(row[j] - m) * scale
        out[t[i]] -= g
        row_loss[i] = m + math.log(s) - row[t[i]]
    return _combine(row_loss)


@njit(parallel=True, fastmath=FM)
def ce_fused_libm(x, t, grad, row_loss):
    n, c = x.shape
    g = np.float32(1.0 / n)
    for i in prange(n):
        lanes = np.empty(LANES, dtype=np.float32)
        row, out = x[i], grad[i]
        m = _row_max(row, lanes)
        total = 0.0
        for b0 in range(0, c, BLOCK):
            part = F32_ZERO
            for j in range(b0, min(b0 + BLOCK, c)):
                e = np.float32(math.exp(row[j] - m))
                out[j] = e
                part += e
            total += part
        row_loss[i] = _finish_row(row, out, t[i], m, total, g)
    return _combine(row_loss)


VARIANTS = {"store": ce_fused_store, "lanes16": ce_fused_lanes16, "2exp": ce_fused_2exp,
            "libm": ce_fused_libm}


def torch_fwd_bwd(xt, tt):
    import torch.nn.functional as F
    xt.grad = None
    loss = F.cross_entropy(xt, tt)
    loss.backward()
    return loss


def main(argv=None):
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="8192x32000,4096x128256")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ["NUMBA_NUM_THREADS"]))
    names = args.variants.split(",")
    print(f"fused CE fwd+bwd float32, {torch.get_num_threads()} torch threads, "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}, median of {args.reps} interleaved")
    for spec in args.shapes.split(","):
        n, c = (int(v) for v in spec.split("x"))
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((n, c), dtype=np.float32) * 3)
        t = rng.integers(0, c, n)
        grad = np.empty_like(x)
        row_loss = np.empty(n, dtype=np.float64)
        xt = torch.from_numpy(x).requires_grad_(True)
        tt = torch.from_numpy(t)
        ref = torch_fwd_bwd(xt, tt)
        ref_loss, ref_grad = ref.item(), xt.grad.numpy().copy()
        xt.grad = None
        exact = 0.0
        for r0 in range(0, n, 256):  # float64 reference in row blocks: bounded extra memory
            x64 = x[r0:r0 + 256].astype(np.float64)
            m64 = x64.max(axis=1, keepdims=True)
            lse = m64[:, 0] + np.log(np.exp(x64 - m64).sum(axis=1))
            exact += float(np.sum(lse - x64[np.arange(x64.shape[0]), t[r0:r0 + 256]]))
        exact /= n
        print(f"  {spec} float64 loss {exact:.12g}; torch float32 off by {abs(ref_loss - exact) / exact:.1e} rel")
        for name in names:  # compile + check against torch
            loss = VARIANTS[name](x, t, grad, row_loss)
            err = np.abs(grad - ref_grad).max()
            print(f"  {spec} {name:7s} loss {loss:.9g} (off by {abs(loss - exact) / exact:.1e} rel) "
                  f"max|grad - torch| {err:.2e}")
        fns = [lambda f=VARIANTS[k]: f(x, t, grad, row_loss) for k in names] + [lambda: torch_fwd_bwd(xt, tt)]
        times = [[] for _ in fns]
        for _ in range(args.reps):
            for k, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        med = [float(np.median(v)) for v in times]
        gbs = 2 * x.nbytes / 1e9
        for name, tm in zip(names + ["torch"], med):
            print(f"  {spec} {name:7s} {tm * 1e3:8.1f} ms  {gbs / tm:6.2f} GB/s  torch/this {med[-1] / tm:5.2f}")
        del xt, tt, x, grad


if __name__ == "__main__":
    main()
