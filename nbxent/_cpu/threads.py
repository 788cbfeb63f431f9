"""When a CPU kernel runs in parallel, and why small inputs never do.

Every loss has a parallel kernel (``prange`` over independent rows or blocks, then a
serial combine) and a serial twin built from the same per-row/per-block functions, so
both give the same bits. Inputs below :data:`PARALLEL_MIN` elements take the serial
twin, for two reasons:

* waking Numba's thread pool costs tens of microseconds (milliseconds of tail on busy
  machines), more than the work of a small call;
* fork safety. With the OpenMP threading layer (GNU libgomp), a process that forks after
  any parallel region has run leaves a child that is killed as soon as it enters a
  parallel region (``fork() called from a process already using GNU OpenMP``). torch's
  ``DataLoader`` forks its workers by default on Linux. A serial kernel never enters the
  thread pool, so small calls work in forked children. Large calls in a forked child
  still need one of the remedies: the ``spawn`` (or ``forkserver``) start method, or a
  threading layer that survives fork (``NUMBA_THREADING_LAYER=tbb`` or ``workqueue``;
  ``workqueue`` itself must not be entered from several Python threads at once).
"""
from __future__ import annotations

#: Elements (of the input) from which the parallel kernels are used.
PARALLEL_MIN = 1 << 15


def use_parallel(numel: int) -> bool:
    """True when a call over ``numel`` elements should use the parallel kernel."""
    return numel >= PARALLEL_MIN
