"""Fused linear cross-entropy: nbxent vs torch eager and torch's F.linear_cross_entropy.

    .venv/bin/python benchmarks/bench_linear.py [--sizes small,large] [--repeats 3] [--quick]

Each candidate computes the float32 loss ('mean') of ``hidden (N, H) @ W.T (V, H) + b`` and
the gradients w.r.t. hidden, W and b, in the same process, on the same arrays:

* nbxent: ``nbxent.linear_cross_entropy_with_grad`` (default chunk size).
* torch eager: ``F.cross_entropy(h @ W.T + b, t)`` then ``.backward()`` (materialised logits).
* torch chunked: ``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())`` then
  ``.backward()`` (torch 2.13's chunked path with its CPU defaults).

Columns: median wall time of interleaved repeats (the machine is shared: medians of
candidates run in turn, not back to back), the peak resident memory above the inputs
(``/proc/self/clear_refs`` resets VmHWM before each call; the gradients, which every
candidate returns, are included and shown separately), and the max abs error of the loss and
of each gradient against a float64 torch eager reference on the same float32 inputs, divided
by that output's max |value| (so 1e-7 is float32 rounding level).

Threads: Numba and torch 2 (NUMBA_NUM_THREADS), NumPy's OpenBLAS its default unless
OPENBLAS_NUM_THREADS is set; on an oversubscribed host OpenBLAS's busy-waiting threads slow
the chunk GEMMs badly, and OPENBLAS_NUM_THREADS=1 is the fairer setting (docs/linear.md).

Sizes: small = (4096, 2048, 32000) runs by default (about 1.6 TFLOP per candidate call).
large = (8192, 4096, 128256) is opt-in: about 26 TFLOP per call (minutes per candidate on 2
cores) and torch eager needs the 4.2 GB logits several times over plus a 2.1 GB weight
gradient, more than a shared 24 GiB machine should be asked for; nbxent's own need there is
the 2.1 GB weight gradient plus two 128 x 128256 chunks.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

if __name__ == "__main__" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
    # A fixed mmap threshold: every allocation >= 64 KiB is mapped and unmapped on free, so
    # the resident-set peak measures what each candidate allocates (glibc's default threshold
    # grows to 32 MiB after frees, and heap memory freed by one candidate would hide the next
    # candidate's allocations).
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    os.execv(sys.executable, [sys.executable] + sys.argv)

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

SIZES = {"small": (4096, 2048, 32000), "large": (8192, 4096, 128256), "quick": (512, 256, 4000)}


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_above(fn):
    """(result, peak RSS above the RSS at the start of the call, in bytes)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                     # reset VmHWM to the current RSS
    base = _status("VmRSS")
    out = fn()
    return out, _status("VmHWM") - base


def make(N, H, V, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, H), dtype=np.float32)
    W = (rng.standard_normal((V, H), dtype=np.float32) / np.float32(np.sqrt(H)))
    b = (0.1 * rng.standard_normal(V)).astype(np.float32)
    t = rng.integers(0, V, N)
    t[::17] = -100
    return h, W, b, t


def candidates(h, W, b, t):
    import torch
    import torch.nn.functional as F

    import nbxent

    th, tW, tb, tt = (torch.from_numpy(a) for a in (h, W, b, t))

    def nbx():
        loss, gh, gw, gb = nbxent.linear_cross_entropy_with_grad(h, W, t, linear_bias=b)
        return float(loss), gh, gw, gb

    def torch_run(chunked):
        x, w_, b_ = (a.detach().requires_grad_() for a in (th, tW, tb))
        if chunked:
            loss = F.linear_cross_entropy(x, w_, tt, linear_bias=b_,
                                          options=torch.nn.LinearCrossEntropyOptions())
        else:
            loss = F.cross_entropy(x @ w_.T + b_, tt)
        loss.backward()
        return loss.item(), x.grad.numpy(), w_.grad.numpy(), b_.grad.numpy()

    return {"nbxent": nbx, "torch eager": lambda: torch_run(False),
            "torch linear_cross_entropy": lambda: torch_run(True)}


def reference(h, W, b, t):
    import torch
    import torch.nn.functional as F

    x, w_, b_ = (torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in (h, W, b))
    loss = F.cross_entropy(x @ w_.T + b_, torch.from_numpy(t))
    loss.backward()
    return loss.item(), x.grad.numpy(), w_.grad.numpy(), b_.grad.numpy()


def errors(got, ref):
    out = [abs(got[0] - ref[0]) / abs(ref[0])]
    for g, r in zip(got[1:], ref[1:]):
        out.append(float(np.max(np.abs(g.astype(np.float64) - r)) / np.max(np.abs(r))))
    return out


def run(size, repeats):
    import torch

    import nbxent
    from nbxent._linear._plan import default_chunk_size

    torch.set_num_threads(int(os.environ["NUMBA_NUM_THREADS"]))
    N, H, V = SIZES[size]
    h, W, b, t = make(N, H, V)
    chunk = default_chunk_size(N, H, V)
    inputs = sum(a.nbytes for a in (h, W, b, t))
    grads = h.nbytes + W.nbytes + b.nbytes
    print(f"threads: numba {os.environ['NUMBA_NUM_THREADS']}, torch {torch.get_num_threads()}, "
          f"OpenBLAS {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"\n(N, H, V) = ({N}, {H}, {V}) float32; inputs {inputs / 2**20:.0f} MiB, gradients "
          f"{grads / 2**20:.0f} MiB, full logits {N * V * 4 / 2**20:.0f} MiB, nbxent chunk "
          f"{chunk} rows = {chunk * V * 4 / 2**20:.1f} MiB")
    # warm-up on a slice (compiles nbxent's kernels; torch's first-call costs)
    sl = slice(0, min(N, 2 * chunk))
    for fn in candidates(h[sl], W, b, t[sl]).values():
        fn()
    t0 = time.perf_counter()
    ref = reference(h, W, b, t)
    print(f"float64 reference: {time.perf_counter() - t0:.1f} s")
    cands = candidates(h, W, b, t)
    times = {k: [] for k in cands}
    peaks, errs = {}, {}
    for r in range(repeats):
        for name, fn in cands.items():
            t0 = time.perf_counter()
            out, peak = peak_above(fn)
            times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks.get(name, 0), peak)
            errs[name] = errors(out, ref)
            del out
    base = statistics.median(times["torch linear_cross_entropy"])
    print(f"{'candidate':28s} {'median s':>9s} {'vs torch lce':>12s} {'peak MiB':>9s} "
          f"{'peak-grads':>10s} {'err loss':>9s} {'err dh':>9s} {'err dW':>9s} {'err db':>9s}")
    for name in cands:
        med = statistics.median(times[name])
        e = errs[name]
        print(f"{name:28s} {med:9.2f} {base / med:11.2f}x {peaks[name] / 2**20:9.0f} "
              f"{(peaks[name] - grads) / 2**20:10.0f} {e[0]:9.1e} {e[1]:9.1e} {e[2]:9.1e} "
              f"{e[3]:9.1e}")
    print(f"(times: {', '.join(f'{k}: ' + ' '.join(f'{x:.2f}' for x in v) for k, v in times.items())})")
    del nbxent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="small", help="comma-separated: small, large, quick")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="the quick size only, 2 repeats")
    a = p.parse_args(argv)
    sizes = ["quick"] if a.quick else [s for s in a.sizes.split(",") if s]
    for s in sizes:
        if s not in SIZES:
            p.error(f"unknown size {s!r}; choose from {', '.join(SIZES)}")
    for s in sizes:
        run(s, 2 if a.quick else a.repeats)


if __name__ == "__main__":
    main()
