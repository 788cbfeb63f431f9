#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU, using that machine's own Python (its torch,
# numba, numba-cuda; nothing is installed). Runs, each under its own time limit so the
# whole check stays under 8 minutes:
#   1. the environment (GPU, driver, library versions)                    env.log
#   2. the CUDA tests on the device: tests/cuda and the semantic suite
#      tests/semantic with the backend fixture set to CUDA                 tests.log
#   3. benchmarks/bench_cuda.py --quick: time, achieved bandwidth as a
#      fraction of a device-to-device copy, ratio to torch CUDA, max error bench.log, bench.json
#   4. the conformance campaign on nbxent.cuda                             conformance.log, conformance/
# and the exit code and time of each step in summary.log. Usage:
#   bash benchmarks/gpu_check.sh LOG_DIR        (PYTHON=python3.12 to pick the interpreter)
# Steps whose requirements are missing (pytest; scipy, hypothesis and mpmath for the harness)
# are reported as skipped, not failed. The tests and the harness were written against
# torch 2.13; the torch version actually used is recorded in env.log.
set -u
if [ $# -ne 1 ]; then
    echo "usage: bash benchmarks/gpu_check.sh LOG_DIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
LOG=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM
export NBXENT_TEST_BACKEND=cuda
START=$(date +%s)
: > "$LOG/summary.log"

note() { echo "$*" | tee -a "$LOG/summary.log"; }

step() {  # step NAME SECONDS LOGFILE COMMAND...
    local name=$1 limit=$2 out=$3
    shift 3
    local t0 rc dt
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$LOG/$out" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note "$name: TIMED OUT after ${limit}s (see $out)"
    else
        note "$name: exit $rc in ${dt}s (see $out)"
    fi
    tail -n 3 "$LOG/$out" | sed 's/^/    /' | tee -a "$LOG/summary.log"
}

has() { "$PY" -c "import $1" > /dev/null 2>&1; }

{
    date -u
    nvidia-smi || echo "nvidia-smi not found"
    "$PY" - <<'PYEOF'
import platform
import sys

print("python", sys.version.replace("\n", " "), platform.machine())
for name in ("numpy", "numba", "numba_cuda", "torch", "cupy", "scipy", "hypothesis", "mpmath", "pytest"):
    try:
        mod = __import__(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:  # a missing optional library is information, not an error
        print(name, "not available:", type(exc).__name__, exc)
try:
    import torch
    ok = torch.cuda.is_available()
    print("torch.cuda", ok, torch.cuda.get_device_name() if ok else "")
except Exception as exc:
    print("torch.cuda not available:", exc)
from numba import cuda

print("numba.cuda available:", cuda.is_available())
if cuda.is_available():
    cuda.detect()
PYEOF
} > "$LOG/env.log" 2>&1
note "environment: see env.log"

if has pytest && has torch; then
    step "CUDA tests on the device" 170 tests.log \
        "$PY" -m pytest -q -p no:cacheprovider --maxfail=20 tests/cuda tests/semantic
else
    note "CUDA tests: skipped (pytest or torch is missing on this machine)"
fi

step "bench_cuda --quick" 150 bench.log "$PY" benchmarks/bench_cuda.py --quick --json "$LOG/bench.json"

if has scipy && has hypothesis && has mpmath; then
    step "conformance campaign on nbxent.cuda" 120 conformance.log \
        "$PY" -m conformance run -c nbxent.cuda --max-examples 10 --case-timeout 60 \
        --report-dir "$LOG/conformance" --no-progress
else
    note "conformance campaign: skipped (scipy, hypothesis or mpmath is missing on this machine)"
fi

note "total: $(( $(date +%s) - START ))s; logs in $LOG"
