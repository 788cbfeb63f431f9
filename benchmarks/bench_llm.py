"""nbxent vs torch on cross-entropy with the LLM options (z-loss + logit softcap).

    .venv/bin/python benchmarks/bench_llm.py [--quick] [--no-compile] [--reps N]

Rows: class-index cross-entropy, float32, 'mean', ``softcap=30`` (Gemma-2) and
``lse_square_scale=1e-4`` (PaLM), on (8192, 32000) and (4096, 128256), forward and fused
forward+backward; plus the same shapes with every option off, for reference.

torch has neither option, so it runs the fastest composition of its own ops (measured
here: the cap as ``c * tanh(x / c)`` then ``F.cross_entropy``, and the z-loss from
``torch.logsumexp`` of the capped logits), eagerly and through ``torch.compile`` (one
compile per shape and kind, ~20 s, not timed). nbxent runs ``cross_entropy`` and
``cross_entropy_with_grad(..., out=buffer)`` (the gradient into a preallocated buffer,
as a training step would). Candidates are timed interleaved (A B C A B C ...), medians
reported; the ratio column is torch/nbxent (> 1: nbxent is faster). Threads: 2 for
Numba and torch unless NUMBA_NUM_THREADS says otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # two OpenMP pools share the cores
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from _harness import interleaved_medians  # noqa: E402

CAP = 30.0
Z = 1e-4
SHAPES = [(8192, 32000), (4096, 128256)]


def _torch_loss(torch, F):
    def loss(x, t, cap, z):
        y = x if cap is None else cap * torch.tanh(x / cap)
        out = F.cross_entropy(y, t)
        if z:
            out = out + z * torch.logsumexp(y, dim=1).square().mean()
        return out
    return loss


def _fmt(t):
    return "n/a" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes (a quarter of the rows)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import nbxent

    threads = int(os.environ["NUMBA_NUM_THREADS"])
    torch.set_num_threads(threads)
    tloss = _torch_loss(torch, F)
    compiled = None if args.no_compile else torch.compile(tloss, dynamic=False)
    rng = np.random.default_rng(0)
    print(f"threads {threads}; torch {torch.__version__}; softcap={CAP}, lse_square_scale={Z}")
    print(f"{'case':44s} {'nbxent':>10s} {'torch':>10s} {'ratio':>6s} {'compiled':>10s} {'ratio':>6s}")
    for N, C in SHAPES:
        if args.quick:
            N //= 4
        x = (rng.standard_normal((N, C), dtype=np.float32) * 4)
        t = rng.integers(0, C, N)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        buf = np.empty_like(x)
        for cap, z, label in ((CAP, Z, "softcap+z-loss"), (None, 0.0, "options off")):
            kw = dict(lse_square_scale=z, softcap=cap)
            for kind in ("fwd", "fwd+bwd"):
                if kind == "fwd":
                    def nb():
                        nbxent.cross_entropy(x, t, **kw)

                    def eager():
                        with torch.no_grad():
                            tloss(xt, tt, cap, z)

                    def comp():
                        with torch.no_grad():
                            compiled(xt, tt, cap, z)
                else:
                    def nb():
                        nbxent.cross_entropy_with_grad(x, t, out=buf, **kw)

                    def eager():
                        xg = xt.detach().requires_grad_(True)
                        tloss(xg, tt, cap, z).backward()

                    def comp():
                        xg = xt.detach().requires_grad_(True)
                        compiled(xg, tt, cap, z).backward()
                fns = [nb, eager] + ([comp] if compiled is not None else [])
                for f in fns:          # warm-up: JIT compiles, torch.compile traces
                    f()
                med, _ = interleaved_medians(fns, args.reps)
                tc = med[2] if compiled is not None else None
                name = f"{label} ({N}, {C}) {kind}"
                print(f"{name:44s} {_fmt(med[0]):>10s} {_fmt(med[1]):>10s} {med[1] / med[0]:6.2f} "
                      f"{_fmt(tc):>10s} {'' if tc is None else f'{tc / med[0]:6.2f}':>6s}",
                      flush=True)
        del x, xt, buf


if __name__ == "__main__":
    main()
