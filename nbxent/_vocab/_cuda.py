"""CUDA kernels of the vocab-parallel statistics and gradient (compiled lazily, first use).

One thread per row, grid-stride, the row serial in float64 through the same formulas as
the CPU (``_formulas``): identical results for any launch geometry, no atomics, no shared
memory. Statistics are O(N) numbers per shard, so only they move to the host.
"""
from __future__ import annotations

import numpy as np

_KERNELS = None


def kernels():
    """``(stats_kernel, grad_kernel)``, built on the first call (importing numba.cuda then)."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    from numba import cuda

    from nbxent._vocab import _formulas as F

    row_stats = cuda.jit(device=True)(F.row_stats)
    grad_row = cuda.jit(device=True)(F.grad_row)

    @cuda.jit
    def stats_kernel(x, t, w, has_weight, v0, ignore_index, smooth, out):
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, x.shape[0], step):
            ti = t[i]
            if ti == ignore_index:
                ti = v0 - 1    # held by no shard: the row's mass only (see _combine)
            m, z, xt, wt, sm, owned = row_stats(x, i, v0, ti, w, has_weight, smooth)
            out[0, i] = m
            out[1, i] = z
            out[2, i] = xt
            out[3, i] = wt
            out[4, i] = sm
            out[5, i] = owned

    @cuda.jit
    def grad_kernel(x, t, w, has_weight, v0, ignore_index, lse, a, b, d, out):
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, x.shape[0], step):
            grad_row(x, i, v0, t[i], w, has_weight, lse[i], a[i], b[i], d[i], out)

    _KERNELS = (stats_kernel, grad_kernel)
    return _KERNELS


def launch(kernel, n, *args):
    import nbxent.cuda as nc

    tpb = nc.threads_per_block()
    blocks = max(1, min(-(-max(n, 1) // tpb), 1024))
    kernel[blocks, tpb](*args)


def device_empty(shape, dtype):
    from numba import cuda
    return cuda.device_array(shape, dtype=np.dtype(dtype))
