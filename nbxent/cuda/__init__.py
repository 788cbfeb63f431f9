"""nbxent.cuda: the CUDA backend (Numba ``@cuda.jit`` kernels), same API as ``nbxent``.

For each of ``cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` there are ``L``, ``L_backward`` and
``L_with_grad``: the very functions of ``nbxent.functional`` with the backend pinned
to CUDA (same signatures, docstrings, validation and semantics, torch 2.13).
Arguments may be NumPy arrays (copied to the device; results come back as NumPy)
or device arrays (numba device arrays, or anything exposing ``__cuda_array_interface__``:
CuPy, torch CUDA tensors; used zero-copy when C-contiguous with the kernel's dtype;
results are numba device arrays).

Importing this package is cheap and never imports ``numba.cuda``: the first call
does, and raises ONE clear error when it cannot run (ImportError naming the
``nbxent[cuda]`` extra, or RuntimeError when there is neither a GPU nor the
simulator, ``NUMBA_ENABLE_CUDASIM=1``). :func:`is_available` says in advance.

Kernels (all module-level, compiled lazily for the argument types on first use):

* ``ce_rows_kernel`` (``nbxent.xent.cuda_kernels``): cross_entropy, index and probability
  targets. One thread block per sample (grid-stride over samples); input viewed
  as ``(N, C, K)`` with class stride ``K`` (no transposing copy for K-dim inputs).
  Pass 1 builds an online log-sum-exp state per thread, merged through shared
  memory; pass 2 writes the gradient (and the smoothing/probability loss terms).
  Loss and gradient come from the same pass, so they share the normaliser.
* ``ce_prepass_kernel``: device-side range check of class-index targets and the
  'mean' denominator ``sum w[t]`` (per-block first bad index and weight sums;
  only those come back to the host). NumPy targets are checked on the host.
* ``nll_kernel``: nll_loss, thread per sample; gradient as a scaled one-hot.
* ``bce_kernel`` / ``bce_check_kernel`` (``nbxent.bce.cuda_kernels``): elementwise,
  grid-stride; broadcast weight/pos_weight read through a 3-level index grid
  (no expansion); BCE's [0, 1] check on the device for device arrays.
* ``combine_kernel`` (``_reduce_kernels``): every cross-row sum is two-stage
  (per-block float64 partials, then one block adds them in a fixed order); no
  float atomics, so results are identical run to run for a given geometry.

Launch geometry comes from one helper (``_runtime.grid_for``): block size from
:func:`set_threads_per_block` (default 256; a power of two; the simulator is
fastest at 8-32), grid capped at 8 blocks per multiprocessor (2 blocks under the
simulator). The block size is read by the launchers only, never inside kernels.

Accuracy forms are the CPU backend's: the CE formulas, loss and gradient
(``nbxent.xent.formulas``), and the BCE formulas (``nbxent.bce.formulas``) are compiled
as device functions from the same Python source. float16 is computed in float32
(BCE in float64) and rounded once.

What the simulator (the test suite's default) cannot verify: real-GPU speed and
occupancy, memory coalescing, 64-bit offsets beyond 2**31 elements (the kernels
index with int64 throughout, but no test allocates that much), behaviour of
float32 ``math`` intrinsics on the device (the simulator runs NumPy/Python math),
and device-function compilation of the shared scalar sources by the real CUDA
target. ``benchmarks/bench_cuda.py`` checks results and speed on a real GPU.
"""
from nbxent import functional as _functional
from nbxent._core.device import CUDA as _CUDA
from nbxent._core.device import pinned as _pinned
from nbxent.cuda._runtime import is_available, set_threads_per_block, threads_per_block
from nbxent.functional import CrossEntropyOutput as CrossEntropyOutput  # the same result type

# The public functions of nbxent.functional with the backend pinned to CUDA: one
# definition, one docstring and one set of checks for both backends.
cross_entropy = _pinned(_functional.cross_entropy, _CUDA)
cross_entropy_backward = _pinned(_functional.cross_entropy_backward, _CUDA)
cross_entropy_with_grad = _pinned(_functional.cross_entropy_with_grad, _CUDA)
nll_loss = _pinned(_functional.nll_loss, _CUDA)
nll_loss_backward = _pinned(_functional.nll_loss_backward, _CUDA)
nll_loss_with_grad = _pinned(_functional.nll_loss_with_grad, _CUDA)
binary_cross_entropy = _pinned(_functional.binary_cross_entropy, _CUDA)
binary_cross_entropy_backward = _pinned(_functional.binary_cross_entropy_backward, _CUDA)
binary_cross_entropy_with_grad = _pinned(_functional.binary_cross_entropy_with_grad, _CUDA)
binary_cross_entropy_with_logits = _pinned(_functional.binary_cross_entropy_with_logits, _CUDA)
binary_cross_entropy_with_logits_backward = _pinned(
    _functional.binary_cross_entropy_with_logits_backward, _CUDA)
binary_cross_entropy_with_logits_with_grad = _pinned(
    _functional.binary_cross_entropy_with_logits_with_grad, _CUDA)

# Fused linear cross-entropy (docs/linear.md), pinned like the rest.
from nbxent import _linear  # noqa: E402

linear_cross_entropy = _pinned(_linear.linear_cross_entropy, _CUDA)
linear_cross_entropy_with_grad = _pinned(_linear.linear_cross_entropy_with_grad, _CUDA)

__all__ = [*_functional.__all__, "is_available", "set_threads_per_block", "threads_per_block",
           "linear_cross_entropy", "linear_cross_entropy_with_grad"]
