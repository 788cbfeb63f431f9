"""nbxent.cuda vs torch.nn.functional on a real GPU: time, achieved bandwidth, agreement.

Shapes: (8192, 32000) and (4096, 128256) float32 class-index cross-entropy
(language-model vocabularies), forward and fused forward+backward. Prints the
median time of each, the achieved GB/s (bytes the op must move: logits read
once, plus the gradient written for the fused op) against the device's measured
device-to-device copy bandwidth, the ratio to torch, and the max difference
from torch (float32 results compared relative to the row log-sum-exp scale).

Without a GPU (or with torch lacking CUDA) it says so and exits 0. Run:
``python benchmarks/bench_cuda.py [--repeat 10] [--threads 256]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

SHAPES = [(8192, 32000), (4096, 128256)]


def _gpu_ready():
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, "torch sees no CUDA device"
    try:
        from numba import cuda
    except ImportError:
        return None, "numba-cuda is not installed (pip install nbxent[cuda])"
    if not cuda.is_available():
        return None, "numba.cuda sees no CUDA device"
    return torch, ""


def _time(fn, sync, repeat):
    fn()
    sync()  # warm-up: compilation and allocator
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _copy_bandwidth(torch, nbytes, repeat):
    a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    t = _time(lambda: b.copy_(a), torch.cuda.synchronize, repeat)
    return 2 * a.numel() * 4 / t / 1e9  # read + write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=256, help="threads per block")
    args = ap.parse_args(argv)
    torch, why = _gpu_ready()
    if torch is None:
        print(f"bench_cuda: skipped, {why}; nothing to measure without a GPU")
        return 0
    import torch.nn.functional as F

    import nbxent.cuda as nc

    nc.set_threads_per_block(args.threads)
    sync = torch.cuda.synchronize
    print(f"device: {torch.cuda.get_device_name()}, threads per block {args.threads}")
    bw = _copy_bandwidth(torch, 1 << 30, args.repeat)
    print(f"measured copy bandwidth: {bw:.0f} GB/s")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for N, C in SHAPES:
        x = torch.randn(N, C, device="cuda", generator=gen) * 3
        t = torch.randint(0, C, (N,), device="cuda", generator=gen)
        t[::17] = -100
        xr = x.clone().requires_grad_(True)

        def torch_fwd():
            return F.cross_entropy(x, t)

        def torch_fused():
            xr.grad = None
            loss = F.cross_entropy(xr, t)
            loss.backward()
            return loss

        def nb_fwd():
            return nc.cross_entropy(x, t)

        def nb_fused():
            return nc.cross_entropy_with_grad(x, t)

        bytes_fwd = x.numel() * 4 + t.numel() * 8
        bytes_fused = 2 * x.numel() * 4 + t.numel() * 8
        for name, nb, tr, nbytes in (("forward", nb_fwd, torch_fwd, bytes_fwd),
                                     ("fwd+bwd", nb_fused, torch_fused, bytes_fused)):
            t_nb = _time(nb, sync, args.repeat)
            t_tr = _time(tr, sync, args.repeat)
            gbs = nbytes / t_nb / 1e9
            print(f"({N}, {C}) {name:8s} nbxent {t_nb * 1e3:8.3f} ms {gbs:7.0f} GB/s "
                  f"({100 * gbs / bw:5.1f}% of copy)  torch {t_tr * 1e3:8.3f} ms  "
                  f"speed-up x{t_tr / t_nb:5.2f}")
        # agreement with torch (float64 reference on the same logits for the loss)
        loss_nb, g_nb = nc.cross_entropy_with_grad(x, t)
        loss_ref = F.cross_entropy(x.double(), t).item()
        xr.grad = None
        F.cross_entropy(xr, t).backward()
        g_nb_t = torch.as_tensor(g_nb, device="cuda")
        gdiff = (g_nb_t - xr.grad).abs().max().item()
        ldiff = abs(float(loss_nb.copy_to_host()) - loss_ref)
        print(f"({N}, {C}) |loss - torch f64| = {ldiff:.3e}, max |grad - torch f32| = {gdiff:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
