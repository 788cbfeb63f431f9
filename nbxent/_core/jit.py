"""Compilation settings and the named flags every kernel shares.

Kernels read these as compile-time constants (Numba freezes module globals), so they
are constants, never configuration.
"""
from __future__ import annotations

import os

#: What a kernel does with the input gradient (``grad_mode``).
GRAD_NONE = 0       #: no input gradient
GRAD_INTO = 1       #: into a separate buffer
GRAD_IN_PLACE = 2   #: over the input's own memory (every element is read before it is written)


def _cache_dir_usable() -> bool:
    """True when Numba can write its on-disk cache for this package.

    Numba writes beside the module (``__pycache__``), else in the user's cache
    directory, else under ``NUMBA_CACHE_DIR``; when none is writable
    ``cache=True`` raises at decoration time, so kernels compile in memory.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [os.environ.get("NUMBA_CACHE_DIR"), os.path.join(here, "__pycache__"), here,
                  os.path.join(os.path.expanduser("~"), ".cache")]
    return any(c and os.path.isdir(c) and os.access(c, os.W_OK) for c in candidates)


#: Whether module-level kernels are compiled with ``cache=True``.
CACHE: bool = _cache_dir_usable()
