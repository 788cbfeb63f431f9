"""What the first small call of a process compiles, and what repeated small calls reuse.

A small call (below the parallel threshold) must compile one serial kernel per loss and
dtype, shared by the forward and the fused loss-and-gradient call, and never a parallel
kernel: each extra signature costs seconds on the first call of every process. Checked in
a clean subprocess (the test session has compiled other signatures already).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nbxent

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = r"""
import json, sys
import numpy as np
import nbxent
from nbxent.bce import cpu_f32, validate as bv
from nbxent.xent import cpu_index

dt = np.dtype(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 100)).astype(dt)
t = rng.integers(0, 100, 64)
nbxent.cross_entropy(x, t)
nbxent.cross_entropy_with_grad(x, t, out=np.empty_like(x))
nbxent.cross_entropy_with_grad(x, t)
nbxent.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
p = rng.uniform(0.01, 0.99, (64, 100)).astype(dt)
y = rng.random((64, 100)).astype(dt)
nbxent.nll_loss(x, t)
nbxent.nll_loss_with_grad(x, t, out=np.empty_like(x))
nbxent.binary_cross_entropy(p, y)
nbxent.binary_cross_entropy_with_grad(p, y, out=np.empty_like(p))
print(json.dumps({
    "rows_serial": len(cpu_index.index_rows_serial.signatures),
    "rows_par": len(cpu_index._index_rows_par.signatures),
    "nll_serial": len(cpu_index.nll_serial.signatures),
    "range_check_par": len(bv._first_bad.signatures),
    "range_check_block": len(bv._block_first_bad.signatures),
}))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_calls_compile_one_serial_kernel(dtype, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=_ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE, dtype], env=env, cwd=_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # float32 BCE counts out-of-range elements inside its kernel (nbxent/bce/cpu_f32.py);
    # float64 BCE runs the separate serial range check once
    assert got == {"rows_serial": 1, "rows_par": 0, "nll_serial": 1, "range_check_par": 0,
                   "range_check_block": 0 if dtype == "float32" else 1}, got


def test_small_path_repeated_calls_match_general_path_bits():
    """The cached per-signature entry gives the general path's bits on every call.

    A Fortran-ordered copy of the same logits takes the general path (normalising copy,
    separate target scan, the mean's scale applied before the kernel).
    """
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((32, 10)) * 3).astype(np.float32)
    t = rng.integers(0, 10, 32)
    t[5] = -100
    w = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    xf = np.asfortranarray(x)
    for kw in ({}, {"weight": w}, {"reduction": "sum", "label_smoothing": 0.2},
               {"reduction": "none", "weight": w}):
        ref_loss, ref_grad = nbxent.cross_entropy_with_grad(xf, t, **kw)
        for _ in range(3):
            loss, grad = nbxent.cross_entropy_with_grad(x, t, **kw)
            assert loss.tobytes() == ref_loss.tobytes(), kw
            assert np.ascontiguousarray(ref_grad).tobytes() == grad.tobytes(), kw
            out = np.empty_like(x)
            loss2, grad2 = nbxent.cross_entropy_with_grad(x, t, out=out, **kw)
            assert grad2 is out and grad2.tobytes() == grad.tobytes(), kw
            assert loss2.tobytes() == ref_loss.tobytes(), kw
            assert nbxent.cross_entropy(x, t, **kw).tobytes() == ref_loss.tobytes(), kw


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_small_nll_matches_general_path_bits(reduction, weighted):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((32, 10)) * 3).astype(np.float32)
    t = rng.integers(0, 10, 32)
    t[7] = -100
    w = rng.uniform(0.5, 2.0, 10).astype(np.float32) if weighted else None
    ref_loss, ref_grad = nbxent.nll_loss_with_grad(np.asfortranarray(x), t, w,
                                                   reduction=reduction)
    ref_grad = np.ascontiguousarray(ref_grad)
    loss, grad = nbxent.nll_loss_with_grad(x, t, w, reduction=reduction)
    assert loss.dtype == ref_loss.dtype and loss.tobytes() == ref_loss.tobytes()
    assert grad.tobytes() == ref_grad.tobytes()
    assert nbxent.nll_loss(x, t, w, reduction=reduction).tobytes() == ref_loss.tobytes()
    xi = x.copy()
    loss2, grad2 = nbxent.nll_loss_with_grad(xi, t, w, reduction=reduction, out=xi)
    assert grad2 is xi and xi.tobytes() == ref_grad.tobytes()
    assert loss2.tobytes() == ref_loss.tobytes()
