"""nbxent vs torch eager and torch.compile: times, ratios, two roofs, accuracy (``make bench``).

    .venv/bin/python benchmarks/run.py [--quick] [--all] [--cases SUBSTR,...] [--json PATH]
                                        [--no-compile] [--no-first-call] [--no-memory]

One row per case (float32 unless said; 'mean' reduction):

* ``nbxent``, ``eager``, ``compiled``: median seconds per call of interleaved repeats
  (A B C A B C ..., so a shared machine's drifts hit every candidate alike).
  ``compiled`` is ``torch.compile(F.<loss>, dynamic=False)``, compiled once per case by
  a warm-up call whose time is left out of the median and listed after the table
  (first call minus the median: Dynamo tracing plus Inductor's C++ build, from an empty
  Inductor cache made for this run).
* ``best/nb``: the faster torch's time over nbxent's (> 1: nbxent is faster);
  ``eager/nb`` the same against eager torch alone.
* ``GB/s``: nbxent's effective bandwidth (logits, and BCE targets or int64 class
  targets, read once; for fwd+bwd the gradient written once).
* Two roofs, each timed in the same interleaved loop on the same machine:
  ``%mem``: the bandwidth floor (a trivial parallel Numba kernel moving the same bytes)
  over nbxent's time; ``%exp``: the compute roof (the case's vectorized transcendentals,
  one ``exp`` per logit for cross-entropy, ``log`` + ``log1p`` per element for BCE,
  ``exp`` + ``log1p`` for BCE with logits, on L1-resident arguments) over nbxent's time;
  ``Ge/s``: that roof's rate in Gelem/s. ``binds``: the larger lower bound, ``mem`` or
  ``exp``; 100% of it means nbxent runs at that roof. Shown for inputs of 1 MB and more
  (below, both kernels measure call overhead).
* ``err nb`` / ``err torch``: loss / gradient error against a float64 (long double for
  float64 cases) reference, in eps of the dtype: the loss relative, the gradient the max
  elementwise relative (benchmarks/_reference.py); torch is the faster of the two.

Then: torch.compile's compile times, the speed targets met or not
(benchmarks/targets.py), the first call in a fresh process (cold: empty
NUMBA_CACHE_DIR; warm: the cache the cold run filled) per loss and dtype, and the peak
memory of the fused forward+backward above the inputs (nbxent writes the gradient into a
preallocated ``out`` buffer, which is not counted; torch allocates its own).

An operation that raises NotImplementedError is reported as "n/a"; any other exception
as "error" with its type, so a partly built nbxent still benchmarks. Thread counts:
NUMBA_NUM_THREADS and torch both 2 unless NUMBA_NUM_THREADS says otherwise;
OMP_WAIT_POLICY=PASSIVE unless set (see below).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
# Numba's and torch's OpenMP pools share 2 cores here; with the default
# spin-waiting, one pool's idle workers spin while the other's run (measured:
# torch's 32x10 fwd+bwd at 26 ms instead of 0.25 ms when interleaved). Passive
# waiting applies to both libraries alike; export OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Inductor's parallel compile starts a pool of worker processes (~30 s here before the
# first kernel); on two cores it buys nothing. An empty cache per run makes the compile
# times printed those a user's first compile sees.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
_INDUCTOR_CACHE = None
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _INDUCTOR_CACHE = tempfile.TemporaryDirectory(prefix="nbxent-bench-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE.name
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _harness  # noqa: E402
import _reference  # noqa: E402
import numpy as np  # noqa: E402
import targets  # noqa: E402
from cases import FWDBWD, LOSSES, bytes_moved, default_cases, make_inputs, nbxent_call, torch_call  # noqa: E402

NA = None
_CANDIDATES = ("nbxent", "eager", "compiled")


def _fmt_t(t):
    if t is None:
        return "n/a"
    if isinstance(t, str):
        return t
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def _try(fn):
    """Run once (warm-up / compile): (callable or None or 'error: T', seconds)."""
    if fn is None:
        return NA, None
    t0 = time.perf_counter()
    try:
        fn()
        return fn, time.perf_counter() - t0
    except NotImplementedError:
        return NA, None
    except Exception as exc:  # a candidate's bug must not stop the table
        return f"error: {type(exc).__name__}", None


def _reps_for(nbytes, quick):
    # tiny inputs -> many rounds (their time is microseconds); 100 MB-1 GB -> 3; beyond,
    # torch's float32 fused call alone takes 3-15 s here, so 2 rounds after the warm-up
    # call (the ratio is what is read, and all candidates get the same rounds)
    if nbytes < 1e6:
        return 2000 if not quick else 300
    if nbytes < 1e8:
        return 30 if not quick else 10
    return 3 if nbytes < 1e9 else 2


def _release(fn):
    getattr(fn, "release", lambda: None)()


def _accuracy(case, arrays, cands, times):
    """(nbxent's, faster torch's) (loss_err, grad_err), from one more call of each."""
    torch_name = min((k for k in ("eager", "compiled") if isinstance(times.get(k), float)),
                     key=lambda k: times[k], default=None)
    names = ["nbxent"] + ([torch_name] if torch_name else [])
    names = [k for k in names if callable(cands[k])]
    for k in _CANDIDATES:
        if callable(cands[k]):
            _release(cands[k])
    results = [cands[k]() for k in names]
    errs = dict(zip(names, _reference.errors(case, arrays, results)))
    del results
    for k in names:
        _release(cands[k])
    return errs.get("nbxent"), errs.get(torch_name) if torch_name else None


def bench_case(case, quick, compiled, accuracy):
    arrays = make_inputs(case)
    moved = bytes_moved(case, arrays)
    calls = {"nbxent": nbxent_call(case, arrays), "eager": torch_call(case, arrays),
             "compiled": torch_call(case, arrays, compiled=True) if compiled else None,
             "floor": _harness.floor_call(case, arrays), "roof": _harness.roof_call(case)}
    cands, first = {}, {}
    for k, fn in calls.items():
        cands[k], first[k] = _try(fn)
        _release(fn)
    live = {k: v for k, v in cands.items() if callable(v)}
    reps = _reps_for(arrays["x"].nbytes, quick)
    meds, rounds = _harness.interleaved_medians(list(live.values()), reps, budget_s=12 if not quick else 5)
    times = dict(cands)
    times.update(dict(zip(live, meds)))
    t = times["nbxent"]
    ok = isinstance(t, float)
    tt = [times[k] for k in ("eager", "compiled") if isinstance(times[k], float)]
    best = min(tt) if tt else None
    tf, tr = times["floor"], times["roof"]
    tf = tf if isinstance(tf, float) else None
    tr = tr if isinstance(tr, float) else None
    big_enough = moved >= 1e6       # below ~1 MB the roof kernels measure call overhead
    err_nb = err_torch = None
    if accuracy and ok:
        err_nb, err_torch = _accuracy(case, arrays, cands, times)
    row = {
        "case": case.key, "operation": case.op, "shape": list(case.shape), "dtype": case.dtype,
        "time_s": t if ok else None, "status": "ok" if ok else (t or "n/a"),
        "eager_s": times["eager"] if isinstance(times["eager"], float) else None,
        "compiled_s": times["compiled"] if isinstance(times["compiled"], float) else None,
        "compiled_status": times["compiled"] if isinstance(times["compiled"], str) else None,
        "compile_s": (first["compiled"] - times["compiled"]) if isinstance(times["compiled"], float)
        else None,
        "best_ratio": best / t if ok and best else None,
        "eager_ratio": times["eager"] / t if ok and isinstance(times["eager"], float) else None,
        "compiled_ratio": times["compiled"] / t if ok and isinstance(times["compiled"], float)
        else None,
        "gb_s": moved / t / 1e9 if ok else None,
        "floor_s": tf, "roof_s": tr,
        "floor_fraction": tf / t if ok and tf and big_enough else None,
        "roof_fraction": tr / t if ok and tr and big_enough else None,
        "roof_gelem_s": case.numel / tr / 1e9 if tr and big_enough else None,
        "binds": (("mem" if (tr is None or tf >= tr) else "exp") if tf and big_enough else None),
        "err_nbxent": err_nb, "err_torch": err_torch,
        "bytes": moved, "rounds": rounds,
    }
    del arrays, cands, live, calls
    gc.collect()
    return row


def _errs(e):
    if e is None:
        return "-"
    return f"{_reference.fmt(e[0])}/{_reference.fmt(e[1])}"


def print_table(rows):
    head = (f"{'case':30} {'shape':16} {'dtype':7} {'nbxent':>9} {'eager':>9} {'compiled':>9} "
            f"{'best/nb':>7} {'eager/nb':>8} {'GB/s':>5} {'%mem':>5} {'%exp':>5} {'Ge/s':>5} "
            f"{'binds':>5} {'err nb':>11} {'err torch':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        t = r["time_s"] if r["time_s"] is not None else r["status"]
        comp = r["compiled_s"] if r["compiled_s"] is not None else r["compiled_status"]

        def f(v, spec):
            return format(v, spec) if v is not None else "-"
        pct = lambda v: f"{100 * v:.0f}%" if v is not None else "-"  # noqa: E731
        print(f"{r['operation']:30} {shape:16} {r['dtype']:7} {_fmt_t(t):>9} "
              f"{_fmt_t(r['eager_s']):>9} {_fmt_t(comp):>9} {f(r['best_ratio'], '.2f'):>7} "
              f"{f(r['eager_ratio'], '.2f'):>8} {f(r['gb_s'], '.1f'):>5} {pct(r['floor_fraction']):>5} "
              f"{pct(r['roof_fraction']):>5} {f(r['roof_gelem_s'], '.1f'):>5} {r['binds'] or '-':>5} "
              f"{_errs(r['err_nbxent']):>11} {_errs(r['err_torch']):>11}", flush=True)
    comp = [(r["case"], r["compile_s"]) for r in rows if r["compile_s"] is not None]
    if comp:
        print("\ntorch.compile compile time per case (first call minus the median; not in the timings;"
              " the first case's includes Inductor's one-time start-up):")
        for k in range(0, len(comp), 3):
            print("  " + "   ".join(f"{key} {s:.1f} s" for key, s in comp[k:k + 3]))


def first_calls(quick):
    losses = ("ce",) if quick else LOSSES
    dtypes = ("float32",) if quick else ("float32", "float64")
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
            print(f"  {loss:5} {dt:8} nbxent cold: {fmt(cold):30} warm: {fmt(warm):30} torch: {fmt(ref)}",
                  flush=True)
    return rows


def peak_memory(quick, everything):
    keys = ["ce-fwd+bwd-1024x1000-float32"] if quick else ["ce-fwd+bwd-8192x32000-float32"]
    if everything:     # the 2.1 GB case costs a minute of fresh processes
        keys.append("ce-fwd+bwd-4096x128256-float32")
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
    ap.add_argument("--all", action="store_true", help="also the option and dtype variants")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case keys, e.g. ce-fwd,bce")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the float64 reference")
    ap.add_argument("--no-first-call", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)

    import numba
    import torch

    nthreads = int(os.environ["NUMBA_NUM_THREADS"])
    torch.set_num_threads(nthreads)
    t_start = time.perf_counter()
    print(f"nbxent benchmarks: torch {torch.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"{_harness.cpu_name() or platform.machine()} ({_harness.simd()}), threads: numba "
          f"{numba.get_num_threads()} torch {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; medians of interleaved repeats; "
          f"ratios > 1 = nbxent faster\n")
    cases = default_cases()
    if args.quick:
        cases = [c for c in cases if not c.big]
    if not args.all and not args.cases:
        cases = [c for c in cases if not c.extra]
    if args.cases:
        wanted = [w for w in args.cases.split(",") if w]
        cases = [c for c in cases if any(w in c.key for w in wanted)]
    rows = []
    for k, case in enumerate(cases):
        print(f"[{k + 1}/{len(cases)}] {case.key}", file=sys.stderr, flush=True)
        rows.append(bench_case(case, args.quick, not args.no_compile, not args.no_accuracy))
    print_table(rows)
    result = {"threads": nthreads, "torch": torch.__version__, "numba": numba.__version__, "cases": rows}
    if not args.no_first_call:
        result["first_call"] = first_calls(args.quick)
    result["targets"] = targets.report(rows, result.get("first_call"))
    if not args.no_memory:
        result["peak_memory"] = peak_memory(args.quick, args.all)
    print(f"\nbenchmark wall time: {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
