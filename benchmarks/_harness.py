"""Timing, bandwidth floor and subprocess probes for benchmarks/run.py.

* ``interleaved_medians``: candidates run A B C A B C ..., medians per candidate,
  so slow drifts of a shared machine hit all candidates alike.
* ``floor_call``: a trivial parallel Numba kernel with the case's memory
  traffic on the case's own arrays (read every input once; for fwd+bwd also
  write an output of the gradient's size), the bandwidth floor a loss kernel
  cannot beat on this machine in this run.
* ``roof_call``: the second roof, compute: a parallel Numba kernel that evaluates, per
  element of the case, the vectorized transcendentals the loss needs (``exp`` for
  cross-entropy; ``log`` and ``log1p`` for BCE; ``exp`` and ``log1p`` for BCE with logits;
  ``nbxent``'s own polynomial ones) on arguments that sit in L1, so it runs at the
  vector units' speed with no memory traffic. A kernel that needs time ``T_mem`` to move
  its bytes and ``T_exp`` for its transcendentals cannot beat ``max(T_mem, T_exp)``: the
  larger of the two is the roof that binds.
* ``probe``: runs ``python benchmarks/_probe.py ...`` in a fresh process (never
  fork: Numba's OpenMP workers do not survive a fork) and parses its JSON line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from numba import njit, prange

from nbxent._cpu.fastmath import exp_below, exp_f32, log1m_f32, log1p_unit_f32, log_f32

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_CHUNK = 1 << 16


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_name():
    """The CPU's model name (Linux), or None."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def simd():
    """The widest x86 vector extension the CPU reports: 'AVX-512', 'AVX2' or 'other'."""
    flags = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "other"


def interleaved_medians(fns, reps, budget_s=None):
    """Median seconds per callable; stops early (>= 3 rounds) once ``budget_s`` is spent."""
    times = [[] for _ in fns]
    start = time.perf_counter()
    for r in range(reps):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        if budget_s is not None and r >= 2 and time.perf_counter() - start > budget_s:
            break
    return [float(np.median(t)) for t in times], len(times[0])


# reassoc lets LLVM vectorize the sums, so the floor is bandwidth- not latency-bound. Each
# chunk is a slice indexed from 0: Numba then proves the index non-negative and emits a
# plain vector loop (an index ``a + i`` keeps a wraparound select per element and ran at
# a quarter of the bandwidth).
@njit(parallel=True, fastmath={"reassoc"})
def _read_sum(flat, partials):
    nchunks = partials.size
    for c in prange(nchunks):
        seg = flat[c * _CHUNK:min((c + 1) * _CHUNK, flat.size)]
        s = seg[0] - seg[0]
        for i in range(seg.size):
            s += seg[i]
        partials[c] = s


@njit(parallel=True)
def _copy(src, dst):
    nchunks = (src.size + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        a = c * _CHUNK
        b = min(a + _CHUNK, src.size)
        s = src[a:b]
        d = dst[a:b]
        for i in range(s.size):
            d[i] = s[i]


def floor_call(case, arrays):
    """Zero-argument callable with the case's memory traffic and no arithmetic to speak of."""
    x = arrays["x"].reshape(-1)
    t = arrays["t"].reshape(-1)
    pt = np.empty((t.size + _CHUNK - 1) // _CHUNK, dtype=t.dtype)
    if case.kind == "fwd":
        px = np.empty((x.size + _CHUNK - 1) // _CHUNK, dtype=x.dtype)

        def read():
            _read_sum(x, px)
            _read_sum(t, pt)
        return read
    out = np.empty_like(x)

    def read_write():
        _copy(x, out)
        _read_sum(t, pt)
    return read_write


# Compute roof kernels: ``reps`` passes over an L1-resident ``src`` per work item, results
# stored into an L1-resident ``dst`` (a store, unlike a running sum, has no loop-carried
# dependence, so the loop runs at the vector units' throughput). _ROOF_LEN float32 values
# and their results are 8 KB, a quarter of L1.
_ROOF_LEN = 1024
_FM = {"contract", "arcp", "reassoc"}


def _roof_kernel(fn):
    """A compute-roof kernel evaluating ``d[j] = fn(src[j])``."""
    @njit(parallel=True, fastmath=_FM)
    def kernel(src, items, reps, dst):
        for it in prange(items):
            d = dst[it]
            for _ in range(reps):
                for j in range(src.size):
                    d[j] = fn(src[j])
    return kernel


@njit(fastmath=_FM)
def _exp_below32(x):
    # cross-entropy's exp: exp(x - m) for x <= m (the row scans' exp_below)
    return exp_below(x, np.float32(0.0))


@njit(fastmath=_FM)
def _exp_below64(x):
    return exp_below(x, 0.0)


# argument ranges of the losses' transcendentals: x - max for exp_below, -|x| for exp, probabilities for log and
# log1m (log1p(-p)), exp(-|x|) for log1p_unit
_ROOF_KERNELS = {("exp", "float32"): (_roof_kernel(exp_f32), -12.0, 0.0),
                 ("exp_below", "float32"): (_roof_kernel(_exp_below32), -12.0, 0.0),
                 ("exp_below", "float64"): (_roof_kernel(_exp_below64), -12.0, 0.0),
                 ("log", "float32"): (_roof_kernel(log_f32), 0.01, 0.99),
                 ("log1m", "float32"): (_roof_kernel(log1m_f32), 0.01, 0.99),
                 ("log1p_unit", "float32"): (_roof_kernel(log1p_unit_f32), 0.0, 1.0)}


def roof_call(case):
    """Zero-argument callable doing the case's transcendentals only; None when it has none.

    float64 BCE has no vectorized log (libm's); the roof is then left out.
    """
    from cases import TRANSCENDENTALS

    funcs = TRANSCENDENTALS[case.loss]
    if not funcs or any((f, case.dtype) not in _ROOF_KERNELS for f in funcs):
        return None
    # work items of 64 passes (64K evaluations): many per thread, so the split is even
    reps = 64
    items = max(1, -(-case.numel // (_ROOF_LEN * reps)))
    parts = []
    for f in funcs:
        kern, lo, hi = _ROOF_KERNELS[(f, case.dtype)]
        src = np.linspace(lo, hi, _ROOF_LEN).astype(case.dtype)
        # one L1-sized destination per thread would be enough; per item keeps it simple
        # and costs 8 KB per 64K evaluations
        dst = np.empty((items, _ROOF_LEN), dtype=case.dtype)
        parts.append((kern, src, dst))

    def run():
        for kern, src, dst in parts:
            kern(src, items, reps, dst)
    return run


def probe(args, env_extra=None, timeout=600):
    """Run benchmarks/_probe.py in a fresh interpreter; returns its JSON result or {'error': ...}."""
    env = dict(os.environ)
    env.update(env_extra or {})
    env.setdefault("NUMBA_NUM_THREADS", "2")
    cmd = [sys.executable, os.path.join(HERE, "_probe.py")] + list(args)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:120]}"}
    return json.loads(lines[-1])
