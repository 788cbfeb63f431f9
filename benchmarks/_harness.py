"""Timing, bandwidth floor and subprocess probes for benchmarks/run.py.

* ``interleaved_medians``: candidates run A B C A B C ..., medians per candidate,
  so slow drifts of a shared machine hit all candidates alike.
* ``floor_call``: a trivial parallel Numba kernel with the case's memory
  traffic on the case's own arrays (read every input once; for fwd+bwd also
  write an output of the gradient's size), the bandwidth floor a loss kernel
  cannot beat on this machine in this run.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_CHUNK = 1 << 16


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


# reassoc lets LLVM vectorize the sums, so the floor is bandwidth- not latency-bound.
@njit(parallel=True, fastmath={"reassoc"})
def _read_sum(flat, partials):
    nchunks = partials.size
    for c in prange(nchunks):
        a = c * _CHUNK
        b = min(a + _CHUNK, flat.size)
        s = flat[a]
        for i in range(a + 1, b):
            s += flat[i]
        partials[c] = s


@njit(parallel=True)
def _copy(src, dst):
    nchunks = (src.size + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        a = c * _CHUNK
        b = min(a + _CHUNK, src.size)
        for i in range(a, b):
            dst[i] = src[i]


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
