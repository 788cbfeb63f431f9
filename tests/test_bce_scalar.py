"""The per-element BCE formulas: one source for every backend.

The float64 CPU kernels and the CUDA backend call ``bce_loss``, ``bcewl_loss`` and
``bcewl_grad_input`` (libm inside); the float32 CPU kernels call the ``*_parts`` versions
with the transcendentals computed outside (vectorized float32 functions). Given the same
libm values, the two must return the same bits on a grid that includes the clamp region,
signed zeros, huge and infinite logits, NaN and targets outside [0, 1]. The float32 loops
must also actually vectorize (AVX2 hosts), which is what the ``*_parts`` form is for.
"""
from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import pytest

from nbxent.bce import cpu_f32 as _bce_cpu_f32
from nbxent.bce.formulas import (
    bce_loss,
    bce_loss_parts,
    bcewl_grad_input,
    bcewl_grad_input_parts,
    bcewl_loss,
    bcewl_loss_parts,
)

INF, NAN = math.inf, math.nan
BCE_X = [0.0, -0.0, 5e-324, 1e-45, 3.7e-44, 1e-30, 1e-5, 0.25, 0.5, 0.5 + 2**-40, 0.75,
         1 - 2**-24, 1 - 2**-53, 1.0]
BCE_Y = [0.0, 1e-3, 0.3, 0.5, 0.7, 1.0]
WL_X = [-INF, -1e4, -745.0, -40.0, -1.0, -1e-10, -0.0, 0.0, 1e-10, 0.5, 17.3, 40.0, 745.0, 1e4,
        INF, NAN]
WL_Y = [-INF, -0.5, 0.0, 0.1, 0.5, 1.0, 2.0, INF, NAN]
WL_PW = [(1.0, False), (0.0, True), (0.5, True), (3.0, True), (-2.0, True), (INF, True)]


@numba.njit
def _bce_pair(x, y):
    return bce_loss(x, y), bce_loss_parts(y, math.log1p(-x), math.log(x))


@numba.njit
def _bcewl_pair(x, y, pw, has_pw):
    e = math.exp(-abs(x))
    return (bcewl_loss(x, y, pw, has_pw), bcewl_loss_parts(x, y, pw, has_pw, math.log1p(e)),
            bcewl_grad_input(x, y, pw, has_pw), bcewl_grad_input_parts(x, y, pw, has_pw, e))


def _same_bits(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or np.float64(a).tobytes() == np.float64(b).tobytes()


def test_bce_loss_parts_is_bce_loss():
    for x, y in itertools.product(BCE_X, BCE_Y):
        full, parts = _bce_pair(x, y)
        assert _same_bits(full, parts), (x, y, full, parts)


def test_bcewl_parts_are_the_bcewl_formulas():
    for x, y, (pw, has_pw) in itertools.product(WL_X, WL_Y, WL_PW):
        loss, loss_p, grad, grad_p = _bcewl_pair(x, y, pw, has_pw)
        assert _same_bits(loss, loss_p), ("loss", x, y, pw, has_pw, loss, loss_p)
        assert _same_bits(grad, grad_p), ("d/dx", x, y, pw, has_pw, grad, grad_p)


def _host_has(*features):
    import llvmlite.binding as llvm
    flags = llvm.get_host_cpu_features()
    return all(flags.get(f, False) for f in features)


def _f32(n):
    return np.full(n, 0.5, dtype=np.float32)


N = 64
ONES = np.ones(N)
# (loop, arguments, packed instruction that only a vectorized build contains)
LOOPS = {
    "bce logs": ("_bce_logs", lambda: (N, _f32(N), _f32(N), _f32(N)), "vfmadd", "ps"),
    "bce losses": ("_bce_losses", lambda: (N, _f32(N), ONES, _f32(N), _f32(N), np.empty(N)),
                   "vmul", "pd"),
    "bce grads": ("_bce_grads", lambda: (N, _f32(N), _f32(N), ONES, ONES, 1.0, 1.0, _f32(N)),
                  "vdiv", "pd"),
    "bcewl exp/log1p": ("_bcewl_exp_log1p", lambda: (N, _f32(N), _f32(N), _f32(N)), "vfmadd", "ps"),
    "bcewl losses": ("_bcewl_losses",
                     lambda: (N, _f32(N), _f32(N), ONES, ONES, False, _f32(N), np.empty(N)),
                     "vmul", "pd"),
    "bcewl grads": ("_bcewl_grads", lambda: (N, _f32(N), _f32(N), ONES, ONES, True, _f32(N), ONES,
                                             1.0, 1.0, _f32(N)), "vdiv", "pd"),
}


@pytest.mark.skipif(not _host_has("avx2", "fma"), reason="the check needs an AVX2+FMA host")
@pytest.mark.parametrize("name", LOOPS)
def test_float32_kernel_loops_vectorize(name):
    # A fresh (uncached) compile of each element loop of the float32 kernels, so its assembly
    # can be read: the float32 transcendentals must run on 8-lane ymm registers and the
    # float64 formulas on 4-lane ones (a scalar build uses only xmm ...ss/...sd forms).
    attr, make_args, op, suffix = LOOPS[name]
    loop = numba.njit(error_model="numpy")(getattr(_bce_cpu_f32, attr).py_func)
    loop(*make_args())
    asm = loop.inspect_asm(loop.signatures[0])
    # AVX-512 hosts may widen to zmm registers; AVX2 hosts use ymm.
    ops = [ln.split()[0] for ln in asm.splitlines() if ("%ymm" in ln or "%zmm" in ln) and ln.strip()]
    assert any(o.startswith(op) and o.endswith(suffix) for o in ops), f"{name}: no {op}*{suffix}"
