"""Block-level reductions and the fixed-order combine of per-block partials.

Cross-row sums are two-stage and atomic-free: every block writes one float64
partial (its rows or elements in grid-stride order, then a shared-memory tree),
and :func:`combine_kernel` adds the partials with one block in a fixed tree
order. For a given grid and block size the result is bit-identical run to run.
The float64 accumulator makes the sum of float32 losses exact to ~1 ulp of
float32 whatever the row count.

Shared memory, not warp shuffles: the CUDA simulator has no shuffles, and the
tree costs log2(block size) barriers per reduction.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

MAX_TPB = 1024  # shared arrays are sized for the largest block set_threads_per_block allows


@cuda.jit(device=True)
def block_sum(sh, v):
    """Sum ``v`` over the block through ``sh``; every thread gets the total."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if tid < stride:
            sh[tid] = sh[tid] + sh[tid + stride]
        cuda.syncthreads()
        stride //= 2
    total = sh[0]
    cuda.syncthreads()  # sh is reused by the caller's next reduction
    return total


@cuda.jit(device=True)
def block_min(sh, v):
    """Minimum of ``v`` over the block through ``sh`` (integer first-bad indices)."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if tid < stride:
            sh[tid] = min(sh[tid], sh[tid + stride])
        cuda.syncthreads()
        stride //= 2
    least = sh[0]
    cuda.syncthreads()  # sh is reused by the caller's next reduction
    return least


@cuda.jit
def combine_kernel(partial, sign, denom, out):
    """``out[0] = sign * (sum of partial) / denom`` with one block, fixed order.

    ``sign`` is -1 where the partials hold negated losses (probability-target
    cross-entropy accumulates ``sum w q lp`` and negates once, as torch does, so
    an empty sum gives -0.0); ``denom`` is 1 for 'sum'.
    """
    sh = cuda.shared.array(MAX_TPB, dtype=np.float64)
    acc = 0.0
    for i in range(cuda.threadIdx.x, partial.shape[0], cuda.blockDim.x):
        acc += partial[i]
    total = block_sum(sh, acc)
    if cuda.threadIdx.x == 0:
        out[0] = (sign * total) / denom


@cuda.jit
def cast_kernel(src, dst):
    """Elementwise ``dst[i] = src[i]`` (dtype conversion on the device; 1-D views)."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, src.shape[0], step):
        dst[i] = src[i]
