"""One measurement in a fresh process; prints one JSON line. Used by benchmarks/run.py.

    _probe.py first-call nbxent|torch LOSS DTYPE
        import time, then the first forward call and the first fused
        forward+backward call on a small (64, 100) input (the compile cost;
        NUMBA_CACHE_DIR decides cold vs warm).
    _probe.py memory nbxent|torch CASE_KEY
        peak resident memory of one call above the resident memory just
        before it, after a warm-up call (compilation, allocator pools).

Peak memory method: Linux's VmHWM (peak RSS) is reset to the current RSS by
writing "5" to /proc/self/clear_refs, so the warm-up's compilation and the
input arrays are excluded and the number is what the call itself touched,
whatever allocated it (NumPy, Numba's NRT, torch's allocator). tracemalloc
sees none of those, and getrusage's ru_maxrss cannot be reset.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _call_or_na(fn):
    t0 = time.perf_counter()
    try:
        fn()
    except NotImplementedError:
        return None
    return time.perf_counter() - t0


def first_call(who, loss, dtype):
    import numpy as np
    from cases import FWD, FWDBWD, Case, make_inputs, nbxent_call, torch_call

    t0 = time.perf_counter()
    if who == "nbxent":
        import nbxent  # noqa: F401
    else:
        import torch
        torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", "2")))
    out = {"import_s": time.perf_counter() - t0}
    maker = nbxent_call if who == "nbxent" else torch_call
    for kind in (FWD, FWDBWD):
        case = Case(loss, kind, (64, 100), dtype=dtype)
        arrays = make_inputs(case)
        out[kind] = _call_or_na(maker(case, arrays))
    out["numpy"] = np.__version__
    return out


def memory(who, key):
    from cases import default_cases, make_inputs, nbxent_call, torch_call

    case = {c.key: c for c in default_cases()}[key]
    arrays = make_inputs(case)
    if who == "torch":
        import torch
        torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", "2")))
    fn = (nbxent_call if who == "nbxent" else torch_call)(case, arrays)
    if _call_or_na(fn) is None:
        return {"peak_bytes": None}
    getattr(fn, "release", lambda: None)()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    fn()
    return {"peak_bytes": (_status_kib("VmHWM") - base) * 1024, "input_bytes": int(arrays["x"].nbytes)}


def main(argv):
    mode = argv[0]
    result = first_call(*argv[1:4]) if mode == "first-call" else memory(*argv[1:3])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
