"""nbxent vs torch: one table of times, ratios and bandwidth (``make bench``).

    .venv/bin/python benchmarks/run.py [--quick] [--cases SUBSTR,...] [--json PATH]
                                        [--no-first-call] [--no-memory] [--prototype]

Columns: operation, shape, dtype, nbxent and torch median times, the ratio
torch/nbxent (> 1: nbxent is faster), nbxent's effective bandwidth (logits,
and BCE targets, read once; for fwd+bwd the gradient written once), and the
fraction of the bandwidth floor (a trivial parallel Numba kernel that moves
the same bytes on the same arrays, timed in the same interleaved loop):
100% means nbxent runs at memory speed; shown for inputs of 1 MB and more.

Then: the first call in a fresh process (cold: empty NUMBA_CACHE_DIR; warm:
the cache the cold run filled) per loss, float32, and the peak memory of the
fused forward+backward above the inputs (nbxent writes the gradient into a
preallocated ``out`` buffer, which is not counted; torch allocates its own).

An operation that raises NotImplementedError is reported as "n/a"; any other
exception as "error" with its type, so a partly built nbxent still benchmarks.
``--prototype`` adds benchmarks/prototype_ce.py's fused kernel as a third
candidate on the plain float32 2-D cross-entropy fwd+bwd rows.
Thread counts: NUMBA_NUM_THREADS and torch both 2 unless NUMBA_NUM_THREADS says
otherwise; OMP_WAIT_POLICY=PASSIVE unless set (see below).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
# Numba's and torch's OpenMP pools share 2 cores here; with the default
# spin-waiting, one pool's idle workers spin while the other's run (measured:
# torch's 32x10 fwd+bwd at 26 ms instead of 0.25 ms when interleaved). Passive
# waiting applies to both libraries alike; export OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import _harness  # noqa: E402
from cases import FWDBWD, LOSSES, bytes_moved, default_cases, make_inputs, nbxent_call, torch_call  # noqa: E402

NA = None


def _fmt_t(t):
    if t is None:
        return "n/a"
    if isinstance(t, str):
        return t
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def _try(fn):
    """Run once (warm-up / compile); None when not implemented, 'error: T' on other failures."""
    try:
        fn()
        return fn
    except NotImplementedError:
        return NA
    except Exception as exc:  # a candidate's bug must not stop the table
        return f"error: {type(exc).__name__}"


def _reps_for(nbytes, quick):
    # tiny inputs -> many rounds (their time is microseconds); 100 MB-1 GB -> 3; beyond,
    # torch's float32 fused call alone takes 3-15 s here, so 2 rounds after the warm-up
    # call (the ratio is what is read, and both candidates get the same rounds)
    if nbytes < 1e6:
        return 2000 if not quick else 300
    if nbytes < 1e8:
        return 30 if not quick else 10
    return 3 if nbytes < 1e9 else 2


def _prototype_call(case, arrays):
    import prototype_ce

    if case.loss != "ce" or case.kind != FWDBWD or case.dtype != "float32" or len(case.shape) != 2 \
            or arrays["w"] is not None or case.options:
        return None
    x, t = arrays["x"], arrays["t"]
    grad, row_loss = np.empty_like(x), np.empty(x.shape[0])
    return lambda: prototype_ce.ce_fused_store(x, t, grad, row_loss)


def bench_case(case, quick, prototype):
    arrays = make_inputs(case)
    moved = bytes_moved(case, arrays)
    cands = {"nbxent": _try(nbxent_call(case, arrays)), "torch": _try(torch_call(case, arrays)),
             "floor": _try(_harness.floor_call(case, arrays))}
    if prototype:
        p = _prototype_call(case, arrays)
        if p is not None:
            cands["prototype"] = _try(p)
    live = {k: v for k, v in cands.items() if callable(v)}
    reps = _reps_for(arrays["x"].nbytes, quick)
    meds, rounds = _harness.interleaved_medians(list(live.values()), reps, budget_s=12 if not quick else 5)
    times = {k: cands[k] for k in cands}
    times.update(dict(zip(live, meds)))
    rows = []
    for who in [k for k in ("nbxent", "prototype") if k in cands]:
        t, tt, tf = times[who], times["torch"], times["floor"]
        ok = isinstance(t, float)
        rows.append({
            "case": case.key, "operation": case.op + (" [prototype]" if who == "prototype" else ""),
            "shape": list(case.shape), "dtype": case.dtype, "candidate": who,
            "time_s": t if ok else None, "status": "ok" if ok else (t or "n/a"),
            "torch_s": tt if isinstance(tt, float) else None,
            "ratio": tt / t if ok and isinstance(tt, float) else None,
            "gb_s": moved / t / 1e9 if ok else None,
            "floor_s": tf if isinstance(tf, float) else None,
            # below ~1 MB the floor kernel measures call overhead, not bandwidth
            "floor_fraction": tf / t if ok and isinstance(tf, float) and moved >= 1e6 else None,
            "bytes": moved, "rounds": rounds,
        })
    del arrays, cands, live
    gc.collect()
    return rows


def print_table(rows):
    head = f"{'operation':46} {'shape':18} {'dtype':8} {'nbxent':>10} {'torch':>10} {'torch/nb':>8} {'GB/s':>6} {'floor':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        t = r["time_s"] if r["time_s"] is not None else r["status"]
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        gbs = f"{r['gb_s']:.1f}" if r["gb_s"] else "-"
        frac = f"{100 * r['floor_fraction']:.0f}%" if r["floor_fraction"] else "-"
        print(f"{r['operation']:46} {shape:18} {r['dtype']:8} {_fmt_t(t):>10} {_fmt_t(r['torch_s']):>10} "
              f"{ratio:>8} {gbs:>6} {frac:>6}", flush=True)


def first_calls(quick):
    # float32 only: a float64 first call compiles the same kernels for the other dtype and
    # took as long (it doubled the section's 2-3 minutes)
    losses = ("ce",) if quick else LOSSES
    dtypes = ("float32",)
    rows = []
    print("\nfirst call in a fresh process, (64, 100) input: import / forward / fused fwd+bwd")
    for loss in losses:
        for dt in dtypes:
            with tempfile.TemporaryDirectory(prefix="nbxent-bench-cache-") as cache:
                env = {"NUMBA_CACHE_DIR": cache}
                cold = _harness.probe(["first-call", "nbxent", loss, dt], env)
                warm = _harness.probe(["first-call", "nbxent", loss, dt], env)
            ref = _harness.probe(["first-call", "torch", loss, dt])
            row = {"loss": loss, "dtype": dt, "nbxent_cold": cold, "nbxent_warm": warm, "torch": ref}
            rows.append(row)

            def fmt(res):
                if "error" in res:
                    return res["error"]
                return " / ".join(_fmt_t(res.get(k)) for k in ("import_s", "fwd", FWDBWD))
            print(f"  {loss:5} {dt:8} nbxent cold: {fmt(cold):34} warm: {fmt(warm):34} torch: {fmt(ref)}",
                  flush=True)
    return rows


def peak_memory(quick):
    keys = ["ce-fwd+bwd-1024x1000-float32"] if quick else \
        ["ce-fwd+bwd-8192x32000-float32", "ce-fwd+bwd-4096x128256-float32"]
    print("\npeak memory of one fused fwd+bwd above the inputs (VmHWM after a reset; gradient buffer of"
          " nbxent preallocated)")
    rows = []
    for key in keys:
        res = {who: _harness.probe(["memory", who, key]) for who in ("nbxent", "torch")}
        rows.append({"case": key, **res})

        def fmt(r):
            if "error" in r:
                return r["error"]
            if r.get("peak_bytes") is None:
                return "n/a"
            return f"{r['peak_bytes'] / 2**20:9.1f} MiB ({r['peak_bytes'] / r['input_bytes']:.2f} x input)"
        print(f"  {key:34} nbxent {fmt(res['nbxent']):32} torch {fmt(res['torch'])}", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small cases only, fewer repeats (~1 min)")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case keys, e.g. ce-fwd,bce")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    ap.add_argument("--no-first-call", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--prototype", action="store_true")
    args = ap.parse_args(argv)

    import numba
    import torch

    nthreads = int(os.environ["NUMBA_NUM_THREADS"])
    torch.set_num_threads(nthreads)
    print(f"nbxent benchmarks: torch {torch.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, threads: numba {numba.get_num_threads()} "
          f"torch {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"medians of interleaved repeats; torch/nb > 1 = nbxent faster\n")
    cases = default_cases()
    if args.quick:
        cases = [c for c in cases if not c.big]
    if args.cases:
        wanted = [w for w in args.cases.split(",") if w]
        cases = [c for c in cases if any(w in c.key for w in wanted)]
    rows = []
    for k, case in enumerate(cases):
        print(f"[{k + 1}/{len(cases)}] {case.op} {case.shape} {case.dtype}", file=sys.stderr, flush=True)
        rows.extend(bench_case(case, args.quick, args.prototype))
    print_table(rows)
    result = {"threads": nthreads, "torch": torch.__version__, "numba": numba.__version__, "cases": rows}
    if not args.no_first_call:
        result["first_call"] = first_calls(args.quick)
    if not args.no_memory:
        result["peak_memory"] = peak_memory(args.quick)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
