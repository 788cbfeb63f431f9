"""Lazy access to numba.cuda, launch geometry, and host/device array moves.

Nothing here imports ``numba.cuda`` at module import: importing ``nbxent.cuda``
must stay cheap and must work on machines without the ``cuda`` extra. The first
call that needs the device goes through :func:`cuda_module`, which imports
``numba.cuda`` once and raises ONE clear error when it cannot be used.
"""
from __future__ import annotations

import os

from nbxent._core.device import is_device_array as is_device  # noqa: F401  (used by the launchers)

_CUDA = None          # the numba.cuda module once it has been imported and checked
_TPB = 256            # threads per block for every launch (see set_threads_per_block)
_SIM_BLOCKS = 2       # blocks per multiprocessor-equivalent under the simulator


def simulator_enabled() -> bool:
    """True when Numba's CUDA simulator is switched on for this process."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_module():
    """Import ``numba.cuda`` and check there is something to run on.

    Raises:
        ImportError: numba-cuda is not installed (the ``nbxent[cuda]`` extra).
        RuntimeError: there is no CUDA device and the simulator is off.
    """
    global _CUDA
    if _CUDA is not None:
        return _CUDA
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "nbxent.cuda: numba-cuda is not installed; install the extra with "
            "`pip install nbxent[cuda]`"
        ) from exc
    if not simulator_enabled() and not cuda.is_available():
        raise RuntimeError(
            "nbxent.cuda: no CUDA device and the simulator is off "
            "(set NUMBA_ENABLE_CUDASIM=1 to run the kernels on the CPU simulator)"
        )
    _CUDA = cuda
    return cuda


def is_available() -> bool:
    """True when a call into ``nbxent.cuda`` can run (a GPU, or the simulator)."""
    try:
        cuda_module()
    except (ImportError, RuntimeError):
        return False
    return True


def set_threads_per_block(n: int) -> int:
    """Set the block size of every later launch; returns the previous value.

    Read by the launchers only (kernels take their geometry from ``cuda.blockDim``),
    so changing it never recompiles a kernel. Must be a power of two in [1, 1024]
    because the shared-memory reductions halve the active threads each step
    (real GPUs want 128-1024; the simulator is fastest with 8-32).
    """
    global _TPB
    n = int(n)
    if n < 1 or n > 1024 or n & (n - 1):
        raise ValueError(
            f"nbxent.cuda.set_threads_per_block: argument 'n'={n} must be a power of two in [1, 1024]"
        )
    old, _TPB = _TPB, n
    return old


def threads_per_block() -> int:
    """The block size launches use now."""
    return _TPB


def _multiprocessors() -> int:
    if simulator_enabled():
        # The simulator runs blocks one after another with a Python thread per
        # GPU thread; a tiny grid keeps it fast and still exercises the
        # grid-stride loops and the cross-block combine.
        return 1
    dev = cuda_module().get_current_device()
    return int(dev.MULTIPROCESSOR_COUNT)


def grid_for(work_items: int, items_per_block: int = 0) -> int:
    """Number of blocks for ``work_items`` units of work.

    ``items_per_block`` is how many units one block handles per grid-stride step
    (``threads_per_block()`` for thread-per-item kernels, 1 for block-per-row
    kernels). The grid never exceeds what the device can keep resident
    (multiprocessors x 8 blocks on a GPU, 2 on the simulator), so the per-block
    partial buffers stay small; grid-stride loops cover the rest.
    """
    per = items_per_block or _TPB
    need = max(1, -(-int(work_items) // per))
    cap = _multiprocessors() * (_SIM_BLOCKS if simulator_enabled() else 8)
    return max(1, min(need, cap))


def as_device(cuda, obj):
    """A numba device array for ``obj`` without copying device memory.

    Numba device arrays pass through; other ``__cuda_array_interface__`` objects
    (CuPy, torch CUDA tensors) are wrapped zero-copy.
    """
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    return cuda.as_cuda_array(obj)
