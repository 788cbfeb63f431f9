"""CUDA kernels of the vocab-parallel statistics and gradient (imported and compiled lazily).

One thread per row, grid-stride, the row serial in float64 through the same formulas as
the CPU (``_formulas``): identical results for any launch geometry, no atomics, no shared
memory. Statistics are O(N) numbers per shard, so only they move to the host. A row per
thread keeps the simulator fast and the code obviously deterministic; a block-per-row
reduction would use the GPU better for large shards (see docs/linear.md, "Left").
This module imports ``numba.cuda``: it is imported only by the functions that launch.
"""
from __future__ import annotations

from numba import cuda

from nbxent._vocab import _formulas as F

_row_stats = cuda.jit(device=True)(F.row_stats)
_grad_row = cuda.jit(device=True)(F.grad_row)


@cuda.jit
def stats_kernel(x, t, w, has_weight, v0, ignore_index, smooth, out):
    """``out[k, i]`` for k = (m, z, xt, wt, sm, owned); an ignored row is held by no shard."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, x.shape[0], step):
        ti = t[i]
        if ti == ignore_index:
            ti = v0 - 1
        m, z, xt, wt, sm, owned = _row_stats(x, i, v0, ti, w, has_weight, smooth)
        out[0, i] = m
        out[1, i] = z
        out[2, i] = xt
        out[3, i] = wt
        out[4, i] = sm
        out[5, i] = owned


@cuda.jit
def grad_kernel(x, t, w, has_weight, v0, ignore_index, lse, a, b, d, out):
    """The shard's gradient rows (an ignored row has a = b = d = 0)."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, x.shape[0], step):
        _grad_row(x, i, v0, t[i], w, has_weight, lse[i], a[i], b[i], d[i], out)


def kernels():
    return stats_kernel, grad_kernel


def launch(kernel, n, *args):
    """Launch over ``n`` rows with nbxent.cuda's block size (a thread per row)."""
    import nbxent.cuda as nc

    tpb = nc.threads_per_block()
    blocks = max(1, min(-(-max(n, 1) // tpb), 1024))
    kernel[blocks, tpb](*args)
