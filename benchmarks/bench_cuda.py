"""nbxent.cuda vs torch.nn.functional on a real GPU: time, achieved bandwidth, torch ratio, max error.

Cases (float32 unless noted): class-index cross-entropy at language-model vocabularies,
forward and fused forward+backward; label smoothing; a spatial (segmentation) input;
probability targets; BCE-with-logits and BCE, forward and fused. For each it prints

* the median time of nbxent and of torch CUDA (eager), and their ratio (>1: nbxent faster);
* the achieved bandwidth, bytes the op must move (inputs read once, the gradient written
  once) over nbxent's time, as a fraction of a measured device-to-device copy;
* the max error of nbxent's loss and gradient against torch in float64 on the same inputs,
  in units of float32's eps times a scale (``max |x| + |lse|`` for a CE loss, ``|loss|``
  for a BCE loss, ``max |grad|`` for gradients), so anything above ~10 is worth a look.

Without a GPU (or with torch lacking CUDA, or without numba-cuda) it says so and exits 0.
``--quick`` runs smaller shapes and fewer repeats (benchmarks/gpu_check.sh uses it).
``--json PATH`` also writes the table as JSON. Run:
``python benchmarks/bench_cuda.py [--repeat 10] [--threads 256] [--quick] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

FULL = {"ce_rows": [(8192, 32000), (4096, 128256)], "ce_spatial": (16, 21, 256, 256),
        "ce_prob": (4096, 4096), "bce": (1 << 26,)}
QUICK = {"ce_rows": [(2048, 32000), (512, 128256)], "ce_spatial": (4, 21, 128, 128),
         "ce_prob": (1024, 4096), "bce": (1 << 24,)}
EPS32 = 2.0 ** -23


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


def _as_torch(torch, arr):
    """An nbxent.cuda result (numba device array) as a torch CUDA tensor, zero-copy."""
    return torch.as_tensor(arr, device="cuda")


def _cases(torch, F, nc, shapes):
    """(name, nbxent fn, torch fn, bytes moved, error check) for every case."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    cases = []

    def ce_case(label, x, t, kw, nbytes_fwd):
        xr = x.clone().requires_grad_(True)

        def torch_fused(xr=xr, t=t, kw=kw):
            xr.grad = None
            loss = F.cross_entropy(xr, t, **kw)
            loss.backward()
            return loss

        def check(x=x, t=t, kw=kw):
            loss, grad = nc.cross_entropy_with_grad(x, t, **kw)
            x64 = x.double().requires_grad_(True)
            ref = F.cross_entropy(x64, t, **kw)
            ref.backward()
            lse = torch.logsumexp(x64.detach(), dim=1, keepdim=True)
            scale = (x64.detach().abs() + lse.abs()).amax()
            lerr = abs(float(loss.copy_to_host()) - ref.item()) / (EPS32 * float(scale))
            gerr = ((_as_torch(torch, grad).double() - x64.grad).abs().amax()
                    / (EPS32 * x64.grad.abs().amax().clamp_min(1e-300))).item()
            return lerr, gerr

        cases.append((f"{label} forward", lambda x=x, t=t, kw=kw: nc.cross_entropy(x, t, **kw),
                      lambda x=x, t=t, kw=kw: F.cross_entropy(x, t, **kw), nbytes_fwd, None))
        cases.append((f"{label} fwd+bwd", lambda x=x, t=t, kw=kw: nc.cross_entropy_with_grad(x, t, **kw),
                      torch_fused, nbytes_fwd + x.numel() * 4, check))

    for N, C in shapes["ce_rows"]:
        x = torch.randn(N, C, device="cuda", generator=gen) * 3
        t = torch.randint(0, C, (N,), device="cuda", generator=gen)
        t[::17] = -100
        ce_case(f"ce ({N}, {C})", x, t, {}, x.numel() * 4 + t.numel() * 8)
    N, C = shapes["ce_rows"][0]
    x = torch.randn(N, C, device="cuda", generator=gen) * 3
    t = torch.randint(0, C, (N,), device="cuda", generator=gen)
    ce_case(f"ce ({N}, {C}) ls=0.1", x, t, {"label_smoothing": 0.1}, x.numel() * 4 + t.numel() * 8)
    N, C, H, W = shapes["ce_spatial"]
    xs = torch.randn(N, C, H, W, device="cuda", generator=gen)
    ts = torch.randint(0, C, (N, H, W), device="cuda", generator=gen)
    ce_case(f"ce spatial {tuple(xs.shape)}", xs, ts, {}, xs.numel() * 4 + ts.numel() * 8)
    N, C = shapes["ce_prob"]
    xp = torch.randn(N, C, device="cuda", generator=gen)
    p = torch.softmax(torch.randn(N, C, device="cuda", generator=gen), dim=1)
    ce_case(f"ce prob ({N}, {C})", xp, p, {}, 2 * xp.numel() * 4)

    (n,) = shapes["bce"]
    xl = torch.randn(n, device="cuda", generator=gen) * 4
    y = torch.rand(n, device="cuda", generator=gen)
    xb = torch.sigmoid(xl)
    for label, nb_f, nb_g, t_f, x_in in (
            ("bce logits", nc.binary_cross_entropy_with_logits, nc.binary_cross_entropy_with_logits_with_grad,
             F.binary_cross_entropy_with_logits, xl),
            ("bce", nc.binary_cross_entropy, nc.binary_cross_entropy_with_grad, F.binary_cross_entropy, xb)):
        xr = x_in.clone().requires_grad_(True)

        def torch_fused(xr=xr, t_f=t_f):
            xr.grad = None
            loss = t_f(xr, y)
            loss.backward()
            return loss

        def check(x_in=x_in, nb_g=nb_g, t_f=t_f):
            loss, grad = nb_g(x_in, y)
            x64 = x_in.double().requires_grad_(True)
            ref = t_f(x64, y.double())
            ref.backward()
            lerr = abs(float(loss.copy_to_host()) - ref.item()) / (EPS32 * max(abs(ref.item()), 1e-30))
            gerr = ((_as_torch(torch, grad).double() - x64.grad).abs().amax()
                    / (EPS32 * x64.grad.abs().amax().clamp_min(1e-300))).item()
            return lerr, gerr

        cases.append((f"{label} ({n},) forward", lambda x_in=x_in, nb_f=nb_f: nb_f(x_in, y),
                      lambda x_in=x_in, t_f=t_f: t_f(x_in, y), 2 * n * 4, None))
        cases.append((f"{label} ({n},) fwd+bwd", lambda x_in=x_in, nb_g=nb_g: nb_g(x_in, y), torch_fused,
                      3 * n * 4, check))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=256, help="threads per block")
    ap.add_argument("--quick", action="store_true", help="smaller shapes, 5 repeats")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    torch, why = _gpu_ready()
    if torch is None:
        print(f"bench_cuda: skipped, {why}; nothing to measure without a GPU")
        return 0
    import torch.nn.functional as F

    import nbxent.cuda as nc

    repeat = 5 if args.quick else args.repeat
    shapes = QUICK if args.quick else FULL
    nc.set_threads_per_block(args.threads)
    sync = torch.cuda.synchronize
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"threads per block {args.threads}")
    bw = _copy_bandwidth(torch, 1 << 30, repeat)
    print(f"measured device-to-device copy: {bw:.0f} GB/s")
    rows = []
    header = (f"{'case':38s} {'nbxent ms':>10s} {'torch ms':>10s} {'ratio':>6s} {'GB/s':>7s} "
              f"{'of copy':>8s} {'loss err':>9s} {'grad err':>9s}")
    print(header)
    for name, nb, tr, nbytes, check in _cases(torch, F, nc, shapes):
        t_nb = _time(nb, sync, repeat)
        t_tr = _time(tr, sync, repeat)
        gbs = nbytes / t_nb / 1e9
        lerr = gerr = float("nan")
        if check is not None:
            lerr, gerr = check()
        rows.append({"case": name, "nbxent_ms": t_nb * 1e3, "torch_ms": t_tr * 1e3, "ratio": t_tr / t_nb,
                     "gb_per_s": gbs, "fraction_of_copy": gbs / bw, "loss_err_eps": lerr,
                     "grad_err_eps": gerr})
        print(f"{name:38s} {t_nb * 1e3:10.3f} {t_tr * 1e3:10.3f} {t_tr / t_nb:6.2f} {gbs:7.0f} "
              f"{100 * gbs / bw:7.1f}% {lerr:9.2f} {gerr:9.2f}")
    print("ratio = torch time / nbxent time (>1: nbxent faster); errors in eps32 x the terms' scale "
          "against torch float64")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "copy_gb_per_s": bw, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
